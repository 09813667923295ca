//! Sandbox contexts (PROTOCOL.md §8). This build only tells contexts that allow
//! everything from restrictive ones; enforcement (Landlock, seccomp, the codex-fs
//! helper) is not implemented yet, so restrictive contexts are refused by callers.

use serde_json::Value;

/// What a request's `sandbox` member asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Absent or null: no sandbox.
    None,
    /// A policy that allows everything: run as if there were no sandbox.
    Unrestricted,
    /// Anything else: must be enforced or refused.
    Restricted,
}

pub fn classify(sandbox: Option<&Value>) -> Context {
    let Some(sandbox) = sandbox.filter(|s| !s.is_null()) else {
        return Context::None;
    };
    let perms = sandbox.get("permissions").unwrap_or(&Value::Null);
    let ty = perms.get("type").and_then(Value::as_str);
    let fs_unrestricted = perms
        .get("file_system")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        == Some("unrestricted");
    let net_enabled = perms.get("network").and_then(Value::as_str) == Some("enabled");
    match ty {
        Some("disabled") | Some("danger-full-access") => Context::Unrestricted,
        Some("managed") if fs_unrestricted && net_enabled => Context::Unrestricted,
        _ => Context::Restricted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification() {
        assert_eq!(classify(None), Context::None);
        assert_eq!(classify(Some(&Value::Null)), Context::None);
        assert_eq!(
            classify(Some(&json!({"permissions":{"type":"disabled"}}))),
            Context::Unrestricted
        );
        assert_eq!(
            classify(Some(&json!({"permissions":{"type":"danger-full-access"}}))),
            Context::Unrestricted
        );
        assert_eq!(
            classify(Some(
                &json!({"permissions":{"type":"managed","file_system":{"type":"unrestricted"},"network":"enabled"}})
            )),
            Context::Unrestricted
        );
        assert_eq!(
            classify(Some(
                &json!({"permissions":{"type":"managed","file_system":{"type":"unrestricted"},"network":"restricted"}})
            )),
            Context::Restricted
        );
        assert_eq!(
            classify(Some(&json!({"permissions":{"type":"read-only"}}))),
            Context::Restricted
        );
        assert_eq!(classify(Some(&json!({}))), Context::Restricted);
    }
}
