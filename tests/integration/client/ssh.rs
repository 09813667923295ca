//! Multi-host over a real OpenSSH server on 127.0.0.1: `tether run --server ssh`
//! runs a command through a remote `tether exec-server` (the built binary), and
//! SIGKILL of the local `tether run` leaves nothing of the command alive.
//!
//! Setup installs `openssh-server` from Debian when `sshd` is missing (we are root
//! on the test machines), makes host and user keys in a temp dir, and runs
//! `sshd -D -e` as a child with its own config. If any of that fails, the test
//! skips (`support::skip`: listed at exit, a failure with `CI=true`).

use crate::support::client::*;
use crate::support::skip;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ok(cmd: &mut Command) -> Result<(), String> {
    let out = run_with_input(cmd, b"");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {:?} {}", out.status, text(&out.stderr)))
    }
}

fn find_sshd() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn install_sshd() -> Result<PathBuf, String> {
    if let Some(p) = find_sshd() {
        return Ok(p);
    }
    eprintln!("ssh test: sshd not found; installing openssh-server with apt-get");
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    ok(&mut apt(&["update", "-qq"]))?;
    ok(&mut apt(&["install", "-y", "-qq", "openssh-server"]))?;
    find_sshd().ok_or_else(|| "openssh-server installed but no sshd found".into())
}

/// sshd as our child; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path))
}

fn start_sshd() -> Result<Sshd, String> {
    let sshd = install_sshd()?;
    if Command::new("ssh").arg("-V").output().is_err() {
        return Err("no ssh client".into());
    }
    let dir = temp_dir("sshd");
    let host_key = dir.join("host_key");
    let key = dir.join("user_key");
    keygen(&host_key)?;
    keygen(&key)?;
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))
        .map_err(|e| e.to_string())?;
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // HOME is the temp dir, so the remote shell reads no startup files of the
    // real user (a ~/.bashrc that runs `pyenv init` can stall for a minute).
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
             LogLevel ERROR\nAllowUsers *\nSetEnv HOME={}\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(&sshd)
        .args(["-D", "-e", "-p", &port.to_string(), "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", sshd.display()))?;
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("sshd: {l}");
        }
    });
    let s = Sshd {
        child,
        port,
        key,
        dir,
    };
    // Wait for it to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err(format!("sshd did not listen on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--server ssh --server-arg ...` for `user@127.0.0.1` running the built binary.
fn ssh_server_args(s: &Sshd) -> Vec<String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut v = vec!["--server".to_string(), "ssh".to_string()];
    for a in [
        "-F",
        "/dev/null",
        "-i",
        s.key.to_str().unwrap(),
        "-p",
        &s.port.to_string(),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        &format!("{user}@127.0.0.1"),
        &format!("{} exec-server", bin().display()),
    ] {
        v.push("--server-arg".into());
        v.push(a.into());
    }
    v
}

#[test]
fn ssh_runs_commands_remotely_and_sigkill_leaves_nothing_behind() {
    let sshd = match start_sshd() {
        Ok(s) => s,
        Err(why) => return skip(format!("cannot run an sshd: {why}")),
    };
    let server = ssh_server_args(&sshd);

    // 1. `tether run --server ssh ... -- hostname`
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut args = vec!["run".to_string()];
    args.extend(server.clone());
    args.extend(["--".into(), "hostname".into()]);
    let out = run_with_input(Command::new(bin()).args(&args), b"");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), hostname.trim());

    // Exit codes and stdin travel too.
    let mut args = vec!["run".to_string()];
    args.extend(server.clone());
    args.extend(["--".into(), "sh".into(), "-c".into(), "cat; exit 9".into()]);
    let out = run_with_input(Command::new(bin()).args(&args), b"over ssh\n");
    assert_eq!(text(&out.stdout), "over ssh\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(9));

    // 2. SIGKILL of the local `tether run`: nothing of the command survives.
    let marker = unique("ssh");
    let mut args = vec![
        "run".to_string(),
        "--set".into(),
        format!("{MARKER}={marker}"),
    ];
    args.extend(server);
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        "sleep 1000 & setsid sleep 1000 & exec sleep 1000".into(),
    ]);
    let mut run = Command::new(bin())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if marked(&marker).len() >= 3 {
            break;
        }
        if started.elapsed() > TIMEOUT {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the remote command did not start: {:?}", marked(&marker));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    match gone_within(&marker, Duration::from_secs(2)) {
        Ok(t) => eprintln!("ssh test: remote command gone {t:?} after SIGKILL"),
        Err(left) => panic!("alive 2 s after SIGKILL of tether run: {left:?}"),
    }
}
