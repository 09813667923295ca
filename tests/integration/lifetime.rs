//! docs/protocol.md "Lifetime" lifetime: shutdown triggers, killing the whole tree, exit status.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// Exit deadline: the spec says 1 s; allow slack for a loaded test machine.
const EXIT_WITHIN: Duration = Duration::from_secs(2);

/// Starts a tree of processes that are hard to kill and waits until all are
/// running. Returns the `sleep N` command lines to look for.
fn spawn_tree(s: &mut Server) -> Vec<String> {
    // Direct child.
    s.start_ok("direct", &["sleep", "301"], json!({}));
    // Ignores SIGTERM (and the sleep inherits the ignored disposition).
    s.start_ok(
        "ignterm",
        &["/bin/sh", "-c", "trap '' TERM HUP INT; sleep 302; :"],
        json!({}),
    );
    // A grandchild in its own session (setsid), parent still alive.
    s.start_ok(
        "setsid",
        &[
            "/bin/sh",
            "-c",
            "setsid sh -c 'sleep 303; :' & sleep 304; :",
        ],
        json!({}),
    );
    // A double-forked daemon: its parents exit, it is reparented to the
    // server (subreaper), holds none of our pipes, and left our group.
    s.start_ok(
        "daemon",
        &[
            "/bin/sh",
            "-c",
            "setsid sh -c 'trap \"\" TERM HUP; sleep 305 </dev/null >/dev/null 2>&1 & exit 0'; echo spawned",
        ],
        json!({}),
    );
    // A terminal child that ignores TERM and HUP.
    s.start_ok(
        "tty",
        &["/bin/sh", "-c", "trap '' TERM HUP INT; sleep 306; :"],
        json!({"tty": true}),
    );
    let daemon = Run::from_events(s.collect_until_closed("daemon"));
    assert_eq!(daemon.stdout_str(), "spawned\n");
    let want: Vec<String> = (301..=306).map(|n| format!("sleep {n}")).collect();
    let ok = wait_until(Duration::from_secs(10), || {
        let procs = marked_processes(&s.marker);
        want.iter().all(|w| procs.iter().any(|p| &p.cmdline == w))
    });
    assert!(ok, "tree did not start: {:?}", marked_processes(&s.marker));
    // The daemon really escaped: reparented to the server, not in a managed group.
    let procs = marked_processes(&s.marker);
    let d = procs.iter().find(|p| p.cmdline == "sleep 305").unwrap();
    assert_eq!(
        d.ppid,
        s.pid(),
        "daemon reparented to the subreaper server: {d:?}"
    );
    want
}

/// Makes sure nothing is on its way to us before the trigger.
fn quiesce(s: &mut Server) {
    let r = s.call("environment/status", Value::Null);
    assert_eq!(r, json!({"status": "ready"}));
    let _ = s.drain_for(Duration::from_millis(200));
}

#[track_caller]
fn assert_clean_exit(s: &mut Server, t0: Instant, what: &str) {
    let st = s.wait_exit(Duration::from_secs(10));
    let el = t0.elapsed();
    let st = st.unwrap_or_else(|| panic!("server did not exit after {what}\n{}", s.stderr_tail()));
    assert_eq!(st.code(), Some(0), "exit status 0 after {what}: {st:?}");
    assert!(el <= EXIT_WITHIN, "server took {el:?} to exit after {what}");
}

#[track_caller]
fn assert_no_survivors(marker: &str) {
    // Everything was SIGKILLed and reaped before exit; allow a moment for the
    // kernel to finish tearing processes down.
    let gone = wait_until(Duration::from_millis(500), || {
        alive_with_marker(marker).is_empty()
    });
    assert!(
        gone,
        "processes survived shutdown: {:?}",
        marked_processes(marker)
    );
}

#[track_caller]
fn assert_nothing_more_written(s: &mut Server) {
    let rest = s.drain_for(Duration::from_millis(300));
    assert!(
        rest.is_empty(),
        "nothing is written after shutdown starts: {:?}",
        rest.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
}

#[test]
fn shutdown_on_stdin_eof() {
    let mut s = Server::ready();
    spawn_tree(&mut s);
    // A request in flight gets no response.
    s.send_request(
        "process/read",
        Some(json!({"processId": "direct", "afterSeq": 0, "waitMs": 20000})),
    );
    // quiesce's request is answered only after the server has read (and
    // dispatched) the long poll sent before it.
    quiesce(&mut s);
    let t0 = Instant::now();
    s.close_stdin();
    assert_clean_exit(&mut s, t0, "stdin EOF");
    assert_no_survivors(&s.marker);
    assert_nothing_more_written(&mut s);
}

#[test]
fn shutdown_on_sigterm() {
    let mut s = Server::ready();
    spawn_tree(&mut s);
    quiesce(&mut s);
    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    // stdin stays open: SIGTERM alone is enough.
    assert_clean_exit(&mut s, t0, "SIGTERM");
    assert_no_survivors(&s.marker);
    assert_nothing_more_written(&mut s);
}

#[test]
fn shutdown_on_sigterm_to_the_process_group_like_codex() {
    // The Codex client sends SIGTERM and closes stdin at once, without
    // waiting: both triggers together still mean one clean shutdown. The
    // server leads its own group and the signal goes to the group.
    let mut s = Server::builder().own_process_group().spawn();
    s.initialize();
    spawn_tree(&mut s);
    quiesce(&mut s);
    let t0 = Instant::now();
    s.signal_group(libc::SIGTERM);
    s.close_stdin();
    assert_clean_exit(&mut s, t0, "SIGTERM + stdin EOF");
    assert_no_survivors(&s.marker);
}

#[test]
fn shutdown_on_sigint_and_sighup() {
    for sig in [libc::SIGINT, libc::SIGHUP] {
        let mut s = Server::ready();
        s.start_ok("direct", &["sleep", "311"], json!({}));
        s.start_ok(
            "daemon",
            &[
                "/bin/sh",
                "-c",
                "setsid sh -c 'sleep 312 </dev/null >/dev/null 2>&1 &'",
            ],
            json!({}),
        );
        s.collect_until_closed("daemon");
        assert!(wait_until(Duration::from_secs(5), || {
            let p = marked_processes(&s.marker);
            p.iter().any(|p| p.cmdline == "sleep 311") && p.iter().any(|p| p.cmdline == "sleep 312")
        }));
        quiesce(&mut s);
        let t0 = Instant::now();
        s.signal(sig);
        assert_clean_exit(&mut s, t0, &format!("signal {sig}"));
        assert_no_survivors(&s.marker);
    }
}

#[test]
fn shutdown_with_busy_writers() {
    // Children flooding stdout while the client stops reading: shutdown must
    // still finish in time (the writer may be blocked on a full pipe).
    let mut s = Server::ready();
    for i in 0..4 {
        s.start_ok(&format!("yes{i}"), &["yes"], json!({}));
    }
    // Every child is flooding: output from each has arrived.
    for i in 0..4 {
        let id = format!("yes{i}");
        s.wait_buffered(&format!("output of {id}"), TIMEOUT, |v| {
            v["method"] == "process/output" && v["params"]["processId"] == id.as_str()
        });
    }
    // Stop reading, and wait until the server's stdout pipe is full (within a
    // sixteenth: partly filled pages), so that its writer is blocked when the
    // shutdown comes.
    s.pause_reading(true);
    let full = wait_until(TIMEOUT, || {
        let (unread, size) = s.stdout_pipe_fill();
        unread + size / 16 >= size
    });
    assert!(full, "stdout pipe never filled: {:?}", s.stdout_pipe_fill());
    let t0 = Instant::now();
    s.close_stdin();
    s.signal(libc::SIGTERM);
    let st = s.wait_exit(Duration::from_secs(10));
    let el = t0.elapsed();
    s.pause_reading(false);
    let st = st.expect("server exited");
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(el <= EXIT_WITHIN, "took {el:?}");
    assert_no_survivors(&s.marker);
}

#[test]
fn shutdown_when_the_client_closes_stdout() {
    let marker = unique("tt-stdout");
    let mut child = Command::new(bin())
        .arg("exec-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("TETHER_TEST_MARKER")
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    writeln!(
        stdin,
        r#"{{"id":1,"method":"initialize","params":{{"clientName":"it"}}}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"method":"initialized"}}"#).unwrap();
    let start = json!({
        "id": 2, "method": "process/start",
        "params": {"processId": "yes", "argv": ["yes"], "cwd": "/tmp", "tty": false,
                   "env": {"PATH": "/usr/bin:/bin", "TETHER_TEST_MARKER": marker}}
    });
    writeln!(stdin, "{start}").unwrap();
    stdin.flush().unwrap();
    let mut got_start = false;
    let mut line = String::new();
    for _ in 0..200 {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["id"] == json!(2) {
            assert!(v.get("result").is_some(), "{v}");
            got_start = true;
        }
        if got_start && v["method"] == "process/output" {
            break;
        }
    }
    assert!(got_start, "process/start answered");
    let t0 = Instant::now();
    drop(out);
    let deadline = t0 + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let el = t0.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let clean = wait_until(Duration::from_millis(500), || {
        alive_with_marker(&marker).is_empty()
    });
    kill_marked(&marker);
    let st = st.expect("server exits when its stdout is closed");
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(el <= EXIT_WITHIN, "took {el:?}");
    assert!(clean, "children survived");
    drop(stdin);
}

#[test]
fn sigkill_of_the_server_kills_direct_children_by_pdeathsig() {
    let mut s = Server::ready();
    s.start_ok("direct", &["sleep", "321"], json!({}));
    s.start_ok(
        "ignterm",
        &["/bin/sh", "-c", "trap '' TERM HUP INT; sleep 322; :"],
        json!({}),
    );
    s.start_ok(
        "execd",
        &["/bin/sh", "-c", "trap '' TERM HUP; exec sleep 323"],
        json!({}),
    );
    s.start_ok(
        "tty",
        &["/bin/sh", "-c", "trap '' TERM HUP INT; sleep 324; :"],
        json!({"tty": true}),
    );
    let server = s.pid();
    let mut direct = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let procs = marked_processes(&s.marker);
        direct = procs
            .iter()
            .filter(|p| p.ppid == server)
            .map(|p| p.pid)
            .collect();
        let sleeps = (321..=324).all(|n| procs.iter().any(|p| p.cmdline == format!("sleep {n}")));
        sleeps && direct.len() >= 4
    });
    assert!(
        ok,
        "children did not start: {:?}",
        marked_processes(&s.marker)
    );
    s.signal(libc::SIGKILL);
    s.wait_exit(Duration::from_secs(5)).expect("server died");
    let gone = wait_until(Duration::from_secs(3), || {
        direct.iter().all(|pid| proc_info(*pid).is_none_or_zombie())
    });
    assert!(
        gone,
        "direct children survived the server's SIGKILL: {:?}",
        direct
            .iter()
            .filter_map(|p| proc_info(*p))
            .collect::<Vec<_>>()
    );
    // Grandchildren are not covered by PDEATHSIG (docs/protocol.md "Processes": only the direct child
    // has it) and a SIGKILLed server cannot sweep them: expected survivors, so the
    // test removes them itself before the orphan check.
    kill_marked(&s.marker);
}

trait ZombieCheck {
    fn is_none_or_zombie(&self) -> bool;
}

impl ZombieCheck for Option<ProcInfo> {
    fn is_none_or_zombie(&self) -> bool {
        match self {
            None => true,
            Some(p) => p.state == 'Z' || p.state == 'X',
        }
    }
}

// ---- a SIGKILLed server (the lifetime guard) ---------------------------------

/// The cgroup v2 mount, if this test (as root) can make cgroups there.
fn cgroup2_for_tests() -> Option<std::path::PathBuf> {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mnt = info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut f = pre.split_whitespace();
        (post.split_whitespace().next()? == "cgroup2" && f.nth(3)? == "/")
            .then(|| std::path::PathBuf::from(f.next().unwrap()))
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .to_string();
    let probe = mnt
        .join(rel.trim_start_matches('/'))
        .join(unique("tether-it-cg"));
    std::fs::create_dir(&probe).ok()?;
    std::fs::remove_dir(&probe).ok()?;
    Some(mnt.join(rel.trim_start_matches('/')))
}

/// `environment/info`, which says how the server's descendants are held.
fn environment_info(s: &mut Server) -> Value {
    let r = s.request_no_params("environment/info");
    r["result"].clone()
}

/// The server's cgroup directory, as environmentInfo names it.
fn guard_cgroup_dir(info: &Value) -> Option<std::path::PathBuf> {
    let rel = info["tether"]["lifetime"]["cgroup"].as_str()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut f = pre.split_whitespace();
        (post.split_whitespace().next()? == "cgroup2" && f.nth(3)? == "/")
            .then(|| std::path::PathBuf::from(f.next().unwrap()).join(rel.trim_start_matches('/')))
    })
}

/// SIGKILL the server; within 1 s nothing of `marker` may be left.
#[track_caller]
fn sigkill_and_expect_no_survivors(s: &mut Server) {
    s.signal(libc::SIGKILL);
    let st = s
        .wait_exit(Duration::from_secs(5))
        .expect("the server died");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let gone = wait_until(Duration::from_secs(1), || {
        alive_with_marker(&s.marker).is_empty()
    });
    assert!(
        gone,
        "processes survived a SIGKILLed server: {:?}",
        marked_processes(&s.marker)
    );
}

use std::os::unix::process::ExitStatusExt;

#[test]
fn a_sigkilled_server_leaves_no_daemon_double_fork_or_term_ignoring_child() {
    if cgroup2_for_tests().is_none() {
        return skip("needs root and a writable cgroup v2 hierarchy");
    }
    let mut s = Server::start();
    s.initialize();
    let info = environment_info(&mut s);
    let lt = &info["tether"]["lifetime"];
    assert_eq!(lt["guard"], "cgroup", "{lt}");
    let dir = guard_cgroup_dir(&info).expect("cgroup path");
    assert!(dir.is_dir(), "{dir:?}");
    // setsid daemon, double fork, TERM/HUP-ignoring children, a tty child.
    spawn_tree(&mut s);
    // Every process of the tree, the first spawns included (started right
    // after the handshake, while the guard may still be moving the server).
    let rel = info["tether"]["lifetime"]["cgroup"]
        .as_str()
        .unwrap()
        .to_string();
    for p in marked_processes(&s.marker) {
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).unwrap_or_default();
        assert!(
            cg.lines().any(|l| l == format!("0::{rel}")),
            "{p:?} is in the server's cgroup: {cg}"
        );
    }
    sigkill_and_expect_no_survivors(&mut s);
    assert!(
        wait_until(Duration::from_secs(3), || !dir.exists()),
        "the guard removes its cgroup: {dir:?}"
    );
}

#[test]
fn an_unprivileged_server_in_a_delegated_cgroup_leaves_nothing_either() {
    let Some(base) = cgroup2_for_tests() else {
        return skip("needs root and a writable cgroup v2 hierarchy");
    };
    // A cgroup delegated to nobody, as systemd delegates one to a user service.
    let deleg = base.join(unique("tether-it-deleg"));
    std::fs::create_dir(&deleg).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        let p = if f.is_empty() {
            deleg.clone()
        } else {
            deleg.join(f)
        };
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    }
    {
        let mut s = Server::builder()
            .cgroup(&deleg)
            .run_as(65534, 65534)
            .cwd("/tmp")
            .spawn();
        s.initialize();
        let info = environment_info(&mut s);
        let lt = &info["tether"]["lifetime"];
        assert_eq!(lt["guard"], "cgroup", "{lt}");
        spawn_tree(&mut s);
        sigkill_and_expect_no_survivors(&mut s);
    }
    // The guard removed its own cgroup; what is left is ours.
    assert!(
        wait_until(Duration::from_secs(3), || std::fs::remove_dir(&deleg)
            .is_ok()),
        "delegated cgroup left non-empty: {:?}",
        std::fs::read_dir(&deleg).map(|d| d.count())
    );
}

#[test]
fn without_a_cgroup_the_guard_still_kills_every_process_group() {
    let mut s = Server::builder().env("TETHER_CGROUP", "off").spawn();
    s.initialize();
    let info = environment_info(&mut s);
    let lt = &info["tether"]["lifetime"];
    assert_eq!(lt["guard"], "processGroups", "{lt}");
    assert!(
        lt["reason"].as_str().unwrap().contains("TETHER_CGROUP"),
        "{lt}"
    );
    // Grandchildren in the spawns' groups, some ignoring TERM and HUP: only
    // the direct children have PDEATHSIG, the rest is the guard's work.
    s.start_ok(
        "g1",
        &["/bin/sh", "-c", "sleep 321 & sleep 322; :"],
        json!({}),
    );
    s.start_ok(
        "g2",
        &["/bin/sh", "-c", "(trap '' TERM HUP; sleep 323; :) & wait"],
        json!({}),
    );
    s.start_ok(
        "g3",
        &["/bin/sh", "-c", "trap '' TERM HUP; sleep 324 & wait"],
        json!({"tty": true}),
    );
    let want: Vec<String> = (321..=324).map(|n| format!("sleep {n}")).collect();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let p = marked_processes(&s.marker);
            want.iter().all(|w| p.iter().any(|p| &p.cmdline == w))
        }),
        "tree did not start: {:?}",
        marked_processes(&s.marker)
    );
    sigkill_and_expect_no_survivors(&mut s);
}

#[test]
fn the_guard_holds_none_of_the_servers_descriptors_and_leaves_after_it() {
    let mut s = Server::ready();
    // The guard comes back to the server (a subreaper) once the probe is gone.
    let mut guard = None;
    assert!(wait_until(Duration::from_secs(5), || {
        guard = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            let ppid: i32 = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(1)?
                .parse()
                .ok()?;
            (comm == "tether-guard" && ppid == s.pid()).then_some(pid)
        });
        guard.is_some()
    }));
    let guard = guard.unwrap();
    // Only /dev/null on 0-2 (a client reading the server's stdout or stderr to
    // EOF never waits for the guard) and its two pipes, once it has done its
    // start-up work (moving the server into its cgroup opens cgroup.procs for
    // a few ms): the server's descriptors are never among them.
    let fds_of = |pid: i32| -> Vec<(i32, String)> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_str()?.parse().ok()?;
                        Some((n, std::fs::read_link(e.path()).ok()?.display().to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let settled = |fds: &[(i32, String)]| {
        fds.len() == 5
            && fds.iter().all(|(n, target)| {
                if *n < 3 {
                    target == "/dev/null"
                } else {
                    target.starts_with("pipe:")
                }
            })
    };
    assert!(
        wait_until(Duration::from_secs(5), || settled(&fds_of(guard))),
        "{:?}",
        fds_of(guard)
    );
    let server_stdout = std::fs::read_link(format!("/proc/{}/fd/1", s.pid())).unwrap();
    assert!(
        fds_of(guard)
            .iter()
            .all(|(_, t)| *t != server_stdout.display().to_string()),
        "the guard holds the server's stdout pipe"
    );
    quiesce(&mut s);
    let t0 = Instant::now();
    s.close_stdin();
    assert_clean_exit(&mut s, t0, "stdin EOF");
    assert!(
        wait_until(Duration::from_secs(2), || {
            std::fs::read_to_string(format!("/proc/{guard}/stat"))
                .map(|st| st.contains(") Z"))
                .unwrap_or(true)
        }),
        "the guard exits after the server"
    );
}
