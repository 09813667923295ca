//! Tether: a stdio JSON-RPC executor, wire-compatible with the Codex CLI exec-server.
//!
//! The library exposes the wire types ([`protocol`]), the modes ([`modes`]), the
//! process manager ([`process`]) and a client ([`client`]) that spawns a server
//! behind a guard. The `tether` binary dispatches to them by mode.

pub mod cli;
pub mod client;
pub mod errors;
pub mod escalate;
pub mod fs;
/// Decoder invariants shared by the fuzz targets and the property tests.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod modes;
pub mod process;
pub mod protocol;
pub mod rpc;
pub mod sandbox;
pub mod spawn;
pub mod sys;
pub mod tools;
