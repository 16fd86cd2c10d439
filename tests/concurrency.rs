//! Concurrent deliveries for one subscription serialise: no lost update, no
//! 5xx, a history entry per delivery, the right outcome for each given the
//! order they were serialised in, and redeliveries of the very same bytes
//! applied once. In-process on both engines, and across two `entitled serve`
//! processes sharing one PostgreSQL database.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use common::server::{PgDatabase, Server};
use common::{Reply, SECRET, TempDir, TestApp, fixture_json};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, offset};
use time::{Duration, OffsetDateTime};

/// Deliveries fired at once.
const N: usize = 24;

/// The end of the activated period of every subscription here.
const ACTIVATED_END: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);

on_both_databases!(
    concurrent_renewals_on_one_subscription_lose_no_update,
    concurrent_identical_deliveries_apply_once,
);

/// `subscription.activated` for `external_id`, period 2026-05-01 → 2026-06-01.
fn activation(external_id: &str, email: &str) -> Value {
    let mut body = fixture_json("zenofy/subscription.activated.json");
    body["subscriptionId"] = json!(external_id);
    body["customerEmail"] = json!(email);
    body["order"]["customer"]["email"] = json!(email);
    body
}

/// `subscription.renewed` for `external_id` whose new period ends at `end`.
fn renewal(external_id: &str, email: &str, end: &str, order: usize) -> Value {
    let mut body = activation(external_id, email);
    let order_id = format!("renewal-order-{order}");
    body["event"] = json!("subscription.renewed");
    body["isRenewal"] = json!(true);
    body["currentPeriodEnd"] = json!(end);
    body["renewal"] = json!({
        "renewalOrderId": order_id,
        "previousPeriodEnd": "2026-06-01T10:00:00+02:00",
        "newPeriodEnd": end,
    });
    body["lastPaidOrderId"] = json!(order_id);
    body["orderId"] = json!(order_id);
    body
}

/// `N` distinct period ends, all later than the activated one, each with the
/// order it is sent in: a shuffle, so the latest is neither first nor last. Odd
/// ones are written with a +02:00 offset. Returns `(as sent, as stored (UTC))`.
fn renewal_ends() -> Vec<(String, String)> {
    let ends: Vec<OffsetDateTime> = (0..N as i64)
        .map(|i| ACTIVATED_END + Duration::days(30 * (i + 1) + (i * 7) % 11) + Duration::hours(i))
        .collect();
    (0..N)
        .map(|k| {
            let end = ends[(k * 7 + 3) % N];
            let utc = end.format(&Rfc3339).unwrap();
            let sent = if k % 2 == 1 {
                end.to_offset(offset!(+2)).format(&Rfc3339).unwrap()
            } else {
                utc.clone()
            };
            (sent, utc)
        })
        .collect()
}

fn latest(ends: &[(String, String)]) -> OffsetDateTime {
    ends.iter()
        .map(|(_, utc)| OffsetDateTime::parse(utc, &Rfc3339).unwrap())
        .max()
        .unwrap()
}

fn utc(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// Sends every body at once (each in its own task, released together) and
/// returns the replies in the order of `bodies`.
async fn fire(app: &Arc<TestApp>, bodies: Vec<Vec<u8>>) -> Vec<Reply> {
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.zenofy(body).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("delivery task"));
    }
    replies
}

/// Checks a subscription's history after an activation and `N` renewals sent
/// concurrently: one entry per delivery, and each outcome right for the state
/// it was serialised after (`applied` when its end was later than every end
/// applied before it, else `stale`). Returns how many were applied.
fn check_renewal_history(
    history: &[Value],
    activation_delivery: &str,
    ends_by_delivery: &HashMap<String, (String, String)>,
) -> usize {
    assert_eq!(history.len(), 1 + N, "{history:#?}");
    assert_eq!(history[0]["event"], "activated");
    assert_eq!(history[0]["outcome"], "applied");
    assert_eq!(history[0]["to_state"], "active");
    assert_eq!(history[0]["delivery_id"], activation_delivery);
    let mut known_end = utc(ACTIVATED_END);
    let mut seen = HashSet::new();
    let mut applied = 0;
    for entry in &history[1..] {
        let delivery = entry["delivery_id"].as_str().expect("delivery_id");
        assert!(seen.insert(delivery.to_owned()), "{delivery} twice");
        let (sent, end) = ends_by_delivery
            .get(delivery)
            .unwrap_or_else(|| panic!("history names unknown delivery {delivery}"));
        assert_eq!(entry["event"], "renewed", "{entry}");
        assert_eq!(entry["from_state"], "active", "{entry}");
        // Both ends are UTC RFC 3339 without fractions: they sort as text.
        if *end > known_end {
            assert_eq!(
                entry["outcome"], "applied",
                "end {sent} is later than {known_end}: {entry}"
            );
            assert_eq!(entry["to_state"], "active", "{entry}");
            known_end = end.clone();
            applied += 1;
        } else {
            assert_eq!(
                entry["outcome"], "stale",
                "end {sent} is earlier than {known_end}: {entry}"
            );
            assert!(
                entry["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "a stale entry says why: {entry}"
            );
        }
    }
    assert_eq!(seen.len(), N);
    applied
}

/// `N` renewals of one subscription at once, each for a different period.
async fn concurrent_renewals_on_one_subscription_lose_no_update(app: TestApp) {
    let app = Arc::new(app);
    app.zenofy_integration().await;
    let (external, email) = ("sub-concurrent-renewals", "renewals@example.com");
    let activated = app.zenofy(activation(external, email).to_string()).await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    assert_eq!(activated.body["outcome"], "applied");
    let id = activated.body["subject"]["id"].as_str().unwrap().to_owned();
    let activation_delivery = activated.body["delivery_id"].as_str().unwrap().to_owned();

    let ends = renewal_ends();
    let bodies = ends
        .iter()
        .enumerate()
        .map(|(k, (sent, _))| renewal(external, email, sent, k).to_string().into_bytes())
        .collect();
    let replies = fire(&app, bodies).await;

    let mut ends_by_delivery = HashMap::new();
    let (mut applied, mut stale) = (0, 0);
    for (reply, end) in replies.iter().zip(&ends) {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "end {}: {:?}",
            end.0,
            reply.body
        );
        assert_eq!(reply.body["subject"]["kind"], "subscription");
        assert_eq!(reply.body["subject"]["id"], id.as_str(), "{:?}", reply.body);
        assert_eq!(reply.body["subject"]["state"], "active", "{:?}", reply.body);
        match reply.body["outcome"].as_str() {
            Some("applied") => applied += 1,
            Some("stale") => stale += 1,
            other => panic!("end {}: outcome {other:?}: {:?}", end.0, reply.body),
        }
        let delivery = reply.body["delivery_id"].as_str().expect("delivery_id");
        assert!(
            ends_by_delivery
                .insert(delivery.to_owned(), end.clone())
                .is_none(),
            "delivery id {delivery} answered twice"
        );
    }
    assert_eq!(applied + stale, N);
    assert!(applied >= 1, "the latest period at least was applied");

    let latest = latest(&ends);
    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["current_period_end"], utc(latest), "lost update");
    assert_eq!(detail["current_period_start"], "2026-05-01T08:00:00Z");
    let history = detail["history"].as_array().expect("history");
    let applied_in_history =
        check_renewal_history(history, &activation_delivery, &ends_by_delivery);
    assert_eq!(applied_in_history, applied);
    // Each reply told the outcome its history entry records.
    for entry in &history[1..] {
        let delivery = entry["delivery_id"].as_str().unwrap();
        let reply = replies
            .iter()
            .find(|r| r.body["delivery_id"] == delivery)
            .unwrap();
        assert_eq!(reply.body["outcome"], entry["outcome"], "{delivery}");
    }

    // The entitlement row followed the latest period, grace included.
    let inside = utc(latest - Duration::days(1));
    let access = app.access(email, "pro", Some(&inside)).await;
    assert_eq!(access.status, StatusCode::OK, "{:?}", access.body);
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["reason"], "active", "{:?}", access.body);
    let until = utc(latest + Duration::days(3));
    assert_eq!(
        access.body["valid_until"],
        until.as_str(),
        "{:?}",
        access.body
    );
    let in_grace = utc(latest + Duration::days(1));
    let access = app.access(email, "pro", Some(&in_grace)).await;
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["reason"], "grace_period", "{:?}", access.body);
    assert_eq!(
        access.body["valid_until"],
        until.as_str(),
        "{:?}",
        access.body
    );
}

/// The very same bytes `N` times at once: the first sight of a subscription,
/// then a renewal. Each batch is applied once; the others are duplicates that
/// point at the same subscription and leave its history alone.
async fn concurrent_identical_deliveries_apply_once(app: TestApp) {
    let app = Arc::new(app);
    app.zenofy_integration().await;
    let (external, email) = ("sub-concurrent-identical", "identical@example.com");

    let batches = [
        (activation(external, email), "2026-06-01T08:00:00Z", 1),
        (
            renewal(external, email, "2026-07-01T10:00:00+02:00", 1),
            "2026-07-01T08:00:00Z",
            2,
        ),
    ];
    let mut id: Option<String> = None;
    let mut applied_deliveries = Vec::new();
    for (body, end, history_len) in batches {
        let bytes = body.to_string().into_bytes();
        let replies = fire(&app, vec![bytes; N]).await;
        let mut applied = Vec::new();
        let mut delivery_ids = HashSet::new();
        for reply in &replies {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            assert_eq!(reply.body["subject"]["kind"], "subscription");
            assert_eq!(reply.body["subject"]["state"], "active", "{:?}", reply.body);
            let subject = reply.body["subject"]["id"].as_str().expect("subject id");
            assert_eq!(
                id.get_or_insert_with(|| subject.to_owned()),
                subject,
                "one subscription: {:?}",
                reply.body
            );
            let delivery = reply.body["delivery_id"].as_str().expect("delivery_id");
            assert!(delivery_ids.insert(delivery.to_owned()), "{delivery} twice");
            match reply.body["outcome"].as_str() {
                Some("applied") => applied.push(delivery.to_owned()),
                Some("duplicate") => {}
                other => panic!("outcome {other:?}: {:?}", reply.body),
            }
        }
        assert_eq!(applied.len(), 1, "exactly one applied: {replies:#?}");
        applied_deliveries.push(applied.remove(0));

        let detail = app.subscription(id.as_deref().unwrap()).await;
        assert_eq!(detail["state"], "active");
        assert_eq!(detail["current_period_end"], end);
        let history = detail["history"].as_array().expect("history");
        assert_eq!(history.len(), history_len, "{history:#?}");
        let recorded: Vec<_> = history.iter().map(|h| h["delivery_id"].clone()).collect();
        assert_eq!(recorded, applied_deliveries, "{history:#?}");
        assert!(history.iter().all(|h| h["outcome"] == "applied"));
    }
}

/// The replicas' case: two `entitled serve` processes on one PostgreSQL
/// database, renewals of one subscription sent alternately to both at once.
#[test]
fn two_processes_on_one_postgres_database_lose_no_update() {
    let Some(db) = PgDatabase::create() else {
        eprintln!(
            "skipped two_processes_on_one_postgres_database_lose_no_update: \
             set ENTITLED_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    let logs = TempDir::new();
    // Started together, as replicas are: they migrate the empty database at once.
    let mut servers = [
        Server::spawn(&db.url, &logs.0),
        Server::spawn(&db.url, &logs.0),
    ];
    for server in &mut servers {
        server.wait_ready();
    }
    let servers = Arc::new(servers);

    let integration = json!({
        "provider": "zenofy",
        "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}
    });
    let (status, body) =
        servers[0].admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");

    let webhook = |server: &Server, body: &Value| {
        server.call(
            "POST",
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            body.to_string().as_bytes(),
        )
    };
    let (external, email) = ("sub-two-processes", "replicas@example.com");
    // Activated through the other process: it sees the integration at once.
    let (status, activated) = webhook(&servers[1], &activation(external, email));
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["outcome"], "applied", "{activated}");
    let id = activated["subject"]["id"].as_str().unwrap().to_owned();
    let activation_delivery = activated["delivery_id"].as_str().unwrap().to_owned();

    let ends = renewal_ends();
    let barrier = Arc::new(std::sync::Barrier::new(N));
    let threads: Vec<_> = ends
        .iter()
        .enumerate()
        .map(|(k, (sent, _))| {
            let body = renewal(external, email, sent, k);
            let (servers, barrier) = (servers.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                webhook(&servers[k % 2], &body)
            })
        })
        .collect();
    let replies: Vec<(u16, Value)> = threads
        .into_iter()
        .map(|t| t.join().expect("delivery thread"))
        .collect();

    let mut ends_by_delivery = HashMap::new();
    let mut outcomes = HashMap::new();
    for ((status, reply), end) in replies.iter().zip(&ends) {
        assert_eq!(
            *status,
            200,
            "end {}: {reply}\nlogs:\n{}\n{}",
            end.0,
            servers[0].log(),
            servers[1].log()
        );
        assert_eq!(reply["subject"]["id"], id.as_str(), "{reply}");
        assert_eq!(reply["subject"]["state"], "active", "{reply}");
        let outcome = reply["outcome"].as_str().unwrap_or_default();
        assert!(
            outcome == "applied" || outcome == "stale",
            "end {}: {reply}",
            end.0
        );
        let delivery = reply["delivery_id"].as_str().expect("delivery_id");
        ends_by_delivery.insert(delivery.to_owned(), end.clone());
        outcomes.insert(delivery.to_owned(), outcome.to_owned());
    }
    assert_eq!(ends_by_delivery.len(), N, "distinct delivery ids");
    let applied = outcomes.values().filter(|o| *o == "applied").count();
    assert!(applied >= 1);

    let latest = latest(&ends);
    for server in servers.iter() {
        let (status, detail) = server.admin("GET", &format!("/v1/admin/subscriptions/{id}"), None);
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["state"], "active");
        assert_eq!(detail["current_period_end"], utc(latest), "lost update");
        let history = detail["history"].as_array().expect("history");
        assert_eq!(
            check_renewal_history(history, &activation_delivery, &ends_by_delivery),
            applied
        );
        for entry in &history[1..] {
            let delivery = entry["delivery_id"].as_str().unwrap();
            assert_eq!(entry["outcome"], outcomes[delivery].as_str(), "{delivery}");
        }
    }
    let inside = utc(latest - Duration::days(1));
    // Checks are answered from each replica's memory: the one that did not take
    // the last renewal shows it once it has followed the database (every
    // 200 ms). Polled, with a guard against a hang, not a speed check.
    let path = format!(
        "/v1/access?email={}&product=pro&at={}",
        common::urlencode(email),
        common::urlencode(&inside)
    );
    let expected_until = utc(latest + Duration::days(3));
    let started = std::time::Instant::now();
    let (status, access) = loop {
        let (status, access) = servers[1].admin("GET", &path, None);
        if access["valid_until"] == expected_until.as_str()
            || started.elapsed() > std::time::Duration::from_secs(20)
        {
            break (status, access);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status, 200, "{access}");
    assert_eq!(access["entitled"], true, "{access}");
    assert_eq!(
        access["valid_until"],
        utc(latest + Duration::days(3)),
        "{access}"
    );
    // Servers are killed (their Drop) before the database is dropped.
    drop(servers);
    drop(db);
}
