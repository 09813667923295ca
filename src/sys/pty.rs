//! Pseudo-terminals: open a pair with an initial size, resize, find the foreground
//! process group.

use super::fd::set_cloexec;
use crate::protocol::process::TermSize;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn winsize(size: TermSize) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows as u16,
        ws_col: size.cols as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new pseudo-terminal pair `(master, slave)`, both close-on-exec.
pub fn open(size: TermSize) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut master: RawFd = -1;
    let mut slave: RawFd = -1;
    let ws = winsize(size);
    // SAFETY: openpty writes two descriptors; name and termios may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by us from here on.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    set_cloexec(m.as_raw_fd())?;
    set_cloexec(s.as_raw_fd())?;
    Ok((m, s))
}

/// Set the terminal's window size on the master side.
pub fn resize(master: RawFd, size: TermSize) -> io::Result<()> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
    if unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's foreground process group, if it can be read.
pub fn foreground_pgrp(master: RawFd) -> Option<i32> {
    // SAFETY: tcgetpgrp only reads.
    let pg = unsafe { libc::tcgetpgrp(master) };
    (pg > 0).then_some(pg)
}
