//! Black-box integration tests: drive the built `tether` binary over stdio and
//! assert what docs/protocol.md says.

mod harness;

mod discovery;
mod lifetime;
mod process;
mod run;
mod slow_reader;
mod snapshot;
mod transport;
