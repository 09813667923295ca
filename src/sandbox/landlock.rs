//! Landlock rulesets (docs/protocol.md "Sandbox"): built before `fork` with the `landlock`
//! crate; the child only calls `landlock_restrict_self` on the ruleset descriptor.

use super::policy::{Access, Network, Resolved};
use landlock::{
    Access as _, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ABI at which Tether handles every right it knows (scopes included).
pub const FULL_ABI: u32 = 6;

/// A ruleset ready for `landlock_restrict_self`.
pub struct Prepared {
    pub fd: OwnedFd,
}

fn abi_of(n: u32) -> ABI {
    ABI::from(n as i32)
}

fn rule_for(path: &Path, access: BitFlags<AccessFs>, abi: ABI) -> Option<PathBeneath<PathFd>> {
    let fd = PathFd::new(path).ok()?;
    // fstat of the descriptor just opened: no second path walk (there are
    // dozens of rules per sandboxed start, see `fence_devices`).
    let is_dir = {
        use std::os::fd::{AsFd, AsRawFd};
        // SAFETY: fstat of a descriptor we hold, into a zeroed local struct.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd.as_fd().as_raw_fd(), &mut st) == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFDIR
        }
    };
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Some(PathBeneath::new(fd, access))
}

/// Device nodes of `/dev` that a rule covering `/dev` keeps.
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty", "ptmx"];
/// The kept entries of `dir`: not symbolic links (what they name is checked where
/// it is), not `skip`, and those `keep` accepts.
fn list(dir: &Path, skip: &Path, keep: impl Fn(&str, std::fs::FileType) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let path = e.path();
        if !t.is_symlink() && path != skip && keep(e.file_name().to_str().unwrap_or(""), t) {
            out.push(path);
        }
    }
    out
}

/// Entries of `/` other than `/dev`, and the entries of `/dev` a rule covering it
/// keeps: listed once per server, as entries directly in `/` and `/dev` seldom
/// change (one made later is not granted). They are opened at each spawn, so a
/// file system mounted on one of them later is covered.
fn root_and_dev() -> &'static (Vec<PathBuf>, Vec<PathBuf>) {
    static LISTS: OnceLock<(Vec<PathBuf>, Vec<PathBuf>)> = OnceLock::new();
    LISTS.get_or_init(|| {
        let dev = Path::new("/dev");
        let root = list(Path::new("/"), dev, |_, _| true);
        // No directory: `pts`, `input`, `snd`, `dri`, `bus` hold devices, `shm`
        // and `hugepages` other processes' shared memory (a process with a mount
        // layer gets its own `/dev/shm`, see `MountOp::PrivateShm`), `mqueue`
        // their queues.
        let dev = list(dev, Path::new("/dev/pts"), |name, t| {
            if t.is_char_device() || t.is_block_device() {
                DEV_NODES.contains(&name)
            } else {
                !t.is_dir()
            }
        });
        (root, dev)
    })
}

/// Landlock only adds rights, and a rule on a directory covers everything beneath
/// it. A rule on `/` or `/dev` would therefore reach every terminal in `/dev/pts`,
/// the virtual consoles, serial lines, input devices and raw disks (which a root
/// server's process could read around every `deny` entry). Such a rule keeps only
/// its directory rights (listing, and for a writable root making and removing
/// entries) on `/` and `/dev`; its file rights go to each other entry of `/`, and
/// in `/dev` only to [`DEV_NODES`] and entries that are neither directories nor
/// devices. Rules on `/dev/pts` or beneath are dropped: the
/// process's own terminal is granted by the caller, `/dev/pts/ptmx` here.
fn fence_devices(
    rules: Vec<(PathBuf, BitFlags<AccessFs>)>,
    abi: ABI,
) -> Vec<(PathBuf, BitFlags<AccessFs>)> {
    let dev = Path::new("/dev");
    let pts = Path::new("/dev/pts");
    let file_rights = AccessFs::from_file(abi);
    let mut out = Vec::with_capacity(rules.len());
    for (path, access) in rules {
        if path.starts_with(pts) {
            continue;
        }
        if !dev.starts_with(&path) || (access & file_rights).is_empty() {
            out.push((path, access));
            continue;
        }
        let (root_entries, dev_entries) = root_and_dev();
        let dir_rights = access & !file_rights;
        if path == Path::new("/") {
            out.extend(root_entries.iter().map(|e| (e.clone(), access)));
            if !dir_rights.is_empty() {
                out.push((path, dir_rights));
            }
        }
        out.extend(dev_entries.iter().map(|e| (e.clone(), access)));
        if !dir_rights.is_empty() {
            out.push((dev.into(), dir_rights));
        }
        out.push((pts.join("ptmx"), access & file_rights));
    }
    out
}

/// Every filesystem right of `abi`, as the bits of a Landlock rule.
pub fn all_rights(abi: u32) -> u64 {
    AccessFs::from_all(abi_of(abi)).bits()
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
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();
    if r.full_read() {
        rules.push(("/".into(), read));
    } else {
        for root in r.roots(Access::Read) {
            rules.push((root.into(), read));
        }
        for p in ["/dev/random", "/dev/urandom", "/proc"] {
            rules.push((p.into(), read));
        }
    }
    for root in r.roots(Access::Write) {
        rules.push((root.into(), all));
    }
    let mut rules = fence_devices(rules, abi);
    let dev_rw = read | AccessFs::WriteFile | (all & AccessFs::Truncate);
    for p in ["/dev/null", "/dev/zero", "/dev/full"] {
        rules.push((p.into(), dev_rw));
    }
    let tty_rw = read | AccessFs::WriteFile | (all & AccessFs::IoctlDev);
    rules.push(("/dev/tty".into(), tty_rw));
    if let Some(t) = extra_tty {
        rules.push((t.into(), tty_rw));
    }
    let mut created = rs.create().map_err(err)?;
    for (path, access) in rules {
        // A root that does not exist grants nothing.
        if let Some(rule) = rule_for(&path, access, abi) {
            created = created.add_rule(rule).map_err(err)?;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| "Landlock is not available on this kernel (need Linux 5.13 or newer with landlock in the LSM list)".to_string())?;
    Ok(Prepared { fd })
}
