//! How fast the two hot paths are, through the real router on a real database:
//! webhook deliveries (authenticate, parse, decide, one transaction) and access
//! checks (one indexed read and the pure decision).
//!
//! `cargo bench --bench throughput` (SQLite in a temporary directory; set
//! `ENTITLED_BENCH_POSTGRES_URL` to an empty database's URL to measure
//! PostgreSQL too). `ENTITLED_BENCH_SUBSCRIPTIONS` sets how many subscriptions
//! are seeded (default 5000). Prints a table; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use entitled::secret::Secret;
use entitled::{AppState, Settings, app};
use http_body_util::BodyExt;
use tower::ServiceExt;

const ADMIN: &str = "bench-admin-token-0123456789";
const SECRET: &str = "bench-zenofy-secret";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let subscriptions = std::env::var("ENTITLED_BENCH_SUBSCRIPTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let dir =
        std::env::temp_dir().join(format!("entitled-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = format!("sqlite://{}/bench.db", dir.display());
    println!("| engine | what | count | total | per second | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    runtime.block_on(run("sqlite", &sqlite, subscriptions));
    if let Ok(url) = std::env::var("ENTITLED_BENCH_POSTGRES_URL") {
        runtime.block_on(run("postgres", &url, subscriptions));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(engine: &str, url: &str, subscriptions: usize) {
    let (store, _workers) = entitled::workers::connect(url).await.expect("database");
    store
        .bootstrap_admin_token(Some(&Secret::new(ADMIN)), entitled::time_fmt::now())
        .await
        .expect("token");
    let router = app(AppState::new(store.clone(), Settings::default()));
    let put = Request::builder()
        .method(Method::PUT)
        .uri("/v1/admin/integrations/zenofy")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"provider":"zenofy","secret":"{SECRET}"}}"#
        )))
        .expect("request");
    let status = router
        .clone()
        .oneshot(put)
        .await
        .expect("infallible")
        .status();
    assert!(status.is_success(), "integration: {status}");

    // Deliveries: one activation per subscription, 8 in flight at a time.
    let router = Arc::new(router);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(subscriptions);
    for chunk in (0..subscriptions).collect::<Vec<_>>().chunks(8) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let router = Arc::clone(&router);
                tokio::spawn(async move {
                    let t = Instant::now();
                    let reply = send(&router, activation(i)).await;
                    assert_eq!(reply, StatusCode::OK);
                    t.elapsed()
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await.expect("task"));
        }
    }
    report(
        engine,
        "webhook delivery (8 concurrent)",
        started.elapsed(),
        latencies,
    );

    // Access checks: every customer once, then again, one at a time.
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(subscriptions * 2);
    for i in (0..subscriptions).chain(0..subscriptions) {
        let request = Request::builder()
            .uri(format!(
                "/v1/access?email=buyer{i}%40example.com&product=pro&at=2096-05-15T00:00:00Z"
            ))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .expect("request");
        let t = Instant::now();
        assert_eq!(send(&router, request).await, StatusCode::OK);
        latencies.push(t.elapsed());
    }
    report(
        engine,
        "access check (sequential)",
        started.elapsed(),
        latencies,
    );
    store.close().await;
}

fn activation(i: usize) -> Request<Body> {
    let body = format!(
        r#"{{"event":"subscription.activated","subscriptionId":"sub-{i}","productId":"pro",
            "customerEmail":"buyer{i}@example.com","currentPeriodStart":"2096-05-01T00:00:00Z",
            "currentPeriodEnd":"2096-06-01T00:00:00Z","order":null}}"#
    );
    Request::builder()
        .method(Method::POST)
        .uri("/v1/webhooks/zenofy")
        .header("x-webhook-secret", SECRET)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

async fn send(router: &axum::Router, request: Request<Body>) -> StatusCode {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

fn report(engine: &str, what: &str, total: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {engine} | {what} | {} | {:.2} s | {:.0} | {} | {} |",
        latencies.len(),
        total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        ms(at(0.5)),
        ms(at(0.99)),
    );
}
