//! `tether run [--env ID | --server PROGRAM [--server-arg ARG]...] [--cwd DIR]
//! [--tty] [--set K=V]... -- CMD [ARGS...]`: run one command through an
//! exec-server, as a user would run it directly. By default the server is Tether
//! itself (`/proc/self/exe exec-server`); `--env` picks one from
//! environments.toml, `--server` names any program that speaks the protocol on
//! its stdin and stdout (`ssh HOST tether exec-server`, `kubectl exec -i …`).
//!
//! stdin is forwarded (end of input closes the command's stdin, or sends the
//! end-of-file character in a terminal), stdout and stderr are copied, and the
//! exit code is the command's (128+N for a death by signal N). SIGINT, SIGTERM
//! and SIGHUP received by `tether run` are passed on to the command. Exit codes of
//! its own: 2 for a bad invocation or configuration, 127 when the command cannot
//! be started, 125 when the server fails.

mod args;
mod tty;

pub use args::{RunArgs, SandboxArg};

use crate::client::environments::{Environments, EnvironmentsError, Selected, Transport};
use crate::client::{Client, ClientError, ConnectOptions, ProcessEvent, ServerCommand};
use crate::protocol::paths::{parse_path, to_uri};
use crate::protocol::process::{EnvPolicy, Inherit, SignalName, StartParams, Stream};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

const ID: &str = "run";
const USAGE_EXIT: i32 = 2;
const NOT_STARTED_EXIT: i32 = 127;
const FAILURE_EXIT: i32 = 125;

/// The server to run the command through.
struct Server {
    cmd: ServerCommand,
    /// Tether itself on this machine: the command gets our cwd and environment.
    local: bool,
    initialize_timeout: Duration,
    name: String,
}

/// Run the command and return the exit code to exit with. Errors are printed.
pub fn run(args: RunArgs) -> i32 {
    let server = match choose_server(&args) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("tether run: {msg}");
            return USAGE_EXIT;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether run: cannot start the runtime: {e}");
            return FAILURE_EXIT;
        }
    };
    let code = rt.block_on(run_async(args, server));
    // The stdin forwarder may still sit in a blocking read of our stdin.
    rt.shutdown_background();
    code
}

fn load_environments(args: &RunArgs) -> Result<Environments, EnvironmentsError> {
    match &args.environments {
        Some(file) => {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            let dir = file.parent().map(Path::to_path_buf);
            Environments::load(&file, dir.as_deref())
        }
        None => Environments::load_default(),
    }
}

fn local_server() -> Server {
    Server {
        cmd: ServerCommand::this_exe(),
        local: true,
        initialize_timeout: crate::client::DEFAULT_INITIALIZE_TIMEOUT,
        name: "tether exec-server".into(),
    }
}

fn choose_server(args: &RunArgs) -> Result<Server, String> {
    if let Some(program) = &args.server {
        return Ok(Server {
            cmd: ServerCommand::new(program).args(&args.server_args),
            local: false,
            initialize_timeout: crate::client::DEFAULT_INITIALIZE_TIMEOUT,
            name: program.clone(),
        });
    }
    let selected_id = match (&args.env, &args.environments) {
        (None, None) => return Ok(local_server()),
        (Some(id), _) => Some(id.as_str()),
        (None, Some(_)) => None,
    };
    let envs = load_environments(args).map_err(|e| e.to_string())?;
    let selected = match selected_id {
        Some(id) => envs.select(id).map_err(|e| e.to_string())?,
        None => envs.select_default().ok_or_else(|| {
            "the environments file sets no default environment: choose one with --env ID"
                .to_string()
        })?,
    };
    let env = match selected {
        Selected::Local => return Ok(local_server()),
        Selected::Configured(env) => env,
    };
    match &env.transport {
        Transport::Program(cmd) => Ok(Server {
            cmd: cmd.clone(),
            local: false,
            initialize_timeout: env.initialize_timeout,
            name: format!("environment `{}`", env.id),
        }),
        Transport::Url { url, .. } => Err(format!(
            "environment `{}` uses url `{url}`, which is not supported: tether speaks stdio only (set program instead)",
            env.id
        )),
    }
}

/// Print why the server failed, with the last lines it wrote to stderr.
fn report_server_failure(client: &mut Client, name: &str, what: &str, e: &dyn std::fmt::Display) {
    if let Some(g) = client.guard_mut() {
        let _ = g.terminate();
    }
    // Give the stderr thread a moment to read what the server wrote last.
    std::thread::sleep(Duration::from_millis(50));
    eprintln!("tether run: {name}: {what}: {e}");
    for line in client.server_stderr_tail() {
        eprintln!("tether run: {name}: {line}");
    }
}

async fn run_async(args: RunArgs, server: Server) -> i32 {
    let opts = ConnectOptions::new("tether-run").initialize_timeout(server.initialize_timeout);
    let mut client = match Client::spawn(&server.cmd, &opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tether run: {}: {e}", server.name);
            return FAILURE_EXIT;
        }
    };
    let info = match client.handshake(&opts).await {
        Ok(info) => info,
        Err(e) => {
            report_server_failure(&mut client, &server.name, "handshake failed", &e);
            return FAILURE_EXIT;
        }
    };
    let params = match start_params(&args, &server, info.environment_info.cwd.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tether run: {e:#}");
            return FAILURE_EXIT;
        }
    };
    // Catch the signals before the command starts, so none is lost (or, for
    // SIGINT, kills us) in between.
    let signals = match Signals::catch(params.tty) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tether run: cannot catch signals: {e}");
            return FAILURE_EXIT;
        }
    };
    let mut events = client.subscribe(ID);
    match client.start(&params).await {
        Ok(_) => {}
        Err(ClientError::Rpc(e)) => {
            eprintln!("tether run: {}: {}", params.argv[0], e.message);
            return NOT_STARTED_EXIT;
        }
        Err(e) => {
            report_server_failure(&mut client, &server.name, "process/start failed", &e);
            return FAILURE_EXIT;
        }
    }

    let raw = params.tty.then(tty::RawMode::enter).flatten();
    let client = Arc::new(client);
    let mut tasks = vec![
        tokio::spawn(forward_stdin(client.clone(), params.tty)),
        tokio::spawn(forward_signals(client.clone(), signals.forwarded)),
    ];
    if let Some(winch) = signals.winch {
        tasks.push(tokio::spawn(follow_window_size(client.clone(), winch)));
    }

    let mut code = None;
    let mut disconnected = false;
    let mut stdout_ok = true;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    loop {
        let ev = match events.recv().await {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(_) => {
                disconnected = true;
                break;
            }
        };
        match ev {
            ProcessEvent::Output(o) => {
                if o.stream == Stream::Stderr {
                    let _ = err.write_all(&o.chunk.0);
                } else if stdout_ok
                    && out
                        .write_all(&o.chunk.0)
                        .and_then(|()| out.flush())
                        .is_err()
                {
                    // Our stdout is gone (e.g. a closed pipe): stop the command,
                    // and keep reading its events until it closes.
                    stdout_ok = false;
                    let c = client.clone();
                    tasks.push(tokio::spawn(async move {
                        let _ = c.terminate(ID, None).await;
                    }));
                }
            }
            ProcessEvent::Exited(e) => code = Some(e.exit_code),
            ProcessEvent::Closed(_) => {}
        }
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = out.flush();
    drop(out);
    drop(raw);
    let Ok(mut client) = Arc::try_unwrap(client) else {
        return code.unwrap_or(FAILURE_EXIT);
    };
    match code {
        Some(c) => c,
        None => {
            let why: &dyn std::fmt::Display = if disconnected {
                &"the server went away before the command finished"
            } else {
                &"the command closed without an exit status"
            };
            report_server_failure(&mut client, &server.name, "failed", why);
            FAILURE_EXIT
        }
    }
    // The guard stops the server here, not at process exit.
}

fn start_params(args: &RunArgs, server: &Server, server_cwd: Option<&str>) -> Result<StartParams> {
    let base = if server.local {
        std::env::current_dir().context("cannot read the current directory")?
    } else {
        server_cwd
            .and_then(|u| parse_path(u).ok())
            .unwrap_or_else(|| PathBuf::from("/"))
    };
    let cwd = match &args.cwd {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => base.join(d),
        None => base,
    };
    let mut env = BTreeMap::new();
    let mut env_policy = None;
    if server.local {
        // Exactly our environment, as if the command ran directly.
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    env.insert(k, v);
                }
                (k, _) => tracing::warn!("not passing a variable that is not UTF-8: {k:?}"),
            }
        }
    } else {
        // The server's environment, over there, without the default excludes.
        env_policy = Some(EnvPolicy {
            inherit: Some(Inherit::All),
            ignore_default_excludes: Some(true),
            ..EnvPolicy::default()
        });
    }
    env.extend(args.set.iter().cloned());
    Ok(StartParams {
        env,
        env_policy,
        tty: args.tty,
        pipe_stdin: Some(true),
        sandbox: sandbox_context(args, &cwd)?,
        size: if args.tty { tty::window_size() } else { None },
        ..StartParams::new(ID, args.command.iter().cloned(), &cwd)
    })
}

/// The `--sandbox` policy as a legacy sandbox context (docs/protocol.md "Sandbox"): read
/// everything; with workspace-write also write the command's cwd, /tmp, $TMPDIR
/// and every `--writable` directory. The network is restricted.
fn sandbox_context(args: &RunArgs, cwd: &std::path::Path) -> Result<Option<serde_json::Value>> {
    let Some(policy) = args.sandbox else {
        return Ok(None);
    };
    let here = std::env::current_dir().context("cannot read the current directory")?;
    let permissions = match policy {
        SandboxArg::ReadOnly => serde_json::json!({"type": "read-only", "network_access": false}),
        SandboxArg::WorkspaceWrite => {
            let roots: Vec<String> = args
                .writable
                .iter()
                .map(|d| {
                    to_uri(&if d.is_absolute() {
                        d.clone()
                    } else {
                        here.join(d)
                    })
                })
                .collect();
            serde_json::json!({"type": "workspace-write", "writable_roots": roots, "network_access": false})
        }
    };
    Ok(Some(
        serde_json::json!({"permissions": permissions, "cwd": to_uri(cwd)}),
    ))
}

/// Our stdin to the command's; at end of input close its stdin (pipes) or send
/// the end-of-file character (terminal).
async fn forward_stdin(client: Arc<Client>, tty: bool) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write(ID, &buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    if tty {
        let _ = client.write(ID, b"\x04").await;
    } else {
        let _ = client.close_stdin(ID).await;
    }
}

/// The signals `tether run` handles: SIGINT, SIGTERM, SIGHUP (passed on), and
/// SIGWINCH with `--tty`.
struct Signals {
    forwarded: Forwarded,
    winch: Option<Signal>,
}

/// SIGINT, SIGTERM, SIGHUP.
struct Forwarded(Signal, Signal, Signal);

impl Signals {
    fn catch(tty: bool) -> std::io::Result<Signals> {
        Ok(Signals {
            forwarded: Forwarded(
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ),
            winch: if tty {
                Some(signal(SignalKind::window_change())?)
            } else {
                None
            },
        })
    }
}

async fn forward_signals(client: Arc<Client>, signals: Forwarded) {
    let Forwarded(mut int, mut term, mut hup) = signals;
    loop {
        let sig = tokio::select! {
            _ = int.recv() => SignalName::Interrupt,
            _ = term.recv() => SignalName::Terminate,
            _ = hup.recv() => SignalName::Hangup,
        };
        let _ = client.signal(ID, sig).await;
    }
}

/// SIGWINCH → `process/resize` with our terminal's new size.
async fn follow_window_size(client: Arc<Client>, mut winch: Signal) {
    while winch.recv().await.is_some() {
        if let Some(size) = tty::window_size() {
            let _ = client.resize(ID, size.rows, size.cols).await;
        }
    }
}
