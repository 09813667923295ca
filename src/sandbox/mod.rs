//! The sandbox (PROTOCOL.md §8): policy parsing and resolution ([`policy`]),
//! Landlock and seccomp ([`landlock`], [`seccomp`]), the mount layer ([`mount`]),
//! and the host probe.

pub mod caps;
pub mod landlock;
pub mod mount;
pub mod plan;
pub mod policy;
pub mod seccomp;
