//! The client library from the outside: start `tether exec-server` behind the
//! client's guard, run one command, print its output, and let the guard end the
//! server. Needs only the client feature:
//!
//! ```sh
//! cargo run --no-default-features --features client --example echo -- PATH/TO/tether hi there
//! ```

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use tether::client::{start_params, Client, ConnectOptions, ProcessEvent, ServerCommand};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(tether) = args.next() else {
        eprintln!("usage: echo PATH/TO/tether [WORD...]");
        return ExitCode::from(2);
    };
    let words: Vec<String> = args.collect();
    match echo(&tether, &words).await {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `echo WORDS...` through the server at `tether`; its stdout goes to ours.
async fn echo(tether: &str, words: &[String]) -> Result<i32, tether::client::ClientError> {
    let (client, info) = Client::connect(
        &ServerCommand::new(tether).arg("exec-server"),
        ConnectOptions::new("tether-example"),
    )
    .await?;
    eprintln!("connected to {tether} (session {})", info.session_id);
    let argv = std::iter::once("echo".to_string()).chain(words.iter().cloned());
    let params = start_params("echo-1", argv, Path::new("/"));
    let (_, mut events) = client.start_with_events(&params).await?;
    let mut code = -1;
    while let Some(event) = events.recv().await? {
        match event {
            ProcessEvent::Output(o) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&o.chunk.0).and_then(|()| out.flush());
            }
            ProcessEvent::Exited(e) => code = e.exit_code,
            _ => {}
        }
    }
    Ok(code)
}
