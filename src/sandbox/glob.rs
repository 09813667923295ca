//! The glob patterns of `deny` entries (docs/protocol.md "Sandbox"): absolute,
//! matched component by component.

use std::path::Path;

/// Glob match of an absolute pattern against a path: `*` and `?` within one
/// component, `**` any number of components, `[...]` a class.
pub fn glob_match(pattern: &str, path: &Path) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let comps: Vec<String> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    fn go(p: &[&str], c: &[String]) -> bool {
        match p.first() {
            None => c.is_empty(),
            Some(&"**") => (0..=c.len()).any(|i| go(&p[1..], &c[i..])),
            Some(seg) => {
                !c.is_empty() && seg_match(seg.as_bytes(), c[0].as_bytes()) && go(&p[1..], &c[1..])
            }
        }
    }
    go(&pat, &comps)
}

fn seg_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| seg_match(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && seg_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|b| *b == b']') else {
                return !s.is_empty() && s[0] == b'[' && seg_match(&p[1..], &s[1..]);
            };
            if s.is_empty() {
                return false;
            }
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some(b'!') | Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= s[0] && s[0] <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == s[0];
                    i += 1;
                }
            }
            hit != neg && seg_match(&p[end + 1..], &s[1..])
        }
        Some(c) => !s.is_empty() && *c == s[0] && seg_match(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("/a/**/*.pem", Path::new("/a/k.pem")));
        assert!(glob_match("/a/**/*.pem", Path::new("/a/b/c/k.pem")));
        assert!(!glob_match("/a/*.pem", Path::new("/a/b/k.pem")));
        assert!(glob_match("/a/[a-c]?", Path::new("/a/bz")));
        assert!(!glob_match("/a/[!a-c]?", Path::new("/a/bz")));
    }
}
