//! `environmentConfig/read` (docs/protocol.md "environmentConfig/read"): the
//! executor's own Codex configuration and requirements, as layers projected to
//! the key paths the client asks for. The Codex client uses it to offer the MCP
//! servers configured on the executor's host.
//!
//! What it reads: `<system>/config.toml`, `$CODEX_HOME/config.toml`, the
//! `.codex/config.toml` files of a trusted project from its root down to `cwd`,
//! `<system>/managed_config.toml`, `<system>/requirements.toml`. `<system>` is
//! `/etc/codex`; the test hook `TETHER_CODEX_SYSTEM_DIR` (an absolute path)
//! replaces it so that tests never touch the real `/etc`. It does not resolve
//! relative paths inside the files: `baseDir` says what they are relative to.

pub mod layers;
pub mod select;

use crate::protocol::envconfig::{
    EnvironmentConfigReadParams, EnvironmentConfigReadResult, Layer, LayerStack,
};
use crate::protocol::paths::{to_uri, PathError};
use layers::RawStack;
use select::Selector;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The system configuration directory.
pub const SYSTEM_DIR: &str = "/etc/codex";
/// Test hook: an absolute directory that replaces [`SYSTEM_DIR`].
pub const SYSTEM_DIR_VAR: &str = "TETHER_CODEX_SYSTEM_DIR";

#[derive(Debug, thiserror::Error)]
pub enum EnvConfigError {
    /// `cwd` is not a path (every path error is invalid params here, as in
    /// the reference, the foreign host included).
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("at least one config or requirements path is required")]
    NoPaths,
    #[error("TOML paths must contain at least one key segment")]
    EmptyPath,
    #[error("failed to find Codex home: {0}")]
    CodexHome(String),
    /// A file that cannot be read or parsed.
    #[error("failed to load executor-local config: {0}")]
    Load(String),
    #[error("failed to serialize executor-local config: {0}")]
    Serialize(String),
    /// The blocking task died.
    #[error("environment config task failed: {0}")]
    Task(String),
}

/// [`read`] on the blocking pool.
pub async fn read_blocking(
    p: EnvironmentConfigReadParams,
) -> Result<EnvironmentConfigReadResult, EnvConfigError> {
    tokio::task::spawn_blocking(move || read(p))
        .await
        .unwrap_or_else(|e| Err(EnvConfigError::Task(e.to_string())))
}

/// Answer one request. Blocking: it reads files.
pub fn read(p: EnvironmentConfigReadParams) -> Result<EnvironmentConfigReadResult, EnvConfigError> {
    let cwd = p.cwd.to_path()?;
    tracing::debug!(cwd = %cwd.display(), config = ?p.config_paths,
        requirements = ?p.requirements_paths, "environmentConfig/read");
    if p.config_paths.is_empty() && p.requirements_paths.is_empty() {
        return Err(EnvConfigError::NoPaths);
    }
    if p
        .config_paths
        .iter()
        .chain(&p.requirements_paths)
        .any(Vec::is_empty)
    {
        return Err(EnvConfigError::EmptyPath);
    }
    let home = crate::sys::home_dir();
    let codex_home = codex_home(std::env::var_os("CODEX_HOME"), home.as_deref())
        .map_err(EnvConfigError::CodexHome)?;
    let (config, requirements) =
        layers::load(&system_dir(), &codex_home, &cwd).map_err(EnvConfigError::Load)?;
    Ok(EnvironmentConfigReadResult {
        user_home_dir: home.as_deref().map(to_uri),
        codex_home_dir: to_uri(&codex_home),
        hostname: hostname(),
        config: project(config, &p.config_paths)?,
        requirements: project(requirements, &p.requirements_paths)?,
    })
}

/// Keep the selected key paths of every layer and drop the layers left empty.
/// The cloud insertion index then counts the kept layers that came before it.
fn project(stack: RawStack, paths: &[Vec<String>]) -> Result<LayerStack, EnvConfigError> {
    let sel = Selector::new(paths);
    let mut out = LayerStack::default();
    for (i, layer) in stack.layers.into_iter().enumerate() {
        let Some(table) = select::project(&layer.table, &sel) else {
            continue;
        };
        if i < stack.cloud_insertion_index {
            out.cloud_insertion_index += 1;
        }
        out.layers.push(Layer {
            source: layer.source,
            base_dir: to_uri(&layer.base_dir),
            toml: select::to_text(&table).map_err(EnvConfigError::Serialize)?,
        });
    }
    Ok(out)
}

fn system_dir() -> PathBuf {
    std::env::var_os(SYSTEM_DIR_VAR)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(SYSTEM_DIR))
}

/// `$CODEX_HOME` (an existing directory, symbolic links resolved, relative to
/// the server's working directory), or `<home>/.codex` when it is unset or
/// empty (that one need not exist).
fn codex_home(var: Option<OsString>, home: Option<&Path>) -> Result<PathBuf, String> {
    match var.filter(|v| !v.is_empty()) {
        Some(v) => {
            let given = PathBuf::from(&v);
            match std::fs::canonicalize(&given) {
                Ok(p) if p.is_dir() => Ok(p),
                Ok(_) => Err(format!(
                    "CODEX_HOME points to {given:?}, but that path is not a directory"
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                    "CODEX_HOME points to {given:?}, but that path does not exist"
                )),
                Err(e) => Err(format!("failed to canonicalize CODEX_HOME {given:?}: {e}")),
            }
        }
        None => home
            .map(|h| h.join(".codex"))
            .ok_or_else(|| "Could not find home directory".to_string()),
    }
}

fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_home_rules() {
        let home = Path::new("/h");
        assert_eq!(codex_home(None, Some(home)).unwrap(), Path::new("/h/.codex"));
        assert_eq!(
            codex_home(Some("".into()), Some(home)).unwrap(),
            Path::new("/h/.codex")
        );
        assert_eq!(
            codex_home(Some("/nonexistent-codex-home".into()), Some(home)).unwrap_err(),
            "CODEX_HOME points to \"/nonexistent-codex-home\", but that path does not exist"
        );
        assert_eq!(
            codex_home(Some("/proc/self/status".into()), Some(home)).unwrap_err(),
            "CODEX_HOME points to \"/proc/self/status\", but that path is not a directory"
        );
        assert_eq!(codex_home(Some("/".into()), None).unwrap(), Path::new("/"));
        assert!(codex_home(None, None).is_err());
    }
}
