//! Registering a descriptor with the tokio reactor: the one place that does it
//! (process pipes and terminals, escalation sockets, inotify).

use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;

/// Register an owned descriptor with the reactor.
pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is valid, open, and always returns the same descriptor
    // until it is dropped, which only happens when the AsyncFd is dropped.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}
