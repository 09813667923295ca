//! The executor's own Codex configuration, as layers (docs/protocol.md
//! "environmentConfig/read"): system, user, the trusted project's
//! `.codex/config.toml` files, the legacy managed config; and the
//! requirements. Files are read as they are now; nothing is cached.

use super::select::{self, PROJECT_DENYLIST};
use std::io;
use std::path::{Path, PathBuf};
use toml::map::Map;
use toml::Value;

pub const CONFIG_TOML: &str = "config.toml";
pub const REQUIREMENTS_TOML: &str = "requirements.toml";
pub const MANAGED_CONFIG_TOML: &str = "managed_config.toml";

/// One layer before projection.
#[derive(Debug)]
pub struct RawLayer {
    pub source: String,
    pub base_dir: PathBuf,
    pub table: Map<String, Value>,
}

/// A stack before projection; `cloud_insertion_index` counts its layers.
#[derive(Debug, Default)]
pub struct RawStack {
    pub layers: Vec<RawLayer>,
    pub cloud_insertion_index: usize,
}

/// `<file>:<line>:<column>: <message>` for a TOML syntax error.
fn parse_error(file: &Path, text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    format!(
        "{}:{line}:{column}: {}",
        file.display(),
        e.message().trim_end()
    )
}

/// A TOML file as a table; `None` when it does not exist.
fn read_toml(file: &Path) -> Result<Option<Map<String, Value>>, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("Failed to read config file {}: {e}", file.display())),
    };
    toml::from_str::<Map<String, Value>>(&text)
        .map(Some)
        .map_err(|e| parse_error(file, &text, &e))
}

fn parent(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Both stacks for `cwd`, before projection. `system_dir` is `/etc/codex`
/// (or the test hook's directory). Err: the reason, for a file that cannot be
/// read or parsed.
pub fn load(system_dir: &Path, codex_home: &Path, cwd: &Path) -> Result<(RawStack, RawStack), String> {
    let system_file = system_dir.join(CONFIG_TOML);
    let system = read_toml(&system_file)?.unwrap_or_default();
    let user_file = codex_home.join(CONFIG_TOML);
    let user = read_toml(&user_file)?.unwrap_or_default();
    let managed_file = system_dir.join(MANAGED_CONFIG_TOML);
    let managed = read_toml(&managed_file)?;

    // The project's boundary and trust come from the system, user and
    // managed configuration merged.
    let mut discovery = Map::new();
    select::merge(&mut discovery, &system);
    select::merge(&mut discovery, &user);
    if let Some(m) = &managed {
        select::merge(&mut discovery, m);
    }

    let mut config = RawStack {
        layers: vec![
            RawLayer {
                source: format!("system ({})", system_file.display()),
                base_dir: system_dir.to_path_buf(),
                table: system,
            },
            RawLayer {
                source: format!("user ({})", user_file.display()),
                base_dir: codex_home.to_path_buf(),
                table: user,
            },
        ],
        // Cloud configuration follows the system layer.
        cloud_insertion_index: 1,
    };
    config
        .layers
        .extend(project_layers(&discovery, codex_home, cwd)?);
    if let Some(m) = &managed {
        config.layers.push(RawLayer {
            source: format!("legacy managed_config.toml ({})", managed_file.display()),
            base_dir: parent(&managed_file),
            table: m.clone(),
        });
    }

    let mut requirements = RawStack::default();
    let req_file = system_dir.join(REQUIREMENTS_TOML);
    if let Some(t) = read_toml(&req_file)? {
        requirements.layers.push(RawLayer {
            source: req_file.display().to_string(),
            base_dir: parent(&req_file),
            table: t,
        });
        requirements.cloud_insertion_index = 1;
    }
    if let Some(m) = &managed {
        requirements.layers.push(RawLayer {
            source: managed_file.display().to_string(),
            base_dir: parent(&managed_file),
            table: select::legacy_requirements(m)?,
        });
    }
    Ok((config, requirements))
}

/// `project_root_markers` of the merged configuration; `.git` by default.
fn markers(discovery: &Map<String, Value>) -> Result<Vec<String>, String> {
    match discovery.get("project_root_markers") {
        None => Ok(vec![".git".into()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "project_root_markers must be an array of strings".to_string())
            })
            .collect(),
        Some(_) => Err("project_root_markers must be an array of strings".into()),
    }
}

/// The nearest ancestor of `cwd` (itself included) that holds one of the
/// markers; `cwd` when none does, or when there are no markers.
fn project_root(cwd: &Path, markers: &[String]) -> PathBuf {
    if markers.is_empty() {
        return cwd.to_path_buf();
    }
    cwd.ancestors()
        .find(|dir| markers.iter().any(|m| dir.join(m).exists()))
        .unwrap_or(cwd)
        .to_path_buf()
}

/// The repository a trust entry may name: the checkout holding `cwd` (nearest
/// `.git`), or for a linked worktree (a `.git` file `gitdir: <repo>/.git/worktrees/<name>`)
/// the main repository.
fn repo_root(cwd: &Path) -> Option<PathBuf> {
    let checkout = cwd.ancestors().find(|d| d.join(".git").exists())?;
    let dot_git = checkout.join(".git");
    if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        if let Some(gitdir) = text.trim().strip_prefix("gitdir:") {
            let gitdir = checkout.join(gitdir.trim());
            let worktrees = gitdir.parent()?;
            let common = worktrees.parent()?;
            if worktrees.file_name().is_some_and(|n| n == "worktrees")
                && common.file_name().is_some_and(|n| n == ".git")
            {
                return common.parent().map(Path::to_path_buf);
            }
        }
    }
    Some(checkout.to_path_buf())
}

/// The keys a `[projects."<key>"]` entry may use for `dir`: the canonical path
/// first, then the path as given.
fn trust_keys(dir: &Path) -> Vec<String> {
    let given = dir.to_string_lossy().into_owned();
    let canonical = std::fs::canonicalize(dir)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| given.clone());
    if canonical == given {
        vec![given]
    } else {
        vec![canonical, given]
    }
}

/// Whether `dir` is trusted: the first `trust_level` found for the directory
/// itself, then the project root, then the repository decides; only
/// `"trusted"` trusts.
fn trusted(projects: Option<&Map<String, Value>>, candidates: &[&Path]) -> bool {
    let Some(projects) = projects else {
        return false;
    };
    for c in candidates {
        for key in trust_keys(c) {
            let level = projects
                .get(&key)
                .and_then(Value::as_table)
                .and_then(|p| p.get("trust_level"))
                .and_then(Value::as_str);
            if let Some(level) = level {
                return level == "trusted";
            }
        }
    }
    false
}

/// Each `.codex/config.toml` from the project root down to `cwd` of a trusted
/// project, lowest precedence (the root's) first, without the keys of
/// [`PROJECT_DENYLIST`]. A `.codex` that is `CODEX_HOME` itself is the user
/// layer, not a project layer.
fn project_layers(
    discovery: &Map<String, Value>,
    codex_home: &Path,
    cwd: &Path,
) -> Result<Vec<RawLayer>, String> {
    let root = project_root(cwd, &markers(discovery)?);
    let repo = repo_root(cwd);
    let projects = discovery.get("projects").and_then(Value::as_table);
    let home_canonical = std::fs::canonicalize(codex_home).ok();
    let mut dirs: Vec<&Path> = Vec::new();
    for dir in cwd.ancestors() {
        dirs.push(dir);
        if dir == root {
            break;
        }
    }
    dirs.reverse();
    let mut out = Vec::new();
    for dir in dirs {
        let dot_codex = dir.join(".codex");
        if !dot_codex.is_dir() {
            continue;
        }
        let is_home = dot_codex == codex_home
            || (home_canonical.is_some() && std::fs::canonicalize(&dot_codex).ok() == home_canonical);
        if is_home {
            continue;
        }
        let mut candidates = vec![dir, root.as_path()];
        if let Some(r) = &repo {
            candidates.push(r);
        }
        if !trusted(projects, &candidates) {
            continue;
        }
        let file = dot_codex.join(CONFIG_TOML);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("Failed to read config file {}: {e}", file.display())),
        };
        let mut table: Map<String, Value> = toml::from_str(&text).map_err(|e| {
            format!(
                "Error parsing project config file {}: {}",
                file.display(),
                e.message().trim_end()
            )
        })?;
        for key in PROJECT_DENYLIST {
            table.remove(*key);
        }
        out.push(RawLayer {
            source: format!("project ({})", file.display()),
            base_dir: dot_codex,
            table,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let text = "a = 1\nx = \n";
        let e = toml::from_str::<Map<String, Value>>(text).unwrap_err();
        let msg = parse_error(Path::new("/c/config.toml"), text, &e);
        assert!(msg.starts_with("/c/config.toml:2:5: "), "{msg}");
    }

    #[test]
    fn markers_default_to_git() {
        assert_eq!(markers(&Map::new()).unwrap(), vec![".git"]);
        let m: Map<String, Value> = toml::from_str("project_root_markers = []").unwrap();
        assert!(markers(&m).unwrap().is_empty());
        let m: Map<String, Value> = toml::from_str("project_root_markers = 1").unwrap();
        assert!(markers(&m).is_err());
    }
}
