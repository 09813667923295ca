//! `fs/watchMissing` and `fs/missingChanged` (docs/protocol.md "Filesystem"): inotify on the
//! nearest existing ancestor directory of each missing path, moved down as
//! directories appear; notifications coalesced to one per watch per 250 ms.

use super::FsError;
use crate::protocol::fs::MissingChangedParams;
use crate::protocol::{self, NotificationOut};
use crate::rpc::outbound::Outbound;
use crate::sys::reactor::register;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

pub const MAX_WATCHES: usize = 256;
pub const MAX_WATCH_PATHS: usize = 4_096;
pub const COALESCE: Duration = Duration::from_millis(250);
pub const METHOD: &str = "fs/missingChanged";

const MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

struct Watch {
    generation: u64,
    paths: Vec<PathBuf>,
    /// inotify watch descriptors this watch uses.
    wds: HashSet<i32>,
    armed: bool,
    last_sent: Option<Instant>,
    pending: bool,
}

#[derive(Default)]
struct State {
    inotify: Option<Arc<AsyncFd<OwnedFd>>>,
    watches: HashMap<i64, Watch>,
    /// Which watches use each descriptor.
    users: HashMap<i32, HashSet<i64>>,
    next_generation: u64,
}

/// The watches of one connection.
#[derive(Clone)]
pub struct Watches {
    state: Arc<Mutex<State>>,
    out: Outbound,
}

/// The nearest existing directory strictly above `path`.
fn watch_dir(path: &Path) -> Option<PathBuf> {
    let mut cur = path.parent();
    while let Some(dir) = cur {
        if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Some(dir.to_path_buf());
        }
        cur = dir.parent();
    }
    None
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

impl Watches {
    pub fn new(out: Outbound) -> Self {
        Watches {
            state: Arc::default(),
            out,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inotify(&self, st: &mut State) -> io::Result<Arc<AsyncFd<OwnedFd>>> {
        if let Some(fd) = &st.inotify {
            return Ok(fd.clone());
        }
        // SAFETY: inotify_init1 returns a fresh descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor, owned from here on.
        let fd = Arc::new(register(unsafe { OwnedFd::from_raw_fd(raw) })?);
        st.inotify = Some(fd.clone());
        let me = self.clone();
        let reader = fd.clone();
        tokio::spawn(async move { me.read_events(reader).await });
        Ok(fd)
    }

    /// Point the watch's descriptors at the current nearest ancestors.
    fn rewatch(st: &mut State, fd: i32, id: i64) {
        let Some(w) = st.watches.get_mut(&id) else {
            return;
        };
        let mut wanted = HashSet::new();
        for p in &w.paths {
            let Some(dir) = watch_dir(p) else { continue };
            let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: a valid inotify descriptor and a C string path.
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), MASK) };
            if wd >= 0 {
                wanted.insert(wd);
            }
        }
        let old = std::mem::replace(&mut w.wds, wanted.clone());
        for wd in &wanted {
            st.users.entry(*wd).or_default().insert(id);
        }
        for wd in old.difference(&wanted) {
            Self::release(st, fd, *wd, id);
        }
    }

    fn release(st: &mut State, fd: i32, wd: i32, id: i64) {
        if let Some(u) = st.users.get_mut(&wd) {
            u.remove(&id);
            if u.is_empty() {
                st.users.remove(&wd);
                // SAFETY: removing a watch descriptor we added.
                unsafe { libc::inotify_rm_watch(fd, wd) };
            }
        }
    }

    /// Set up (or replace) a watch. It stays silent until [`Watches::arm`], which
    /// the dispatcher calls after the response has been queued.
    pub fn watch(&self, id: i64, paths: Vec<PathBuf>) -> Result<(), FsError> {
        if paths.len() > MAX_WATCH_PATHS {
            return Err(FsError::TooManyWatchPaths);
        }
        let mut st = self.lock();
        if !st.watches.contains_key(&id) && st.watches.len() >= MAX_WATCHES {
            return Err(FsError::TooManyWatches);
        }
        let fd = self.inotify(&mut st)?;
        let raw = fd.as_raw_fd();
        if let Some(old) = st.watches.remove(&id) {
            for wd in old.wds {
                Self::release(&mut st, raw, wd, id);
            }
        }
        st.next_generation += 1;
        let generation = st.next_generation;
        st.watches.insert(
            id,
            Watch {
                generation,
                paths,
                wds: HashSet::new(),
                armed: false,
                last_sent: None,
                pending: false,
            },
        );
        Self::rewatch(&mut st, raw, id);
        Ok(())
    }

    /// Start notifying; a path that already exists notifies once now.
    pub fn arm(&self, id: i64) {
        let any = {
            let mut st = self.lock();
            let Some(w) = st.watches.get_mut(&id) else {
                return;
            };
            w.armed = true;
            w.paths.iter().any(|p| exists(p))
        };
        if any {
            self.notify(id);
        }
    }

    /// Send `fs/missingChanged` now, or once the coalescing window ends.
    fn notify(&self, id: i64) {
        let mut st = self.lock();
        let Some(w) = st.watches.get_mut(&id) else {
            return;
        };
        if !w.armed || w.pending {
            return;
        }
        let now = Instant::now();
        let wait = w
            .last_sent
            .map_or(Duration::ZERO, |t| COALESCE.saturating_sub(now - t));
        w.pending = true;
        let generation = w.generation;
        drop(st);
        let me = self.clone();
        tokio::spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            {
                let mut st = me.lock();
                let Some(w) = st
                    .watches
                    .get_mut(&id)
                    .filter(|w| w.generation == generation)
                else {
                    return;
                };
                w.pending = false;
                w.last_sent = Some(Instant::now());
            }
            let line = protocol::to_line(&NotificationOut {
                method: METHOD,
                params: MissingChangedParams { watch_id: id },
            });
            me.out.send(line, None).await;
        });
    }

    async fn read_events(self, fd: Arc<AsyncFd<OwnedFd>>) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            let n = match guard.try_io(|fd| {
                // SAFETY: reading into a buffer we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    tracing::warn!("reading inotify events failed: {e}");
                    return;
                }
                Err(_would_block) => continue,
            };
            let mut touched: HashSet<i64> = HashSet::new();
            let mut overflow = false;
            let header = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            {
                let st = self.lock();
                while off + header <= n {
                    // SAFETY: the kernel writes whole events; read the header unaligned.
                    let ev: libc::inotify_event =
                        unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                    off += header + ev.len as usize;
                    if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                        overflow = true;
                        continue;
                    }
                    if let Some(u) = st.users.get(&ev.wd) {
                        touched.extend(u.iter().copied());
                    }
                }
                if overflow {
                    touched.extend(st.watches.keys().copied());
                }
            }
            for id in touched {
                let appeared = {
                    let mut st = self.lock();
                    Self::rewatch(&mut st, fd.as_raw_fd(), id);
                    st.watches
                        .get(&id)
                        .is_some_and(|w| w.paths.iter().any(|p| exists(p)))
                };
                if appeared || overflow {
                    self.notify(id);
                }
            }
        }
    }
}
