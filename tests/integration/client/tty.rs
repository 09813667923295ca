//! `tether run --tty` with a real terminal on its stdin: the command sees our
//! size (`stty size`), follows SIGWINCH, Ctrl-C reaches it as a byte (our terminal
//! is raw while it runs), and our terminal mode is restored afterwards.

use crate::support::client::*;
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0);
}

/// Reads the master side on a thread; `wait_for` collects until a needle shows.
struct Screen {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Screen {
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !text(&self.seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.extend(b),
                Err(_) => panic!("no {needle:?} on the terminal; saw {:?}", text(&self.seen)),
            }
        }
    }
}

#[test]
fn tty_size_winch_ctrl_c_and_raw_mode() {
    let _orphans = OrphanCheck::new();
    let ws = Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&ws), None).unwrap();
    let master = pty.master;
    let slave = pty.slave;
    let before = tcgetattr(&slave).unwrap();
    assert!(before.local_flags.contains(LocalFlags::ICANON));

    let mut cmd = Command::new(bin());
    cmd.env(ORPHAN_VAR, test_marker().unwrap());
    cmd.args([
        "run",
        "--tty",
        "--",
        "/bin/sh",
        "-c",
        "stty size; trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done",
    ])
    .stdin(Stdio::from(slave.try_clone().unwrap()))
    .stdout(Stdio::from(slave.try_clone().unwrap()))
    .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the pty becomes the
    // controlling terminal of `tether run`, so SIGWINCH reaches it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();

    let (tx, rx) = mpsc::channel();
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Screen {
        rx,
        seen: Vec::new(),
    };
    screen.wait_for("33 101");
    screen.wait_for("ready");
    // Our terminal is raw while the command runs.
    let during = tcgetattr(&slave).unwrap();
    assert!(!during
        .local_flags
        .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));

    set_size(&master, 40, 120); // the kernel sends SIGWINCH to `tether run`
    screen.wait_for("40 120");

    // Ctrl-C: with ISIG off it is a byte for tether run, which the command's own
    // terminal turns into SIGINT.
    let mut w = std::fs::File::from(master.try_clone().unwrap());
    w.write_all(b"\x03").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "tether run did not exit after Ctrl-C; saw {:?}",
                text(&screen.seen)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130), "saw {:?}", text(&screen.seen));
    let after = tcgetattr(&slave).unwrap();
    assert_eq!(
        after.local_flags, before.local_flags,
        "terminal mode restored"
    );
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
}

#[test]
fn tty_without_a_terminal_on_stdin() {
    let _orphans = OrphanCheck::new();
    // No terminal of ours: default size, input forwarded, end of input is ^D.
    let out = run_with_input(
        Command::new(bin()).args(["run", "--tty", "--", "sh", "-c", "stty size; cat"]),
        b"typed\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("24 80\r\n"), "{s:?}");
    assert!(s.contains("typed\r\n"), "{s:?}");
}
