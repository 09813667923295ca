//! `environments.toml`: the Codex CLI's list of executors, with the Codex schema
//! and validation (and its messages, word for word).
//!
//! ```toml
//! default = "tether"          # an id, "local", or "none"; default "local"
//! include_local = true        # offer the built-in local executor; default true
//!
//! [[environments]]
//! id = "tether"               # 1-64 of [A-Za-z0-9_-]; not "local", not "none"
//! program = "/usr/local/bin/tether"   # or url = "ws://..." (exactly one)
//! args = ["exec-server"]      # args, env, cwd: only with program
//! env = { RUST_LOG = "info" }
//! cwd = "work"                # relative: joined to the config directory
//! initialize_timeout_sec = 10 # default 10
//! # connect_timeout_sec = 5   # only with url
//! ```
//!
//! Unknown keys are rejected. Tether speaks stdio only, so a `url` environment
//! loads but cannot be used by `tether run`.

use super::ServerCommand;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name inside `$CODEX_HOME`.
pub const FILE_NAME: &str = "environments.toml";
/// The id of the built-in local executor.
pub const LOCAL_ID: &str = "local";
pub const DEFAULT_INITIALIZE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ID_LEN: usize = 64;

/// Why a configuration cannot be used. The messages are the Codex CLI's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvironmentsError {
    #[error("failed to read environment config `{}`: {detail}", .path.display())]
    Read { path: PathBuf, detail: String },
    #[error("failed to parse environment config `{}`: {detail}", .path.display())]
    Parse { path: PathBuf, detail: String },
    #[error("environment id cannot be empty")]
    EmptyId,
    #[error("environment id `{0}` must not contain surrounding whitespace")]
    IdWhitespace(String),
    #[error("environment id `{0}` is reserved")]
    ReservedId(String),
    #[error("environment id `{0}` cannot be longer than {MAX_ID_LEN} characters")]
    IdTooLong(String),
    #[error("environment id `{0}` must contain only ASCII letters, numbers, '-' or '_'")]
    IdCharacters(String),
    #[error("environment id `{0}` is duplicated")]
    DuplicateId(String),
    #[error("environment `{0}` args, env, and cwd require program")]
    ProgramOptionsWithoutProgram(String),
    #[error("environment `{0}` connect_timeout_sec requires url")]
    ConnectTimeoutWithoutUrl(String),
    #[error("environment `{0}` must set exactly one of url or program")]
    UrlOrProgram(String),
    #[error("environment `{0}` program cannot be empty")]
    EmptyProgram(String),
    #[error("environment `{0}` cwd must be absolute")]
    RelativeCwd(String),
    #[error("environment url cannot be empty")]
    EmptyUrl,
    #[error("environment url `{0}` must use ws:// or wss://")]
    UrlScheme(String),
    #[error("environment url `{url}` is invalid: {detail}")]
    InvalidUrl { url: String, detail: String },
    #[error("default environment id cannot be empty")]
    EmptyDefault,
    #[error("default environment `{0}` is not configured")]
    DefaultNotConfigured(String),
    /// Tether's: a lookup by id that matches nothing.
    #[error("environment `{0}` is not configured")]
    NotConfigured(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileToml {
    default: Option<String>,
    include_local: Option<bool>,
    #[serde(default)]
    environments: Vec<EnvironmentToml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnvironmentToml {
    id: String,
    url: Option<String>,
    program: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
    #[serde(default, deserialize_with = "seconds")]
    connect_timeout_sec: Option<Duration>,
    #[serde(default, deserialize_with = "seconds")]
    initialize_timeout_sec: Option<Duration>,
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
        .transpose()
}

/// How to reach one environment's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A websocket server (Tether cannot connect to it: stdio only).
    Url {
        url: String,
        connect_timeout: Duration,
    },
    /// A program that speaks the protocol on its stdin/stdout.
    Program(ServerCommand),
}

/// One `[[environments]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub id: String,
    pub transport: Transport,
    pub initialize_timeout: Duration,
}

/// Which environment is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultEnvironment {
    Id(String),
    /// `default = "none"`, or no default while `include_local = false`.
    Disabled,
}

/// What [`Environments::select`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected<'a> {
    /// The built-in local executor (for Tether: itself).
    Local,
    Configured(&'a Environment),
}

/// A validated `environments.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environments {
    pub default: DefaultEnvironment,
    pub include_local: bool,
    pub environments: Vec<Environment>,
}

impl Default for Environments {
    /// What a missing file means: only `local`, which is the default.
    fn default() -> Self {
        Environments {
            default: DefaultEnvironment::Id(LOCAL_ID.into()),
            include_local: true,
            environments: Vec::new(),
        }
    }
}

/// `$CODEX_HOME`, else `$HOME/.codex`.
pub fn codex_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".codex"))
}

impl Environments {
    /// `$CODEX_HOME/environments.toml`; a missing file (or no home) is
    /// [`Environments::default`].
    pub fn load_default() -> Result<Environments, EnvironmentsError> {
        let Some(home) = codex_home() else {
            return Ok(Environments::default());
        };
        let path = home.join(FILE_NAME);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Environments::default()),
            _ => Environments::load(&path, Some(&home)),
        }
    }

    /// Load `path`. Relative `cwd`s are joined to `config_dir` (an error without one).
    pub fn load(path: &Path, config_dir: Option<&Path>) -> Result<Environments, EnvironmentsError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnvironmentsError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Environments::parse(&text, config_dir).map_err(|e| match e {
            EnvironmentsError::Parse { detail, .. } => EnvironmentsError::Parse {
                path: path.to_path_buf(),
                detail,
            },
            other => other,
        })
    }

    /// Parse and validate TOML text (errors of the TOML layer name no path).
    pub fn parse(text: &str, config_dir: Option<&Path>) -> Result<Environments, EnvironmentsError> {
        let file: FileToml = toml::from_str(text).map_err(|e| EnvironmentsError::Parse {
            path: PathBuf::new(),
            detail: e.to_string().trim_end().to_string(),
        })?;
        let include_local = file.include_local.unwrap_or(true);
        let mut ids = HashSet::new();
        if include_local {
            ids.insert(LOCAL_ID.to_string());
        }
        let mut environments = Vec::with_capacity(file.environments.len());
        for item in file.environments {
            let env = validate(item, config_dir)?;
            if !ids.insert(env.id.clone()) {
                return Err(EnvironmentsError::DuplicateId(env.id));
            }
            environments.push(env);
        }
        let default = match file.default.as_deref().map(str::trim) {
            None if include_local => DefaultEnvironment::Id(LOCAL_ID.into()),
            None => DefaultEnvironment::Disabled,
            Some("") => return Err(EnvironmentsError::EmptyDefault),
            Some(d) if d.eq_ignore_ascii_case("none") => DefaultEnvironment::Disabled,
            Some(d) if ids.contains(d) => DefaultEnvironment::Id(d.into()),
            Some(d) => return Err(EnvironmentsError::DefaultNotConfigured(d.into())),
        };
        Ok(Environments {
            default,
            include_local,
            environments,
        })
    }

    /// The environment named `id` (`local` when `include_local`).
    pub fn select(&self, id: &str) -> Result<Selected<'_>, EnvironmentsError> {
        if id == LOCAL_ID && self.include_local {
            return Ok(Selected::Local);
        }
        self.environments
            .iter()
            .find(|e| e.id == id)
            .map(Selected::Configured)
            .ok_or_else(|| EnvironmentsError::NotConfigured(id.into()))
    }

    /// The default environment, or `None` when the default is disabled.
    pub fn select_default(&self) -> Option<Selected<'_>> {
        match &self.default {
            DefaultEnvironment::Id(id) => self.select(id).ok(),
            DefaultEnvironment::Disabled => None,
        }
    }
}

fn validate_id(id: &str) -> Result<(), EnvironmentsError> {
    let trimmed = id.trim();
    if trimmed.is_empty() {
        return Err(EnvironmentsError::EmptyId);
    }
    if trimmed != id {
        return Err(EnvironmentsError::IdWhitespace(id.into()));
    }
    if id == LOCAL_ID || id.eq_ignore_ascii_case("none") {
        return Err(EnvironmentsError::ReservedId(id.into()));
    }
    if id.len() > MAX_ID_LEN {
        return Err(EnvironmentsError::IdTooLong(id.into()));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(EnvironmentsError::IdCharacters(id.into()));
    }
    Ok(())
}

fn validate(
    item: EnvironmentToml,
    config_dir: Option<&Path>,
) -> Result<Environment, EnvironmentsError> {
    let id = item.id;
    validate_id(&id)?;
    if item.program.is_none() && (item.args.is_some() || item.env.is_some() || item.cwd.is_some()) {
        return Err(EnvironmentsError::ProgramOptionsWithoutProgram(id));
    }
    if item.url.is_none() && item.connect_timeout_sec.is_some() {
        return Err(EnvironmentsError::ConnectTimeoutWithoutUrl(id));
    }
    let transport = match (item.url, item.program) {
        (Some(url), None) => Transport::Url {
            url: validate_url(&url)?,
            connect_timeout: item.connect_timeout_sec.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        },
        (None, Some(program)) => {
            let program = program.trim();
            if program.is_empty() {
                return Err(EnvironmentsError::EmptyProgram(id));
            }
            let cwd = match item.cwd {
                None => None,
                Some(c) if c.is_absolute() => Some(c),
                Some(c) => match config_dir {
                    Some(dir) => Some(dir.join(c)),
                    None => return Err(EnvironmentsError::RelativeCwd(id)),
                },
            };
            let mut cmd = ServerCommand::new(program).args(item.args.unwrap_or_default());
            for (k, v) in item.env.unwrap_or_default() {
                cmd = cmd.env(k, v);
            }
            cmd.cwd = cwd;
            Transport::Program(cmd)
        }
        _ => return Err(EnvironmentsError::UrlOrProgram(id)),
    };
    Ok(Environment {
        id,
        transport,
        initialize_timeout: item
            .initialize_timeout_sec
            .unwrap_or(DEFAULT_INITIALIZE_TIMEOUT),
    })
}

fn validate_url(url: &str) -> Result<String, EnvironmentsError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(EnvironmentsError::EmptyUrl);
    }
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        return Err(EnvironmentsError::UrlScheme(url.into()));
    }
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(url.into()),
        Ok(_) => Err(EnvironmentsError::InvalidUrl {
            url: url.into(),
            detail: "empty host".into(),
        }),
        Err(e) => Err(EnvironmentsError::InvalidUrl {
            url: url.into(),
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
