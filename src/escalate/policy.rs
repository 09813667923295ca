//! Prefix rules (docs/protocol.md "Exec escalation"): which decision an intercepted exec gets,
//! and where the program comes from: a program the sandboxed shell could have
//! written or re-pointed is never matched by a basename rule and never escalated
//! without a prompt.

use crate::protocol::escalation::{DefaultDecision, EscalationParams, Rule, RuleDecision};
use crate::sandbox::policy::{Access, Resolved};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Most symbolic links followed while resolving a program (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// What the shell's sandbox lets it change, for judging a program's origin.
#[derive(Debug, Clone)]
pub enum Confinement {
    /// The shell runs without a sandbox: an escalated command gets nothing the
    /// shell does not have already, so every program is trusted.
    Unsandboxed,
    /// The shell is sandboxed. `fs` is the resolved policy when Landlock confines
    /// its writes, `None` when the sandbox leaves the filesystem open (network
    /// only). `uid`/`gids` are the shell's credentials.
    Sandboxed {
        fs: Option<Resolved>,
        uid: u32,
        gids: Vec<u32>,
    },
}

impl Confinement {
    /// A sandboxed shell with this process's credentials.
    pub fn sandboxed(fs: Option<Resolved>) -> Self {
        // SAFETY: getgroups with a null buffer returns the count; then fills ours.
        let mut gids = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut v = vec![0 as libc::gid_t; n.max(0) as usize];
            let m = libc::getgroups(n.max(0), v.as_mut_ptr());
            v.truncate(m.max(0) as usize);
            v
        };
        // SAFETY: plain getters.
        gids.push(unsafe { libc::getegid() });
        // SAFETY: a plain getter.
        let uid = unsafe { libc::geteuid() };
        Confinement::Sandboxed { fs, uid, gids }
    }

    /// Who could change what `p` (a real path, without links) holds or names:
    /// `(sandbox, user)`. `sandbox`: the shell itself, from inside its sandbox —
    /// a writable root of its policy, or, when the filesystem is not confined,
    /// anything root or its user may write. `user`: for a shell that is not
    /// root, anything it owns or may write by group or other mode bits (an
    /// owner can always chmod), whatever the sandbox allows.
    fn writers(&self, p: &Path, md: &std::fs::Metadata) -> (bool, bool) {
        let Confinement::Sandboxed { fs, uid, gids } = self else {
            return (false, false);
        };
        let user = *uid != 0
            && (md.uid() == *uid
                || md.mode() & 0o002 != 0
                || (md.mode() & 0o020 != 0 && gids.contains(&md.gid())));
        let sandbox = match fs {
            Some(r) => r.access(p) == Some(Access::Write),
            None => *uid == 0 || user,
        };
        (sandbox, user)
    }

    /// Resolve `path` (absolute) and judge it.
    pub fn judge(&self, path: &Path) -> Program {
        let walked = walk(path);
        let real = walked.as_ref().ok().map(|(r, _)| r.clone());
        let (trusted, shell_writable) = match self {
            Confinement::Unsandboxed => (true, false),
            Confinement::Sandboxed { .. } => {
                let judged = walked.ok().and_then(|(real, dirs)| {
                    let md = std::fs::metadata(&real).ok().filter(|m| m.is_file())?;
                    let mut all = vec![self.writers(&real, &md)];
                    for d in &dirs {
                        all.push(self.writers(d, &std::fs::metadata(d).ok()?));
                    }
                    Some(
                        all.iter()
                            .fold((false, false), |a, w| (a.0 || w.0, a.1 || w.1)),
                    )
                });
                match judged {
                    Some((sandbox, user)) => (!sandbox && !user, sandbox),
                    // Missing, a loop, unreadable: the worst case.
                    None => (false, true),
                }
            }
        };
        Program {
            path: path.to_path_buf(),
            real,
            trusted,
            shell_writable,
        }
    }
}

/// An intercepted program: the path bash asked for, what it resolves to, and
/// whether the shell could have chosen what runs under that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Absolute, as asked (`workdir` joined, `.` removed).
    pub path: PathBuf,
    /// Every link resolved; `None` when resolution failed.
    pub real: Option<PathBuf>,
    /// No directory looked in while resolving, and not the file itself, is
    /// writable by the shell or its user (always true for an unsandboxed
    /// shell). Basename rules match trusted programs only.
    pub trusted: bool,
    /// The sandboxed shell itself could have written or re-pointed it: never
    /// escalated without a prompt.
    pub shell_writable: bool,
}

impl Program {
    /// A program taken as is (tests).
    #[cfg(test)]
    pub fn trusted(path: &Path) -> Self {
        Program {
            path: path.to_path_buf(),
            real: Some(path.to_path_buf()),
            trusted: true,
            shell_writable: false,
        }
    }
}

/// Resolve `path` like the kernel, component by component: the real path, and
/// every directory a name was looked up in (whoever can write one of them
/// decides what the path means).
fn walk(path: &Path) -> io::Result<(PathBuf, Vec<PathBuf>)> {
    fn parts(p: &Path) -> impl Iterator<Item = OsString> + '_ {
        p.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
    }
    if !path.is_absolute() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut todo: VecDeque<OsString> = parts(path).collect();
    let mut cur = PathBuf::from("/");
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        if !dirs.contains(&cur) {
            dirs.push(cur.clone());
        }
        let next = cur.join(&name);
        if std::fs::symlink_metadata(&next)?.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&next)?;
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            for (i, p) in parts(&target).enumerate() {
                todo.insert(i, p);
            }
        } else {
            cur = next;
        }
    }
    Ok((cur, dirs))
}

/// The decision for one exec, before any prompt is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Run,
    Escalate,
    Prompt,
    Forbidden,
}

/// The rules of one managed process.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    default: DefaultDecision,
}

impl Policy {
    pub fn new(p: &EscalationParams) -> Self {
        Policy {
            rules: p.rules.clone().unwrap_or_default(),
            default: p.default.unwrap_or_default(),
        }
    }

    /// Whether any exec could be prompted for.
    #[cfg(test)]
    pub fn may_prompt(&self) -> bool {
        self.default == DefaultDecision::Prompt
            || self
                .rules
                .iter()
                .any(|r| r.decision == RuleDecision::Prompt)
    }

    /// Decide for `prog` and `argv` (whose `argv[0]` is not compared: the first
    /// word is the program itself). A rule's first element with a `/` is
    /// compared with the program's path and its real path; one without is
    /// compared with their basenames, and only for a trusted program. A
    /// program the sandboxed shell could have written is never escalated without
    /// a prompt: `allow` becomes `prompt`.
    pub fn decide(&self, prog: &Program, argv: &[String]) -> Decision {
        let mut full: Vec<String> = vec![prog.path.to_string_lossy().into_owned()];
        full.extend(prog.real.iter().map(|r| r.to_string_lossy().into_owned()));
        let bases: Vec<String> = if prog.trusted {
            [Some(prog.path.as_path()), prog.real.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let rest = argv.get(1..).unwrap_or_default();
        let mut best: Option<(usize, RuleDecision)> = None;
        for r in &self.rules {
            let Some((first, more)) = r.prefix.split_first() else {
                continue;
            };
            let head_ok = if first.contains('/') {
                full.contains(first)
            } else {
                bases.contains(first)
            };
            if !head_ok || more.len() > rest.len() || more.iter().zip(rest).any(|(a, b)| a != b) {
                continue;
            }
            let cand = (r.prefix.len(), r.decision);
            if best.is_none_or(|b| cand > b) {
                best = Some(cand);
            }
        }
        let d = match best.map(|b| b.1) {
            Some(RuleDecision::Allow) => Decision::Escalate,
            Some(RuleDecision::Prompt) => Decision::Prompt,
            Some(RuleDecision::Forbidden) => Decision::Forbidden,
            None => match self.default {
                DefaultDecision::Run => Decision::Run,
                DefaultDecision::Allow => Decision::Escalate,
                DefaultDecision::Prompt => Decision::Prompt,
                DefaultDecision::Forbidden => Decision::Forbidden,
            },
        };
        if d == Decision::Escalate && prog.shell_writable {
            Decision::Prompt
        } else {
            d
        }
    }
}

/// `file` made absolute against `workdir`, without `.` components.
pub fn resolve(workdir: &Path, file: &str) -> PathBuf {
    workdir.join(file).components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Policy {
        Policy::new(&serde_json::from_value(v).unwrap())
    }

    fn prog(p: &str) -> Program {
        Program::trusted(Path::new(p))
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longest_prefix_wins_and_ties_prefer_the_strictest() {
        let p = policy(json!({"rules":[
            {"prefix":["git"],"decision":"allow"},
            {"prefix":["git","push"],"decision":"prompt"},
            {"prefix":["git","push","--force"],"decision":"forbidden"},
            {"prefix":["rm"],"decision":"allow"},
            {"prefix":["rm"],"decision":"forbidden"},
            {"prefix":["/usr/bin/make"],"decision":"allow"}]}));
        let git = &prog("/usr/bin/git");
        assert_eq!(p.decide(git, &argv(&["git", "status"])), Decision::Escalate);
        assert_eq!(p.decide(git, &argv(&["git", "push"])), Decision::Prompt);
        assert_eq!(
            p.decide(git, &argv(&["x", "push", "--force", "o"])),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(&prog("/bin/rm"), &argv(&["rm"])),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(&prog("/usr/bin/make"), &argv(&["make"])),
            Decision::Escalate
        );
        assert_eq!(
            p.decide(&prog("/opt/make"), &argv(&["make"])),
            Decision::Run
        );
        assert!(p.may_prompt());
    }

    #[test]
    fn defaults_apply_when_nothing_matches() {
        for (d, want) in [
            ("run", Decision::Run),
            ("allow", Decision::Escalate),
            ("prompt", Decision::Prompt),
            ("forbidden", Decision::Forbidden),
        ] {
            let p = policy(json!({ "default": d }));
            assert_eq!(p.decide(&prog("/bin/true"), &argv(&["true"])), want);
        }
        assert!(!policy(json!({})).may_prompt());
        // argv[0] is not compared: bash may pass any name.
        let p = policy(json!({"rules":[{"prefix":["true"],"decision":"forbidden"}]}));
        assert_eq!(
            p.decide(&prog("/bin/true"), &argv(&["-x"])),
            Decision::Forbidden
        );
        assert_eq!(p.decide(&prog("/bin/true"), &[]), Decision::Forbidden);
    }

    #[test]
    fn programs_the_sandbox_can_reach_are_untrusted() {
        use crate::sandbox::policy::{Entry, Network};
        let base = std::env::temp_dir().join(format!("tether-judge-{}", std::process::id()));
        let (ws, sys) = (base.join("ws"), base.join("sys"));
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(ws.join("tool"), "").unwrap();
        std::fs::write(sys.join("ok"), "").unwrap();
        std::os::unix::fs::symlink(ws.join("tool"), sys.join("in-ws")).unwrap();
        std::os::unix::fs::symlink(&ws, sys.join("ws-dir")).unwrap();
        std::os::unix::fs::symlink(sys.join("ok"), ws.join("to-sys")).unwrap();
        std::os::unix::fs::symlink(sys.join("loop"), sys.join("loop")).unwrap();
        let r = Resolved {
            entries: vec![
                Entry {
                    path: "/".into(),
                    access: Access::Read,
                },
                Entry {
                    path: ws.clone(),
                    access: Access::Write,
                },
            ],
            globs: Vec::new(),
            glob_depth: 0,
            network: Network::Restricted,
        };
        let root = Confinement::Sandboxed {
            fs: Some(r),
            uid: 0,
            gids: Vec::new(),
        };
        let j = |p: PathBuf| root.judge(&p);
        assert!(j(sys.join("ok")).trusted);
        assert!(!j(sys.join("ok")).shell_writable);
        assert_eq!(j(sys.join("ok")).real, Some(sys.join("ok")));
        assert!(!j(ws.join("tool")).trusted);
        assert!(j(ws.join("tool")).shell_writable);
        // A link in a trusted directory into the workspace, a directory link,
        // `..` through the workspace, a link in the workspace out of it.
        let into = j(sys.join("in-ws"));
        assert_eq!((into.trusted, into.real), (false, Some(ws.join("tool"))));
        assert!(!j(sys.join("ws-dir/tool")).trusted);
        // `..` after a name looked up in the workspace: the shell can move that
        // directory, so what `..` reaches is its choice.
        assert!(!j(ws.join("sub/../../sys/ok")).trusted);
        assert!(j(ws.join("../sys/ok")).trusted);
        assert!(!j(ws.join("to-sys")).trusted);
        assert!(!j(sys.join("missing")).trusted);
        let looped = j(sys.join("loop"));
        assert_eq!((looped.trusted, looped.real), (false, None));
        // Root with an open filesystem can replace anything; no sandbox, nothing
        // to escape.
        let open = Confinement::Sandboxed {
            fs: None,
            uid: 0,
            gids: Vec::new(),
        };
        assert!(!open.judge(&sys.join("ok")).trusted);
        assert!(Confinement::Unsandboxed.judge(&ws.join("tool")).trusted);
        // Not root (judged as the files' owner, uid 4242 when they are root's):
        // what the user owns is untrusted even outside the writable roots, but
        // only the roots are what the sandboxed shell itself can write.
        let owner = std::fs::metadata(sys.join("ok")).unwrap().uid();
        let user = if owner == 0 { 4242 } else { owner };
        if owner == 0 {
            for f in [&sys, &sys.join("ok")] {
                std::os::unix::fs::chown(f, Some(user), None).unwrap();
            }
        }
        let r = match &root {
            Confinement::Sandboxed { fs, .. } => fs.clone(),
            _ => unreachable!(),
        };
        let me = Confinement::Sandboxed {
            fs: r,
            uid: user,
            gids: Vec::new(),
        };
        let ok = me.judge(&sys.join("ok"));
        assert_eq!((ok.trusted, ok.shell_writable), (false, false));
        let me_open = Confinement::Sandboxed {
            fs: None,
            uid: user,
            gids: Vec::new(),
        };
        let ok = me_open.judge(&sys.join("ok"));
        assert_eq!((ok.trusted, ok.shell_writable), (false, true));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn untrusted_programs_match_full_paths_only_and_allow_becomes_prompt() {
        let p = policy(json!({"rules":[
            {"prefix":["ls"],"decision":"allow"},
            {"prefix":["/ws/tool"],"decision":"allow"},
            {"prefix":["/ws/bad"],"decision":"forbidden"}]}));
        let untrusted = |path: &str| Program {
            path: path.into(),
            real: Some(path.into()),
            trusted: false,
            shell_writable: true,
        };
        assert_eq!(
            p.decide(&untrusted("/ws/ls"), &argv(&["ls"])),
            Decision::Run
        );
        assert_eq!(
            p.decide(&untrusted("/ws/tool"), &argv(&["tool"])),
            Decision::Prompt
        );
        assert_eq!(
            p.decide(&untrusted("/ws/bad"), &argv(&["bad"])),
            Decision::Forbidden
        );
        let all = policy(json!({"default": "allow"}));
        assert_eq!(
            all.decide(&untrusted("/ws/x"), &argv(&["x"])),
            Decision::Prompt
        );
        // Owned by a shell's user outside its writable roots: no basename
        // match, but a full-path `allow` still escalates.
        let owned = |path: &str| Program {
            path: path.into(),
            real: Some(path.into()),
            trusted: false,
            shell_writable: false,
        };
        let p = policy(json!({"rules":[{"prefix":["ls"],"decision":"allow"},
                                        {"prefix":["/home/u/bin/tool"],"decision":"allow"}]}));
        assert_eq!(
            p.decide(&owned("/home/u/bin/ls"), &argv(&["ls"])),
            Decision::Run
        );
        assert_eq!(
            p.decide(&owned("/home/u/bin/tool"), &argv(&["tool"])),
            Decision::Escalate
        );
        // A trusted link matches by its own name and by its target's.
        let sh = Program {
            path: "/usr/bin/sh".into(),
            real: Some("/usr/bin/dash".into()),
            trusted: true,
            shell_writable: false,
        };
        let p = policy(json!({"rules":[{"prefix":["dash"],"decision":"forbidden"},
                                        {"prefix":["sh"],"decision":"allow"}]}));
        assert_eq!(p.decide(&sh, &argv(&["sh"])), Decision::Forbidden);
    }

    #[test]
    fn files_resolve_against_workdir() {
        assert_eq!(resolve(Path::new("/w"), "./tool"), Path::new("/w/tool"));
        assert_eq!(resolve(Path::new("/w"), "/bin/ls"), Path::new("/bin/ls"));
        assert_eq!(resolve(Path::new("/w/"), "a/./b"), Path::new("/w/a/b"));
    }
}
