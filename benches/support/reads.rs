//! Access checks against a bare axum handler, in one run on this machine.
//!
//! - The limit: a bare axum handler answering a constant JSON document on
//!   `GET /v1/access`, served from this process by `axum::serve`.
//! - The service: `entitled serve` (the release binary) in its own process,
//!   on a database seeded with real subscriptions (activations through the
//!   webhook), then with those rows multiplied in SQL to the next level.
//! - Throughput: `wrk` at 64 connections, every request for a random seeded
//!   customer (a Lua script), against both.
//! - Latency: a fixed-rate (open-loop) generator at half the service's
//!   measured rate, 64 connections, random customers; p50/p99 from each
//!   request's send to its answer; the bare handler's p99 at the same rate
//!   is the floor this machine and generator set.
//! - Memory and start-up: the service's RSS after the load, and the time from
//!   its start to its first `/readyz` 200 (the read model loaded).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::{Client, InProcess, SECRET};

const CONNECTIONS: usize = 64;
const LOAD: Duration = Duration::from_secs(10);
const TOKEN: &str = "bench-admin-token-0123456789";

pub struct Level {
    pub subscriptions: usize,
    pub bare: f64,
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The bare handler's p99 under the same fixed rate: this machine's floor.
    pub bare_p99: Duration,
    pub ready: Duration,
    pub rss_mib: f64,
    pub failures: usize,
}

/// Seeds `levels[0]` real subscriptions into an empty database at `url`,
/// measures, multiplies the rows to each next level, measures again.
pub async fn run(url: &str, dir: &std::path::Path, levels: &[usize]) -> Vec<Level> {
    let bare = serve_bare().await;
    seed(url, levels[0]).await;
    let mut seeded = levels[0];
    let mut results = Vec::new();
    for &level in levels {
        if level > seeded {
            multiply(url, seeded, level / seeded).await;
            seeded = level / seeded * seeded;
        }
        results.push(measure(url, dir, bare, seeded).await);
    }
    results
}

async fn serve_bare() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let router = axum::Router::new().route(
        "/v1/access",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({
                "email": "c1@bench.example", "product": "pro", "entitled": true,
                "reason": "active", "valid_until": "2030-01-04T00:00:00Z", "plan": null,
                "at": "2026-12-02T00:00:00Z", "sources": [{"kind": "subscription",
                "id": "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", "state": "active",
                "provider": "zenofy", "integration": "zenofy",
                "access_from": "2026-01-01T00:00:00Z", "access_until": "2030-01-04T00:00:00Z",
                "plan": null}]
            }))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn activation(i: usize) -> String {
    format!(
        r#"{{"event":"subscription.activated","subscriptionId":"reads-{i}","productId":"pro",
            "status":"ACTIVE","currentPeriodStart":"2026-01-01T00:00:00Z",
            "currentPeriodEnd":"2030-01-01T00:00:00Z","customerEmail":"c{i}@bench.example"}}"#
    )
}

/// `count` activations through the real webhook, customers `c0..c{count}`.
async fn seed(url: &str, count: usize) {
    let service = InProcess::start(url).await;
    let addr = service.addr;
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for i in (sender..count).step_by(8) {
                    let (status, body) = client
                        .send(
                            "POST",
                            "/v1/webhooks/zenofy",
                            &[
                                ("content-type", "application/json"),
                                ("x-webhook-secret", SECRET),
                            ],
                            activation(i).as_bytes(),
                        )
                        .await;
                    assert_eq!(status, 200, "seeding: {body}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("seeder");
    }
    service.stop().await;
}

/// Copies every subscription and entitlement row `times - 1` more times,
/// copy `k` of customer `c{j}` becoming customer `c{k * seeded + j}` with ids
/// of the same UUID shape.
async fn multiply(url: &str, seeded: usize, times: usize) {
    let started = Instant::now();
    let postgres = url.starts_with("postgres");
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    // `n` = copy number, `j` = the customer number in the seeded email.
    let (series, number, id, email) = if postgres {
        (
            format!("generate_series(1, {}) AS n(k)", times - 1),
            "split_part(substr(x.email, 2), '@', 1)::bigint",
            "substr(x.{col}, 1, 24) || lpad(to_hex(n.k * {seeded} + {number}), 12, '0')",
            "'c' || (n.k * {seeded} + {number}) || '@bench.example'",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < {})
                  SELECT k FROM s) AS n",
                times - 1
            ),
            "CAST(substr(x.email, 2, instr(x.email, '@') - 2) AS INTEGER)",
            "substr(x.{col}, 1, 24) || printf('%012x', n.k * {seeded} + {number})",
            "'c' || (n.k * {seeded} + {number}) || '@bench.example'",
        )
    };
    let id = |col: &str| {
        id.replace("{col}", col)
            .replace("{seeded}", &seeded.to_string())
            .replace("{number}", number)
    };
    let email = email
        .replace("{seeded}", &seeded.to_string())
        .replace("{number}", number);
    let statements = [
        format!(
            "INSERT INTO subscriptions (id, integration, provider, external_id, email, product,
                 plan, state, current_period_start, current_period_end, access_from, version,
                 created_at, updated_at)
             SELECT {}, x.integration, x.provider, x.external_id || '-' || n.k, {email},
                 x.product, x.plan, x.state, x.current_period_start, x.current_period_end,
                 x.access_from, x.version, x.created_at, x.updated_at
             FROM subscriptions x, {series}",
            id("id")
        ),
        format!(
            "INSERT INTO entitlements (source_kind, source_id, product, email, integration,
                 provider, state, plan, basis_start, basis_end, grants, access_from,
                 access_until, grace_from, changed_at)
             SELECT x.source_kind, {}, x.product, {email}, x.integration, x.provider, x.state,
                 x.plan, x.basis_start, x.basis_end, x.grants, x.access_from, x.access_until,
                 x.grace_from, x.changed_at
             FROM entitlements x, {series}",
            id("source_id")
        ),
    ];
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("multiply rows");
    }
    if postgres {
        sqlx::raw_sql("ANALYZE")
            .execute(&mut conn)
            .await
            .expect("analyze");
    }
    conn.close().await.expect("close");
    eprintln!(
        "multiplied {seeded} subscriptions to {} in {:.0} s",
        seeded * times,
        started.elapsed().as_secs_f64()
    );
}

async fn measure(
    url: &str,
    dir: &std::path::Path,
    bare: std::net::SocketAddr,
    subscriptions: usize,
) -> Level {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("address")
    };
    let started = Instant::now();
    let mut child = Service::spawn(url, addr, dir);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("entitled serve exited: {status}");
        }
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await
            && Client::from_stream(stream)
                .send("GET", "/readyz", &[], b"")
                .await
                .0
                == 200
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = started.elapsed();
    let script = dir.join("access.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(42)\n\
             request = function()\n\
               local i = math.random(0, {})\n\
               return wrk.format(\"GET\", \"/v1/access?email=c\" .. i .. \"%40bench.example&product=pro\", \
             {{[\"Authorization\"] = \"Bearer {TOKEN}\"}})\n\
             end\n",
            subscriptions - 1
        ),
    )
    .expect("script");
    // Warm up both, then measure each.
    wrk(addr, &script, Duration::from_secs(2));
    let (rate, failures) = wrk(addr, &script, LOAD);
    let (bare_rate, _) = wrk(bare, &script, LOAD);
    let (p50, p99, late) = fixed_rate(addr, subscriptions, rate / 2.0, LOAD).await;
    let (_, bare_p99, _) = fixed_rate(bare, subscriptions, rate / 2.0, LOAD).await;
    let rss_mib = rss_kib(child.0.id()) as f64 / 1024.0;
    drop(child);
    Level {
        subscriptions,
        bare: bare_rate,
        rate,
        p50,
        p99,
        bare_p99,
        ready,
        rss_mib,
        failures: failures + late,
    }
}

/// `entitled serve`, killed when dropped.
struct Service(Child);

impl Service {
    fn spawn(url: &str, addr: std::net::SocketAddr, dir: &std::path::Path) -> Self {
        let log = std::fs::File::create(dir.join(format!("serve-{}.log", addr.port())))
            .expect("log file");
        Self(
            Command::new(env!("CARGO_BIN_EXE_entitled"))
                .arg("serve")
                .env("DATABASE_URL", url)
                .env("ENTITLED_LISTEN", addr.to_string())
                .env("ENTITLED_ADMIN_TOKEN", TOKEN)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn entitled serve"),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Requests per second and non-2xx answers (plus socket errors) from wrk.
fn wrk(addr: std::net::SocketAddr, script: &std::path::Path, load: Duration) -> (f64, usize) {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", load.as_secs())])
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said:\n{text}"));
    let failures = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Non-2xx or 3xx responses:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                .or_else(|| {
                    l.strip_prefix("Socket errors:").map(|v| {
                        v.split(',')
                            .filter_map(|p| p.split_whitespace().nth(1)?.parse::<usize>().ok())
                            .sum()
                    })
                })
        })
        .sum();
    (rate, failures)
}

/// Sends `rate` checks per second for `load` over 64 connections (each on
/// its own schedule, whatever the answers' pace), random customers. Returns
/// p50, p99 and how many answers were not 200.
async fn fixed_rate(
    addr: std::net::SocketAddr,
    subscriptions: usize,
    rate: f64,
    load: Duration,
) -> (Duration, Duration, usize) {
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (c as u64 + 1);
                let mut latencies = Vec::new();
                let mut failures = 0;
                let offset = interval.mul_f64(c as f64 / CONNECTIONS as f64);
                let mut next = start + offset;
                let auth = format!("Bearer {TOKEN}");
                while next < start + load {
                    tokio::time::sleep_until(next).await;
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let customer = seed % subscriptions as u64;
                    let path = format!("/v1/access?email=c{customer}%40bench.example&product=pro");
                    let sent = Instant::now();
                    let (status, _) = client
                        .send("GET", &path, &[("authorization", &auth)], b"")
                        .await;
                    latencies.push(sent.elapsed());
                    if status != 200 {
                        failures += 1;
                    }
                    next += interval;
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.expect("load task");
        latencies.extend(l);
        failures += f;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.5), at(0.99), failures)
}
