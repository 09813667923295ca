//! The options of `tether run`.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxArg {
    ReadOnly,
    WorkspaceWrite,
}

#[derive(Debug, Args)]
#[command(version = crate::cli::VERSION)]
pub struct RunArgs {
    /// Run through environment ID of environments.toml (`local` is Tether itself)
    #[arg(long = "env", value_name = "ID", conflicts_with = "server")]
    pub env: Option<String>,

    /// The environments file (default: $CODEX_HOME/environments.toml); without
    /// --env its `default` environment is used
    #[arg(long, value_name = "FILE")]
    pub environments: Option<PathBuf>,

    /// Run through this server program (executed directly, no shell), e.g. `ssh`
    #[arg(long, value_name = "PROGRAM")]
    pub server: Option<String>,

    /// An argument for the --server program (repeat for more)
    #[arg(
        long = "server-arg",
        value_name = "ARG",
        requires = "server",
        allow_hyphen_values = true
    )]
    pub server_args: Vec<String>,

    /// The command's working directory (default: ours for a local server, the
    /// server's own for any other)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Run the command in a pseudo-terminal; with a terminal on stdin, ours is put
    /// in raw mode and its size follows ours
    #[arg(long)]
    pub tty: bool,

    /// Set a variable in the command's environment (repeat for more)
    #[arg(long = "set", value_name = "K=V", value_parser = parse_set)]
    pub set: Vec<(String, String)>,

    /// Sandbox the command: read-only (read everything, write nothing) or
    /// workspace-write (also write the cwd, /tmp, $TMPDIR and each --writable);
    /// the network is restricted in both
    #[arg(long, value_enum, value_name = "POLICY")]
    pub sandbox: Option<SandboxArg>,

    /// A directory the command may write under --sandbox workspace-write
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub writable: Vec<PathBuf>,

    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err("the variable name is empty".into()),
        Some((k, v)) if !k.contains('\0') && !v.contains('\0') => Ok((k.into(), v.into())),
        Some(_) => Err("NUL bytes are not allowed".into()),
        None => Err("expected K=V".into()),
    }
}
