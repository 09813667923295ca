//! Prefix rules (PROTOCOL.md §10.3): which decision an intercepted exec gets.

use crate::protocol::escalation::{DefaultDecision, EscalationParams, Rule, RuleDecision};
use std::path::{Path, PathBuf};

/// The decision for one exec, before any prompt is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Run,
    Escalate,
    Prompt,
    Forbidden,
}

/// The rules of one managed process.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    default: DefaultDecision,
}

impl Policy {
    pub fn new(p: &EscalationParams) -> Self {
        Policy {
            rules: p.rules.clone().unwrap_or_default(),
            default: p.default.unwrap_or_default(),
        }
    }

    /// Whether any exec could be prompted for.
    pub fn may_prompt(&self) -> bool {
        self.default == DefaultDecision::Prompt
            || self
                .rules
                .iter()
                .any(|r| r.decision == RuleDecision::Prompt)
    }

    /// Decide for the absolute program `file` and `argv` (whose `argv[0]` is not
    /// compared: the first word is the program itself).
    pub fn decide(&self, file: &Path, argv: &[String]) -> Decision {
        let full = file.to_string_lossy();
        let base = file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let rest = argv.get(1..).unwrap_or_default();
        let mut best: Option<(usize, RuleDecision)> = None;
        for r in &self.rules {
            let Some((first, more)) = r.prefix.split_first() else {
                continue;
            };
            let head_ok = if first.contains('/') {
                *first == full
            } else {
                *first == base
            };
            if !head_ok || more.len() > rest.len() || more.iter().zip(rest).any(|(a, b)| a != b) {
                continue;
            }
            let cand = (r.prefix.len(), r.decision);
            if best.is_none_or(|b| cand > b) {
                best = Some(cand);
            }
        }
        match best.map(|b| b.1) {
            Some(RuleDecision::Allow) => Decision::Escalate,
            Some(RuleDecision::Prompt) => Decision::Prompt,
            Some(RuleDecision::Forbidden) => Decision::Forbidden,
            None => match self.default {
                DefaultDecision::Run => Decision::Run,
                DefaultDecision::Allow => Decision::Escalate,
                DefaultDecision::Prompt => Decision::Prompt,
                DefaultDecision::Forbidden => Decision::Forbidden,
            },
        }
    }
}

/// `file` made absolute against `workdir`, without `.` components.
pub fn resolve(workdir: &Path, file: &str) -> PathBuf {
    workdir.join(file).components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Policy {
        Policy::new(&serde_json::from_value(v).unwrap())
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longest_prefix_wins_and_ties_prefer_the_strictest() {
        let p = policy(json!({"rules":[
            {"prefix":["git"],"decision":"allow"},
            {"prefix":["git","push"],"decision":"prompt"},
            {"prefix":["git","push","--force"],"decision":"forbidden"},
            {"prefix":["rm"],"decision":"allow"},
            {"prefix":["rm"],"decision":"forbidden"},
            {"prefix":["/usr/bin/make"],"decision":"allow"}]}));
        let git = Path::new("/usr/bin/git");
        assert_eq!(p.decide(git, &argv(&["git", "status"])), Decision::Escalate);
        assert_eq!(p.decide(git, &argv(&["git", "push"])), Decision::Prompt);
        assert_eq!(
            p.decide(git, &argv(&["x", "push", "--force", "o"])),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(Path::new("/bin/rm"), &argv(&["rm"])),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(Path::new("/usr/bin/make"), &argv(&["make"])),
            Decision::Escalate
        );
        assert_eq!(
            p.decide(Path::new("/opt/make"), &argv(&["make"])),
            Decision::Run
        );
        assert!(p.may_prompt());
    }

    #[test]
    fn defaults_apply_when_nothing_matches() {
        for (d, want) in [
            ("run", Decision::Run),
            ("allow", Decision::Escalate),
            ("prompt", Decision::Prompt),
            ("forbidden", Decision::Forbidden),
        ] {
            let p = policy(json!({ "default": d }));
            assert_eq!(p.decide(Path::new("/bin/true"), &argv(&["true"])), want);
        }
        assert!(!policy(json!({})).may_prompt());
        // argv[0] is not compared: bash may pass any name.
        let p = policy(json!({"rules":[{"prefix":["true"],"decision":"forbidden"}]}));
        assert_eq!(
            p.decide(Path::new("/bin/true"), &argv(&["-x"])),
            Decision::Forbidden
        );
        assert_eq!(p.decide(Path::new("/bin/true"), &[]), Decision::Forbidden);
    }

    #[test]
    fn files_resolve_against_workdir() {
        assert_eq!(resolve(Path::new("/w"), "./tool"), Path::new("/w/tool"));
        assert_eq!(resolve(Path::new("/w"), "/bin/ls"), Path::new("/bin/ls"));
        assert_eq!(resolve(Path::new("/w/"), "a/./b"), Path::new("/w/a/b"));
    }
}
