//! Slow, idle and greedy clients against a real `entitled serve` process: the
//! connection limits in DESIGN.md ("What every request can rely on"). The
//! connection layer is the same whatever the engine, so these run on SQLite.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Server, free_addr, http_request, parse_response};

fn sqlite_server(dir: &TempDir) -> Server {
    Server::start(&format!("sqlite://{}/entitled.db", dir.0.display()), &dir.0)
}

/// Reads until the server closes the connection (or `patience` runs out:
/// `Err`), returning what it sent.
fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(patience))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

fn healthz(server: &Server) -> u16 {
    let (status, body) = http_request(server.addr, "GET", "/healthz", &[], b"")
        .unwrap_or_else(|e| panic!("/healthz: {e}\n{}", server.log()));
    assert!(body.contains("ok"), "{body}");
    status
}

#[test]
fn a_content_length_over_the_limit_is_413_before_the_body_arrives() {
    let dir = TempDir::new();
    let server = sqlite_server(&dir);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /v1/webhooks/zenofy HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n1234567"
    )
    .unwrap();
    let raw = read_until_closed(&mut stream, Duration::from_secs(20))
        .expect("an answer without waiting for the body");
    let (status, body) = parse_response(&raw).unwrap();
    assert_eq!(status, 413, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 413);
    assert_eq!(healthz(&server), 200);
    let (_, deliveries) = server.admin("GET", "/v1/admin/deliveries", None);
    assert_eq!(deliveries["items"], serde_json::json!([]), "nothing stored");
}

#[test]
fn a_body_that_stops_arriving_is_408() {
    let dir = TempDir::new();
    let server = sqlite_server(&dir);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /v1/admin/grants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"email\"",
        common::ADMIN_TOKEN
    )
    .unwrap();
    let raw = read_until_closed(&mut stream, Duration::from_secs(90))
        .expect("the server answers a stalled body");
    let (status, body) = parse_response(&raw).unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("request-timeout"), "{body}");
    assert_eq!(healthz(&server), 200);
}

#[test]
fn headers_that_never_finish_and_silent_sockets_are_closed() {
    let dir = TempDir::new();
    let server = sqlite_server(&dir);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    write!(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    for stream in [&mut slow, &mut silent] {
        let raw = read_until_closed(stream, Duration::from_secs(90))
            .expect("the server closes the connection");
        assert!(raw.is_empty(), "no answer to a request that never arrived");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(healthz(&server), 200);
}

#[test]
fn an_idle_keep_alive_connection_outlives_the_header_timeout_then_closes() {
    let dir = TempDir::new();
    let server = sqlite_server(&dir);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // Idle past the header timeout but within the idle one: still open.
    std::thread::sleep(Duration::from_secs(15));
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "kept alive");
    let raw = read_until_closed(&mut stream, Duration::from_secs(120))
        .expect("an idle connection is closed");
    assert!(raw.is_empty());
}

#[test]
fn idle_sockets_beyond_the_file_limit_leave_healthz_answering() {
    let dir = TempDir::new();
    let addr = free_addr();
    let log = dir.0.join("serve.log");
    let database = format!("sqlite://{}/entitled.db", dir.0.display());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" serve --listen "$1""#)
        .arg(env!("CARGO_BIN_EXE_entitled"))
        .arg(addr.to_string())
        .env("DATABASE_URL", &database)
        .env("ENTITLED_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        http_request(addr, "GET", "/healthz", &[], b"").is_ok()
    });
    assert!(
        ready,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() >= 250, "opened {} idle sockets", idle.len());
    for _ in 0..5 {
        let answer = http_request(addr, "GET", "/healthz", &[], b"");
        let (status, _) = answer.unwrap_or_else(|e| {
            panic!(
                "/healthz with {} idle sockets: {e}\n{}",
                idle.len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        assert_eq!(status, 200);
    }
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
}
