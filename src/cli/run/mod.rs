//! `tether run -- CMD [ARGS...]`: run one command through a private exec-server,
//! as a user would run it directly. stdin is forwarded (end of input closes the
//! command's stdin), stdout and stderr are copied, and the exit code is the
//! command's (128+N for a death by signal N). SIGINT, SIGTERM and SIGHUP received
//! by `tether run` are passed on to the command.

use crate::client::{Client, ClientError, ProcessEvent, ServerCommand};
use crate::protocol::paths::to_uri;
use crate::protocol::process::{SignalName, StartParams, Stream};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

const ID: &str = "run";

/// Run `argv` and return the exit code to exit with.
pub fn run(argv: Vec<String>) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let code = rt.block_on(run_async(argv));
    // The stdin forwarder may still sit in a blocking read of our stdin.
    rt.shutdown_background();
    code
}

async fn run_async(argv: Vec<String>) -> Result<i32> {
    let client =
        Client::spawn(&ServerCommand::this_exe()).context("cannot start tether exec-server")?;
    client
        .initialize("tether-run", Duration::from_secs(10))
        .await
        .context("handshake failed")?;

    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut env = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => {
                env.insert(k, v);
            }
            (k, _) => tracing::warn!("not passing a variable that is not UTF-8: {k:?}"),
        }
    }
    let params = StartParams {
        process_id: ID.into(),
        argv,
        cwd: crate::protocol::paths::PathArg(to_uri(&cwd)),
        env,
        env_policy: None,
        tty: false,
        pipe_stdin: Some(true),
        arg0: None,
        sandbox: None,
        enforce_managed_network: None,
        size: None,
        sandbox_mode: None,
        escalation: None,
    };
    let mut events = client.subscribe(ID);
    match client.start(&params).await {
        Ok(_) => {}
        Err(ClientError::Rpc(e)) => {
            eprintln!("tether run: {}: {}", params.argv[0], e.message);
            return Ok(127);
        }
        Err(e) => return Err(e).context("process/start failed"),
    }

    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let stdin_task = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if c.write(ID, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = c.close_stdin(ID).await;
    });
    let c = client.clone();
    let signal_task = tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            let sig = tokio::select! {
                _ = int.recv() => SignalName::Interrupt,
                _ = term.recv() => SignalName::Terminate,
                _ = hup.recv() => SignalName::Hangup,
            };
            let _ = c.signal(ID, sig).await;
        }
    });

    let mut code = None;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    while let Some(ev) = events.recv().await {
        match ev {
            ProcessEvent::Output(o) => {
                let r = match o.stream {
                    Stream::Stderr => err.write_all(&o.chunk.0),
                    _ => out.write_all(&o.chunk.0).and_then(|()| out.flush()),
                };
                if r.is_err() {
                    // Our own stdout is gone (e.g. a closed pipe): stop the command.
                    let _ = client.terminate(ID).await;
                }
            }
            ProcessEvent::Exited(e) => code = Some(e.exit_code),
            ProcessEvent::Closed(_) => break,
        }
    }
    stdin_task.abort();
    signal_task.abort();
    let _ = stdin_task.await;
    let _ = signal_task.await;
    let _ = out.flush();
    // Last reference: the guard stops the server now, not at process exit.
    drop(client);
    match code {
        Some(c) => Ok(c),
        None => anyhow::bail!("the exec-server went away before the command finished"),
    }
}
