//! Shell snapshots (docs/protocol.md "Processes", "Shell snapshots"): a login
//! shell's functions, aliases, options and exports, captured once per scope and
//! replayed into later commands, which then start as a plain (non-login) shell.
//!
//! The capture runs the request's own shell with `-lc` and a script of ours in
//! place of the command, with the same environment, cwd and sandbox; its stdout
//! carries a marker line, the state as shell text, a NUL, and `env -0`. A later
//! command gets the state in environment variables of at most [`CHUNK`] bytes,
//! and its argv becomes `SHELL -pc` (bash; `-fc` for zsh, `-c` for sh) with a
//! first line that `eval`s the state and then the original command. `-p`/`-f`
//! keep startup files and `BASH_ENV` from running again.

use crate::protocol::process::{EnvPolicy, Inherit, ShellSnapshot};
use crate::spawn::env_policy::{self, Env};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::AsyncReadExt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest `scopeId`, in bytes.
pub const MAX_SCOPE: usize = 256;
/// Snapshots kept per connection (the most recently used).
pub const CACHE_ENTRIES: usize = 16;
/// Largest capture output; more fails the capture.
pub const MAX_CAPTURE: usize = 512 * 1024;
/// How long a capture may take; longer fails it (the command then runs as sent).
pub const CAPTURE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest piece of the state in one environment variable.
pub const CHUNK: usize = 60 * 1024;
/// The state's variables: this prefix and the piece's number.
pub const STATE_VAR: &str = "__CODEX_SHELL_SNAPSHOT_STATE_";
/// Printed before the state, so that what the login profile printed is skipped.
const MARKER: &[u8] = b"__TETHER_SHELL_SNAPSHOT__\n";
/// Shells a snapshot is taken of.
const SHELLS: &[&str] = &["bash", "zsh", "sh"];
/// Never replayed from a snapshot: they describe the capturing shell itself.
const NOT_REPLAYED: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

/// `Err` with the -32602 text when `shellSnapshot` is malformed.
pub fn validate(s: &ShellSnapshot) -> Result<(), String> {
    if s.scope_id.is_empty() || s.scope_id.len() > MAX_SCOPE {
        return Err(format!(
            "shell snapshot scope must be non-empty and at most {MAX_SCOPE} bytes"
        ));
    }
    if !SHELLS.contains(&s.shell.name.as_str()) {
        return Err(format!(
            "shell snapshots are unsupported for shell `{}`",
            s.shell.name
        ));
    }
    Ok(())
}

/// Whether the snapshot applies to `argv`: `SHELL -lc CMD` with `SHELL` exactly
/// the snapshot's shell path. Anything else runs as sent.
pub fn applies(s: &ShellSnapshot, argv: &[String]) -> bool {
    argv.len() >= 3 && argv[0] == s.shell.path && argv[1] == "-lc"
}

/// What one snapshot is kept for: the scope, the shell, and everything that
/// changes what the login shell would set up (cwd, envPolicy, sandbox). The
/// request's `env` is not part of it: it is applied on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    scope: String,
    shell: (String, String),
    cwd: PathBuf,
    env_policy: String,
    sandbox: String,
}

impl Key {
    pub fn new(
        s: &ShellSnapshot,
        cwd: &Path,
        env_policy: Option<&EnvPolicy>,
        sandbox: Option<&serde_json::Value>,
    ) -> Key {
        let json = |v: Option<String>| v.unwrap_or_default();
        Key {
            scope: s.scope_id.clone(),
            shell: (s.shell.name.clone(), s.shell.path.clone()),
            cwd: cwd.to_path_buf(),
            env_policy: json(env_policy.and_then(|p| serde_json::to_string(p).ok())),
            sandbox: json(sandbox.map(|v| v.to_string())),
        }
    }
}

/// A captured shell: the state as shell text and the exported variables.
#[derive(Debug)]
pub struct Snapshot {
    state: Vec<u8>,
    exports: Vec<(OsString, OsString)>,
}

/// The most recently used snapshots of one connection.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<VecDeque<(Key, Arc<Snapshot>)>>,
}

impl Cache {
    /// The snapshot for `key`, now the most recently used.
    pub fn get(&self, key: &Key) -> Option<Arc<Snapshot>> {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let i = e.iter().position(|(k, _)| k == key)?;
        let hit = e.remove(i)?;
        let snap = hit.1.clone();
        e.push_front(hit);
        Some(snap)
    }

    /// Keep `snap` for `key`, forgetting the least recently used beyond
    /// [`CACHE_ENTRIES`].
    pub fn insert(&self, key: Key, snap: Arc<Snapshot>) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|(k, _)| *k != key);
        e.push_front((key, snap));
        e.truncate(CACHE_ENTRIES);
    }
}

/// The capture script for `shell` (run as `SHELL -lc SCRIPT`).
pub fn capture_script(shell: &str) -> String {
    let marker = String::from_utf8_lossy(&MARKER[..MARKER.len() - 1]);
    // Options that would change how the replaying shell itself runs, not what
    // the user set up: never replayed.
    let skip = "privileged|monitor|history|onecmd|emacs|vi|interactive|login|restricted";
    let (rc, functions, options) = match shell {
        "bash" => (
            r#"if [ -z "${BASH_ENV:-}" ] && [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi"#,
            "shopt -p | grep -Ev ' (login_shell|restricted_shell)$'\ndeclare -f",
            "set -o",
        ),
        "zsh" => (
            r#"__rc="${ZDOTDIR:-$HOME}/.zshrc"; if [ -r "$__rc" ]; then . "$__rc"; fi; unset __rc"#,
            "typeset -f",
            "set -o",
        ),
        _ => (
            r#"if [ -n "${ENV:-}" ] && [ -r "$ENV" ]; then . "$ENV"; fi"#,
            ":",
            "set -o",
        ),
    };
    format!(
        "{{ {rc}; }} >/dev/null 2>&1 </dev/null
printf '%s\\n' '{marker}'
printf '# Snapshot file\\nunalias -a\\n'
{functions}
{options} | while read -r __o __s; do
  case \"$__o\" in {skip}) continue ;; esac
  [ \"$__s\" = on ] && printf 'set -o %s\\n' \"$__o\"
done
alias | while IFS= read -r __a; do
  case \"$__a\" in 'alias '*) printf '%s\\n' \"$__a\" ;; *) printf 'alias %s\\n' \"$__a\" ;; esac
done
printf '\\0'
env -0
"
    )
}

/// Read `fd` (a pipe's read end) to its end, failing past [`MAX_CAPTURE`] bytes.
pub async fn read_capture(fd: OwnedFd) -> io::Result<Vec<u8>> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut out = Vec::new();
    pipe.take(MAX_CAPTURE as u64 + 1)
        .read_to_end(&mut out)
        .await?;
    if out.len() > MAX_CAPTURE {
        return Err(io::Error::other(format!(
            "the capture printed more than {MAX_CAPTURE} bytes"
        )));
    }
    Ok(out)
}

/// The snapshot in a capture's stdout, if it has one.
pub fn parse_capture(out: &[u8]) -> Option<Snapshot> {
    let start = memchr::memmem::rfind(out, MARKER)? + MARKER.len();
    let rest = &out[start..];
    let nul = memchr::memchr(0, rest)?;
    let exports = rest[nul + 1..]
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = memchr::memchr(b'=', kv)?;
            (eq > 0).then(|| {
                (
                    OsString::from_vec(kv[..eq].to_vec()),
                    OsString::from_vec(kv[eq + 1..].to_vec()),
                )
            })
        })
        .collect();
    Some(Snapshot {
        state: rest[..nul].to_vec(),
        exports,
    })
}

impl Snapshot {
    /// The argv that replays the state, then runs `argv[2]` (non-login).
    pub fn restore_argv(&self, s: &ShellSnapshot, argv: &[String]) -> Vec<String> {
        let n = self.state.len().div_ceil(CHUNK).max(1);
        let names: Vec<String> = (0..n).map(|i| format!("{STATE_VAR}{i}")).collect();
        let refs: String = names.iter().map(|v| format!("${{{v}}}")).collect();
        let restore = format!(
            "if ! eval \"unset {}\n{refs}\" >/dev/null; then printf 'failed to restore shell snapshot\\n' >&2; fi\n{}",
            names.join(" "),
            argv[2]
        );
        let (flag, first) = match s.shell.name.as_str() {
            "bash" => ("-pc", "set +o privileged\n"),
            "zsh" => ("-fc", "setopt RCS\n"),
            _ => ("-c", ""),
        };
        let mut out = vec![argv[0].clone(), flag.into(), format!("{first}{restore}")];
        out.extend(argv[3..].iter().cloned());
        out
    }

    /// The child environment of a replayed command: the prepared `env`, the
    /// snapshot's exports (filtered by `policy` as if it inherited everything),
    /// the request's own `request_env` on top, and the state's variables.
    pub fn apply_env(
        &self,
        env: &mut Env,
        policy: Option<&EnvPolicy>,
        request_env: &BTreeMap<String, String>,
    ) {
        let all = EnvPolicy {
            inherit: Some(Inherit::All),
            ..policy.cloned().unwrap_or_default()
        };
        let exports = env_policy::build(Some(&all), &BTreeMap::new(), self.exports.clone());
        for (k, v) in exports {
            let replayed = !NOT_REPLAYED.iter().any(|n| k.as_bytes() == n.as_bytes())
                && !k.as_bytes().starts_with(STATE_VAR.as_bytes());
            if replayed && k.to_str().is_none_or(|k| !request_env.contains_key(k)) {
                env.insert(k, v);
            }
        }
        for (i, piece) in self.state.chunks(CHUNK).enumerate() {
            env.insert(
                format!("{STATE_VAR}{i}").into(),
                OsString::from_vec(piece.to_vec()),
            );
        }
        if self.state.is_empty() {
            env.insert(format!("{STATE_VAR}0").into(), OsString::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::Shell;

    fn snap(name: &str, path: &str) -> ShellSnapshot {
        ShellSnapshot {
            scope_id: "t:x".into(),
            shell: Shell {
                name: name.into(),
                path: path.into(),
            },
        }
    }

    #[test]
    fn parse_skips_what_the_profile_printed() {
        let mut out = b"welcome from .profile\n".to_vec();
        out.extend_from_slice(MARKER);
        out.extend_from_slice(b"f() { :; }\n\0A=1\0B=x=y\0=bad\0");
        let s = parse_capture(&out).unwrap();
        assert_eq!(s.state, b"f() { :; }\n");
        assert_eq!(
            s.exports,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert!(parse_capture(b"no marker\0A=1").is_none());
    }

    #[test]
    fn state_is_split_into_chunks_and_request_env_wins() {
        let s = Snapshot {
            state: vec![b'x'; CHUNK * 2 + 1],
            exports: vec![
                ("FROM_RC".into(), "rc".into()),
                ("MINE".into(), "rc".into()),
                ("PWD".into(), "/old".into()),
                ("MY_TOKEN".into(), "secret".into()),
            ],
        };
        let mut env = Env::new();
        env.insert("MINE".into(), "request".into());
        let req = BTreeMap::from([("MINE".to_string(), "request".to_string())]);
        s.apply_env(&mut env, None, &req);
        assert_eq!(env[&OsString::from("FROM_RC")], "rc");
        assert_eq!(env[&OsString::from("MINE")], "request");
        assert!(!env.contains_key(&OsString::from("PWD")));
        assert!(!env.contains_key(&OsString::from("MY_TOKEN")));
        assert_eq!(env[&OsString::from(format!("{STATE_VAR}2"))].len(), 1);
        let argv = s.restore_argv(
            &snap("bash", "/bin/bash"),
            &["/bin/bash".into(), "-lc".into(), "echo hi".into()],
        );
        assert_eq!(argv[1], "-pc");
        assert!(argv[2].starts_with("set +o privileged\n"));
        assert!(argv[2].ends_with("\necho hi"));
        assert!(argv[2].contains(&format!("${{{STATE_VAR}2}}")));
    }

    #[test]
    fn validation_and_applicability() {
        assert!(validate(&snap("fish", "/usr/bin/fish"))
            .unwrap_err()
            .contains("`fish`"));
        let mut s = snap("bash", "/bin/bash");
        s.scope_id = "x".repeat(MAX_SCOPE + 1);
        assert!(validate(&s).is_err());
        s.scope_id = "x".repeat(MAX_SCOPE);
        assert!(validate(&s).is_ok());
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(applies(&s, &argv(&["/bin/bash", "-lc", "x"])));
        assert!(!applies(&s, &argv(&["/bin/bash", "-c", "x"])));
        assert!(!applies(&s, &argv(&["/usr/bin/bash", "-lc", "x"])));
        assert!(!applies(&s, &argv(&["/bin/bash", "-lc"])));
    }

    #[test]
    fn cache_keeps_the_most_recent() {
        let c = Cache::default();
        let key = |i: usize| {
            let mut s = snap("bash", "/bin/bash");
            s.scope_id = format!("s{i}");
            Key::new(&s, Path::new("/"), None, None)
        };
        for i in 0..CACHE_ENTRIES + 1 {
            c.insert(
                key(i),
                Arc::new(Snapshot {
                    state: Vec::new(),
                    exports: Vec::new(),
                }),
            );
        }
        assert!(c.get(&key(0)).is_none());
        assert!(c.get(&key(1)).is_some());
        assert!(c.get(&key(CACHE_ENTRIES)).is_some());
    }
}
