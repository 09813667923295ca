//! `cargo bench --bench vs -- [--quick] [--baseline CMD] [--markdown FILE --svg FILE]`
//!
//! A developer tool, not a test: drives any exec-server command over stdio with
//! identical workloads and prints median, p90 and max per figure. With
//! `--baseline CMD` the server under test and the baseline run alternately
//! (A B A B ...) and each figure gets a ratio: how many times better the server
//! under test is (time: baseline / server; throughput: server / baseline).
//! `--markdown` rewrites the generated part of BENCHMARKS.md; `--svg` writes the
//! chart of streaming throughput against output chunk size. See BENCHMARKS.md.

#[path = "vs/client.rs"]
mod client;
#[path = "vs/json.rs"]
mod json;
#[path = "vs/report.rs"]
mod report;

use base64_simd::{Out, STANDARD};
use clap::Parser;
use client::{self_cpu_seconds, split_cmd, Res, Server};
use report::{Better, Figure};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Benchmark exec-servers over stdio (developer tool)")]
struct Args {
    /// Server under test (whitespace-separated argv); default: the built tether.
    #[arg(long)]
    server: Option<String>,
    /// Display name of the server under test.
    #[arg(long, default_value = "tether")]
    name: String,
    /// A second server to compare with, run alternately.
    #[arg(long)]
    baseline: Option<String>,
    /// Display name of the baseline.
    #[arg(long, default_value = "baseline")]
    baseline_name: String,
    /// Smaller sizes and fewer rounds: a smoke run in under a minute.
    #[arg(long)]
    quick: bool,
    /// Only these figure groups (comma-separated): handshake, true, stream, readfile,
    /// readblock, sleep, status, sandbox, chunks.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Rewrite the generated part of this markdown file (BENCHMARKS.md).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the throughput-by-chunk-size chart here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// How the run was started, for the markdown (default: this process's argv).
    #[arg(long)]
    command_label: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Sizes and rounds of a run.
struct Plan {
    handshake_rounds: usize,
    true_runs: usize,
    true_rounds: usize,
    stream_bytes: u64,
    stream_rounds: usize,
    read_sizes: [u64; 2],
    read_rounds: [usize; 2],
    block_bytes: u64,
    block_rounds: usize,
    sleep_rounds: [usize; 2],
    status_requests: usize,
    status_rounds: usize,
    sandbox_runs: usize,
    sandbox_rounds: usize,
    snapshot_runs: usize,
    snapshot_rounds: usize,
    chunk_total: u64,
    chunk_sizes: Vec<usize>,
}

const MIB: u64 = 1 << 20;

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                handshake_rounds: 5,
                true_runs: 100,
                true_rounds: 2,
                stream_bytes: 128 * MIB,
                stream_rounds: 2,
                read_sizes: [16 * MIB, 64 * MIB],
                read_rounds: [2, 2],
                block_bytes: 128 * MIB,
                block_rounds: 2,
                sleep_rounds: [2, 1],
                status_requests: 10_000,
                status_rounds: 2,
                sandbox_runs: 20,
                sandbox_rounds: 2,
                snapshot_runs: 10,
                snapshot_rounds: 2,
                chunk_total: 8 * MIB,
                chunk_sizes: vec![512, 4096, 32768, 262144],
            }
        } else {
            Plan {
                handshake_rounds: 20,
                true_runs: 500,
                true_rounds: 10,
                stream_bytes: 1024 * MIB,
                stream_rounds: 3,
                read_sizes: [64 * MIB, 256 * MIB],
                read_rounds: [5, 3],
                block_bytes: 1024 * MIB,
                block_rounds: 3,
                sleep_rounds: [5, 3],
                status_requests: 10_000,
                status_rounds: 5,
                sandbox_runs: 100,
                sandbox_rounds: 4,
                snapshot_runs: 50,
                snapshot_rounds: 4,
                chunk_total: 64 * MIB,
                chunk_sizes: vec![512, 2048, 8192, 32768, 131072, 524288],
            }
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn start_params(id: &str, argv: &[&str]) -> String {
    format!(
        r#"{{"processId":"{id}","argv":{},"cwd":"file:///tmp","env":{{"PATH":"/usr/local/bin:/usr/bin:/bin"}},"tty":false,"pipeStdin":false,"arg0":null,"sandbox":null}}"#,
        serde_json::to_string(argv).unwrap()
    )
}

fn ready(argv: &[String]) -> Res<Server> {
    let mut s = Server::spawn(argv)?;
    s.handshake()?;
    Ok(s)
}

/// Spawn → `initialize` result (ms), and the idle peak RSS after a round trip (MiB).
fn handshake(argv: &[String]) -> Res<(f64, f64)> {
    let init =
        b"{\"id\":0,\"method\":\"initialize\",\"params\":{\"clientName\":\"tether-bench\"}}\n";
    let (mut s, took) = Server::spawn_timed(argv, init)?;
    s.wait(0)?;
    s.send(b"{\"method\":\"initialized\",\"params\":{}}\n")?;
    s.call("environment/status", "{}")?;
    std::thread::sleep(std::time::Duration::from_millis(50));
    Ok((took, s.peak_rss_mib()?))
}

/// `true`, start → closed, `runs` times in a row (ms each).
fn true_runs(argv: &[String], runs: usize) -> Res<Vec<f64>> {
    let mut s = ready(argv)?;
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let id = format!("t{i}");
        let t = Instant::now();
        let rid = s.request("process/start", &start_params(&id, &["true"]))?;
        s.wait(rid)?;
        s.wait_closed(&id)?;
        out.push(ms(t.elapsed()));
    }
    Ok(out)
}

/// What the Codex client's `exec_command` of `echo hi` sends with shell snapshots
/// on (`bash -lc` + `shellSnapshot`), start → closed, under a `HOME` whose
/// `.profile` sleeps 300 ms: the first call (it captures the snapshot) and the
/// median of `runs` later calls (ms). A fresh server each time: nothing cached.
fn snapshot_calls(argv: &[String], home: &Path, runs: usize) -> Res<Vec<f64>> {
    let mut s = ready(argv)?;
    let mut out = Vec::with_capacity(runs + 1);
    let home = serde_json::to_string(&home.to_string_lossy()).unwrap();
    for i in 0..=runs {
        let id = format!("sn{i}");
        let params = format!(
            r#"{{"processId":"{id}","argv":["/bin/bash","-lc","echo hi"],"cwd":"file:///tmp","env":{{"PATH":"/usr/local/bin:/usr/bin:/bin","HOME":{home}}},"tty":false,"pipeStdin":false,"arg0":null,"sandbox":null,"shellSnapshot":{{"scopeId":"bench:x","shell":{{"name":"bash","path":"/bin/bash"}}}}}}"#
        );
        let t = Instant::now();
        let rid = s.request("process/start", &params)?;
        s.wait(rid)?;
        s.wait_closed(&id)?;
        out.push(ms(t.elapsed()));
    }
    Ok(vec![out[0], median_of(&out[1..])])
}

struct StreamRun {
    mb_s: f64,
    client_cpu: f64,
    server_cpu: f64,
    rss: f64,
}

/// Stream `argv_child`'s stdout through the server; decoded MB/s and CPU.
fn stream(argv: &[String], child: &[&str], expect: u64) -> Res<StreamRun> {
    let mut s = ready(argv)?;
    let (c0, s0) = (self_cpu_seconds(), s.cpu_seconds());
    let t = Instant::now();
    let rid = s.request("process/start", &start_params("s", child))?;
    s.wait(rid)?;
    let got = s.wait_closed("s")?;
    let secs = t.elapsed().as_secs_f64();
    if got != expect {
        return Err(format!("received {got} bytes, expected {expect}"));
    }
    Ok(StreamRun {
        mb_s: mb_s(got, secs),
        client_cpu: self_cpu_seconds() - c0,
        server_cpu: s.cpu_seconds() - s0,
        rss: s.peak_rss_mib()?,
    })
}

/// The raw limit: read the same child's pipe in 64 KiB reads and base64-encode
/// each read (with the fastest encoder at hand, the SIMD one), with no server in
/// between (MB/s of raw bytes).
fn raw_limit(child: &[&str], expect: u64) -> Res<f64> {
    let t = Instant::now();
    let mut c = Command::new(child[0])
        .args(&child[1..])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = c.stdout.take().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut enc = vec![0u8; 65536 / 3 * 4 + 4];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let e = STANDARD.encode(&buf[..n], Out::from_slice(&mut enc));
        std::hint::black_box(e);
        total += n as u64;
    }
    let _ = c.wait();
    if total != expect {
        return Err(format!("read {total} bytes, expected {expect}"));
    }
    Ok(mb_s(total, t.elapsed().as_secs_f64()))
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// The decoded string `result.KEY` of response `id`: decoded on arrival by the
/// reader when the line was large, else decoded here (into a reused buffer).
fn decoded(s: &Server, id: i64, line: &[u8], key: &str) -> Res<Vec<u8>> {
    if let Some(d) = s.take_decoded(id) {
        return d;
    }
    let data = json::str_at(line, &["result", key]).ok_or(format!("no {key}"))?;
    let mut out = client::take_buf();
    out.reserve(data.len() / 4 * 3 + 3);
    let n = STANDARD
        .decode(
            data,
            base64_simd::Out::from_uninit_slice(out.spare_capacity_mut()),
        )
        .map_err(|e| e.to_string())?
        .len();
    // SAFETY: the decoder initialised the first `n` spare bytes.
    unsafe { out.set_len(n) };
    Ok(out)
}

/// `fs/readFile` of `path` (ms), checking the decoded size.
fn read_file(argv: &[String], path: &Path, size: u64) -> Res<f64> {
    let mut s = ready(argv)?;
    let params = format!(r#"{{"path":"{}","sandbox":null}}"#, file_uri(path));
    let t = Instant::now();
    let rid = s.request("fs/readFile", &params)?;
    let line = s.wait(rid)?;
    let out = decoded(&s, rid, &line, "dataBase64")?;
    let n = out.len() as u64;
    let took = ms(t.elapsed());
    client::put_buf(out);
    client::put_buf(line);
    if n != size {
        return Err(format!("read {n} bytes, expected {size}"));
    }
    Ok(took)
}

/// `fs/open` + `fs/readBlock` of 1 MiB blocks, 4 in flight (decoded MB/s).
fn read_blocks(argv: &[String], path: &Path, size: u64) -> Res<f64> {
    let mut s = ready(argv)?;
    s.call(
        "fs/open",
        &format!(
            r#"{{"handleId":"h","path":"{}","mode":"read","sandbox":null}}"#,
            file_uri(path)
        ),
    )?;
    const BLOCK: u64 = 1 << 20;
    const WINDOW: usize = 4;
    let t = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut next = 0u64;
    let mut got = 0u64;
    loop {
        while pending.len() < WINDOW && next < size {
            let p = format!(r#"{{"handleId":"h","offset":{next},"len":{BLOCK}}}"#);
            pending.push_back(s.request("fs/readBlock", &p)?);
            next += BLOCK;
        }
        let Some(id) = pending.pop_front() else { break };
        let line = s.wait(id)?;
        let out = decoded(&s, id, &line, "chunk")?;
        got += out.len() as u64;
        client::put_buf(out);
        client::put_buf(line);
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = s.call("fs/close", r#"{"handleId":"h"}"#);
    if got != size {
        return Err(format!("read {got} bytes, expected {size}"));
    }
    Ok(mb_s(got, secs))
}

/// `n` concurrent `sleep 0.2`: first start sent → last closed (s).
fn sleeps(argv: &[String], n: usize) -> Res<f64> {
    let mut s = ready(argv)?;
    let (base, _) = s.closed_count();
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let (id, line) = s.request_line(
            "process/start",
            &start_params(&format!("z{i}"), &["sleep", "0.2"]),
        );
        buf.extend_from_slice(&line);
        ids.push(id);
    }
    let t = Instant::now();
    s.send(&buf)?;
    s.wait_all(ids)?;
    let last = s.wait_closed_count(base + n as u64)?;
    Ok((last - t).as_secs_f64())
}

/// `n` pipelined `environment/status` (requests/s).
fn statuses(argv: &[String], n: usize) -> Res<f64> {
    let mut s = ready(argv)?;
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let (id, line) = s.request_line("environment/status", "{}");
        buf.extend_from_slice(&line);
        ids.push(id);
    }
    let t = Instant::now();
    // The reader thread drains responses meanwhile, so this write cannot deadlock.
    s.send(&buf)?;
    s.wait_all(ids)?;
    let secs = t.elapsed().as_secs_f64();
    Ok(n as f64 / secs)
}

/// The workspace-write sandbox context the Codex client sends (docs/protocol.md "Sandbox").
fn ww_sandbox(ws: &Path) -> String {
    let root = file_uri(ws);
    format!(
        r#"{{"permissions":{{"type":"managed","file_system":{{"type":"restricted","entries":[{{"path":{{"type":"special","value":{{"kind":"root"}}}},"access":"read"}},{{"path":{{"type":"special","value":{{"kind":"project_roots"}}}},"access":"write"}},{{"path":{{"type":"special","value":{{"kind":"slash_tmp"}}}},"access":"write"}},{{"path":{{"type":"special","value":{{"kind":"tmpdir"}}}},"access":"write"}},{{"path":{{"type":"special","value":{{"kind":"project_roots","subpath":".git"}}}},"access":"read","missing_path_behavior":"skip"}},{{"path":{{"type":"special","value":{{"kind":"project_roots","subpath":".agents"}}}},"access":"read","missing_path_behavior":"skip"}},{{"path":{{"type":"special","value":{{"kind":"project_roots","subpath":".codex"}}}},"access":"read","missing_path_behavior":"skip"}},{{"path":{{"type":"special","value":{{"kind":"project_roots","subpath":".aws"}}}},"access":"read","missing_path_behavior":"skip"}}]}},"network":"restricted"}},"cwd":"{root}","workspaceRoots":["{root}"],"windowsSandboxLevel":"disabled","windowsSandboxProxySettingsMode":"reconcile","useLegacyLandlock":false}}"#
    )
}

/// A sandboxed fs request, `runs` times (ms each); an error on the first try means
/// the server does not support it.
fn sandboxed(argv: &[String], ws: &Path, write: bool, runs: usize) -> Res<Vec<f64>> {
    let mut s = ready(argv)?;
    let file = ws.join("sandboxed.txt");
    let params = if write {
        format!(
            r#"{{"path":"{}","dataBase64":"aGVsbG8K","sandbox":{}}}"#,
            file_uri(&file),
            ww_sandbox(ws)
        )
    } else {
        format!(
            r#"{{"path":"{}","sandbox":{}}}"#,
            file_uri(&file),
            ww_sandbox(ws)
        )
    };
    let method = if write { "fs/writeFile" } else { "fs/readFile" };
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        match s.call(method, &params) {
            Ok(_) => out.push(ms(t.elapsed())),
            Err(e) if i == 0 => return Err(format!("not supported by this server: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Fill a file with `size` pseudo-random bytes.
fn make_file(path: &Path, size: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    // Written back before the figure starts, so that the kernel's writeback does
    // not compete with whichever server runs first.
    f.get_ref().sync_all()
}

struct Bench {
    servers: Vec<(String, Vec<String>)>,
    figs: Vec<Figure>,
}

impl Bench {
    fn fig(
        &mut self,
        key: &'static str,
        name: String,
        unit: &'static str,
        better: Better,
    ) -> usize {
        self.figs.push(Figure {
            key,
            name,
            unit,
            better,
            samples: vec![Ok(Vec::new()); self.servers.len()],
        });
        self.figs.len() - 1
    }

    fn add(&mut self, fig: usize, server: usize, r: Res<Vec<f64>>) {
        let slot = &mut self.figs[fig].samples[server];
        match (slot.as_mut(), r) {
            (Ok(v), Ok(mut new)) => v.append(&mut new),
            (Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }

    fn failed(&self, fig: usize, server: usize) -> bool {
        self.figs[fig].samples[server].is_err()
    }

    /// Run `f` for each server in turn, `rounds` times (A B A B ...).
    fn rounds(
        &mut self,
        rounds: usize,
        figs: &[usize],
        mut f: impl FnMut(&[String]) -> Res<Vec<f64>>,
    ) {
        for _ in 0..rounds {
            for si in 0..self.servers.len() {
                if figs.iter().any(|&k| self.failed(k, si)) {
                    continue;
                }
                let argv = self.servers[si].1.clone();
                match f(&argv) {
                    Ok(vals) => {
                        for (k, v) in figs.iter().zip(vals) {
                            self.add(*k, si, Ok(vec![v]));
                        }
                    }
                    Err(e) => {
                        for k in figs {
                            self.add(*k, si, Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    format!("nproc {nproc}, {model}, Linux {kernel}, {mem} GiB RAM")
}

fn main() {
    let args = Args::parse();
    let plan = Plan::new(args.quick);
    let tether = args
        .server
        .clone()
        .unwrap_or_else(|| format!("{} exec-server", env!("CARGO_BIN_EXE_tether")));
    let mut servers = vec![(args.name.clone(), split_cmd(&tether))];
    if let Some(b) = &args.baseline {
        servers.push((args.baseline_name.clone(), split_cmd(b)));
    }
    let names: Vec<String> = servers.iter().map(|s| s.0.clone()).collect();
    let want = |k: &str| args.only.is_empty() || args.only.iter().any(|o| o == k);
    let dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let mut b = Bench {
        servers,
        figs: Vec::new(),
    };
    for (n, s) in &b.servers {
        eprintln!("{n}: {}", s.join(" "));
    }
    let started = Instant::now();

    if want("handshake") {
        eprintln!("handshake ...");
        let h = b.fig(
            "handshake",
            "handshake (spawn → initialize result)".into(),
            "ms",
            Better::Lower,
        );
        let r = b.fig(
            "rss_idle",
            "server peak RSS, idle (VmHWM)".into(),
            "MiB",
            Better::Lower,
        );
        b.rounds(plan.handshake_rounds, &[h, r], |a| {
            handshake(a).map(|(t, m)| vec![t, m])
        });
    }
    if want("true") {
        eprintln!("true ...");
        let f = b.fig(
            "true",
            format!("`true` start → closed ({} runs)", plan.true_runs),
            "ms",
            Better::Lower,
        );
        let per = plan.true_runs / plan.true_rounds;
        for _ in 0..plan.true_rounds {
            for si in 0..b.servers.len() {
                if !b.failed(f, si) {
                    let argv = b.servers[si].1.clone();
                    let r = true_runs(&argv, per);
                    b.add(f, si, r);
                }
            }
        }
    }
    if want("stream") {
        eprintln!("stream ...");
        let size = format!("{}", plan.stream_bytes / MIB);
        let child = ["head", "-c", &format!("{size}M"), "/dev/zero"];
        let label = format!("`head -c {size}M /dev/zero`");
        let t = b.fig(
            "stream",
            format!("output streaming, {label}"),
            "MB/s",
            Better::Higher,
        );
        let raw = b.fig(
            "raw",
            format!("raw limit: pipe read + base64, {label}, no server"),
            "MB/s",
            Better::Higher,
        );
        let cc = b.fig(
            "client_cpu",
            "client CPU while streaming".into(),
            "s",
            Better::Lower,
        );
        let sc = b.fig(
            "server_cpu",
            "server CPU while streaming".into(),
            "s",
            Better::Lower,
        );
        let rss = b.fig(
            "rss_stream",
            "server peak RSS, streaming (VmHWM)".into(),
            "MiB",
            Better::Lower,
        );
        let expect = plan.stream_bytes;
        for _ in 0..plan.stream_rounds {
            // The raw limit is measured in the same run; it is the same for every server.
            let rl = raw_limit(&child, expect);
            for si in 0..b.servers.len() {
                b.add(raw, si, rl.clone().map(|v| vec![v]));
                if b.failed(t, si) {
                    continue;
                }
                let argv = b.servers[si].1.clone();
                match stream(&argv, &child, expect) {
                    Ok(r) => {
                        b.add(t, si, Ok(vec![r.mb_s]));
                        b.add(cc, si, Ok(vec![r.client_cpu]));
                        b.add(sc, si, Ok(vec![r.server_cpu]));
                        b.add(rss, si, Ok(vec![r.rss]));
                    }
                    Err(e) => {
                        for k in [t, cc, sc, rss] {
                            b.add(k, si, Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
    if want("readfile") {
        for (i, &size) in plan.read_sizes.iter().enumerate() {
            eprintln!("readFile {} MiB ...", size / MIB);
            let path = dir.join(format!("read-{}", size / MIB));
            make_file(&path, size).expect("write the test file");
            let f = b.fig(
                "readfile",
                format!("fs/readFile {} MiB", size / MIB),
                "ms",
                Better::Lower,
            );
            b.rounds(plan.read_rounds[i], &[f], |a| {
                read_file(a, &path, size).map(|v| vec![v])
            });
            let _ = std::fs::remove_file(&path);
        }
    }
    if want("readblock") {
        eprintln!("readBlock ...");
        let size = plan.block_bytes;
        let path = dir.join("blocks");
        make_file(&path, size).expect("write the test file");
        let f = b.fig(
            "readblock",
            format!(
                "fs/readBlock streaming {} MiB (1 MiB blocks, 4 in flight)",
                size / MIB
            ),
            "MB/s",
            Better::Higher,
        );
        b.rounds(plan.block_rounds, &[f], |a| {
            read_blocks(a, &path, size).map(|v| vec![v])
        });
        let _ = std::fs::remove_file(&path);
    }
    if want("sleep") {
        for (i, n) in [100usize, 1000].into_iter().enumerate() {
            eprintln!("{n} sleeps ...");
            let f = b.fig(
                "sleep",
                format!("{n} concurrent `sleep 0.2` (wall)"),
                "s",
                Better::Lower,
            );
            b.rounds(plan.sleep_rounds[i], &[f], |a| {
                sleeps(a, n).map(|v| vec![v])
            });
        }
    }
    if want("status") {
        eprintln!("environment/status ...");
        let n = plan.status_requests;
        let f = b.fig(
            "status",
            format!("{n} pipelined environment/status"),
            "req/s",
            Better::Higher,
        );
        b.rounds(plan.status_rounds, &[f], |a| {
            statuses(a, n).map(|v| vec![v])
        });
    }
    if want("sandbox") {
        eprintln!("sandboxed fs ...");
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).expect("create the workspace");
        std::fs::write(ws.join("sandboxed.txt"), b"hello\n").expect("write the test file");
        let r = b.fig(
            "sandbox_read",
            "sandboxed fs/readFile (workspace-write)".into(),
            "ms",
            Better::Lower,
        );
        let runs = plan.sandbox_runs;
        b.rounds(plan.sandbox_rounds, &[r], |a| {
            sandboxed(a, &ws, false, runs).map(|v| vec![median_of(&v)])
        });
        let w = b.fig(
            "sandbox_write",
            "sandboxed fs/writeFile (workspace-write)".into(),
            "ms",
            Better::Lower,
        );
        b.rounds(plan.sandbox_rounds, &[w], |a| {
            sandboxed(a, &ws, true, runs).map(|v| vec![median_of(&v)])
        });
    }
    if want("snapshot") {
        eprintln!("shell snapshots ...");
        let home = dir.join("snaphome");
        std::fs::create_dir_all(&home).expect("create the snapshot home");
        std::fs::write(home.join(".profile"), "sleep 0.3\n").expect("write .profile");
        let first = b.fig(
            "snapshot_first",
            "exec_command `echo hi`, bash -lc + shellSnapshot, profile sleeps 300 ms: first call"
                .into(),
            "ms",
            Better::Lower,
        );
        let later = b.fig(
            "snapshot_later",
            "the same: later calls (median)".into(),
            "ms",
            Better::Lower,
        );
        let runs = plan.snapshot_runs;
        b.rounds(plan.snapshot_rounds, &[first, later], |a| {
            snapshot_calls(a, &home, runs)
        });
    }
    let mut chart = None;
    if want("chunks") {
        eprintln!("chunk sizes ...");
        let mut series: Vec<(String, Vec<Option<f64>>)> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for &cs in &plan.chunk_sizes {
            let count = (plan.chunk_total / cs as u64).to_string();
            let bs = format!("bs={cs}");
            let cnt = format!("count={count}");
            let child = ["dd", "if=/dev/zero", &bs, &cnt, "status=none"];
            for (si, (_, argv)) in b.servers.iter().enumerate() {
                let r = stream(argv, &child, plan.chunk_total).ok().map(|r| r.mb_s);
                series[si].1.push(r);
            }
        }
        let svg = report::svg_chart(
            &format!(
                "Output streaming: {} MiB from dd, by write size",
                plan.chunk_total / MIB
            ),
            &plan.chunk_sizes,
            &series,
        );
        let mut t = String::from("| bytes per write |");
        for n in &names {
            t += &format!(" {n} MB/s |");
        }
        t += "\n|---|";
        t += &"---|".repeat(names.len());
        t += "\n";
        for (i, cs) in plan.chunk_sizes.iter().enumerate() {
            t += &format!("| {} |", report::human_bytes(*cs));
            for s in &series {
                t += &format!(" {} |", s.1[i].map(report::num).unwrap_or("n/a".into()));
            }
            t += "\n";
        }
        chart = Some((svg, t));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let elapsed = started.elapsed();

    println!("\n{}", machine());
    println!("{}", report::text_table(&b.figs, &names));
    let targets = targets(&b.figs, names.len() > 1);
    for (t, s) in &targets {
        println!("target {t}: {s}");
    }
    println!("(took {:.0} s)", elapsed.as_secs_f64());

    let (svg, chunk_table) = match chart {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    if let (Some(path), Some(svg)) = (&args.svg, &svg) {
        std::fs::write(path, svg).expect("write the SVG");
    }
    if let Some(md) = &args.markdown {
        let cmd = args.command_label.clone().unwrap_or_else(|| {
            std::env::args()
                .skip(1)
                .filter(|a| a != "--bench")
                .collect::<Vec<_>>()
                .join(" ")
        });
        let mut g = String::new();
        g += &format!("Machine: {}.\n\n", machine());
        g += &format!(
            "Command: `{cmd}`{}\n\n",
            if args.quick { " (quick mode)" } else { "" }
        );
        for (n, s) in b.servers.iter() {
            g += &format!("- **{n}**: `{}`\n", s.join(" ").replace(&home(), "~"));
        }
        g += &format!("\nRun took {:.0} s. Ratio: how many times better **{}** is (medians; time: baseline ÷ {}, throughput: {} ÷ baseline).\n\n", elapsed.as_secs_f64(), names[0], names[0], names[0]);
        g += &report::markdown_table(&b.figs, &names);
        g += "\nTargets:\n\n";
        for (t, s) in &targets {
            g += &format!("- {t}: {s}\n");
        }
        if let Some(ct) = &chunk_table {
            g += "\nStreaming throughput against the child's write size:\n\n";
            if let Some(p) = &args.svg {
                let rel = p
                    .strip_prefix(md.parent().unwrap_or(Path::new("")))
                    .unwrap_or(p);
                g += &format!("![throughput by chunk size]({})\n\n", rel.display());
            }
            g += ct;
        }
        let old = std::fs::read_to_string(md).ok();
        std::fs::write(md, report::splice(old, &g)).expect("write the markdown");
    }
}

fn home() -> String {
    std::env::var("HOME").unwrap_or_else(|_| "\u{0}".into())
}

fn median_of(v: &[f64]) -> f64 {
    report::stats(v).map(|s| s.median).unwrap_or(f64::NAN)
}

/// The goals of issue 8, checked against this run.
fn targets(figs: &[Figure], have_baseline: bool) -> Vec<(String, String)> {
    let find = |key: &str, nth: usize| figs.iter().filter(|f| f.key == key).nth(nth);
    let mut out = Vec::new();
    let mut ratio = |label: &str, key: &str, nth: usize, goal: f64| {
        if !have_baseline {
            return;
        }
        if let Some(f) = find(key, nth) {
            let s = match f.ratio() {
                Some(r) if r >= goal => format!("met ({r:.2}×)"),
                Some(r) => format!("NOT met ({r:.2}×)"),
                None => "n/a".into(),
            };
            out.push((format!("{label} ≥ {goal}× the baseline"), s));
        }
    };
    ratio("handshake", "handshake", 0, 5.0);
    ratio("start → closed", "true", 0, 3.0);
    ratio("streaming", "stream", 0, 8.0);
    ratio("fs/readFile (first size)", "readfile", 0, 8.0);
    ratio("fs/readFile (second size)", "readfile", 1, 8.0);
    let mut abs = |label: String, key: &str, nth: usize, max: f64| {
        if let Some(f) = find(key, nth) {
            let s = match f.median(0) {
                Some(v) if v <= max => format!("met ({})", report::num(v)),
                Some(v) => format!("NOT met ({})", report::num(v)),
                None => "n/a".into(),
            };
            out.push((label, s));
        }
    };
    abs("1000 concurrent sleeps ≤ 0.6 s".into(), "sleep", 1, 0.6);
    abs("idle RSS ≤ 8 MiB".into(), "rss_idle", 0, 8.0);
    abs("streaming RSS ≤ 32 MiB".into(), "rss_stream", 0, 32.0);
    abs(
        "sandboxed fs/readFile ≤ 5 ms".into(),
        "sandbox_read",
        0,
        5.0,
    );
    abs(
        "sandboxed fs/writeFile ≤ 5 ms".into(),
        "sandbox_write",
        0,
        5.0,
    );
    abs(
        "shell snapshot: later exec_command calls ≤ 5 ms".into(),
        "snapshot_later",
        0,
        5.0,
    );
    if let (Some(s), Some(r)) = (find("stream", 0), find("raw", 0)) {
        if let (Some(a), Some(b)) = (s.median(0), r.median(0)) {
            let pct = 100.0 * a / b;
            let st = if pct >= 40.0 { "met" } else { "NOT met" };
            out.push((
                "streaming ≥ 40 % of the raw limit".into(),
                format!("{st} ({pct:.0} %)"),
            ));
        }
    }
    out
}
