//! The sandbox (docs/protocol.md "Sandbox"), one file per concern:
//!
//! - [`policy`]: parsing the `sandbox` object and resolving it into concrete
//!   path entries and deny globs;
//! - [`glob`]: matching a deny glob against a path;
//! - [`plan`]: what a process gets (nothing, seccomp only, or Landlock and
//!   seccomp with a mount layer), strict vs best-effort, the enforcement report;
//! - [`landlock`]: the ruleset, built before `fork`;
//! - [`seccomp`]: the BPF filter, built before `fork`;
//! - [`mount`]: the child's mount namespace (carve-outs, masks, pinned links,
//!   the private `/dev/shm`) and the placeholder directories;
//! - [`caps`]: the capabilities a sandboxed child drops;
//! - [`host`]: the host probe (Landlock ABI, seccomp, namespaces).
//!
//! A sandboxed child applies them in this order (`spawn/child.rs`): mount
//! layer, `chdir`, capability drop, no_new_privs, Landlock, seccomp, `execve`.
//! The `codex-fs` mode locks itself down with no_new_privs, Landlock and seccomp
//! only (`modes/codex_fs/lockdown.rs`).

pub mod caps;
pub mod glob;
pub mod host;
pub mod landlock;
pub mod mount;
pub mod plan;
pub mod policy;
pub mod seccomp;
