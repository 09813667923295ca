//! Exec escalation (docs/protocol.md "Exec escalation") through the real
//! binaries: the patched bash and the reference `codex-execve-wrapper` from
//! `@openai/codex-shell-tool-mcp@0.97.0` (installed from npm into the cache of
//! `support::npm`), the built `tether` as wrapper and server. When they cannot
//! be had the tests skip (`support::skip`: loud at exit, a failure in CI).
//!
//! The 0.97 bash build moves its argument vector two slots up without growing
//! it (`memmove(args + 2, ...)`), so the terminating NULL lands on the next heap
//! chunk: with an even number of words (command name included) an argument
//! can come out empty. Scripts here exec commands with an odd number of words.

mod escape;
mod interop;
mod shell;
