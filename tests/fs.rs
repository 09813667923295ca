//! Integration tests for the filesystem RPCs (docs/protocol.md "Filesystem"), through the
//! built binary. Each test starts its own server and uses its own temp dir.

#[path = "fs/harness.rs"]
mod harness;
#[path = "fs/ns.rs"]
mod ns;

#[path = "fs/copy.rs"]
mod copy;
#[path = "fs/dirs.rs"]
mod dirs;
#[path = "fs/gate_sandbox.rs"]
mod gate_sandbox;
#[path = "fs/guard.rs"]
mod guard;
#[path = "fs/handles.rs"]
mod handles;
#[path = "fs/paths.rs"]
mod paths;
#[path = "fs/perms.rs"]
mod perms;
#[path = "fs/read_write.rs"]
mod read_write;
#[path = "fs/walk.rs"]
mod walk;
#[path = "fs/watch.rs"]
mod watch;
