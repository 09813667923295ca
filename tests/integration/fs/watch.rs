//! fs/watchMissing and fs/missingChanged (docs/protocol.md "Filesystem", "Transport" rule 4).

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn watch(s: &mut FsServer, watch_id: i64, paths: &[String]) -> Msg {
    let id = s.send(
        "fs/watchMissing",
        json!({"watchId": watch_id, "missing": paths, "present": null}),
    );
    let m = s.wait_msg(id);
    assert_eq!(
        m.value.get("result"),
        Some(&json!({"watching": true})),
        "{}",
        m.value
    );
    m
}

fn expect_changed(s: &mut FsServer, watch_id: i64, after_seq: u64) {
    let n = s
        .next_notification(WAIT)
        .unwrap_or_else(|| panic!("no fs/missingChanged for watch {watch_id}"));
    assert_eq!(
        n.value,
        json!({"method": "fs/missingChanged", "params": {"watchId": watch_id}}),
        "{}",
        n.raw
    );
    assert!(n.seq > after_seq, "notification before the watch response");
}

#[test]
fn watch_fires_when_path_is_created() {
    let t = TempDir::new("watch_create");
    let mut s = FsServer::start();
    let p = t.join("AGENTS.md");
    let resp = watch(&mut s, 1, &[uri(&p)]);
    // Spurious notifications are allowed (docs/protocol.md "Filesystem"); let any settle first.
    for n in s.notifications_for(Duration::from_millis(400)) {
        assert_eq!(n.value["params"], json!({"watchId": 1}));
    }
    fs::write(&p, b"# agents").unwrap();
    expect_changed(&mut s, 1, resp.seq);
}

#[test]
fn watch_follows_intermediate_directories() {
    let t = TempDir::new("watch_deep");
    let mut s = FsServer::start();
    let p = t.join(".agents/skills/x");
    let resp = watch(&mut s, 2, &[uri(&p), native(&t.join("other"))]);
    fs::create_dir(t.join(".agents")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    fs::create_dir(t.join(".agents/skills")).unwrap();
    // Notifications for the intermediate steps are allowed (spurious).
    let early = s.notifications_for(Duration::from_millis(700));
    for n in &early {
        assert_eq!(n.value["params"], json!({"watchId": 2}));
        assert!(n.seq > resp.seq);
    }
    fs::write(&p, b"").unwrap();
    expect_changed(&mut s, 2, resp.seq);
}

#[test]
fn watch_existing_path_notifies_once_after_response() {
    let t = TempDir::new("watch_existing");
    fs::write(t.join("present"), b"").unwrap();
    let mut s = FsServer::start();
    let resp = watch(
        &mut s,
        3,
        &[uri(&t.join("present")), uri(&t.join("absent"))],
    );
    expect_changed(&mut s, 3, resp.seq);
    let more = s.notifications_for(Duration::from_millis(800));
    assert!(
        more.is_empty(),
        "more than one notification: {:?}",
        more.iter().map(|m| &m.raw).collect::<Vec<_>>()
    );
}

#[test]
fn watch_id_reuse_replaces_the_watch() {
    let t = TempDir::new("watch_reuse");
    let mut s = FsServer::start();
    fs::create_dir(t.join("a")).unwrap();
    fs::create_dir(t.join("b")).unwrap();
    watch(&mut s, 7, &[uri(&t.join("a/first"))]);
    let resp = watch(&mut s, 7, &[uri(&t.join("b/second"))]);
    fs::write(t.join("a/first"), b"").unwrap();
    let got = s.notifications_for(Duration::from_millis(1000));
    assert!(
        got.is_empty(),
        "the replaced watch still fired: {:?}",
        got.iter().map(|m| &m.raw).collect::<Vec<_>>()
    );
    fs::write(t.join("b/second"), b"").unwrap();
    expect_changed(&mut s, 7, resp.seq);
}

#[test]
fn watch_separate_ids_notify_separately() {
    let t = TempDir::new("watch_ids");
    let mut s = FsServer::start();
    fs::create_dir(t.join("a")).unwrap();
    fs::create_dir(t.join("b")).unwrap();
    watch(&mut s, 10, &[uri(&t.join("a/x"))]);
    let resp = watch(&mut s, 11, &[uri(&t.join("b/y"))]);
    fs::write(t.join("b/y"), b"").unwrap();
    expect_changed(&mut s, 11, resp.seq);
    // Coalesced repeats for watch 11 may follow; nothing for 10 yet.
    for n in s.notifications_for(Duration::from_millis(500)) {
        assert_eq!(n.value["params"], json!({"watchId": 11}), "{}", n.raw);
    }
    fs::write(t.join("a/x"), b"").unwrap();
    expect_changed(&mut s, 10, resp.seq);
}

#[test]
fn watch_limits_and_params() {
    let t = TempDir::new("watch_limits");
    let mut s = FsServer::start();
    let many: Vec<String> = (0..4097).map(|i| uri(&t.join(format!("m{i}")))).collect();
    s.expect_err(
        "fs/watchMissing",
        json!({"watchId": 1, "missing": many}),
        -32600,
        "fs/watchMissing accepts at most 4096 paths",
    );
    let r = s.call(
        "fs/watchMissing",
        json!({"watchId": 1, "missing": &many[..4096], "present": "file:///x"}),
    );
    assert_eq!(r, json!({"watching": true}));
    let (c, m) = s.fail(
        "fs/watchMissing",
        json!({"watchId": 2, "missing": [], "present": 5}),
    );
    assert_eq!(c, -32602, "present of another type: {m}");
    let (c, m) = s.fail("fs/watchMissing", json!({"watchId": "x", "missing": []}));
    assert_eq!(c, -32602, "{m}");
    let (c, m) = s.fail("fs/watchMissing", json!({"watchId": 3, "missing": ["rel"]}));
    assert_eq!(
        (c, m.as_str()),
        (-32602, "invalid URI: relative URL without a base")
    );
    // The sandbox member is ignored.
    let r = s.call(
        "fs/watchMissing",
        json!({"watchId": 4, "missing": [uri(&t.join("s"))],
               "sandbox": {"permissions": {"type": "read-only"}}}),
    );
    assert_eq!(r, json!({"watching": true}));
}

#[test]
fn watch_at_most_256_per_connection() {
    let t = TempDir::new("watch_256");
    let mut s = FsServer::start();
    let ids: Vec<_> = (0..256)
        .map(|i| {
            s.send(
                "fs/watchMissing",
                json!({"watchId": i, "missing": [uri(&t.join(format!("w{i}")))]}),
            )
        })
        .collect();
    for id in ids {
        let r = s.wait(id);
        assert_eq!(r.get("result"), Some(&json!({"watching": true})), "{r}");
    }
    s.expect_err(
        "fs/watchMissing",
        json!({"watchId": 256, "missing": [uri(&t.join("w256"))]}),
        -32600,
        "at most 256 watches may be active per connection",
    );
    // Replacing an existing watch is not a new one.
    let r = s.call(
        "fs/watchMissing",
        json!({"watchId": 5, "missing": [uri(&t.join("again"))]}),
    );
    assert_eq!(r, json!({"watching": true}));
    fs::write(t.join("w200"), b"").unwrap();
    // Other watches on the same directory may fire spuriously (docs/protocol.md "Filesystem").
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let n = s
            .next_notification(left)
            .expect("no fs/missingChanged for watch 200");
        assert_eq!(n.value["method"], "fs/missingChanged", "{}", n.raw);
        if n.value["params"] == json!({"watchId": 200}) {
            break;
        }
    }
}

#[test]
fn watch_notifications_are_coalesced() {
    let t = TempDir::new("watch_coalesce");
    let mut s = FsServer::start();
    let paths: Vec<String> = (0..50).map(|i| uri(&t.join(format!("c{i}")))).collect();
    let resp = watch(&mut s, 9, &paths);
    for n in s.notifications_for(Duration::from_millis(400)) {
        assert_eq!(n.value["params"], json!({"watchId": 9}));
    }
    let start = std::time::Instant::now();
    for i in 0..50 {
        fs::write(t.join(format!("c{i}")), b"").unwrap();
    }
    expect_changed(&mut s, 9, resp.seq);
    let rest = s.notifications_for(Duration::from_millis(1000));
    let window = start.elapsed().as_millis() as usize;
    // At most one per 250 ms (plus the one at the start of the window).
    assert!(
        rest.len() <= window / 250,
        "{} notifications in {window} ms",
        1 + rest.len()
    );
}
