//! The `tether` binary: picks its mode from the basename of argv[0], else from its
//! first argument, and sets up logging. Nothing else lives here: the modes are in
//! `modes/`, the user commands in `cli/`.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use tether::entry::VERSION;

const ABOUT: &str = "Tether: a stdio JSON-RPC executor for the Codex CLI and other agents.

Modes (pick one by name, or by invoking a symlink with that name):
  exec-server     JSON-RPC server on stdin/stdout (newline-delimited JSON)
  codex-fs        sandbox helper: one filesystem operation (JSON on stdin)
  execve-wrapper  exec wrapper of a patched bash: execve-wrapper FILE ARGV0 [ARG...]

User commands:
  run             run one command through an exec-server (local, ssh, ...)
  install-links   create the mode symlinks in a directory

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to see more.";

#[derive(Parser)]
#[command(name = "tether", version = VERSION, about = ABOUT, long_about = None)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// JSON-RPC server on stdin/stdout; exits when stdin closes, killing what it started
    ExecServer(ExecServerArgs),
    /// Sandbox helper: one filesystem operation, request on stdin (docs/protocol.md, "Sandboxed filesystem requests")
    CodexFs(HelperArgs),
    /// BASH_EXEC_WRAPPER / EXEC_WRAPPER of a patched bash: `FILE ARGV0 [ARG...]`
    ExecveWrapper(HelperArgs),
    /// Run one command through an exec-server: `tether run [OPTIONS] -- CMD [ARGS...]`
    Run(tether::entry::RunArgs),
    /// Create exec-server, codex-fs and execve-wrapper symlinks to this binary in DIR
    InstallLinks(LinksArgs),
}

#[derive(Args)]
#[command(version = VERSION)]
struct ExecServerArgs {
    /// Where to listen; tether is stdio-only: `stdio` or `stdio://`
    #[arg(long, default_value = "stdio", value_name = "URL")]
    listen: String,
}

#[derive(Args)]
#[command(version = VERSION)]
struct HelperArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<OsString>,
}

#[derive(Args)]
#[command(version = VERSION)]
struct LinksArgs {
    /// Directory for the symlinks (created if missing)
    dir: PathBuf,
}

/// Whether RUST_LOG or TETHER_LOG_FILE asks for more than the default logging.
fn logging_configured() -> bool {
    std::env::var_os("RUST_LOG").is_some() || std::env::var_os("TETHER_LOG_FILE").is_some()
}

/// Logs go to stderr, or appended to `$TETHER_LOG_FILE` when that is set (handy
/// when the parent swallows stderr). `RUST_LOG` filters them (default `warn`).
fn init_logging() {
    // Without RUST_LOG a plain level filter does: building an EnvFilter is a visible
    // part of the exec-server's start (the handshake is timed by its clients).
    if !logging_configured() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let file = std::env::var_os("TETHER_LOG_FILE").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let _ = match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

fn exec_server(args: ExecServerArgs) -> ExitCode {
    if args.listen != "stdio" && args.listen != "stdio://" {
        eprintln!(
            "tether exec-server: --listen {}: tether is stdio-only (use --listen stdio)",
            args.listen
        );
        return ExitCode::from(2);
    }
    ExitCode::from(tether::entry::exec_server() as u8)
}

fn codex_fs() -> ExitCode {
    ExitCode::from(tether::entry::codex_fs().clamp(0, 255) as u8)
}

fn dispatch(mode: Mode) -> ExitCode {
    match mode {
        Mode::ExecServer(a) => exec_server(a),
        Mode::CodexFs(_) => codex_fs(),
        Mode::ExecveWrapper(a) => execve_wrapper(a.rest),
        Mode::Run(a) => ExitCode::from(tether::entry::run_command(a).clamp(0, 255) as u8),
        Mode::InstallLinks(a) => match tether::entry::install_links(&a.dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether install-links: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The wrapper takes its arguments by position (ARGV0 may start with `-`), so
/// clap never sees them.
fn execve_wrapper(rest: Vec<OsString>) -> ExitCode {
    ExitCode::from(tether::entry::execve_wrapper(rest).clamp(0, 255) as u8)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let base = |a: &OsString| PathBuf::from(a).file_name().map(|n| n.to_owned());
    // The exec wrapper runs before every exec of a patched shell: dispatch it
    // first, without logging setup or argument parsing.
    if args.first().and_then(base).as_deref() == Some(std::ffi::OsStr::new("execve-wrapper")) {
        return execve_wrapper(args[1..].to_vec());
    }
    let other_mode = args
        .first()
        .and_then(base)
        .is_some_and(|n| n == "exec-server" || n == "codex-fs");
    if !other_mode && args.get(1).is_some_and(|a| a == "execve-wrapper") {
        return execve_wrapper(args[2..].to_vec());
    }
    let name = args
        .first()
        .map(|a| {
            PathBuf::from(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    // The plain exec-server start (how the Codex CLI and the client library start
    // it) skips building the clap command tree; anything else goes through clap.
    let plain = |rest: &[OsString]| {
        rest.is_empty()
            || rest == ["--listen", "stdio"]
            || rest == ["--listen=stdio"]
            || rest == ["--listen", "stdio://"]
    };
    if (name == "exec-server" && plain(&args[1..]))
        || (name != "exec-server"
            && name != "codex-fs"
            && args.get(1).is_some_and(|a| a == "exec-server")
            && plain(&args[2..]))
    {
        // With the default log level nothing is logged before the handshake is
        // answered, so setting up logging waits until then (it is a visible part
        // of a start); with RUST_LOG or TETHER_LOG_FILE set it comes first.
        if logging_configured() {
            init_logging();
            return exec_server(ExecServerArgs {
                listen: "stdio".into(),
            });
        }
        return ExitCode::from(tether::entry::exec_server_then(init_logging) as u8);
    }
    init_logging();
    match name.as_str() {
        "exec-server" => exec_server(ExecServerArgs::parse_from_named("exec-server", args)),
        "codex-fs" => {
            HelperArgs::parse_from_named("codex-fs", args);
            codex_fs()
        }
        _ => dispatch(Cli::parse_from(args).mode),
    }
}

/// Parse one mode's arguments when the mode came from argv[0].
trait ParseNamed: Args {
    fn parse_from_named(name: &'static str, args: Vec<OsString>) -> Self {
        let cmd = Self::augment_args(clap::Command::new(name).version(VERSION));
        let matches = cmd.get_matches_from(args);
        <Self as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

impl<T: Args> ParseNamed for T {}
