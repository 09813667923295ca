//! The modes the `tether` binary runs (main.rs picks one from argv): the stdio
//! JSON-RPC exec-server, the sandboxed `codex-fs` child that does one filesystem
//! request (docs/protocol.md "Sandboxed filesystem requests"), and the
//! `execve-wrapper` a patched bash runs before every exec (docs/protocol.md
//! "Exec escalation"). Nothing below imports them.

pub mod codex_fs;
pub mod exec_server;
pub mod execve_wrapper;
