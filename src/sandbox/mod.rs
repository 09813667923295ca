//! The sandbox (docs/protocol.md "Sandbox"): policy parsing and resolution ([`policy`]),
//! what a process gets ([`plan`]), Landlock and seccomp ([`landlock`],
//! [`seccomp`]), the mount layer ([`mount`]), the capability drop ([`caps`]),
//! and the host probe ([`host`]).

pub mod caps;
pub mod host;
pub mod landlock;
pub mod mount;
pub mod plan;
pub mod policy;
pub mod seccomp;
