//! A 2xx is sent only after the delivery and all its effects are committed:
//! SIGKILL `entitled serve` in the middle of a stream of deliveries, start it
//! again on the same database, and every acknowledged delivery is there, with
//! its subscription and its history entry. SQLite always (a file, WAL,
//! `synchronous=FULL`); PostgreSQL when `ENTITLED_TEST_POSTGRES_URL` is set.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::server::{PgDatabase, Server, http_request};
use common::{SECRET, TempDir, fixture_json};
use serde_json::{Value, json};

/// Threads posting deliveries at the same time.
const SENDERS: usize = 4;

/// How long the load runs before the SIGKILL.
const LOAD: Duration = Duration::from_secs(1);

mod sqlite {
    #[test]
    fn sigkill_under_webhook_load_loses_no_acknowledged_delivery() {
        let dir = super::TempDir::new();
        let url = format!("sqlite://{}/entitled.db", dir.0.display());
        super::sigkill_under_webhook_load_loses_no_acknowledged_delivery(&url, &dir.0);
    }
}

mod postgres {
    #[test]
    fn sigkill_under_webhook_load_loses_no_acknowledged_delivery() {
        let Some(db) = super::PgDatabase::create() else {
            eprintln!(
                "skipped sigkill_under_webhook_load_loses_no_acknowledged_delivery: \
                 set ENTITLED_TEST_POSTGRES_URL to run it on PostgreSQL"
            );
            return;
        };
        let logs = super::TempDir::new();
        super::sigkill_under_webhook_load_loses_no_acknowledged_delivery(&db.url, &logs.0);
    }
}

/// A delivery the service answered 200 to.
#[derive(Debug)]
struct Acknowledged {
    external_id: String,
    email: String,
    delivery_id: String,
    subject_id: String,
}

/// A `subscription.activated` for a subscription nobody has seen.
const PERIOD_END_SENT: &str = "2096-06-01T10:00:00+02:00";
const PERIOD_END_STORED: &str = "2096-06-01T08:00:00Z";

fn fresh_activation() -> (String, String, Vec<u8>) {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let external_id = format!("sub-{unique}");
    let email = format!("buyer-{unique}@example.com");
    let mut body = fixture_json("zenofy/subscription.activated.json");
    body["subscriptionId"] = json!(external_id);
    body["customerEmail"] = json!(email);
    body["order"]["customer"]["email"] = json!(email);
    // A period that has not ended: the restarted server's clock would
    // otherwise (rightly) record the fixture's 2026 period as expired.
    body["currentPeriodStart"] = json!("2096-05-01T10:00:00+02:00");
    body["currentPeriodEnd"] = json!(PERIOD_END_SENT);
    (external_id, email, body.to_string().into_bytes())
}

/// What one sender saw: acknowledged deliveries, and answers that were not
/// 200 or came before the kill without an answer (both faults).
#[derive(Default)]
struct Sent {
    acknowledged: Vec<Acknowledged>,
    faults: Vec<String>,
}

fn send_until_killed(addr: std::net::SocketAddr, killed: &AtomicBool) -> Sent {
    let mut sent = Sent::default();
    while !killed.load(Ordering::SeqCst) {
        let (external_id, email, body) = fresh_activation();
        let reply = http_request(
            addr,
            "POST",
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            &body,
        );
        match reply {
            Ok((200, reply)) => {
                let reply: Value = match serde_json::from_str(&reply) {
                    Ok(reply) => reply,
                    Err(e) => {
                        sent.faults
                            .push(format!("200 with a body that is not JSON ({e}): {reply}"));
                        continue;
                    }
                };
                if reply["outcome"] != "applied" || reply["subject"]["state"] != "active" {
                    sent.faults
                        .push(format!("first sight not applied: {reply}"));
                }
                sent.acknowledged.push(Acknowledged {
                    external_id,
                    email,
                    delivery_id: reply["delivery_id"].as_str().unwrap_or_default().to_owned(),
                    subject_id: reply["subject"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            // A complete answer is the service's, whether or not the kill
            // follows: a non-200 one under load is a fault.
            Ok((status, reply)) => sent.faults.push(format!("{status}: {reply}")),
            // No (complete) answer: expected once the process is killed.
            Err(e) => {
                if !killed.load(Ordering::SeqCst) {
                    sent.faults.push(format!("no answer before the kill: {e}"));
                }
                break;
            }
        }
    }
    sent
}

/// Load, SIGKILL, restart, and check every acknowledged delivery.
fn sigkill_under_webhook_load_loses_no_acknowledged_delivery(
    database_url: &str,
    log_dir: &std::path::Path,
) {
    let mut server = Server::start(database_url, log_dir);
    let integration = json!({
        "provider": "zenofy",
        "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}
    });
    let (status, body) = server.admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");

    let killed = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (addr, killed) = (server.addr, killed.clone());
            std::thread::spawn(move || send_until_killed(addr, &killed))
        })
        .collect();
    std::thread::sleep(LOAD);
    // The flag first: any failure after it may be the kill's doing.
    killed.store(true, Ordering::SeqCst);
    server.kill();
    let log = server.log();
    let mut acknowledged = Vec::new();
    let mut faults = Vec::new();
    for sender in senders {
        let sent = sender.join().expect("sender thread");
        acknowledged.extend(sent.acknowledged);
        faults.extend(sent.faults);
    }
    drop(server);
    eprintln!(
        "{} deliveries acknowledged before the SIGKILL ({database_url})",
        acknowledged.len()
    );
    assert!(faults.is_empty(), "{faults:#?}\nserver log:\n{log}");
    assert!(!acknowledged.is_empty(), "nothing was acknowledged:\n{log}");

    let server = Server::start(database_url, log_dir);
    let mut missing = Vec::new();
    for ack in &acknowledged {
        assert!(!ack.subject_id.is_empty(), "{ack:?}");
        let (status, detail) = server.admin(
            "GET",
            &format!("/v1/admin/subscriptions/{}", ack.subject_id),
            None,
        );
        if status != 200 {
            missing.push(format!("{ack:?}: {status} {detail}"));
            continue;
        }
        assert_eq!(detail["external_id"], ack.external_id.as_str(), "{detail}");
        assert_eq!(detail["email"], ack.email.as_str(), "{detail}");
        assert_eq!(detail["state"], "active", "{ack:?}: {detail}");
        assert_eq!(detail["current_period_end"], PERIOD_END_STORED);
        let history = detail["history"].as_array().expect("history");
        let entry = history
            .iter()
            .find(|h| h["delivery_id"] == ack.delivery_id.as_str());
        match entry {
            Some(entry) => {
                assert_eq!(entry["outcome"], "applied", "{entry}");
                assert_eq!(entry["to_state"], "active", "{entry}");
            }
            None => missing.push(format!("{ack:?}: history without it: {detail}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged deliveries lost after SIGKILL:\n{missing:#?}",
        missing.len(),
        acknowledged.len()
    );

    // The restarted process takes deliveries again, the killed ones' unfinished
    // work notwithstanding.
    let (_, _, body) = fresh_activation();
    let (status, reply) = server.call(
        "POST",
        "/v1/webhooks/zenofy",
        &[
            ("content-type", "application/json"),
            ("x-webhook-secret", SECRET),
        ],
        &body,
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["outcome"], "applied", "{reply}");
}
