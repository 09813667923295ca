//! The integration suite: one test binary that drives the built `tether` from
//! the outside, over stdio as a client would, and checks what docs/protocol.md
//! says. `cargo test` runs it; `cargo test --test integration -- fs::` runs a
//! part. A test starts its own servers and, when one is gone, the orphan check
//! fails the test if anything that server started is still alive.
//!
//! Shared code lives in `tests/support/` (the one `Server` driver, the orphan
//! check, /proc scans, fixtures, `skip`). Tests that need real programs
//! downloaded from npm (the Codex CLI, the patched bash) are in the opt-in
//! binary `tests/real_programs/` (`cargo test --test real_programs`).
//!
//! A test that cannot run on this machine (no root, no sshd, no tmpfs mount, no
//! user namespaces, no writable cgroup v2) calls `support::skip`: the skipped
//! tests are listed on stderr when the binary exits, and with `CI=true` each
//! skip is a failure.
//!
//! Contents, one line per module:
//!
//! - `transport`: framing, malformed input, the handshake, environment methods
//! - `process`: process/start, output events, read, write, signal, terminate, resize
//! - `discovery`: capabilities/discoverV2: the executor's skills
//! - `snapshot`: shell snapshots: `shellSnapshot` on process/start replays a login shell's state
//! - `lifetime`: shutdown triggers, killing the whole tree (groups, cgroup guard), exit status
//! - `slow_reader`: a client that stops reading loses nothing; the server's memory stays bounded
//! - `cli`: the binary itself: mode dispatch, `tether run`, `install-links`, CLI errors
//! - `fs`: the filesystem RPCs (a submodule per group), the handshake gate, destructive requests
//! - `sandbox_fs`: the escape suite for sandboxed filesystem requests, also as `nobody`
//! - `sandbox_proc`: the process sandbox attacked rule by rule
//! - `escalation`: the built `execve-wrapper` against a fake server; escapes without real bash
//! - `services`: unified-exec tools and `http/request` (with `valueEnvVar` headers) against a local HTTP server
//! - `environment_config`: `environmentConfig/read`: config layers, trust, projection, exact bytes, errors
//! - `contract`: integer server-request ids (`process/approveExec`), the sandbox's `policyContext`
//! - `client`: `tether::client`, `tether run`, environments.toml, `ChildGuard`, a tty, sshd
//! - `hostile`: the hostile-input matrix (long variants `#[ignore]`d: `just soak`)
//! - `load`: many processes, terminals and pipelined requests at once (long variants ignored)
//! - `faults`: stalled clients, odd children, fd exhaustion, a full disk, a killed server
//! - `layers`: the import direction of `src/`'s top-level modules (reads source only)

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod client;
mod contract;
mod discovery;
mod environment_config;
mod escalation;
mod faults;
mod fs;
mod hostile;
mod layers;
mod lifetime;
mod load;
mod process;
mod sandbox_fs;
mod sandbox_proc;
mod services;
mod slow_reader;
mod snapshot;
mod transport;
