//! Tests that cannot run here say so, and cannot hide.
//!
//! A test that needs a program or capability the machine lacks (the Codex CLI
//! or the patched bash from npm, sshd, root, a tmpfs mount, user namespaces, a
//! writable cgroup v2) calls [`skip`] and returns. With `CI=true` (or `CI=1`)
//! in the environment that is a failure instead: CI installs everything, so a
//! missing dependency there is a broken machine, not a reason to pass. Elsewhere
//! the skip is recorded, and when the test binary exits one block on stderr
//! names every skipped test and why, written straight to fd 2 (libtest
//! captures a test's `eprintln!`, and shows it only when the test fails).

use std::fmt::Display;
use std::sync::{Mutex, Once};

/// `(test, reason)` of every skip so far in this process.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// Whether this run is CI (`CI=true` or `CI=1`), where skips are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

/// Skip the running test because of `reason` (what is missing, and why it
/// could not be had). The caller returns right after: `return skip("...")`.
/// Panics in CI.
#[track_caller]
pub fn skip(reason: impl Display) {
    let test = test_name();
    if in_ci() {
        panic!(
            "{test} cannot run: {reason}\n(CI is set: a missing dependency is a failure here; \
             .ci/run installs what the tests need)"
        );
    }
    eprintln!("SKIPPED {test}: {reason}");
    SKIPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((test, reason.to_string()));
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()` with no captured state.
        unsafe {
            libc::atexit(print_summary);
        }
    });
}

/// At exit: the skipped tests, one per line, on fd 2.
extern "C" fn print_summary() {
    let list = match SKIPPED.try_lock() {
        Ok(l) => l,
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if list.is_empty() {
        return;
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut text = format!(
        "\n!!! {} test(s) SKIPPED in {exe} (they passed without running; with CI=true they fail):\n",
        list.len()
    );
    for (test, reason) in list.iter() {
        text.push_str(&format!("!!!   {test}: {reason}\n"));
    }
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: write(2) from a buffer we own, to fd 2.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}
