//! Real `entitled serve` processes, for the tests that need several replicas or
//! a SIGKILL: spawning and readiness, raw HTTP/1.1 over a `TcpStream` (there is
//! no HTTP client crate), and fresh PostgreSQL databases.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::ADMIN_TOKEN;
use entitled::store::Store;

/// How long a process may take to migrate and answer `/readyz` before the
/// test gives up on it (a start-up failure, not a performance assertion).
const READY_PATIENCE: Duration = Duration::from_secs(60);

/// One `entitled serve` child process. Killed (SIGKILL) when dropped, so a
/// failing test leaves no process behind.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    database_url: String,
    log: PathBuf,
    log_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `entitled serve` on `database_url` and waits until it is ready.
    pub fn start(database_url: &str, log_dir: &Path) -> Self {
        let mut server = Self::spawn(database_url, log_dir);
        server.wait_ready();
        server
    }

    /// Starts `entitled serve` on a free port without waiting for it: start
    /// several, then [`Server::wait_ready`] each, to have replicas start (and
    /// migrate) at the same time.
    pub fn spawn(database_url: &str, log_dir: &Path) -> Self {
        Self::spawn_with_env(database_url, log_dir, &[])
    }

    /// [`Server::start`] with extra environment variables (set after the
    /// defaults, so `RUST_LOG` or `ENTITLED_LOG_FORMAT` can be overridden).
    pub fn start_with_env(database_url: &str, log_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut server = Self::spawn_with_env(database_url, log_dir, env);
        server.wait_ready();
        server
    }

    /// [`Server::spawn`] with extra environment variables.
    pub fn spawn_with_env(database_url: &str, log_dir: &Path, env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let log = log_dir.join(format!(
            "serve-{}-{}.log",
            addr.port(),
            uuid::Uuid::now_v7().simple()
        ));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_entitled"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .env("DATABASE_URL", database_url)
            .env("ENTITLED_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .env_remove("ENTITLED_LISTEN")
            .env_remove("ENTITLED_MAX_BODY_BYTES")
            .env_remove("ENTITLED_LOG_FORMAT");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn entitled serve");
        Self {
            child,
            addr,
            database_url: database_url.to_owned(),
            log,
            log_dir: log_dir.to_owned(),
            env: env
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// Waits until `/readyz` answers 200. If the port was taken in the
    /// meantime, starts again on another one; any other exit is a failure.
    pub fn wait_ready(&mut self) {
        let mut started = std::time::Instant::now();
        let mut respawns = 0;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let log = self.log();
                if log.contains("cannot listen") && respawns < 5 {
                    respawns += 1;
                    let env = self.env.clone();
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    *self = Self::spawn_with_env(
                        &self.database_url.clone(),
                        &self.log_dir.clone(),
                        &env,
                    );
                    started = std::time::Instant::now();
                    continue;
                }
                panic!("entitled serve exited before it was ready ({status}):\n{log}");
            }
            if let Ok((200, _)) = http_request(self.addr, "GET", "/readyz", &[], b"") {
                return;
            }
            assert!(
                started.elapsed() < READY_PATIENCE,
                "entitled serve on {} never became ready:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit on its own (after a SIGTERM, say) and
    /// returns its status; `None` if it is still running after `patience`
    /// (a hang, not a performance assertion).
    pub fn wait_exit(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if started.elapsed() > patience {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL (on Unix, `Child::kill` sends SIGKILL) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; panics (with the process's log) if it gets no answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        match http_request(self.addr, method, path, headers, body) {
            Ok((status, body)) => (
                status,
                serde_json::from_str(&body).unwrap_or(Value::String(body)),
            ),
            Err(e) => panic!(
                "{method} {path} on {}: {e}\nserver log:\n{}",
                self.addr,
                self.log()
            ),
        }
    }

    /// One request with the admin token and a JSON body (or none).
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.map(Value::to_string).unwrap_or_default();
        self.call(
            method,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address with a port nobody listened on a moment ago.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the
/// body. Any I/O error, or a response cut short (fewer bytes than announced, no
/// end of headers, an unfinished chunked body), is an `Err`: it was not an
/// answer.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn incomplete(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned())
}

/// Parses one raw HTTP/1.1 response (status and body); `Err` when it is cut short.
pub fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| incomplete("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| incomplete("no status line"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse::<usize>().ok();
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = length {
        if rest.len() < length {
            return Err(incomplete("body shorter than its content-length"));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| incomplete("unfinished chunk size"))?;
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| incomplete("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(incomplete("unfinished chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A PostgreSQL database of its own (not just a schema: separate processes
/// cannot be handed a `search_path`-less URL otherwise), dropped at the end.
pub struct PgDatabase {
    base: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// A fresh database on the server of `ENTITLED_TEST_POSTGRES_URL`, or
    /// `None` when it is not set.
    pub fn create() -> Option<Self> {
        let base = std::env::var("ENTITLED_TEST_POSTGRES_URL").ok()?;
        let name = format!("entitled_t_{}", uuid::Uuid::now_v7().simple());
        admin_sql(&base, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = with_database(&base, &name);
        Some(Self { base, name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = admin_sql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one administrative statement on its own thread and runtime, so it
/// works from synchronous tests, async tests and `Drop` alike.
fn admin_sql(base: &str, sql: &str) -> Result<(), String> {
    let (base, sql) = (base.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (admin, _background) = Store::connect_without_migrating(&base)
                .await
                .map_err(|e| e.to_string())?;
            let result = admin.execute_admin(&sql).await.map_err(|e| e.to_string());
            admin.close().await;
            result
        })
    })
    .join()
    .map_err(|_| "panicked".to_owned())?
}

/// `base` with its database name replaced by `name`, query string kept.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (base, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &head[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
