//! What to start, as C strings built before the fork: the program candidates
//! (an execvp-style `PATH` search), argv, envp, cwd, stdio and the sandbox plan.

use super::env_policy::Env;
use crate::protocol::process::TermSize;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The search path used when neither the child nor the server has `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the child needs, as C strings.
pub struct SpawnSpec {
    /// Program paths to try in order (one when `argv[0]` has a `/`).
    pub(super) candidates: Vec<CString>,
    pub(super) search: bool,
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) cwd: CString,
    /// `Some` for a terminal.
    pub(super) tty: Option<TermSize>,
    pub(super) pipe_stdin: bool,
    /// The sandbox to apply in the child, if any.
    pub sandbox: Option<crate::sandbox::plan::ProcessPlan>,
    /// Landlock ABI of the kernel (probed at start).
    pub landlock_abi: u32,
    /// Extra descriptors the child gets at the given numbers (the escalation
    /// socket at 3), or with [`SpawnSpec::exact`] all of its descriptors.
    pub inherit: Vec<(RawFd, OwnedFd)>,
    /// The child's stdio comes from `inherit` (fds 0–2 it does not name are
    /// `/dev/null`) instead of new pipes or a terminal.
    pub(super) given_stdio: bool,
}

/// Why a spec could not be built (NUL bytes): decoder-style text.
#[derive(Debug)]
pub struct SpecError(pub String);

impl SpawnSpec {
    pub fn new(
        argv: &[String],
        arg0: Option<&str>,
        env: &Env,
        cwd: &Path,
        tty: Option<TermSize>,
        pipe_stdin: bool,
    ) -> Result<Self, SpecError> {
        let cstr = |b: &[u8], what: &str| {
            CString::new(b).map_err(|_| SpecError(format!("{what} must not contain NUL bytes")))
        };
        let program = &argv[0];
        let (candidates, search) = if program.contains('/') {
            (vec![cstr(program.as_bytes(), "argv")?], false)
        } else {
            let path: OsString = env
                .get(OsStr::new("PATH"))
                .cloned()
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_else(|| DEFAULT_PATH.into());
            let mut c = Vec::new();
            for dir in path.as_bytes().split(|b| *b == b':') {
                let mut full = if dir.is_empty() {
                    b".".to_vec()
                } else {
                    dir.to_vec()
                };
                full.push(b'/');
                full.extend_from_slice(program.as_bytes());
                c.push(cstr(&full, "argv")?);
            }
            (c, true)
        };
        let mut args = Vec::with_capacity(argv.len());
        args.push(cstr(arg0.unwrap_or(program).as_bytes(), "arg0")?);
        for a in &argv[1..] {
            args.push(cstr(a.as_bytes(), "argv")?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(cstr(&kv, "env")?);
        }
        Ok(SpawnSpec {
            candidates,
            search,
            argv: args,
            envp,
            cwd: cstr(cwd.as_os_str().as_bytes(), "cwd")?,
            tty,
            pipe_stdin,
            sandbox: None,
            landlock_abi: 0,
            inherit: Vec::new(),
            given_stdio: false,
        })
    }

    /// A command run exactly as given: `program` (no search), `argv` with its
    /// `argv[0]`, and the descriptors in `fds` at their numbers; nothing else is
    /// inherited and fds 0–2 not in `fds` are `/dev/null` (escalated commands).
    pub fn exact(
        program: &Path,
        argv: &[String],
        env: &Env,
        cwd: &Path,
        fds: Vec<(RawFd, OwnedFd)>,
    ) -> Result<Self, SpecError> {
        let prog = program.to_string_lossy().into_owned();
        let mut full = vec![prog.clone()];
        full.extend(argv.iter().skip(1).cloned());
        let arg0 = argv.first().cloned().unwrap_or(prog);
        let mut s = SpawnSpec::new(&full, Some(&arg0), env, cwd, None, false)?;
        s.candidates = vec![CString::new(program.as_os_str().as_bytes())
            .map_err(|_| SpecError("file must not contain NUL bytes".into()))?];
        s.search = false;
        s.inherit = fds;
        s.given_stdio = true;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_search_candidates_and_arg0() {
        let env: Env = [(OsString::from("PATH"), OsString::from("/a::/b"))]
            .into_iter()
            .collect();
        let s = SpawnSpec::new(
            &["ls".into(), "-l".into()],
            Some("LS"),
            &env,
            Path::new("/"),
            None,
            false,
        )
        .unwrap();
        let c: Vec<_> = s
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, ["/a/ls", "./ls", "/b/ls"]);
        assert!(s.search);
        assert_eq!(s.argv[0].to_str().unwrap(), "LS");
        let s = SpawnSpec::new(&["./x".into()], None, &env, Path::new("/"), None, false).unwrap();
        assert!(!s.search);
        assert!(SpawnSpec::new(&["a\0".into()], None, &env, Path::new("/"), None, false).is_err());
    }
}
