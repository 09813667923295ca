//! The child's environment (docs/protocol.md "Processes"): `envPolicy` over the server's own
//! environment, then the request's `env` on top.

use crate::protocol::process::{EnvPolicy, Inherit};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Names kept by `inherit: "core"`.
pub const CORE_VARS: &[&str] = &[
    "PATH", "SHELL", "TMPDIR", "TEMP", "TMP", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME",
    "USER",
];
/// Never inherited: values from the server's own parent cannot be valid in a child.
pub const ESCALATION_VARS: &[&str] =
    &["CODEX_ESCALATE_SOCKET", "BASH_EXEC_WRAPPER", "EXEC_WRAPPER"];
/// Removed unless `ignoreDefaultExcludes`.
pub const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// A child environment: names and values as bytes.
pub type Env = BTreeMap<OsString, OsString>;

/// Build the child environment from the server's environment `server_env`.
pub fn build(
    policy: Option<&EnvPolicy>,
    env: &BTreeMap<String, String>,
    server_env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Env {
    let mut out = Env::new();
    if let Some(p) = policy {
        let inherit = p.inherit.unwrap_or_default();
        for (k, v) in server_env {
            let keep = match inherit {
                Inherit::All => true,
                Inherit::Core => CORE_VARS.iter().any(|c| k.as_bytes() == c.as_bytes()),
                Inherit::None => false,
            };
            if keep {
                out.insert(k, v);
            }
        }
        out.retain(|k, _| !ESCALATION_VARS.iter().any(|e| k.as_bytes() == e.as_bytes()));
        if !p.ignore_default_excludes.unwrap_or(false) {
            out.retain(|k, _| {
                !DEFAULT_EXCLUDES
                    .iter()
                    .any(|pat| matches(pat, k.as_bytes()))
            });
        }
        if let Some(ex) = &p.exclude {
            out.retain(|k, _| !ex.iter().any(|pat| matches(pat, k.as_bytes())));
        }
        if let Some(set) = &p.set {
            for (k, v) in set {
                out.insert(k.into(), v.into());
            }
        }
        if let Some(only) = p.include_only.as_ref().filter(|o| !o.is_empty()) {
            out.retain(|k, _| only.iter().any(|pat| matches(pat, k.as_bytes())));
        }
    }
    for (k, v) in env {
        out.insert(k.into(), v.into());
    }
    out
}

/// Check names and values of a request's maps: names non-empty, no `=` or NUL;
/// values without NUL. The message is decoder-style text.
pub fn validate<'a>(
    what: &str,
    vars: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    for (k, v) in vars {
        if k.is_empty() {
            return Err(format!("{what}: variable names must not be empty"));
        }
        if k.contains('=') || k.contains('\0') {
            return Err(format!("{what}: invalid variable name {k:?}"));
        }
        if v.contains('\0') {
            return Err(format!("{what}: value of {k} contains a NUL byte"));
        }
    }
    Ok(())
}

/// Whole-name, case-insensitive glob match: `*` any run, `?` exactly one byte.
pub fn matches(pattern: &str, name: &[u8]) -> bool {
    let p = pattern.as_bytes();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < name.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&name[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("API_KEY", "k"),
            ("MY_SECRET_X", "s"),
            ("gh_token", "t"),
            ("FOO", "f"),
            ("FOX", "x"),
            ("BASH_EXEC_WRAPPER", "/w"),
        ]
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn names(e: &Env) -> Vec<String> {
        e.keys().map(|k| k.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn no_policy_means_exactly_env() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(names(&build(None, &env, server())), ["A"]);
    }

    #[test]
    fn inherit_all_applies_default_excludes() {
        let p = EnvPolicy::default();
        assert_eq!(
            names(&build(Some(&p), &BTreeMap::new(), server())),
            ["FOO", "FOX", "HOME", "PATH"]
        );
        let p = EnvPolicy {
            ignore_default_excludes: Some(true),
            ..Default::default()
        };
        assert_eq!(
            names(&build(Some(&p), &BTreeMap::new(), server())),
            [
                "API_KEY",
                "FOO",
                "FOX",
                "HOME",
                "MY_SECRET_X",
                "PATH",
                "gh_token"
            ]
        );
    }

    #[test]
    fn core_none_exclude_set_include_only_and_env_wins() {
        let p = EnvPolicy {
            inherit: Some(Inherit::Core),
            ..Default::default()
        };
        assert_eq!(
            names(&build(Some(&p), &BTreeMap::new(), server())),
            ["HOME", "PATH"]
        );
        let p = EnvPolicy {
            inherit: Some(Inherit::None),
            ..Default::default()
        };
        assert!(build(Some(&p), &BTreeMap::new(), server()).is_empty());
        let p = EnvPolicy {
            exclude: Some(vec!["fo?".into()]),
            ..Default::default()
        };
        assert_eq!(
            names(&build(Some(&p), &BTreeMap::new(), server())),
            ["HOME", "PATH"]
        );
        let p = EnvPolicy {
            set: Some(BTreeMap::from([
                ("PATH".into(), "/set".into()),
                ("NEW".into(), "n".into()),
            ])),
            include_only: Some(vec!["p*".into(), "NEW".into()]),
            ..Default::default()
        };
        let env = BTreeMap::from([("PATH".to_string(), "/env".to_string())]);
        let out = build(Some(&p), &env, server());
        assert_eq!(names(&out), ["NEW", "PATH"]);
        assert_eq!(out[&OsString::from("PATH")], "/env");
    }

    #[test]
    fn glob() {
        assert!(matches("*KEY*", b"api_key_x"));
        assert!(matches("*KEY*", b"KEY"));
        assert!(!matches("*KEY*", b"KE"));
        assert!(matches("a?c", b"ABC"));
        assert!(!matches("a?c", b"abbc"));
        assert!(matches("*", b""));
        assert!(matches("a*b*c", b"axxbyyc"));
        assert!(!matches("a*b*c", b"axxbyy"));
    }

    #[test]
    fn validation() {
        let ok = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert!(validate("env", &ok).is_ok());
        for (k, v) in [("", "1"), ("A=B", "1"), ("A\0", "1"), ("A", "x\0")] {
            let m = BTreeMap::from([(k.to_string(), v.to_string())]);
            assert!(validate("env", &m).is_err(), "{k:?}");
        }
    }
}
