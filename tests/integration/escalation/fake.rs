//! A protocol-exact escalation server written from docs/protocol.md "Exec escalation" (raw
//! `recvmsg`/`sendmsg`, nothing shared with Tether's implementation), and a way
//! to start Tether's wrapper with the socket at fd 3.

use crate::support::bin;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn socketpair(kind: i32) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Poll `fd` for input; panics after `WAIT`.
pub fn wait_readable(fd: RawFd) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack.
    let n = unsafe { libc::poll(&mut p, 1, WAIT.as_millis() as i32) };
    assert!(n > 0, "nothing to read on fd {fd} within {WAIT:?}");
}

/// One `recvmsg`: bytes and SCM_RIGHTS descriptors.
pub fn recv(fd: RawFd, max: usize) -> (Vec<u8>, Vec<OwnedFd>) {
    wait_readable(fd);
    let mut buf = vec![0u8; max];
    let mut ctl = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr pointing at live local buffers.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctl);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC);
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        buf.truncate(n as usize);
        (buf, fds)
    }
}

/// Send raw bytes (one `sendmsg`, descriptors attached).
pub fn send(fd: RawFd, data: &[u8], fds: &[RawFd]) {
    let mut ctl = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as in `recv`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = ctl.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
        let n = libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL);
        assert_eq!(
            n as usize,
            data.len(),
            "sendmsg: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The handshake: one datagram, payload 0x00, exactly one descriptor.
pub fn accept(dgram: &OwnedFd) -> OwnedFd {
    let (data, mut fds) = recv(dgram.as_raw_fd(), 64);
    assert_eq!(data, [0u8], "handshake payload");
    assert_eq!(fds.len(), 1, "handshake descriptors");
    fds.remove(0)
}

/// A frame: descriptors from the read that brings the header, then the body.
pub fn read_frame(stream: &OwnedFd) -> (Value, Vec<OwnedFd>) {
    let (head, fds) = recv(stream.as_raw_fd(), 4);
    assert_eq!(head.len(), 4, "frame header");
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let mut body = Vec::new();
    while body.len() < len {
        let (chunk, _) = recv(stream.as_raw_fd(), len - body.len());
        assert!(!chunk.is_empty(), "stream ended inside a frame");
        body.extend(chunk);
    }
    let text = std::str::from_utf8(&body).expect("frame is UTF-8");
    assert!(!text.contains('\n'), "compact JSON: {text}");
    (serde_json::from_str(text).expect("frame is JSON"), fds)
}

pub fn write_frame(stream: &OwnedFd, v: &Value) {
    write_raw_frame(stream, v.to_string().as_bytes(), &[]);
}

pub fn write_raw_frame(stream: &OwnedFd, body: &[u8], fds: &[RawFd]) {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    send(stream.as_raw_fd(), &f, fds);
}

/// Start `tether execve-wrapper args...` with `sock` at fd 3 and
/// `CODEX_ESCALATE_SOCKET=3` (unless `env` overrides it).
pub fn wrapper<S: AsRef<OsStr>>(sock: Option<&OwnedFd>, args: &[S], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(bin());
    cmd.arg("execve-wrapper")
        .args(args)
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if sock.is_some() {
        cmd.env("CODEX_ESCALATE_SOCKET", "3");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(s) = sock {
        let fd = s.as_raw_fd();
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().expect("spawn the wrapper")
}

/// The wrapper's exit code, stdout and stderr (waits at most `WAIT`).
pub fn finish(mut child: Child) -> (Option<i32>, String, String) {
    let mut out = String::new();
    let mut err = String::new();
    let end = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("the wrapper did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}
