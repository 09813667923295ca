//! Turning a process's sandbox context into what the child applies, and the
//! enforcement report (docs/protocol.md "Sandbox").

use super::mount::{self, MountPlan};
use super::policy::{Access, Context, Network, Policy, Resolved};
use crate::protocol::handshake::HostSandbox;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    BestEffort,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "strict" => Some(Mode::Strict),
            "best-effort" => Some(Mode::BestEffort),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::BestEffort => "best-effort",
        }
    }
}

/// The `sandbox` member of a `process/start` result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub mode: String,
    pub landlock: String,
    pub landlock_abi: u32,
    pub seccomp: bool,
    pub no_new_privs: bool,
    pub mount_namespace: bool,
    pub network: String,
    pub unenforced: Vec<String>,
}

/// What the child must apply, planned in the server.
pub struct ProcessPlan {
    /// Restricted filesystem: build a Landlock ruleset from this.
    pub landlock: Option<Resolved>,
    pub network: Network,
    pub mount: Option<MountPlan>,
    /// Placeholder directories this process holds (released when dropped).
    pub placeholders: mount::Placeholders,
    pub report: Report,
}

pub const NO_LANDLOCK: &str =
    "Landlock is not available on this kernel (need Linux 5.13 or newer with landlock in the LSM list)";
pub const NO_SECCOMP: &str = "seccomp filters are not available on this kernel";

/// Plan a process sandbox. `Ok(None)`: nothing applies (`sandboxType: "none"`).
/// `Err(reason)`: `sandbox cannot be enforced: <reason>`.
pub fn plan_process(
    ctx: &Context,
    mode: Mode,
    host: &HostSandbox,
) -> Result<Option<ProcessPlan>, String> {
    let mut report = Report {
        mode: mode.as_str().into(),
        landlock: "none".into(),
        landlock_abi: host.landlock_abi,
        seccomp: true,
        no_new_privs: true,
        mount_namespace: false,
        network: "restricted".into(),
        unenforced: Vec::new(),
    };
    let (network, resolved) = match &ctx.policy {
        Policy::Disabled => return Ok(None),
        Policy::External { network } | Policy::Unrestricted { network } => (*network, None),
        Policy::Restricted(r) if r.full_write() => (r.network, None),
        Policy::Restricted(r) => (r.network, Some(r.clone())),
    };
    report.network = network.as_str().into();
    if resolved.is_none() && network == Network::Enabled {
        return Ok(None);
    }
    if !host.seccomp {
        return Err(NO_SECCOMP.into());
    }
    let Some(r) = resolved else {
        return Ok(Some(ProcessPlan {
            landlock: None,
            network,
            mount: None,
            placeholders: mount::Placeholders::default(),
            report,
        }));
    };
    if host.landlock_abi == 0 {
        return Err(NO_LANDLOCK.into());
    }
    if host.landlock_abi < 3 {
        if mode == Mode::Strict {
            return Err(format!(
                "Landlock ABI {} cannot stop truncation of read-only files (need ABI 3, Linux 6.2 or newer); set sandboxMode to \"best-effort\" to run anyway",
                host.landlock_abi
            ));
        }
        report.unenforced.push("truncate".into());
    }
    report.landlock = if host.landlock_abi >= super::landlock::FULL_ABI {
        "full"
    } else {
        "partial"
    }
    .into();

    // The mount layer for narrowing paths (and deny globs' existing matches).
    let mut narrowing: Vec<(PathBuf, Access)> = r
        .narrowing()
        .into_iter()
        .map(|e| (e.path.clone(), e.access))
        .collect();
    for g in &r.globs {
        for m in glob_matches(g, r.glob_depth)? {
            narrowing.push((m, Access::Deny));
        }
    }
    // Only paths inside something the process may reach need masking.
    narrowing.retain(|(p, _)| {
        let parent_access = p.parent().and_then(|pp| r.access(pp));
        matches!(parent_access, Some(Access::Read | Access::Write))
    });
    narrowing.sort();
    narrowing.dedup();
    let mut plan = MountPlan::new();
    let mut placeholders = mount::Placeholders::default();
    if !narrowing.is_empty() {
        if !host.mount_namespaces {
            if mode == Mode::Strict {
                return Err(format!(
                    "read-only or denied path `{}` needs a private mount namespace, which this host does not allow; set sandboxMode to \"best-effort\" to run without it",
                    narrowing[0].0.display()
                ));
            }
            for (p, a) in &narrowing {
                let kind = if *a == Access::Deny {
                    "deniedPath"
                } else {
                    "readOnlyPath"
                };
                report.unenforced.push(format!("{kind}:{}", p.display()));
            }
        } else {
            for (p, a) in &narrowing {
                match std::fs::symlink_metadata(p) {
                    Ok(m) if *a == Access::Deny && m.is_dir() => plan.deny_dir(p),
                    Ok(_) if *a == Access::Deny => {
                        let ph = mount::deny_placeholder()
                            .map_err(|e| format!("cannot create a placeholder: {e}"))?;
                        plan.deny_file(p, &ph);
                    }
                    // A link: what it names is made read-only (a bind follows the
                    // link), and the link itself is pinned so that it cannot be
                    // removed or replaced. What a dangling link names could be made
                    // through it (or beside it), so strict mode refuses.
                    Ok(m) if m.file_type().is_symlink() => {
                        if p.exists() {
                            plan.read_only(p);
                        } else if mode == Mode::Strict {
                            return Err(format!(
                                "cannot protect `{}` because it is a symbolic link to a missing path; set sandboxMode to \"best-effort\" to run anyway",
                                p.display()
                            ));
                        } else {
                            report
                                .unenforced
                                .push(format!("readOnlyPath:{}", p.display()));
                        }
                        plan.pin_link(p);
                    }
                    Ok(_) => plan.read_only(p),
                    Err(_) => {
                        if p.parent().is_some_and(Path::exists) {
                            placeholders.hold(p).map_err(|e| {
                                format!("cannot protect missing path `{}`: {e}", p.display())
                            })?;
                            plan.read_only(p);
                        } else if mode == Mode::Strict {
                            return Err(format!(
                                "cannot protect missing path `{}` because its parent does not exist; set sandboxMode to \"best-effort\" to run anyway",
                                p.display()
                            ));
                        } else {
                            let kind = if *a == Access::Deny {
                                "deniedPath"
                            } else {
                                "readOnlyPath"
                            };
                            report.unenforced.push(format!("{kind}:{}", p.display()));
                        }
                    }
                }
            }
            report.mount_namespace = !plan.ops.is_empty();
            // With a mount namespace anyway, the process gets its own /dev/shm
            // (the host's is not granted: other processes' shared memory).
            if report.mount_namespace && Path::new("/dev/shm").is_dir() {
                plan.private_shm(super::landlock::all_rights(host.landlock_abi));
            }
        }
    }
    let mount = (!plan.ops.is_empty()).then_some(plan);
    if mode == Mode::Strict {
        report.unenforced.clear();
    }
    Ok(Some(ProcessPlan {
        landlock: Some(r),
        network,
        mount,
        placeholders,
        report,
    }))
}

/// At most this many existing paths may match one deny glob.
pub const MAX_GLOB_MATCHES: usize = 1000;

/// Existing matches of a deny glob, up to `depth` levels below its literal prefix.
fn glob_matches(pattern: &str, depth: u32) -> Result<Vec<PathBuf>, String> {
    let literal: PathBuf = pattern
        .split('/')
        .take_while(|s| !s.contains(['*', '?', '[']))
        .collect::<Vec<_>>()
        .join("/")
        .into();
    let base = if literal.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        literal
    };
    let mut out = Vec::new();
    let mut stack = vec![(base, 0u32)];
    while let Some((dir, d)) = stack.pop() {
        if super::glob::glob_match(pattern, &dir) {
            out.push(dir.clone());
            if out.len() > MAX_GLOB_MATCHES {
                return Err(format!(
                    "glob pattern `{pattern}` matches more than {MAX_GLOB_MATCHES} paths"
                ));
            }
        }
        if d >= depth {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let p = e.path();
            if is_dir {
                stack.push((p, d + 1));
            } else if super::glob::glob_match(pattern, &p) {
                out.push(p);
                if out.len() > MAX_GLOB_MATCHES {
                    return Err(format!(
                        "glob pattern `{pattern}` matches more than {MAX_GLOB_MATCHES} paths"
                    ));
                }
            }
        }
    }
    Ok(out)
}
