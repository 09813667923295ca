//! Unit tests of the connection logic over an in-memory socket pair, with the
//! test playing the server's side of the wire. Behaviour against the real server
//! is tested in `tests/integration/client/`.

use super::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

struct FakePeer {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl FakePeer {
    fn line(&mut self) -> Value {
        let mut s = String::new();
        self.r.read_line(&mut s).unwrap();
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s:?}"))
    }
    fn send(&mut self, v: Value) {
        let mut l = serde_json::to_vec(&v).unwrap();
        l.push(b'\n');
        self.w.write_all(&l).unwrap();
    }
}

fn pair(opts: &ConnectOptions) -> (Client, FakePeer) {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(T)).unwrap();
    let client = Client::over(a.try_clone().unwrap(), a, opts);
    let peer = FakePeer {
        r: BufReader::new(b.try_clone().unwrap()),
        w: b,
    };
    (client, peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_matched_by_id_in_any_order() {
    let (client, mut peer) = pair(&ConnectOptions::default());
    let peer_task = std::thread::spawn(move || {
        let a = peer.line();
        let b = peer.line();
        assert_eq!(a["method"], "environment/status");
        assert_eq!(b["method"], "x/echo");
        // Answer the second first.
        peer.send(json!({"id": b["id"], "result": {"echo": b["params"]}}));
        peer.send(json!({"id": a["id"], "result": {"status": "ready"}}));
        peer
    });
    let (s, e) = tokio::join!(
        client.environment_status(),
        client.call::<_, Value>("x/echo", json!([1, 2]))
    );
    assert_eq!(s.unwrap(), "ready");
    assert_eq!(e.unwrap(), json!({"echo": [1, 2]}));
    let mut peer = peer_task.join().unwrap();
    // An error response is typed.
    let c = tokio::spawn(async move {
        let r = client.call::<_, Value>("x/fail", ()).await;
        (client, r)
    });
    let req = peer.line();
    peer.send(json!({"error": {"code": -32601, "message": "no"}, "id": req["id"]}));
    let (_client, r) = c.await.unwrap();
    match r {
        Err(ClientError::Rpc(e)) => assert_eq!((e.code, e.message.as_str()), (-32601, "no")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_go_to_the_handler_and_its_answer_goes_back() {
    let opts = ConnectOptions::default().handler(|req: ServerRequest| async move {
        let p = req.approve_exec().expect("approveExec params");
        let decision = if p.argv[0] == "git" {
            ExecDecision::Approve
        } else {
            ExecDecision::Deny
        };
        Ok(ApproveExecResult { decision }.to_value())
    });
    let (_client, mut peer) = pair(&opts);
    let peer = tokio::task::spawn_blocking(move || {
        peer.send(json!({"id": 1, "method": "process/approveExec", "params": {
            "processId": "sh", "file": "file:///usr/bin/git", "argv": ["git", "push"],
            "workdir": "file:///tmp"}}));
        let a = peer.line();
        peer.send(json!({"id": 2, "method": "process/approveExec", "params": {
            "processId": "sh", "file": "file:///bin/rm", "argv": ["rm"], "workdir": "file:///"}}));
        let b = peer.line();
        (a, b)
    });
    let (a, b) = tokio::time::timeout(T, peer).await.unwrap().unwrap();
    assert_eq!(a, json!({"id": 1, "result": {"decision": "approve"}}));
    assert_eq!(b, json!({"id": 2, "result": {"decision": "deny"}}));
}

/// Server requests have their own integer id space (docs/protocol.md
/// "What the server writes"): a server request whose id equals that of a call in
/// flight is told apart by its `method`, and the call still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_id_equal_to_a_call_id_is_another_id_space() {
    let opts = ConnectOptions::default().handler(|_req: ServerRequest| async move {
        Ok(ApproveExecResult {
            decision: ExecDecision::Cancel,
        }
        .to_value())
    });
    let (client, mut peer) = pair(&opts);
    let peer_task = std::thread::spawn(move || {
        let call = peer.line();
        let id = call["id"].clone();
        assert!(id.is_i64(), "{call}");
        peer.send(
            json!({"id": id, "method": "process/approveExec", "params": {
            "processId": "sh", "file": "file:///bin/x", "argv": ["x"], "workdir": "file:///"}}),
        );
        let answer = peer.line();
        peer.send(json!({"id": id, "result": {"status": "ready"}}));
        (id, answer)
    });
    let status = tokio::time::timeout(T, client.environment_status())
        .await
        .unwrap();
    assert_eq!(status.unwrap(), "ready");
    let (id, answer) = peer_task.join().unwrap();
    assert_eq!(answer, json!({"id": id, "result": {"decision": "cancel"}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_without_a_handler_get_an_error() {
    let (_client, mut peer) = pair(&ConnectOptions::default());
    let a = tokio::task::spawn_blocking(move || {
        peer.send(json!({"id": 1, "method": "process/approveExec", "params": {}}));
        peer.line()
    });
    let a = tokio::time::timeout(T, a).await.unwrap().unwrap();
    assert_eq!(
        a,
        json!({"id": 1, "error": {"code": -32601,
            "message": "client does not handle `process/approveExec`"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_routed_per_process_and_end_at_closed() {
    let (client, mut peer) = pair(&ConnectOptions::default());
    let mut a = client.subscribe("a");
    let mut b = client.subscribe("b");
    let mut other = client.notifications();
    peer.send(json!({"method": "process/output", "params": {"processId": "a", "seq": 1, "stream": "stdout", "chunk": "aGkK"}}));
    peer.send(json!({"method": "process/output", "params": {"processId": "nobody", "seq": 1, "stream": "stdout", "chunk": ""}}));
    peer.send(json!({"method": "process/exited", "params": {"processId": "b", "seq": 1, "exitCode": 3, "sandboxDenied": false}}));
    peer.send(json!({"method": "fs/missingChanged", "params": {"watchId": "w"}}));
    peer.send(json!({"method": "process/exited", "params": {"processId": "a", "seq": 2, "exitCode": 0, "sandboxDenied": false}}));
    peer.send(json!({"method": "process/closed", "params": {"processId": "a", "seq": 3}}));
    let mut seen = Vec::new();
    while let Some(ev) = tokio::time::timeout(T, a.recv()).await.unwrap().unwrap() {
        seen.push(ev.seq());
    }
    assert_eq!(seen, vec![1, 2, 3]);
    assert!(a.recv().await.unwrap().is_none(), "stays ended");
    match tokio::time::timeout(T, b.recv()).await.unwrap().unwrap() {
        Some(ProcessEvent::Exited(e)) => assert_eq!(e.exit_code, 3),
        other => panic!("{other:?}"),
    }
    let n = tokio::time::timeout(T, other.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (n.method.as_str(), n.params["watchId"].clone()),
        ("fs/missingChanged", json!("w"))
    );
    // The server goes away: b's stream and pending calls fail, new calls too.
    let call = tokio::spawn(async move {
        let r = client.environment_status().await;
        (client, r)
    });
    let _ = peer.line();
    drop(peer);
    let (client, r) = tokio::time::timeout(T, call).await.unwrap().unwrap();
    assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
    assert!(matches!(b.recv().await, Err(ClientError::Disconnected)));
    assert!(matches!(
        client.environment_status().await,
        Err(ClientError::Disconnected)
    ));
    assert!(client.is_disconnected());
    let mut late = client.subscribe("c");
    assert!(matches!(late.recv().await, Err(ClientError::Disconnected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_forgotten() {
    let (client, mut peer) = pair(&ConnectOptions::default());
    let r = tokio::time::timeout(
        Duration::from_millis(50),
        client.call::<_, Value>("x/slow", ()),
    )
    .await;
    assert!(r.is_err());
    let req = peer.line();
    assert!(client.shared_pending_is_empty());
    // A late answer is ignored; the connection keeps working.
    peer.send(json!({"id": req["id"], "result": {}}));
    let t = tokio::spawn(async move { client.environment_status().await });
    let req = peer.line();
    peer.send(json!({"id": req["id"], "result": {"status": "ready"}}));
    assert_eq!(t.await.unwrap().unwrap(), "ready");
}
