//! DESIGN.md "Rebuild and previews": the rebuild follows commit order. Two
//! PostgreSQL replicas with the clock ticking every second, several senders
//! at once, renewals timed around the instant the clock expires their
//! subscription (some land before the tick, some after, some commit after a
//! tick they were received before), duplicates and stale events: a dry-run
//! rebuild of what nobody touched by hand finds no difference, for several
//! seeds.

mod common;

use std::time::{Duration, Instant as Wall};

use common::lifecycle::Rng;
use common::server::{PgDatabase, Server};
use common::{SECRET, TempDir, fixture_json};
use serde_json::{Value, json};

const SUBSCRIPTIONS: usize = 24;
const SENDERS: usize = 6;

#[test]
fn concurrent_writers_and_ticks_rebuild_to_no_difference_on_postgres() {
    for seed in [0x5eed_0001_u64, 0x5eed_0002, 0x5eed_0003] {
        let Some(db) = PgDatabase::create() else {
            eprintln!(
                "skipped concurrent_writers_and_ticks_rebuild_to_no_difference_on_postgres: \
                 set ENTITLED_TEST_POSTGRES_URL to run it"
            );
            return;
        };
        run(&db.url, seed);
    }
}

/// A Zenofy event for `subscription` with the period `start`..`end`.
fn event(
    name: &str,
    subscription: &str,
    start: time::OffsetDateTime,
    end: time::OffsetDateTime,
) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenofy/{name}.json"));
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(format!("{subscription}@example.com"));
    body["currentPeriodStart"] = json!(entitled::time_fmt::rfc3339(start));
    body["currentPeriodEnd"] = json!(entitled::time_fmt::rfc3339(end));
    body["renewal"] = Value::Null;
    serde_json::to_vec(&body).unwrap()
}

/// One delivery to send at `at` (from the run's start).
struct Send {
    at: Duration,
    body: Vec<u8>,
}

fn run(url: &str, seed: u64) {
    let logs = TempDir::new();
    let env = [("ENTITLED_CLOCK_INTERVAL_SECONDS", "1")];
    let mut a = Server::spawn_with_env(url, &logs.0, &env);
    let mut b = Server::spawn_with_env(url, &logs.0, &env);
    a.wait_ready();
    b.wait_ready();
    let replicas = [&a, &b];

    // No grace: access (and the clock's expiry) ends at the period end.
    let (status, body) = a.admin(
        "PUT",
        "/v1/admin/products/pro",
        Some(&json!({"grace_period_seconds": 0})),
    );
    assert!(status == 200 || status == 201, "{body}");
    let (status, body) = a.admin(
        "PUT",
        "/v1/admin/integrations/zenofy",
        Some(&json!({"provider": "zenofy", "secret": SECRET,
            "product_map": {"507f1f77bcf86cd799439011": "pro"}})),
    );
    assert_eq!(status, 201, "{body}");

    let mut rng = Rng(seed);
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::days(30);
    let mut sends = Vec::new();
    for i in 0..SUBSCRIPTIONS {
        let id = format!("sub-{seed:x}-{i}");
        // The first period ends 2 to 9 s from now, to the millisecond.
        let ends_in = Duration::from_millis(2_000 + rng.below(7_000) as u64);
        let end = now + ends_in;
        let next = end + time::Duration::days(30);
        sends.push(Send {
            at: Duration::ZERO,
            body: event("subscription.activated", &id, start, end),
        });
        // The renewal lands within 1.5 s of the end, either side: before the
        // tick that would expire it, or after (a reactivation, then).
        let jitter = rng.below(3_000) as i64 - 1_500;
        let renew_at = Duration::from_millis((ends_in.as_millis() as i64 + jitter).max(0) as u64);
        let renewal = event("subscription.renewed", &id, end, next);
        sends.push(Send {
            at: renew_at,
            body: renewal.clone(),
        });
        match rng.below(4) {
            // The same renewal again, a moment later, to the other replica.
            0 => sends.push(Send {
                at: renew_at + Duration::from_millis(rng.below(400) as u64),
                body: renewal,
            }),
            // The first period's activation again, late: stale or rejected.
            1 => sends.push(Send {
                at: renew_at + Duration::from_millis(rng.below(1_000) as u64),
                body: event("subscription.activated", &id, start, end),
            }),
            // Suspended for the new period around the same time.
            2 => sends.push(Send {
                at: renew_at + Duration::from_millis(rng.below(800) as u64),
                body: event("subscription.suspended", &id, end, next),
            }),
            _ => {}
        }
    }
    // The activations go first, in order; the rest at their instants, by
    // several senders at once, each to either replica.
    let (first, rest): (Vec<Send>, Vec<Send>) = sends.into_iter().partition(|s| s.at.is_zero());
    for send in &first {
        post(replicas[rng.below(2)], &send.body);
    }
    let began = Wall::now();
    let mut lanes: Vec<Vec<(Send, usize)>> = (0..SENDERS).map(|_| Vec::new()).collect();
    for send in rest {
        let lane = rng.below(SENDERS);
        let replica = rng.below(2);
        lanes[lane].push((send, replica));
    }
    std::thread::scope(|scope| {
        for mut lane in lanes {
            lane.sort_by_key(|(s, _)| s.at);
            scope.spawn(move || {
                for (send, replica) in lane {
                    if let Some(wait) = send.at.checked_sub(began.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    post(replicas[replica], &send.body);
                }
            });
        }
    });
    // Let the clock expire what no renewal reached.
    std::thread::sleep(Duration::from_millis(2_500));

    let (status, report) = a.admin("POST", "/v1/admin/rebuild", Some(&json!({"dry_run": true})));
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["sources_changed"], &report["access_changed"]),
        (&json!([]), &json!([])),
        "seed {seed:x}: {report:#}"
    );
    assert!(
        report["counts"]["clock_ticks"].as_u64().unwrap() > 0,
        "seed {seed:x}: the clock expired something: {}",
        report["counts"]
    );
    assert_eq!(report["counts"]["skipped"], 0, "{}", report["counts"]);
}

fn post(server: &Server, body: &[u8]) {
    let (status, reply) = server.call(
        "POST",
        "/v1/webhooks/zenofy",
        &[
            ("content-type", "application/json"),
            ("x-webhook-secret", SECRET),
        ],
        body,
    );
    assert_eq!(status, 200, "{reply}");
}
