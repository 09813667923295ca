//! A tiny HTTP/1.1 test server on 127.0.0.1 (std only): one thread per connection,
//! one request per connection (`Connection: close`), routes by path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

pub struct Httpd {
    pub port: u16,
}

impl Httpd {
    /// Start on an ephemeral port; the thread lives as long as the test process.
    pub fn start() -> Httpd {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                thread::spawn(move || {
                    let _ = serve(conn);
                });
            }
        });
        Httpd { port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// What the server saw.
struct Request {
    line: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    // A request through a proxy has an absolute target; keep only the path.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None => target,
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Request {
        line,
        method,
        path,
        headers,
        body,
    })
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

/// Start a chunked response; then write chunks with [`chunk`].
fn start_chunked(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")?;
    conn.flush()
}

fn chunk(conn: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    conn.write_all(data)?;
    conn.write_all(b"\r\n")?;
    conn.flush()
}

fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    let req = read_request(&conn)?;
    match req.path.as_str() {
        "/hello" => respond(
            &mut conn,
            "200 OK",
            &[
                ("X-Test", "one"),
                ("X-Test", "two"),
                ("Content-Type", "text/plain"),
            ],
            b"hello world",
        ),
        "/echo" => {
            // Request line, then each header as `name: value`, a blank line, the body.
            let mut out = format!("{}\n", req.line);
            for (n, v) in &req.headers {
                out.push_str(&format!("{}: {v}\n", n.to_ascii_lowercase()));
            }
            out.push('\n');
            let mut body = out.into_bytes();
            body.extend_from_slice(&req.body);
            let status = if req.method == "POST" {
                "201 Created"
            } else {
                "200 OK"
            };
            respond(&mut conn, status, &[], &body)
        }
        "/stream" => {
            start_chunked(&mut conn)?;
            for part in ["part1;", "part2;", "part3"] {
                chunk(&mut conn, part.as_bytes())?;
                thread::sleep(Duration::from_millis(100));
            }
            conn.write_all(b"0\r\n\r\n")?;
            conn.flush()
        }
        "/big" => {
            // 3.5 MiB in one go: frames must be cut to 1 MiB.
            let body: Vec<u8> = (0..(3 * 1024 * 1024 + 512 * 1024))
                .map(|i| (i % 251) as u8)
                .collect();
            respond(&mut conn, "200 OK", &[], &body)
        }
        "/stall" => {
            // Headers and a first chunk, then nothing for 3 s.
            start_chunked(&mut conn)?;
            chunk(&mut conn, b"first")?;
            thread::sleep(Duration::from_secs(3));
            chunk(&mut conn, b"late")?;
            conn.write_all(b"0\r\n\r\n")?;
            conn.flush()
        }
        "/slow" => {
            thread::sleep(Duration::from_secs(3));
            respond(&mut conn, "200 OK", &[], b"too late")
        }
        "/redirect" => respond(&mut conn, "302 Found", &[("Location", "/hello")], b"moved"),
        "/loop" => respond(&mut conn, "302 Found", &[("Location", "/loop")], b""),
        "/huge" => {
            // 64 MiB + 1 byte, delimited by the end of the connection.
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let block = vec![b'x'; 1024 * 1024];
            for _ in 0..64 {
                conn.write_all(&block)?;
            }
            conn.write_all(b"x")?;
            conn.flush()
        }
        _ => respond(&mut conn, "404 Not Found", &[], b"no such path"),
    }
}
