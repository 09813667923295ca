//! Exec escalation (docs/protocol.md "Exec escalation") through the real binaries: the patched
//! bash and the reference `codex-execve-wrapper` from
//! `@openai/codex-shell-tool-mcp@0.97.0` (installed from npm into a cache outside
//! the repository), the built `tether` as wrapper and server, and a
//! protocol-exact escalation server written here. When npm cannot be reached the
//! tests say so loudly on stderr and return without asserting anything.
//!
//! The 0.97 bash build moves its argument vector two slots up without growing
//! it (`memmove(args + 2, ...)`), so the terminating NULL lands on the next heap
//! chunk: with an even number of words (command name included) an argument
//! can come out empty. Scripts here exec commands with an odd number of words.

#[path = "it/harness.rs"]
mod harness;

mod escalation {
    pub mod common;
    pub mod escape;
    pub mod fake;
    pub mod interop;
    pub mod shell;
    pub mod wrapper;
}
