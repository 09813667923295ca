//! What the test binaries share: `tests/integration` (the default suite) and
//! `tests/real_programs` (the opt-in one) both include this tree with
//! `#[path = "../support/mod.rs"] mod support;`.
//!
//! - [`server`]: the one server driver: `Server`, its `Builder`, `Line`; `Drop` checks orphans
//! - [`wire`]: what the server writes, checked: error shapes, key order, `Run` and its events
//! - [`orphans`]: the orphan check: nothing carrying a test's marker outlives the test
//! - [`procs`]: /proc scans by marker variable, process info
//! - [`fixtures`]: the built binary, unique names, temp dirs, files, base64
//! - [`wait`]: `wait_until`: wait for an event, not for a duration
//! - [`skip`]: `skip(reason)`: listed when the binary exits, a failure with `CI=true`
//! - [`fs`]: the filesystem tests' adapter over `Server` (`FsServer`) and their fixtures
//! - [`ns`]: private mount namespaces for the destructive-request tests
//! - [`services`]: the tools and `http/request` tests' server preset
//! - [`client`]: helpers for the client-library and `tether run` tests
//! - [`escalation`]: shells with escalation, rules, the escape tests' sandbox and dirs
//! - [`npm`]: the npm cache: the Codex CLI, the patched bash, the reference wrapper

// Each binary uses a different part of this tree.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod client;
pub mod escalation;
pub mod fixtures;
pub mod fs;
pub mod npm;
pub mod ns;
pub mod orphans;
pub mod procs;
pub mod server;
pub mod services;
pub mod skip;
pub mod wait;
pub mod wire;

pub use fixtures::*;
pub use procs::*;
pub use server::*;
pub use skip::skip;
pub use wait::*;
pub use wire::*;
