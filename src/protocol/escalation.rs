//! JSON-RPC wire types of exec escalation (docs/protocol.md "Exec escalation"): the
//! `escalation` member of `process/start` and the `process/approveExec` server
//! request. The socket wire between wrapper and server is in `escalate::wire`.

use super::paths::PathArg;
use serde::{Deserialize, Serialize};

/// `process/approveExec`: the server asks whether an intercepted exec may run
/// outside the sandbox.
pub const APPROVE_EXEC: &str = "process/approveExec";

/// Rules allowed in one `escalation` object (docs/protocol.md "Transport").
pub const MAX_RULES: usize = 1_024;

/// What a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDecision {
    /// Lowest priority on a tie.
    Allow,
    Prompt,
    /// Highest priority on a tie.
    Forbidden,
}

/// The decision for commands no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultDecision {
    #[default]
    Run,
    Allow,
    Prompt,
    Forbidden,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rule {
    pub prefix: Vec<String>,
    pub decision: RuleDecision,
}

/// The `escalation` member of `process/start` (Tether extension, docs/protocol.md "Exec escalation").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EscalationParams {
    #[serde(default)]
    pub rules: Option<Vec<Rule>>,
    #[serde(default)]
    pub default: Option<DefaultDecision>,
    #[serde(default)]
    pub wrapper_path: Option<PathArg>,
}

impl EscalationParams {
    /// `Err` with the exact -32602 text when a rule is unusable.
    pub fn check(&self) -> Result<(), String> {
        let rules = self.rules.as_deref().unwrap_or_default();
        if rules.len() > MAX_RULES {
            return Err(format!(
                "escalation accepts at most {MAX_RULES} rules, got {}",
                rules.len()
            ));
        }
        if rules.iter().any(|r| r.prefix.is_empty()) {
            return Err("escalation rule prefix must not be empty".into());
        }
        Ok(())
    }
}

/// `process/approveExec` params. `file` and `workdir` are `file://` URIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveExecParams {
    pub process_id: String,
    pub file: String,
    pub argv: Vec<String>,
    pub workdir: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecDecision {
    Approve,
    Deny,
    Cancel,
}

/// `process/approveExec` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveExecResult {
    pub decision: ExecDecision,
}

impl ApproveExecResult {
    /// The result as the JSON value a handler returns.
    pub fn to_value(self) -> serde_json::Value {
        serde_json::to_value(self).expect("a decision always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escalation_params_decode_with_and_without_members() {
        let p: EscalationParams = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p, EscalationParams::default());
        assert!(p.check().is_ok());
        let p: EscalationParams = serde_json::from_value(json!({
            "rules":[{"prefix":["git","push"],"decision":"prompt","x":1}],
            "default":"forbidden","wrapperPath":"/w","extra":true}))
        .unwrap();
        assert_eq!(p.default, Some(DefaultDecision::Forbidden));
        assert_eq!(p.rules.as_ref().unwrap()[0].decision, RuleDecision::Prompt);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["rules"][0]["prefix"], json!(["git", "push"]));
        let bad: EscalationParams =
            serde_json::from_value(json!({"rules":[{"prefix":[],"decision":"allow"}]})).unwrap();
        assert_eq!(
            bad.check().unwrap_err(),
            "escalation rule prefix must not be empty"
        );
        assert!(serde_json::from_value::<EscalationParams>(json!({"default":"maybe"})).is_err());
    }

    #[test]
    fn approve_exec_round_trip() {
        let p: ApproveExecParams = serde_json::from_value(json!({"processId":"sh-1",
            "file":"file:///usr/bin/git","argv":["git","push"],"workdir":"file:///p","x":1}))
        .unwrap();
        assert_eq!(p.argv, ["git", "push"]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"processId":"sh-1","file":"file:///usr/bin/git","argv":["git","push"],"workdir":"file:///p"})
        );
        for (s, d) in [
            ("approve", ExecDecision::Approve),
            ("deny", ExecDecision::Deny),
            ("cancel", ExecDecision::Cancel),
        ] {
            let r: ApproveExecResult = serde_json::from_value(json!({ "decision": s })).unwrap();
            assert_eq!(r.decision, d);
            assert_eq!(r.to_value(), json!({ "decision": s }));
        }
        assert!(serde_json::from_value::<ApproveExecResult>(json!({"decision":"yes"})).is_err());
    }
}
