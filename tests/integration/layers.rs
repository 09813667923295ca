//! The import direction of the crate's top-level modules (docs/architecture.md
//! "Layers"): every module imports only modules below it, so the import graph
//! has no circle and each layer can be read, and tested, without the ones above.
//!
//! This reads every `src/**/*.rs` (comments and string literals left out),
//! collects each `crate::X` path (also `crate::{X, ..}`, and `super::` paths
//! that climb to the crate root), and fails on an import of a module that is not
//! lower in [`LAYERS`]. The edges the redesign (issue 15) has not removed yet are
//! listed in [`KNOWN`], each with the step that removes it; an edge missing from
//! that list fails, and so does a listed edge that no longer exists, so the list
//! can only shrink. Only std: it needs nothing built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import modules of lower layers only
/// (and itself). Names not yet in the tree are the ones issue 15 introduces.
const LAYERS: &[&[&str]] = &[
    // Wire types only, no I/O.
    &["protocol"],
    // fds, pipes, socketpair, SCM_RIGHTS, AsyncFd registration, pty, cpus.
    &["sys"],
    // Policy, plan, Landlock, seccomp, mounts, caps (and the host probe).
    &["sandbox"],
    // The Spawner, the post-fork child, the reaper, env policy.
    &["spawn"],
    // The reply sink (Outbound), server→client requests, RpcError.
    &["rpc"],
    // Services. Within them, the process manager starts shells with an
    // escalation server, and tools run on process records: escalate, fs,
    // http, discovery and envconfig below process, process below tools.
    &["escalate", "fs", "http", "discovery", "envconfig"],
    &["process"],
    &["tools"],
    // The one typed-error → JSON-RPC code mapping.
    &["errors"],
    // The client library and `tether run` (see also NARROW).
    &["client"],
    &["cli"],
    // The modes: exec-server, codex-fs, execve-wrapper.
    &["modes"],
    // Decoder invariants for the fuzz targets and property tests: drives the rest.
    &["fuzzing"],
];

/// Modules that may import less than their layer allows: the client side uses
/// the wire types only, so that it can be built without the server.
const NARROW: &[(&str, &[&str])] = &[("client", &["protocol"]), ("cli", &["protocol", "client"])];

/// Upward edges that remain until a later step of issue 15 removes them:
/// (importer, imported, the step). Remove an entry when its step lands; an
/// entry whose edge is gone fails the check.
const KNOWN: &[(&str, &str, &str)] = &[];

/// One import: where it is and what it names.
struct Use {
    file: PathBuf,
    line: usize,
    text: String,
    to: String,
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `src/a/b.rs` → ["a", "b"]; `src/a/mod.rs` → ["a"]; `src/a.rs` → ["a"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments and the contents of string and character literals
/// replaced by spaces (newlines kept, so line numbers stay right).
fn code_only(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, start) = (0usize, i);
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            blank(&mut out, start, i);
        } else if b[i] == b'r'
            && (i == 0 || !ident(b[i - 1]) || (b[i - 1] == b'b' && (i < 2 || !ident(b[i - 2]))))
            && matches!(b.get(i + 1), Some(b'"' | b'#'))
        {
            // r"..", r#".."# (and br".."): no escapes inside.
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let open = i + 2 + hashes;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = b[open..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |n| open + n);
            blank(&mut out, open, end);
            i = (end + close.len()).min(b.len());
        } else if b[i] == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, start, i.min(b.len()));
            i += 1;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}', '"'), or a lifetime.
            let end = if b.get(i + 1) == Some(&b'\\') {
                // The escaped character itself may be a quote: '\''.
                b.get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == b'\''))
                    .map(|n| i + 3 + n)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // Multi-byte UTF-8 characters.
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match end {
                Some(e) => {
                    blank(&mut out, i + 1, e);
                    i = e + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The top-level modules a file names, with their lines.
fn uses_in(src_dir: &Path, file: &Path) -> Vec<Use> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = code_only(&text);
    let lines: Vec<&str> = text.lines().collect();
    let module = module_path(src_dir, file);
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let word_at = |i: usize| -> &str {
        let n = code[i..].iter().take_while(|&&c| ident(c)).count();
        std::str::from_utf8(&code[i..i + n]).unwrap()
    };
    let skip_ws = |mut i: usize| {
        while i < code.len() && code[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let line_of = |i: usize| code[..i].iter().filter(|&&c| c == b'\n').count() + 1;
    let mut out = Vec::new();
    let mut push = |at: usize, to: &str| {
        if to.is_empty() {
            return; // `super::*` and the like
        }
        let line = line_of(at);
        out.push(Use {
            file: file.to_path_buf(),
            line,
            text: lines.get(line - 1).unwrap_or(&"").trim().to_string(),
            to: to.to_string(),
        });
    };
    // Inline modules (`mod tests { .. }`) deepen `super::`: the brace depth at
    // which each one opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == b'{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == b'}' {
            depth = depth.saturating_sub(1);
            if inline.last() == Some(&depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if !ident(c) || (i > 0 && ident(code[i - 1])) {
            i += 1;
            continue;
        }
        let word = word_at(i);
        let after = i + word.len();
        match word {
            "mod" => {
                let j = skip_ws(after);
                let name = word_at(j);
                let k = skip_ws(j + name.len());
                if !name.is_empty() && code.get(k) == Some(&b'{') {
                    inline.push(depth);
                }
            }
            "crate" if code[skip_ws(after)..].starts_with(b"::") => {
                let j = skip_ws(skip_ws(after) + 2);
                if code.get(j) == Some(&b'{') {
                    // crate::{a::x, b, ..}: the first word of each top-level item.
                    let (mut k, mut d, mut first) = (j + 1, 1usize, true);
                    while k < code.len() && d > 0 {
                        match code[k] {
                            b'{' => d += 1,
                            b'}' => d -= 1,
                            b',' if d == 1 => first = true,
                            c if ident(c) && first && d == 1 => {
                                let w = word_at(k);
                                push(k, w);
                                first = false;
                                k += w.len();
                                continue;
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                } else {
                    push(i, word_at(j));
                }
            }
            "super" if code[after..].starts_with(b"::") => {
                // super::super::x: count the climb; at the crate root, x is a
                // top-level module.
                let mut supers = 1;
                let mut j = after + 2;
                while word_at(j) == "super" && code[j + 5..].starts_with(b"::") {
                    supers += 1;
                    j += 7;
                }
                let here = module.len() + inline.len();
                if supers >= here {
                    push(i, word_at(j));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i = after;
    }
    out
}

#[test]
fn imports_only_go_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in &files {
        let path = module_path(&src, file);
        // The binary and the crate root sit above every layer.
        if matches!(path.as_slice(), [one] if one == "main" || one == "lib") {
            continue;
        }
        let from = path[0].clone();
        let Some(from_rank) = rank(&from) else {
            problems.push(format!(
                "{}: module `{from}` is in no layer: add it to LAYERS in tests/layers.rs \
                 (and to docs/architecture.md)",
                file.display()
            ));
            continue;
        };
        for u in uses_in(&src, file) {
            if u.to == from || u.to == "self" {
                continue;
            }
            let where_ = format!(
                "{}:{}: {}",
                u.file.strip_prefix(root).unwrap().display(),
                u.line,
                u.text
            );
            let Some(to_rank) = rank(&u.to) else {
                problems.push(format!("{where_}\n    `crate::{}` is in no layer", u.to));
                continue;
            };
            let narrow = NARROW.iter().find(|(m, _)| *m == from);
            let allowed = match narrow {
                Some((_, only)) => only.contains(&u.to.as_str()),
                None => to_rank < from_rank,
            };
            if allowed {
                continue;
            }
            let edge = (from.clone(), u.to.clone());
            if KNOWN.iter().any(|(a, b, _)| *a == from && *b == u.to) {
                seen.entry(edge).or_default().push(where_);
                continue;
            }
            let why = match narrow {
                Some((_, only)) => format!("`{from}` may import only {only:?}"),
                None if to_rank == from_rank => {
                    format!("`{from}` and `{}` are in the same layer", u.to)
                }
                None => format!("`{}` is above `{from}` in the layers", u.to),
            };
            problems.push(format!(
                "{where_}\n    upward import {from} → {}: {why}",
                u.to
            ));
        }
    }
    for (from, to, step) in KNOWN {
        if !seen.contains_key(&(from.to_string(), to.to_string())) {
            problems.push(format!(
                "tests/layers.rs: KNOWN lists {from} → {to} (removed by the \"{step}\" step), \
                 but no such import is left: delete the entry"
            ));
        }
    }
    let known: Vec<String> = seen
        .iter()
        .map(|((a, b), at)| format!("{a} → {b} ({} imports, first {})", at.len(), at[0]))
        .collect();
    eprintln!(
        "known upward edges still present:\n  {}",
        known.join("\n  ")
    );
    assert!(
        problems.is_empty(),
        "{} import(s) break the layering:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The checker itself: comments and strings hide paths, grouped imports and
/// `super::` climbs are seen.
#[test]
fn the_scanner_sees_what_the_compiler_sees() {
    let code = String::from_utf8(code_only(
        "let a = \"crate::x\"; // crate::y\n/* crate::z */ let c = '\"'; crate::w::f();\n\
         let s = r#\"crate::v\"#;",
    ))
    .unwrap();
    assert!(!code.contains("crate::x") && !code.contains("crate::y"));
    assert!(!code.contains("crate::z") && !code.contains("crate::v"));
    assert!(code.contains("crate::w::f()"), "{code}");
    assert_eq!(code.lines().count(), 3);

    let dir = std::env::temp_dir().join(format!("tether-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    let file = src.join("a/b.rs");
    std::fs::write(
        &file,
        "use crate::{sys::fd, protocol::{self, x}};\nuse super::c;\n\
         mod tests {\n    use super::super::d;\n    use super::super::super::server::x;\n}\n\
         fn f() -> crate :: rpc::X { todo!() }\n",
    )
    .unwrap();
    let got: Vec<(usize, String)> = uses_in(&src, &file)
        .into_iter()
        .map(|u| (u.line, u.to))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        got,
        [
            (1, "sys".to_string()),
            (1, "protocol".to_string()),
            (5, "server".to_string()),
            (7, "rpc".to_string()),
        ]
    );
}
