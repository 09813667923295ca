//! Exec escalation (docs/protocol.md "Exec escalation") without downloads: the
//! built `tether` as the shell's wrapper and as the server, against a
//! protocol-exact escalation server written here (`fake`), and the escape tests
//! that need no patched bash. The tests with the real patched bash and the
//! reference `codex-execve-wrapper` from npm are in the opt-in binary
//! (`tests/real_programs`).

mod escape;
mod fake;
mod wrapper;
