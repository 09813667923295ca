//! `tether install-links DIR`: the three mode names as symlinks to this binary.

use anyhow::{Context, Result};
use std::path::Path;

pub const MODES: &[&str] = &["exec-server", "codex-fs", "execve-wrapper"];

/// Create (or replace) `DIR/exec-server`, `DIR/codex-fs`, `DIR/execve-wrapper`
/// pointing at the running executable.
pub fn install(dir: &Path) -> Result<()> {
    let exe = std::fs::read_link("/proc/self/exe").context("cannot find this executable")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for mode in MODES {
        let link = dir.join(mode);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)?,
            Ok(_) => anyhow::bail!(
                "{} exists and is not a symlink; not replacing it",
                link.display()
            ),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
        println!("{} -> {}", link.display(), exe.display());
    }
    Ok(())
}
