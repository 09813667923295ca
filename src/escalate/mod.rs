//! Exec escalation (PROTOCOL.md §10): the `execve-wrapper` mode a patched bash
//! runs before every exec, and the per-shell escalation server inside
//! exec-server that answers it.

pub mod env;
pub mod policy;
pub mod server;
pub mod wire;
pub mod wrapper;
