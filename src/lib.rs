//! Tether: a stdio JSON-RPC executor, wire-compatible with the Codex CLI exec-server.
//!
//! As a library, Tether is a client: [`client`] spawns (or connects to) an
//! exec-server behind a guard that ends it and everything it started when dropped,
//! and [`protocol`] holds the wire types it speaks (docs/protocol.md). Build with
//! `default-features = false, features = ["client"]` to get only these two, without
//! the server's dependencies.
//!
//! [`client`]'s module documentation shows a whole session; `examples/echo.rs`
//! is the same as a program, built client-only by CI.
//!
//! Everything else (the modes, the sandbox, the spawner, the services) is the
//! `tether` binary's and not a supported API; `main.rs` reaches it through
//! [`entry`] only.

#[cfg(feature = "client")]
pub mod client;
pub mod protocol;

/// Items that exist only with the `server` feature (the binary's insides).
macro_rules! server_only {
    ($($item:item)*) => { $( #[cfg(feature = "server")] $item )* };
}

server_only! {
    mod cli;
    mod discovery;
    mod envconfig;
    mod errors;
    mod escalate;
    mod fs;
    mod http;
    mod modes;
    mod process;
    mod rpc;
    mod sandbox;
    mod spawn;
    mod sys;
    mod tools;
}

/// Decoder invariants shared by the fuzz targets (`cargo fuzz` builds with
/// `--cfg fuzzing`) and the property tests. Not part of the supported API.
#[cfg(all(feature = "server", any(test, fuzzing)))]
#[doc(hidden)]
pub mod fuzzing;

/// What `main.rs` dispatches to, one function per mode. Not part of the
/// supported API.
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod entry {
    pub use crate::cli::links::install as install_links;
    pub use crate::cli::run::{run as run_command, RunArgs};
    pub use crate::cli::VERSION;
    pub use crate::modes::codex_fs::main as codex_fs;
    pub use crate::modes::exec_server::{run as exec_server, run_then as exec_server_then};
    pub use crate::modes::execve_wrapper::main as execve_wrapper;
}
