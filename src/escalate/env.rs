//! The environment of an escalated command (docs/protocol.md, "Exec
//! escalation"): the server's own, overlaid with what the sandboxed shell sent,
//! except the variables that make a program load or run other code. Those are
//! never taken from the shell's request (code inside the sandbox chose it); they
//! keep the value the shell was started with (chosen by the client), else the
//! server's own, else are absent.

use crate::spawn::env_policy::{Env, ESCALATION_VARS};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Exact names of code-injection variables.
///
/// - glibc's secure-execution list (`unsecvars.h`): loader, iconv modules,
///   locale and message catalogues, resolver and NIS files, time zone files.
///   `TMPDIR` from that list is kept: it says where files go, runs no code, and
///   sandboxed shells are commonly given one.
/// - shells: startup files (`BASH_ENV`, `ENV`, `ZDOTDIR`), options that switch
///   on tracing whose prompt runs command substitutions (`SHELLOPTS`,
///   `BASHOPTS`, `PS4`), `IFS`, `PROMPT_COMMAND`.
/// - commands other programs run: pagers, editors, browsers, askpass helpers,
///   `LESSOPEN`/`LESSCLOSE`.
/// - interpreters and libraries without a common prefix: Java `CLASSPATH`, Tcl,
///   PHP ini files, Ruby gem paths, OpenSSL configuration (it loads engines).
/// - where configuration is read from (`HOME`, `XDG_CONFIG_*`): a program's
///   configuration can name commands (git's `core.pager`, `core.fsmonitor`).
pub const UNSAFE_NAMES: &[&str] = &[
    // glibc unsecvars.h (without TMPDIR; LD_* and MALLOC_TRACE are prefixes below)
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
    // shells
    "BASH_ENV",
    "ENV",
    "ZDOTDIR",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PROMPT_COMMAND",
    // commands run by other programs
    "PAGER",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    // interpreters and libraries
    "CLASSPATH",
    "TCLLIBPATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "GEM_HOME",
    "GEM_PATH",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    // where configuration is read from
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
];

/// Prefixes of code-injection variables: the dynamic loader (`LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `LD_AUDIT`, ...), malloc hooks and traces, bash's exported
/// functions (`BASH_FUNC_name%%`), Python, Perl, Ruby, Node, Lua and Java
/// startup options and module paths, and git (`GIT_CONFIG_*`, `GIT_DIR`,
/// `GIT_EXEC_PATH`, `GIT_SSH_COMMAND`, `GIT_PAGER`, ...).
pub const UNSAFE_PREFIXES: &[&str] = &[
    "LD_",
    "MALLOC_",
    "BASH_FUNC_",
    "PYTHON",
    "PERL",
    "RUBY",
    "NODE_",
    "LUA_",
    "GIT_",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

/// `GIT_` names that only say who made a commit and when; they pass.
pub const GIT_IDENTITY: &[&str] = &[
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
];

/// Whether an escalated command takes `name` only from the shell's start
/// environment.
pub fn is_unsafe(name: &[u8]) -> bool {
    UNSAFE_NAMES.iter().any(|n| n.as_bytes() == name)
        || (UNSAFE_PREFIXES
            .iter()
            .any(|p| name.starts_with(p.as_bytes()))
            && !GIT_IDENTITY.iter().any(|n| n.as_bytes() == name))
}

/// The escalated command's environment: `server` (without the escalation
/// variables), then the shell's `request` entries that are safe and well formed
/// (a name that is empty or holds `=` or NUL, or a value with NUL, is dropped),
/// then every unsafe name the shell was started with (`start`) at that value;
/// other unsafe names keep the server's value, if any.
pub fn escalated_env(
    server: impl IntoIterator<Item = (OsString, OsString)>,
    request: &BTreeMap<String, String>,
    start: &Env,
) -> Env {
    let mut env: Env = server
        .into_iter()
        .filter(|(k, _)| !ESCALATION_VARS.iter().any(|e| k.as_bytes() == e.as_bytes()))
        .collect();
    for (k, v) in request {
        let well_formed = !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0');
        if well_formed && !is_unsafe(k.as_bytes()) {
            env.insert(k.into(), v.into());
        }
    }
    for (k, v) in start {
        if is_unsafe(k.as_bytes()) {
            env.insert(k.clone(), v.clone());
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn unsafe_names_come_from_the_start_environment_only() {
        let server = os(&[
            ("PATH", "/usr/bin"),
            ("LD_LIBRARY_PATH", "/srv/lib"),
            ("HOME", "/root"),
            ("CODEX_ESCALATE_SOCKET", "3"),
        ]);
        let request: BTreeMap<String, String> = [
            ("PATH", "/ws/bin:/usr/bin"),
            ("FOO", "bar"),
            ("LD_PRELOAD", "/ws/evil.so"),
            ("HOME", "/ws"),
            ("BASH_FUNC_ls%%", "() { evil; }"),
            ("GIT_CONFIG_GLOBAL", "/ws/cfg"),
            ("GIT_AUTHOR_NAME", "A"),
            ("PYTHONPATH", "/ws"),
            ("LD_PRELOAD=/ws/evil.so:", ""),
            ("X", "a\0b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let start: Env = os(&[("HOME", "/home/agent"), ("PYTHONPATH", "/opt/py")])
            .into_iter()
            .collect();
        let env = escalated_env(server, &request, &start);
        let got: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("FOO", "bar"),
            ("GIT_AUTHOR_NAME", "A"),
            ("HOME", "/home/agent"),
            ("LD_LIBRARY_PATH", "/srv/lib"),
            ("PATH", "/ws/bin:/usr/bin"),
            ("PYTHONPATH", "/opt/py"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
