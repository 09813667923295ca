//! Integration tests of `tether::client`, `tether run` and environments.toml,
//! through the real `tether` binary (and, for the multi-host test, a real sshd).
//! Helpers: `support::client`.

mod environments;
mod guard;
mod library;
mod run;
mod ssh;
mod tty;
