//! The real Codex CLI (0.169.0 and 0.171.0) uses `fileWriteStreaming` through Tether: with
//! `--enable multi_env_copy_file` and Codex's local environment beside Tether
//! (`include_local = true`), the model's `multi_env_copy_file` from `local`
//! to `tether` copies a 100 MiB file, which Tether receives as `fs/open`
//! `mode: "replace"` and 1 MiB `fs/writeBlock`s (a single `fs/writeFile` of
//! that size would not fit in one line). The copy on disk is byte-identical.

use super::codex::{assert_no_survivors, check_ok, codex_exec_tapped, new_marker, temp_dir, Mock};
use crate::support::npm::{codex_at, CODEX_NEWEST, CODEX_VERSION};
use crate::support::skip;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};

const SIZE: usize = 100 * 1024 * 1024;

/// `SIZE` bytes of a xorshift stream (no long runs of one byte).
fn contents() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(SIZE);
    out
}

fn copy_to_the_executor(version: &str) {
    let codex = match codex_at(version) {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let ws = temp_dir("ws-copy");
    let target_dir = temp_dir("copy-target");
    let (src, dst) = (ws.join("src.bin"), target_dir.join("dst.bin"));
    let data = contents();
    std::fs::write(&src, &data).unwrap();
    let args = json!({"source_environment_id": "local", "source_path": src,
                      "target_environment_id": "tether", "target_path": dst})
    .to_string();
    let mock = Mock::start(vec![Box::new(move |_| {
        json!({"type":"function_call","id":"fc_cp","call_id":"cp1",
               "name":"multi_env_copy_file","arguments":args})
    })]);
    let tap = target_dir.join("tap.jsonl");
    let run = codex_exec_tapped(
        &codex,
        &mock,
        &ws,
        "danger-full-access",
        &new_marker(),
        &[],
        &["--enable", "multi_env_copy_file"],
        Some(&tap),
        true,
    );
    check_ok(&run);
    let out = mock.outputs().get("cp1").cloned().unwrap_or_default();
    // What Codex sent Tether: methods, and the `fs/open` params (the tap holds
    // the 1 MiB blocks too, so read it a line at a time).
    let (mut methods, mut opens) = (Vec::new(), Vec::new());
    for line in BufReader::new(std::fs::File::open(&tap).unwrap()).lines() {
        let msg: Value = serde_json::from_str(&line.unwrap()).unwrap_or(Value::Null);
        let m = msg["method"].as_str().unwrap_or("").to_string();
        if m == "fs/open" {
            opens.push(msg["params"].clone());
        }
        if m.starts_with("fs/") {
            methods.push(m);
        }
    }
    let blocks = methods.iter().filter(|m| *m == "fs/writeBlock").count();
    let diag = format!(
        "tool output: {out}\nopens: {opens:?}\nstderr:\n{}",
        run.stderr
    );
    assert!(out.contains(&format!("{SIZE}")), "{diag}");
    assert!(
        opens.iter().any(|o| o["mode"] == "replace"
            && o["path"].as_str().is_some_and(|p| p.ends_with("/dst.bin"))),
        "{diag}"
    );
    assert_eq!(blocks, SIZE / (1024 * 1024), "{diag}");
    assert!(!methods.iter().any(|m| m == "fs/writeFile"), "{diag}");
    let copied = std::fs::read(&dst).unwrap_or_default();
    assert_eq!(copied.len(), SIZE, "{diag}");
    assert!(copied == data, "the copy differs from the source");
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
    let _ = std::fs::remove_dir_all(&target_dir);
}

#[test]
fn multi_env_copy_file_codex_0171() {
    copy_to_the_executor(CODEX_NEWEST);
}

#[test]
fn multi_env_copy_file_codex_0169() {
    copy_to_the_executor(CODEX_VERSION);
}
