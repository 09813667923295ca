//! The exec-server mode: stdin/stdout transport, dispatch, and the parent-owned
//! lifetime (docs/protocol.md "Transport", "Lifetime").

pub mod decode;
pub mod dispatch;
pub mod env_info;
pub mod transport;

use crate::process::ProcessManager;
use crate::sandbox::host::NamespaceProbe;
use crate::spawn::{group, lifeguard};
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};

/// Budget for killing and reaping everything at shutdown (the whole shutdown must
/// finish within 1 s of its trigger).
const SWEEP_BUDGET: Duration = Duration::from_millis(800);

/// A writer for fd 1 that never closes it.
struct RawStdout(ManuallyDrop<File>);

impl RawStdout {
    fn fd1() -> Self {
        // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never
        // closes it.
        RawStdout(ManuallyDrop::new(unsafe { File::from_raw_fd(1) }))
    }
}

impl std::io::Write for RawStdout {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn write_vectored(&mut self, b: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.0.write_vectored(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Pipe buffer asked for on stdout: fewer, larger writes and wake-ups when a client
/// reads a fast stream. Only when stdout is a pipe; failure is harmless.
const STDOUT_PIPE_SIZE: libc::c_int = 1 << 20;

/// Mark this process as subreaper and non-dumpable (docs/protocol.md "Lifetime").
fn prepare_process() {
    // SAFETY: prctl, signal and fcntl calls with constant arguments on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::fcntl(1, libc::F_SETPIPE_SZ, STDOUT_PIPE_SIZE);
    }
}

/// Run the exec-server on stdin/stdout until a shutdown trigger; returns the exit code.
pub fn run() -> i32 {
    run_then(|| {})
}

/// [`run`], calling `after_handshake` once the first line has been handled (or
/// the start was cut short), before the runtime starts.
pub fn run_then(after_handshake: impl FnOnce()) -> i32 {
    prepare_process();
    crate::spawn::limits::raise_nofile();
    // The namespace probe's child works while the first line is read.
    let probe = NamespaceProbe::start();
    let early = early_handshake(probe);
    after_handshake();
    let Some(early) = early else {
        // A shutdown signal before the first line: nothing was started.
        tracing::info!("shutting down: signal before the handshake");
        return 0;
    };
    // Still single-threaded, and the client has its answer: leave the guard
    // that kills what we start should we be SIGKILLed (docs/protocol.md "Lifetime").
    lifeguard::start();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::sys::cpus())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether exec-server: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(serve(early));
    // Shutdown already killed and reaped everything; leave without waiting for tasks.
    std::process::exit(0)
}

/// What [`early_handshake`] did before the runtime started.
struct Early {
    info: crate::protocol::handshake::EnvironmentInfo,
    prefill: transport::Prefill,
    handshake: Option<dispatch::EarlyHandshake>,
}

/// Read stdin on the main thread until its first line; if that is `initialize`,
/// answer it right here, before the runtime, the threads and the process manager
/// exist, so that the handshake costs a client only the process start and this.
/// (A first line that is anything else, and everything after the first line, is
/// left to the dispatcher as read.) Nothing can be started before `initialize`,
/// so nothing waits on this; a signal now ends the process with nothing to clean.
fn early_handshake(probe: NamespaceProbe) -> Option<Early> {
    use std::io::{Read, Write};
    catch_early_signals();
    let mut prefill = transport::Prefill::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin = std::io::stdin();
    while prefill.pending.is_empty() {
        if EARLY_SIGNAL.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                0
            }
        };
        let pending = &mut prefill.pending;
        let mut keep = |ev| {
            pending.push(ev);
            true
        };
        if n == 0 {
            prefill.split.finish(&mut keep);
            prefill.pending.push(transport::InputEvent::Eof);
            prefill.eof = true;
            break;
        }
        prefill.split.feed(&buf[..n], &mut keep);
    }
    let info = env_info::compute_with(probe);
    let mut handshake = None;
    if let Some(transport::InputEvent::Line(line)) = prefill.pending.first() {
        if let decode::Incoming::Request { id, method, params } = decode::classify(line) {
            if method == crate::protocol::methods::INITIALIZE {
                let session_id = uuid::Uuid::new_v4().to_string();
                let r = dispatch::initialize_result(params, &session_id, &info);
                let initialized = r.is_ok();
                let reply = dispatch::response_line(&id, r);
                // No other thread writes stdout yet.
                let mut stdout = RawStdout::fd1();
                if let Err(e) = stdout.write_all(&reply) {
                    tracing::info!("writing stdout failed: {e}");
                }
                prefill.pending.remove(0);
                handshake = Some(dispatch::EarlyHandshake {
                    session_id,
                    initialized,
                });
            }
        }
    }
    Some(Early {
        info,
        prefill,
        handshake,
    })
}

/// The shutdown signal that came before the runtime's handlers were installed.
static EARLY_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_early_signal(sig: libc::c_int) {
    EARLY_SIGNAL.store(sig, Ordering::SeqCst);
}

/// Until the runtime installs its handlers, SIGTERM, SIGINT and SIGHUP only set
/// [`EARLY_SIGNAL`] (and interrupt the read of the first line: no `SA_RESTART`).
fn catch_early_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a handler that only stores to an atomic; sigaction on a zeroed,
        // filled-in struct.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_early_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

async fn serve(early: Early) {
    let Early {
        info,
        prefill,
        handshake,
    } = early;
    let stop = Arc::new(AtomicBool::new(false));
    let write_failed = Arc::new(Notify::new());
    let wf = write_failed.clone();
    let stdout = RawStdout::fd1();
    let out = transport::spawn_writer(stdout, stop.clone(), move || wf.notify_one());
    let (tx, rx) = mpsc::channel(4);
    transport::spawn_reader(std::io::stdin(), tx, prefill);
    let host = info
        .tether
        .as_ref()
        .map(|t| t.sandbox.clone())
        .unwrap_or_else(crate::sandbox::host::probe_sandbox);
    let procs = ProcessManager::new(out.clone(), host);
    let mut dispatcher = dispatch::Dispatcher::new(out, procs.clone(), info);
    if let Some(h) = handshake {
        dispatcher = dispatcher.after_early_initialize(h);
    }

    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    // A signal between the first line and the handlers above.
    let early_sig = async {
        if EARLY_SIGNAL.load(Ordering::SeqCst) != 0 {
            return;
        }
        std::future::pending::<()>().await
    };
    let why = tokio::select! {
        _ = early_sig => "a signal during start-up",
        _ = dispatcher.run(rx) => "end of input",
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
        _ = write_failed.notified() => "stdout closed",
    };
    let started = std::time::Instant::now();
    tracing::info!("shutting down: {why}");
    stop.store(true, Ordering::SeqCst);
    procs.kill_all();
    let _ = tokio::task::spawn_blocking(|| group::sweep_children(SWEEP_BUDGET)).await;
    crate::sandbox::mount::remove_all_placeholders();
    crate::escalate::broker::remove_link_dir();
    tracing::info!("shutdown complete in {:?}", started.elapsed());
}
