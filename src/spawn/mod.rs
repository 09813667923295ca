//! Starting and owning children, below every service that starts one: the
//! [`spawner::Spawner`] (its threads and the vfork/fork path) and what it starts
//! ([`spec::SpawnSpec`]), the post-fork child
//! ([`child`], the only code that runs between fork and exec), the reaper, group
//! signals and the shutdown sweep ([`group`]), the lifetime guard ([`lifeguard`],
//! told of each new group by the reaper), the child's environment
//! ([`env_policy`]) and the descriptor limit children get back ([`limits`]).
//!
//! Imports only `protocol`, `sys` and `sandbox` (docs/architecture.md "Layers").

mod child;
pub mod env_policy;
pub mod group;
pub mod lifeguard;
pub mod limits;
pub mod spawner;
pub mod spec;
