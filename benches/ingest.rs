//! Durable ingest through the real HTTP server against the engine's own
//! limit, measured in one run on the same machine, as a ratio (absolute
//! figures drift on a shared machine; the ratio much less).
//!
//! - The limit: SQLite, single-row `synchronous=FULL` commits from this process
//!   (one connection, one transaction per row: what one fsync per commit
//!   allows); PostgreSQL, single-row insert transactions from 16 concurrent
//!   connections through sqlx (what `pgbench -c 16` measures).
//! - Ingest: 16 concurrent senders, each on its own keep-alive connection,
//!   posting distinct Zenofy activations to `entitled`'s own server (the
//!   connection layer, the router, authentication, parsing, the state machine,
//!   the group commit), each answered only after its commit.
//!
//! - Rebuild: `entitled rebuild --dry-run` of what was ingested, its own
//!   process, deliveries re-derived per second against both of the above,
//!   and its peak RSS.
//! - Reads: access checks against a bare axum handler, at 1k and 1M
//!   subscriptions (see `support/reads.rs`).
//!
//! `cargo bench --bench ingest` (SQLite in a temporary directory; set
//! `ENTITLED_BENCH_POSTGRES_URL` to an empty database to measure PostgreSQL
//! too; `ENTITLED_BENCH_DELIVERIES`, default 4000;
//! `ENTITLED_BENCH_READ_LEVELS`, subscriptions for the reads, default
//! `1000,1000000`, empty to skip them; `ENTITLED_BENCH_KEEP` keeps the
//! SQLite files). Needs `wrk`. Prints tables; asserts nothing.

#[path = "support/reads.rs"]
mod reads;

use std::time::{Duration, Instant};

use entitled::secret::Secret;
use entitled::store::Store;
use entitled::{AppState, Settings, app};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "bench-admin-token-0123456789";
const SECRET: &str = "bench-zenofy-secret";
const SENDERS: usize = 16;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deliveries: usize = std::env::var("ENTITLED_BENCH_DELIVERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000);
    let dir =
        std::env::temp_dir().join(format!("entitled-ingest-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!(
        "| engine | engine limit (commits/s) | ingest (deliveries/s) | ratio | p50 | p99 | non-2xx |"
    );
    println!("|---|---|---|---|---|---|---|");
    let levels: Vec<usize> = std::env::var("ENTITLED_BENCH_READ_LEVELS")
        .unwrap_or_else(|_| "1000,1000000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let postgres = std::env::var("ENTITLED_BENCH_POSTGRES_URL").ok();
    runtime.block_on(async {
        let mut rebuilds = Vec::new();
        let limit = sqlite_commit_rate(&dir).await;
        let url = format!("sqlite://{}/bench.db", dir.display());
        let ingested = ingest(&url, deliveries).await;
        rebuilds.push(("SQLite", limit, ingested.rate, rebuild(&url)));
        report("SQLite", limit, ingested);
        if let Some(url) = &postgres {
            let limit = postgres_commit_rate(url).await;
            let ingested = ingest(url, deliveries).await;
            rebuilds.push(("PostgreSQL", limit, ingested.rate, rebuild(url)));
            report("PostgreSQL", limit, ingested);
        }
        println!();
        println!(
            "| engine | deliveries | rebuild (deliveries/s) | vs engine limit | vs ingest | whole run | peak RSS | differences |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (engine, limit, ingest, r) in &rebuilds {
            println!(
                "| {engine} | {} | {:.0} | {:.2}x | {:.2}x | {:.1} s | {:.0} MiB | {} |",
                r.deliveries,
                r.rate,
                r.rate / limit,
                r.rate / ingest,
                r.elapsed.as_secs_f64(),
                r.peak_rss_kib as f64 / 1024.0,
                r.differences
            );
        }
        if levels.is_empty() {
            return;
        }
        let mut rows = Vec::new();
        let url = format!("sqlite://{}/reads.db?mode=rwc", dir.display());
        for level in reads::run(&url, &dir, &levels).await {
            rows.push(("SQLite", level));
        }
        if let Some(base) = &postgres {
            // A schema of its own: the ingest run's rows stay out of it.
            let schema = format!("reads_{}", uuid::Uuid::now_v7().simple());
            let mut admin = sqlx::AnyConnection::connect(base).await.expect("postgres");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut admin)
                .await
                .expect("schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            for level in reads::run(&url, &dir, &levels).await {
                rows.push(("PostgreSQL", level));
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .expect("drop schema");
        }
        println!();
        println!(
            "| engine | subscriptions | bare axum (rps) | GET /v1/access (rps) | ratio | p50 at half rate | p99 at half rate | bare p99 at that rate | p99 vs first level | ready after start | RSS | non-2xx |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (engine, level) in &rows {
            let first = rows
                .iter()
                .find(|(e, _)| e == engine)
                .map(|(_, l)| l.p99)
                .unwrap_or(level.p99);
            println!(
                "| {engine} | {} | {:.0} | {:.0} | {:.2}x | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {:.1} s | {:.0} MiB | {} |",
                level.subscriptions,
                level.bare,
                level.rate,
                level.rate / level.bare,
                level.p50.as_secs_f64() * 1000.0,
                level.p99.as_secs_f64() * 1000.0,
                level.bare_p99.as_secs_f64() * 1000.0,
                level.p99.as_secs_f64() / first.as_secs_f64(),
                level.ready.as_secs_f64(),
                level.rss_mib,
                level.failures
            );
        }
    });
    if std::env::var_os("ENTITLED_BENCH_KEEP").is_some() {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

struct Ingest {
    rate: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
}

fn report(engine: &str, limit: f64, ingest: Ingest) {
    println!(
        "| {engine} | {limit:.0} | {:.0} | {:.2}x | {:.2} ms | {:.2} ms | {} |",
        ingest.rate,
        ingest.rate / limit,
        ingest.p50.as_secs_f64() * 1000.0,
        ingest.p99.as_secs_f64() * 1000.0,
        ingest.failures
    );
}

/// Single-row `synchronous=FULL` commits per second, one connection.
async fn sqlite_commit_rate(dir: &std::path::Path) -> f64 {
    let url = format!("sqlite://{}/limit.db?mode=rwc", dir.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    sqlx::raw_sql(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .expect("set-up");
    let rows = 2000;
    let started = Instant::now();
    for i in 0..rows {
        sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
            .bind(i as i64)
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// Single-row insert transactions per second from 16 connections.
async fn postgres_commit_rate(url: &str) -> f64 {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(SENDERS as u32)
        .connect(url)
        .await
        .expect("postgres");
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_limit; CREATE TABLE bench_limit (id BIGINT PRIMARY KEY, v TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("set-up");
    let each = 500;
    let started = Instant::now();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    sqlx::query("INSERT INTO bench_limit (id, v) VALUES ($1, 'x')")
                        .bind((s * each + i) as i64)
                        .execute(&pool)
                        .await
                        .expect("insert");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let rate = (SENDERS * each) as f64 / started.elapsed().as_secs_f64();
    let _ = sqlx::raw_sql("DROP TABLE bench_limit").execute(&pool).await;
    rate
}

/// Serves `entitled` on a free port over `url` and drives it with 16 senders.
/// `entitled`'s own HTTP server in this process, on a migrated database with
/// the bench's admin token and a Zenofy integration `zenofy` (secret
/// [`SECRET`]).
struct InProcess {
    store: Store,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    async fn start(url: &str) -> Self {
        let (store, _workers) = entitled::workers::connect(url).await.expect("database");
        store
            .bootstrap_admin_token(Some(&Secret::new(ADMIN)), entitled::time_fmt::now())
            .await
            .expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(entitled::server::serve(
            listener,
            app(AppState::new(store.clone(), Settings::default())),
            entitled::server::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let mut admin = Client::connect(addr).await;
        let (status, body) = admin
            .send(
                "PUT",
                "/v1/admin/integrations/zenofy",
                &[
                    ("authorization", &format!("Bearer {ADMIN}")),
                    ("content-type", "application/json"),
                ],
                format!(r#"{{"provider":"zenofy","secret":"{SECRET}"}}"#).as_bytes(),
            )
            .await;
        assert!((200..300).contains(&status), "integration: {status} {body}");
        Self {
            store,
            addr,
            stop,
            server,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.store.close().await;
    }
}

async fn ingest(url: &str, deliveries: usize) -> Ingest {
    let service = InProcess::start(url).await;
    let addr = service.addr;

    // Distinct subscriptions on every run, so a database used before still
    // sees only first deliveries.
    let run = uuid::Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let run = run.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut latencies = Vec::new();
                let mut failures = 0;
                for i in (sender..deliveries).step_by(SENDERS) {
                    let body = activation(&run, i);
                    let t = Instant::now();
                    let (status, answer) = client
                        .send(
                            "POST",
                            "/v1/webhooks/zenofy",
                            &[
                                ("content-type", "application/json"),
                                ("x-webhook-secret", SECRET),
                            ],
                            body.as_bytes(),
                        )
                        .await;
                    latencies.push(t.elapsed());
                    if !(200..300).contains(&status) {
                        if failures == 0 && sender == 0 {
                            eprintln!("first non-2xx: {status} {answer}");
                        }
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(deliveries);
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.expect("sender");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    service.stop().await;
    Ingest {
        rate: deliveries as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        failures,
    }
}

struct Rebuild {
    deliveries: u64,
    /// Deliveries re-derived per second of the whole run (derivation,
    /// comparison, the scratch store made and removed).
    rate: f64,
    elapsed: Duration,
    peak_rss_kib: u64,
    differences: u64,
}

/// `entitled rebuild --dry-run --json` on what was just ingested, as its own
/// process under `/usr/bin/time` (its peak RSS).
fn rebuild(url: &str) -> Rebuild {
    let started = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .args([
            "-f",
            "%M",
            env!("CARGO_BIN_EXE_entitled"),
            "rebuild",
            "--dry-run",
            "--json",
        ])
        .args(["--database-url", url])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run entitled rebuild under /usr/bin/time");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rebuild failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let deliveries = report["counts"]["deliveries"].as_u64().unwrap_or(0);
    Rebuild {
        deliveries,
        rate: deliveries as f64 / elapsed.as_secs_f64(),
        elapsed,
        peak_rss_kib: stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0),
        differences: report["counts"]["sources_changed"].as_u64().unwrap_or(0),
    }
}

fn activation(run: &str, i: usize) -> String {
    format!(
        r#"{{"event":"subscription.activated","subscriptionId":"bench-{run}-{i}","productId":"pro",
            "status":"ACTIVE","currentPeriodStart":"2026-01-01T00:00:00Z",
            "currentPeriodEnd":"2030-01-01T00:00:00Z","customerEmail":"c{i}-{run}@example.com"}}"#
    )
}

/// A minimal HTTP/1.1 keep-alive client: enough to drive the server.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await.expect("write");
        let end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while self.buffer.len() < end + 4 + length {
            self.fill().await;
        }
        let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length]).into_owned();
        self.buffer.drain(..end + 4 + length);
        (status, body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}
