//! The server's descriptor limit. Escalation streams, the descriptors wrappers
//! pass and every managed process's pipes all count against `RLIMIT_NOFILE`, and
//! a sandboxed child must not be able to make other requests fail with "Too
//! many open files". The exec-server raises its soft limit to the hard limit at
//! start; children get the soft limit the server was started with back (many
//! programs assume the usual 1024 for `select` or close every descriptor up to
//! the soft limit).

use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit the server was started with; `u64::MAX` when unchanged.
static STARTED_SOFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and remember the old one for
/// [`restore_in_child`]. Call once, early in exec-server start.
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let old = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            STARTED_SOFT.store(old, Ordering::Relaxed);
        }
    }
}

/// In a child between fork and exec (async-signal-safe: one atomic load, two
/// system calls): put back the soft limit the server was started with.
pub fn restore_in_child() {
    let soft = STARTED_SOFT.load(Ordering::Relaxed);
    if soft == u64::MAX {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a local struct; no allocation.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = (soft as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
