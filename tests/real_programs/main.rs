//! The opt-in suite: tests that drive real programs downloaded from npm into
//! the cache of `support::npm` (`~/.cache/tether`, or `$TETHER_CACHE`). Plain
//! `cargo test` does not run it (`test = false` in Cargo.toml); run it with
//!
//! ```sh
//! cargo test --test real_programs
//! ```
//!
//! The first run installs the programs with `npm install` (network to the npm
//! registry needed; about 500 MB on disk). When they cannot be had the tests skip:
//! listed on stderr when the binary exits, and a failure with `CI=true`.
//!
//! Contents, one line per module:
//!
//! - `codex`: the real Codex CLI 0.169.0 drives Tether through environments.toml
//! - `codex_copy`: Codex 0.169.0 and 0.171.0 with `multi_env_copy_file` copy 100 MiB from their local
//!   environment to Tether (`fs/open` `replace` + `fs/writeBlock`), byte-identical
//! - `codex_mcp`: Codex 0.169.0 and 0.171.0 offer and call an MCP server from the executor's own
//!   CODEX_HOME (`environmentConfig/read`, `valueEnvVar` headers)
//! - `codex_snapshot`: Codex 0.169.0 and 0.171.0 with `shell_snapshot_v2` send `shellSnapshot`
//!   (seen through a tap) and run a function from the executor's `~/.bashrc`; without it the function
//!   is missing
//! - `escalation`: the patched bash and the reference wrapper with Tether's wrapper and server

#[path = "../support/mod.rs"]
mod support;

mod codex;
mod codex_copy;
mod codex_mcp;
mod codex_snapshot;
mod escalation;
