//! The process manager: process records keyed by the client's `processId`, and the
//! `process/*` operations on them (docs/protocol.md "Processes").
//!
//! - `manager.rs`: the [`ProcessManager`] (start, read, write, signal, terminate,
//!   resize, the 1,024-record limit, eviction of closed records, shutdown).
//! - `record.rs`: one record's state and its inbox (writes and closes in wire order).
//! - `error.rs`: [`ProcessError`].
//! - `pump.rs`: the output pump and the stdin task of one child.
//! - `retention.rs`: the output a record keeps for `process/read`.
//! - `snapshot.rs`: shell snapshots (`shellSnapshot` on `process/start`).

pub mod error;
pub mod manager;
pub mod pump;
pub mod record;
pub mod retention;
pub mod snapshot;

pub use error::ProcessError;
pub use manager::*;
