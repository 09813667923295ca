//! Our own terminal for `tether run --tty`: raw mode while the command runs
//! (restored on drop, including during a panic) and its window size.

use crate::protocol::process::TermSize;
use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, BorrowedFd};

/// Whether `fd` is a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// The window size of the first of stdin and stdout that is a terminal.
pub fn window_size() -> Option<TermSize> {
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: `winsize` is plain integers; all zeroes is a valid value.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which we own.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some(TermSize {
                rows: ws.ws_row.into(),
                cols: ws.ws_col.into(),
            });
        }
    }
    None
}

/// Puts stdin's terminal in raw mode; restores the saved mode on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, if stdin is a terminal.
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        if !is_tty(fd) {
            return None;
        }
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if let Err(e) = termios::tcsetattr(fd, SetArg::TCSANOW, &raw) {
            tracing::warn!("cannot put the terminal in raw mode: {e}");
            return None;
        }
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}
