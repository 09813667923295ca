//! How to start a server program: a program path (never a shell command line), its
//! arguments, an environment overlay and a working directory. The server is put in
//! its own process group and gets `PR_SET_PDEATHSIG = SIGTERM`, set from one
//! long-lived spawner thread so that the signal means "the client process died"
//! and not "the thread that happened to spawn it ended".

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// A server program and how to run it. Built with [`ServerCommand::new`] and the
/// chaining setters; `program` is executed directly (searched in `PATH` when it
/// has no `/`), arguments are passed as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    pub program: OsString,
    /// `argv[0]` for the server, when it should differ from `program`.
    pub arg0: Option<OsString>,
    pub args: Vec<OsString>,
    /// Variables added to (or replacing those in) this process's environment.
    pub env: Vec<(OsString, OsString)>,
    /// The server's working directory; this process's when `None`.
    pub cwd: Option<PathBuf>,
}

impl ServerCommand {
    pub fn new(program: impl Into<OsString>) -> Self {
        ServerCommand {
            program: program.into(),
            arg0: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// This very binary in `exec-server` mode, found through `/proc/self/exe`.
    pub fn this_exe() -> Self {
        ServerCommand::new("/proc/self/exe")
            .arg0("tether")
            .arg("exec-server")
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn arg0(mut self, arg0: impl Into<OsString>) -> Self {
        self.arg0 = Some(arg0.into());
        self
    }

    /// The `std` command: all three standard streams piped, own process group.
    pub(crate) fn to_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        if let Some(a0) = &self.arg0 {
            c.arg0(a0);
        }
        c.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            c.current_dir(cwd);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the child between fork and exec and calls
        // only async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            c.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        c
    }
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawn `cmd` from the process-wide spawner thread, which lives as long as the
/// process, so the child's parent-death signal fires only when the process dies.
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let tx = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnJob>();
            let started = std::thread::Builder::new()
                .name("tether-client-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                });
            if let Err(e) = started {
                tracing::warn!("cannot start the spawner thread: {e}");
            }
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    match tx.send((cmd, reply_tx)) {
        Ok(()) => reply_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the spawner thread is gone"))),
        Err(mpsc::SendError((c, _))) => {
            // No spawner thread: spawn here (the death signal then follows this thread).
            cmd = c;
            cmd.spawn()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_collects_everything() {
        let c = ServerCommand::new("ssh")
            .args(["-p", "22"])
            .arg("host")
            .env("A", "1")
            .cwd("/tmp");
        assert_eq!(c.program, "ssh");
        assert_eq!(c.args, vec!["-p", "22", "host"]);
        assert_eq!(c.env, vec![("A".into(), "1".into())]);
        assert_eq!(c.cwd, Some(PathBuf::from("/tmp")));
        assert_eq!(ServerCommand::this_exe().args, vec!["exec-server"]);
    }

    #[test]
    fn spawn_runs_in_its_own_group() {
        let mut cmd = ServerCommand::new("sh").args(["-c", "exit 3"]).to_command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn(cmd).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(3));
        let missing = spawn(ServerCommand::new("/nonexistent/tether").to_command());
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
