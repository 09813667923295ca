//! `execve-wrapper` mode (docs/protocol.md "Exec escalation"): a patched bash runs this instead of
//! `execve` for every external command, as `execve-wrapper FILE ARGV0 [ARG...]`.
//! It asks the escalation server, then runs the command in place, lets the
//! server run it (passing its stdio), or refuses.
//!
//! Blocking code only, no runtime: this runs once per exec. The inherited
//! escalation socket is used by number and never closed, so a command run in
//! place (a nested patched shell) still reaches the server.

use crate::escalate::wire::{
    self, Action, ExecRequest, ExecResponse, ExitMessage, FdsMessage, FrameError,
};
use crate::spawn::env_policy::ESCALATION_VARS;
use crate::sys::socket::{send_raw, socketpair};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

const USAGE: &str = "usage: execve-wrapper FILE ARGV0 [ARG...]

The exec wrapper of a patched bash (BASH_EXEC_WRAPPER / EXEC_WRAPPER). It asks the
escalation server named by CODEX_ESCALATE_SOCKET whether to run FILE in place, have
the server run it outside the sandbox, or refuse. Without CODEX_ESCALATE_SOCKET it
runs FILE in place.";

/// Exit status of the wrapper's own failures to talk to the server.
const EXIT_SERVER: i32 = 1;
/// Exit status when no decision could be asked for.
const EXIT_CANNOT_ASK: i32 = 126;

/// Run the wrapper with the arguments after the mode (`FILE ARGV0 [ARG...]`);
/// returns the exit status when it does not exec.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.len() == 1 && args[0] == "--help" {
        println!("{USAGE}");
        return 0;
    }
    if args.len() < 2 {
        eprintln!("{USAGE}");
        return 2;
    }
    let file = &args[0];
    let argv = &args[1..];
    let sock = match std::env::var_os("CODEX_ESCALATE_SOCKET") {
        None => return exec_in_place(file, argv),
        Some(v) if v.is_empty() => return exec_in_place(file, argv),
        Some(v) => match open_socket(&v) {
            Ok(fd) => fd,
            Err(detail) => return cannot_reach(&detail),
        },
    };
    let req = match build_request(file, argv) {
        Ok(r) => r,
        Err(detail) => {
            eprintln!("execve-wrapper: cannot ask for a decision: {detail}");
            return EXIT_CANNOT_ASK;
        }
    };
    let stream = match handshake(sock) {
        Ok(s) => s,
        Err(e) => return cannot_reach(&e.to_string()),
    };
    if let Err(e) = wire::send_frame(stream.as_raw_fd(), &req, &[]) {
        return send_failed(&e);
    }
    let action = match recv_message::<ExecResponse>(&stream) {
        Ok(r) => r.action,
        Err(code) => return code,
    };
    match action {
        Action::Run => exec_in_place(file, argv),
        Action::Deny { reason } => {
            match reason.filter(|r| !r.is_empty()) {
                Some(r) => eprintln!("Execution denied: {r}"),
                None => eprintln!("Execution denied"),
            }
            1
        }
        Action::Escalate => escalate(stream),
    }
}

fn cannot_reach(detail: &str) -> i32 {
    eprintln!("execve-wrapper: cannot reach the escalation server: {detail}");
    EXIT_SERVER
}

fn closed() -> i32 {
    eprintln!("execve-wrapper: escalation server closed the connection");
    EXIT_SERVER
}

fn invalid(detail: &str) -> i32 {
    eprintln!("execve-wrapper: invalid response from escalation server: {detail}");
    EXIT_SERVER
}

fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
    )
}

fn send_failed(e: &io::Error) -> i32 {
    if is_hangup(e) {
        closed()
    } else {
        cannot_reach(&e.to_string())
    }
}

/// The inherited socket named by `CODEX_ESCALATE_SOCKET`, checked with `fstat`
/// only (the sandbox's seccomp filter refuses `getsockopt`).
fn open_socket(v: &OsStr) -> Result<RawFd, String> {
    let text = v.to_string_lossy();
    let fd: RawFd = match text.parse() {
        Ok(n) if n >= 0 && text.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Err(format!(
                "CODEX_ESCALATE_SOCKET={text} is not a descriptor number"
            ))
        }
    };
    // SAFETY: `stat` is plain integers; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `stat` into the local.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(format!("descriptor {fd}: {}", io::Error::last_os_error()));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(format!("descriptor {fd} is not a socket"));
    }
    Ok(fd)
}

fn utf8(s: &OsStr) -> Result<String, String> {
    s.to_str()
        .map(str::to_string)
        .ok_or_else(|| "argument is not valid UTF-8".to_string())
}

/// Message 1: the exec, the cwd, and the environment without the escalation
/// variables (entries that are not UTF-8 are left out).
fn build_request(file: &OsStr, argv: &[OsString]) -> Result<ExecRequest, String> {
    let file = utf8(file)?;
    let argv = argv
        .iter()
        .map(|a| utf8(a))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    let workdir = utf8(cwd.as_os_str())?;
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !ESCALATION_VARS.contains(&k.as_str()))
        .collect();
    Ok(ExecRequest {
        file,
        argv,
        workdir,
        env,
    })
}

/// Send one end of a fresh stream pair over the escalation socket (seqpacket or
/// datagram); keep the other.
fn handshake(sock: RawFd) -> io::Result<OwnedFd> {
    let (mine, theirs) = socketpair(libc::SOCK_STREAM)?;
    let n = send_raw(sock, &[0], &[theirs.as_raw_fd()])?;
    if n != 1 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(mine)
}

/// Read and decode one frame; `Err` is the exit status after the message.
fn recv_message<T: serde::de::DeserializeOwned>(stream: &OwnedFd) -> Result<T, i32> {
    match wire::recv_frame(stream.as_raw_fd()) {
        Ok((body, _fds)) => decode(&body),
        Err(e) => Err(frame_failed(e)),
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, i32> {
    serde_json::from_slice(body).map_err(|e| invalid(&e.to_string()))
}

fn frame_failed(e: FrameError) -> i32 {
    match e {
        FrameError::Eof => closed(),
        FrameError::Io(e) if is_hangup(&e) => closed(),
        e => invalid(&e.to_string()),
    }
}

/// `execv(FILE, [ARGV0, ARG...])` with the environment unchanged; `ENOEXEC` runs
/// `/bin/sh FILE ARG...` as bash would. Returns only on failure.
fn exec_in_place(file: &OsStr, argv: &[OsString]) -> i32 {
    // The Rust runtime ignores SIGPIPE; the command must not inherit that.
    // SAFETY: resetting one disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let c = |s: &OsStr| CString::new(s.as_bytes()).ok();
    let (Some(cfile), Some(cargs)) = (
        c(file),
        argv.iter().map(|a| c(a)).collect::<Option<Vec<_>>>(),
    ) else {
        // Arguments from the kernel never contain NUL; nothing to run.
        return exec_failed(file, io::Error::from_raw_os_error(libc::EINVAL));
    };
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and a null-terminated array that outlive the call.
    unsafe { libc::execv(cfile.as_ptr(), ptrs.as_ptr()) };
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOEXEC) {
        let sh = c"/bin/sh";
        let mut sh_args: Vec<*const libc::c_char> = vec![sh.as_ptr(), cfile.as_ptr()];
        sh_args.extend(cargs.iter().skip(1).map(|a| a.as_ptr()));
        sh_args.push(std::ptr::null());
        // SAFETY: as above.
        unsafe { libc::execv(sh.as_ptr(), sh_args.as_ptr()) };
        return exec_failed(file, io::Error::last_os_error());
    }
    exec_failed(file, err)
}

fn exec_failed(file: &OsStr, e: io::Error) -> i32 {
    eprintln!("execve-wrapper: {}: {e}", file.to_string_lossy());
    if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    }
}

/// The signals that end the wait for an escalated command.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Pass duplicates of fds 0, 1, 2 (those that are open) to the server and wait
/// for the command's exit status, or for a stop signal.
fn escalate(stream: OwnedFd) -> i32 {
    let sfd = match block_stop_signals() {
        Ok(fd) => fd,
        Err(e) => return cannot_reach(&format!("cannot watch signals: {e}")),
    };
    let mut targets = Vec::new();
    let mut dups = Vec::new();
    for fd in 0..3 {
        // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor or fails.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d >= 0 {
            targets.push(fd);
            // SAFETY: fresh descriptor, owned from here on.
            dups.push(unsafe { OwnedFd::from_raw_fd(d) });
        }
    }
    let raw: Vec<RawFd> = dups.iter().map(|d| d.as_raw_fd()).collect();
    if let Err(e) = wire::send_frame(stream.as_raw_fd(), &FdsMessage { fds: targets }, &raw) {
        return send_failed(&e);
    }
    drop(dups);
    let mut reader = wire::FrameReader::default();
    loop {
        let mut polls = [
            libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: polling two descriptors we own.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return cannot_reach(&e.to_string());
        }
        if polls[1].revents != 0 {
            if let Some(sig) = read_signal(&sfd) {
                drop(stream);
                return 128 + sig;
            }
        }
        if polls[0].revents != 0 {
            match reader.step(stream.as_raw_fd()) {
                Ok(None) => continue,
                Ok(Some((body, _fds))) => {
                    return match decode::<ExitMessage>(&body) {
                        Ok(m) => m.exit_code.rem_euclid(256),
                        Err(code) => code,
                    }
                }
                Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return frame_failed(e),
            }
        }
    }
}

/// Block the stop signals and return a signalfd that reports them.
fn block_stop_signals() -> io::Result<OwnedFd> {
    // SAFETY: sigset manipulation on a local, then this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn read_signal(sfd: &OwnedFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading one record into a local of the right size.
    let n = unsafe {
        libc::read(
            sfd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    (n as usize == size).then_some(info.ssi_signo as i32)
}
