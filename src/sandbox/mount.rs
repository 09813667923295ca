//! The mount layer (docs/protocol.md "Sandbox"): read-only binds and masks for narrowing paths,
//! in a private mount namespace of the child. Planned before `fork`; the child runs
//! [`apply`] with async-signal-safe calls only.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub enum MountOp {
    /// Bind the path onto itself, then remount it read-only.
    ReadOnly(CString),
    /// An empty mode-000 read-only tmpfs over a directory.
    DenyDir(CString),
    /// An empty mode-000 file bound read-only over a file.
    DenyFile { path: CString, placeholder: CString },
    /// A symbolic link bound onto itself (the link, not what it names), so that it
    /// cannot be removed, renamed or replaced (`EBUSY`).
    PinLink(CString),
    /// A fresh tmpfs on `/dev/shm` for this process alone (POSIX shared memory and
    /// semaphores), granted these Landlock rights once mounted: a rule made before
    /// would sit on the hidden host directory, which Landlock's walk skips.
    PrivateShm { access: u64 },
}

pub struct MountPlan {
    /// Enter a user namespace first (no CAP_SYS_ADMIN).
    userns: bool,
    uid_map: CString,
    gid_map: CString,
    pub ops: Vec<MountOp>,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths come from JSON strings without NUL")
}

impl MountPlan {
    pub fn new() -> Self {
        // SAFETY: plain id getters.
        let (uid, gid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
        MountPlan {
            userns: euid != 0,
            uid_map: CString::new(format!("{uid} {uid} 1\n")).unwrap(),
            gid_map: CString::new(format!("{gid} {gid} 1\n")).unwrap(),
            ops: Vec::new(),
        }
    }
    pub fn read_only(&mut self, p: &Path) {
        self.ops.push(MountOp::ReadOnly(cstr(p)));
    }
    pub fn deny_dir(&mut self, p: &Path) {
        self.ops.push(MountOp::DenyDir(cstr(p)));
    }
    /// Give the process its own `/dev/shm` with Landlock `access` (bits).
    pub fn private_shm(&mut self, access: u64) {
        self.ops.push(MountOp::PrivateShm { access });
    }
    pub fn pin_link(&mut self, p: &Path) {
        self.ops.push(MountOp::PinLink(cstr(p)));
    }
    pub fn deny_file(&mut self, p: &Path, placeholder: &Path) {
        self.ops.push(MountOp::DenyFile {
            path: cstr(p),
            placeholder: cstr(placeholder),
        });
    }
}

impl Default for MountPlan {
    fn default() -> Self {
        Self::new()
    }
}

/// Directory for the server's placeholder files, removed at shutdown.
pub fn runtime_dir() -> PathBuf {
    // SAFETY: getpid never fails.
    std::env::temp_dir().join(format!("tether-{}", unsafe { libc::getpid() }))
}

/// The empty mode-000 file bound over denied files.
pub fn deny_placeholder() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = runtime_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let file = dir.join("denied");
    if !file.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o000)
            .open(&file)?;
    }
    Ok(file)
}

/// Placeholder directories the server created on the host for missing narrowing
/// paths, with the number of live processes that use each.
static PLACEHOLDERS: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

/// The placeholder directories one process holds; dropping this releases them
/// (the process closed, or its start failed on the way).
#[derive(Default)]
pub struct Placeholders(Vec<PathBuf>);

impl Placeholders {
    /// Create (or share) an empty directory at the missing narrowing path `p`.
    pub fn hold(&mut self, p: &Path) -> std::io::Result<()> {
        hold_placeholder(p)?;
        self.0.push(p.to_path_buf());
        Ok(())
    }
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        release_placeholders(&self.0);
    }
}

/// Create (or share) an empty directory at a missing narrowing path.
fn hold_placeholder(p: &Path) -> std::io::Result<()> {
    let mut g = PLACEHOLDERS.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(n) = map.get_mut(p) {
        *n += 1;
        return Ok(());
    }
    match std::fs::create_dir(p) {
        Ok(()) => {
            map.insert(p.to_path_buf(), 1);
            Ok(())
        }
        // Someone else made it meanwhile: it exists, which is all the bind needs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A process that used placeholders closed: remove the ones nobody uses and that
/// are still empty.
fn release_placeholders(paths: &[PathBuf]) {
    let mut g = PLACEHOLDERS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = g.as_mut() else { return };
    for p in paths {
        if let Some(n) = map.get_mut(p) {
            *n -= 1;
            if *n == 0 {
                map.remove(p);
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

/// Shutdown: remove every placeholder and the runtime directory.
pub fn remove_all_placeholders() {
    let mut g = PLACEHOLDERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = g.take() {
        for p in map.keys() {
            let _ = std::fs::remove_dir(p);
        }
    }
    let _ = std::fs::remove_dir_all(runtime_dir());
}

/// # Safety
/// Async-signal-safe (raw syscalls only); for the forked child before exec.
unsafe fn write_file(path: &std::ffi::CStr, data: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: raw open/write/close on NUL-terminated paths the caller keeps alive; errno read right after the call it belongs to.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let bytes = data.to_bytes();
        let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let e = *libc::__errno_location();
        libc::close(fd);
        if n != bytes.len() as isize {
            return Err(e);
        }
        Ok(())
    }
}

fn locked_flags(st: &libc::statvfs) -> libc::c_ulong {
    let f = st.f_flag;
    let mut m = 0;
    for (st_flag, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            m |= ms;
        }
    }
    m
}

/// # Safety
/// Async-signal-safe (raw syscalls only); for the forked child, inside its own mount namespace.
unsafe fn remount_ro(path: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: statvfs writes into a zeroed local struct; mount gets NUL-terminated strings that outlive the call.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        let extra = if libc::statvfs(path.as_ptr(), &mut st) == 0 {
            locked_flags(&st)
        } else {
            0
        };
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | extra;
        if libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        ) < 0
        {
            return Err(*libc::__errno_location());
        }
        Ok(())
    }
}

/// Bind the symbolic link at `path` onto itself with the new mount API: `mount(2)`
/// follows a final link in both paths, `open_tree` with `AT_SYMLINK_NOFOLLOW` and
/// `move_mount` without `MOVE_MOUNT_T_SYMLINKS` do not, so the mount sits on the
/// link's own entry; lookups still follow it to the same target.
///
/// # Safety
/// Async-signal-safe (raw syscalls only); for the forked child, inside its own mount namespace.
unsafe fn pin_link(path: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: open_tree/move_mount get NUL-terminated paths that outlive the calls; the descriptor is ours and closed once.
    unsafe {
        const OPEN_TREE_CLONE: libc::c_uint = 1;
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
        let flags = OPEN_TREE_CLONE
            | libc::O_CLOEXEC as libc::c_uint
            | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint;
        let fd = libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let r = libc::syscall(
            libc::SYS_move_mount,
            fd as libc::c_int,
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        let e = *libc::__errno_location();
        libc::close(fd as libc::c_int);
        if r < 0 {
            return Err(e);
        }
        Ok(())
    }
}

/// Mount a private tmpfs on `/dev/shm` and add a rule granting `access` beneath it
/// to the Landlock ruleset `ruleset` (not yet enforced).
///
/// # Safety
/// Async-signal-safe (raw syscalls only); for the forked child, inside its own mount namespace; `ruleset`, when given, is a Landlock ruleset descriptor.
unsafe fn private_shm(access: u64, ruleset: Option<RawFd>) -> Result<(), i32> {
    // SAFETY: mount/open get static NUL-terminated strings; landlock_add_rule reads a packed attribute struct on this stack frame; the descriptor is ours and closed once.
    unsafe {
        #[repr(C, packed)]
        struct PathBeneathAttr {
            allowed_access: u64,
            parent_fd: i32,
        }
        const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
        let shm = c"/dev/shm";
        if libc::mount(
            c"tmpfs".as_ptr(),
            shm.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=1777".as_ptr().cast(),
        ) < 0
        {
            return Err(*libc::__errno_location());
        }
        let Some(ruleset) = ruleset else {
            return Ok(());
        };
        let fd = libc::open(
            shm.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        let attr = PathBeneathAttr {
            allowed_access: access,
            parent_fd: fd,
        };
        let r = libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        );
        let e = *libc::__errno_location();
        libc::close(fd);
        if r < 0 {
            return Err(e);
        }
        Ok(())
    }
}

/// In the child: enter the namespaces and make the mounts; `ruleset` is the
/// Landlock ruleset still to be enforced. Returns the errno.
///
/// # Safety
/// Only for a freshly forked, single-threaded child.
pub unsafe fn apply(plan: &MountPlan, ruleset: Option<RawFd>) -> Result<(), i32> {
    // SAFETY: the caller is a freshly forked, single-threaded child (this function's contract); every call below is a raw syscall on data this frame or `plan` keeps alive.
    unsafe {
        let errno = || *libc::__errno_location();
        if plan.userns {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) < 0 {
                return Err(errno());
            }
            // The server is non-dumpable, and so is this child until it execs: its
            // /proc/self files would belong to root and the maps could not be written.
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            write_file(c"/proc/self/setgroups", c"deny")?;
            write_file(c"/proc/self/uid_map", &plan.uid_map)?;
            write_file(c"/proc/self/gid_map", &plan.gid_map)?;
        } else if libc::unshare(libc::CLONE_NEWNS) < 0 {
            return Err(errno());
        }
        let null = std::ptr::null();
        if libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) < 0
        {
            return Err(errno());
        }
        for op in &plan.ops {
            match op {
                MountOp::ReadOnly(p) => {
                    // A placeholder another server removed since we planned (its
                    // directory vanishing also detaches our bind): make it again (it
                    // stays behind, empty) rather than leave the name open.
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let r = if libc::mount(
                            p.as_ptr(),
                            p.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ) < 0
                        {
                            Err(errno())
                        } else {
                            remount_ro(p)
                        };
                        match r {
                            Ok(()) => break,
                            Err(libc::ENOENT) if tries < 4 => {
                                libc::mkdir(p.as_ptr(), 0o777);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                MountOp::DenyDir(p) => {
                    let flags =
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                    if libc::mount(
                        c"tmpfs".as_ptr(),
                        p.as_ptr(),
                        c"tmpfs".as_ptr(),
                        flags,
                        c"mode=000".as_ptr().cast(),
                    ) < 0
                    {
                        return Err(errno());
                    }
                }
                MountOp::DenyFile { path, placeholder } => {
                    if libc::mount(
                        placeholder.as_ptr(),
                        path.as_ptr(),
                        null,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) < 0
                    {
                        return Err(errno());
                    }
                    remount_ro(path)?;
                }
                MountOp::PinLink(p) => pin_link(p)?,
                MountOp::PrivateShm { access } => private_shm(*access, ruleset)?,
            }
        }
        Ok(())
    }
}
