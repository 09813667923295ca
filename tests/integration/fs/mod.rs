//! Integration tests for the filesystem RPCs (docs/protocol.md "Filesystem"),
//! through the built binary. Each test starts its own server (an
//! `support::fs::FsServer`) and uses its own temp dir.

mod copy;
mod dirs;
mod gate_sandbox;
mod guard;
mod handles;
mod paths;
mod perms;
mod read_write;
mod walk;
mod watch;
