//! Exec escalation (docs/protocol.md "Exec escalation"): the per-shell
//! escalation broker inside exec-server ([`broker`]) that answers the
//! `execve-wrapper` mode (`modes/execve_wrapper.rs`) a patched bash runs before
//! every exec, and the wire both speak.

pub mod broker;
pub mod env;
pub mod policy;
pub mod wire;
