//! Landlock rulesets (PROTOCOL.md §8.6): built before `fork` with the `landlock`
//! crate; the child only calls `landlock_restrict_self` on the ruleset descriptor.

use super::policy::{Access, Network, Resolved};
use landlock::{
    Access as _, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The ABI at which Tether handles every right it knows (scopes included).
pub const FULL_ABI: u32 = 6;

/// A ruleset ready for `landlock_restrict_self`.
pub struct Prepared {
    pub fd: OwnedFd,
    /// `"full"` or `"partial"`.
    pub level: &'static str,
}

fn abi_of(n: u32) -> ABI {
    ABI::from(n as i32)
}

fn rule_for(path: &Path, access: BitFlags<AccessFs>, abi: ABI) -> Option<PathBeneath<PathFd>> {
    let fd = PathFd::new(path).ok()?;
    let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Some(PathBeneath::new(fd, access))
}

/// Build the ruleset for a restricted policy. `extra_tty` is a terminal device the
/// process uses (the PTY slave). `kernel_abi` is the probed ABI (≥ 1).
pub fn prepare(
    r: &Resolved,
    kernel_abi: u32,
    extra_tty: Option<&Path>,
) -> Result<Prepared, String> {
    let abi = abi_of(kernel_abi);
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let err = |e: landlock::RulesetError| format!("Landlock ruleset: {e}");
    let mut rs = Ruleset::default().handle_access(all).map_err(err)?;
    if r.network == Network::Restricted && kernel_abi >= 4 {
        rs = rs
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(err)?;
    }
    if kernel_abi >= 6 {
        let scopes = if r.network == Network::Restricted {
            Scope::Signal | Scope::AbstractUnixSocket
        } else {
            BitFlags::from(Scope::Signal)
        };
        rs = rs.scope(scopes).map_err(err)?;
    }
    let mut rules: Vec<(&Path, BitFlags<AccessFs>)> = Vec::new();
    if r.full_read() {
        rules.push((Path::new("/"), read));
    } else {
        for root in r.roots(Access::Read) {
            rules.push((root, read));
        }
        for p in ["/dev/random", "/dev/urandom", "/proc"] {
            rules.push((Path::new(p), read));
        }
    }
    for root in r.roots(Access::Write) {
        rules.push((root, all));
    }
    let dev_rw = read | AccessFs::WriteFile | (all & AccessFs::Truncate);
    for p in ["/dev/null", "/dev/zero", "/dev/full"] {
        rules.push((Path::new(p), dev_rw));
    }
    let tty_rw = read | AccessFs::WriteFile | (all & AccessFs::IoctlDev);
    rules.push((Path::new("/dev/tty"), tty_rw));
    if let Some(t) = extra_tty {
        rules.push((t, tty_rw));
    }
    let mut created = rs.create().map_err(err)?;
    for (path, access) in rules {
        // A root that does not exist grants nothing.
        if let Some(rule) = rule_for(path, access, abi) {
            created = created.add_rule(rule).map_err(err)?;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| "Landlock is not available on this kernel (need Linux 5.13 or newer with landlock in the LSM list)".to_string())?;
    Ok(Prepared {
        fd,
        level: if kernel_abi >= FULL_ABI {
            "full"
        } else {
            "partial"
        },
    })
}
