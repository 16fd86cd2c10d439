//! Notifications through real `entitled serve` processes: the retry schedule
//! and the clock interval from the environment, in real time; a SIGKILL with
//! messages pending; two replicas on one PostgreSQL database. Patience
//! figures are how long a failing test waits before it gives up, never
//! performance assertions; lags are printed.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::receiver::{Received, Receiver};
use common::server::{PgDatabase, Server};
use common::{ADMIN_TOKEN, SECRET, TempDir, fixture_json, urlencode};
use entitled::time_fmt;

/// Where a process test keeps its data: a SQLite file, or a fresh PostgreSQL
/// database (`None` when PostgreSQL is not configured).
enum Data {
    Sqlite(TempDir),
    Postgres(PgDatabase),
}

impl Data {
    fn sqlite() -> Self {
        Self::Sqlite(TempDir::new())
    }

    fn postgres(test: &str) -> Option<Self> {
        let db = PgDatabase::create();
        if db.is_none() {
            eprintln!("skipped {test} on PostgreSQL: set ENTITLED_TEST_POSTGRES_URL to run it");
        }
        db.map(Self::Postgres)
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}/entitled.db", dir.0.display()),
            Self::Postgres(db) => db.url.clone(),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fmt(at: time::OffsetDateTime) -> String {
    time_fmt::rfc3339(time_fmt::truncate(at))
}

/// Polls `what` until it gives `Some`, for at most `patience`.
fn until<T>(patience: Duration, mut what: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = what() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create_endpoint(server: &Server, id: &str, url: &str) -> String {
    let (status, body) = server.admin(
        "PUT",
        &format!("/v1/admin/endpoints/{id}"),
        Some(&json!({"url": url})),
    );
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().unwrap().to_owned()
}

fn grant(
    server: &Server,
    email: &str,
    from: time::OffsetDateTime,
    until: time::OffsetDateTime,
) -> String {
    let (status, body) = server.admin(
        "POST",
        "/v1/admin/grants",
        Some(
            &json!({"email": email, "product": "pro", "valid_from": fmt(from),
            "valid_until": fmt(until), "reason": "support"}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn messages(server: &Server, endpoint: &str) -> Vec<Value> {
    let (status, body) = server.admin(
        "GET",
        &format!("/v1/admin/endpoints/{endpoint}/messages?limit=500"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn changes(server: &Server) -> Vec<Value> {
    let (status, body) = server.admin("GET", "/v1/admin/changes?limit=500", None);
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn instant(raw: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        raw.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[test]
fn the_configured_schedule_and_clock_run_in_real_time_on_sqlite() {
    configured_schedule_and_clock(Data::sqlite());
}

#[test]
fn the_configured_schedule_and_clock_run_in_real_time_on_postgres() {
    if let Some(data) = Data::postgres("the_configured_schedule_and_clock_run_in_real_time") {
        configured_schedule_and_clock(data);
    }
}

/// `ENTITLED_OUTBOUND_RETRY_SCHEDULE=1,1,2`: four attempts, at least the
/// schedule apart, one webhook-id, then `failed`; `resend` delivers. With
/// `ENTITLED_CLOCK_INTERVAL_SECONDS=1` a grant's end arrives as a change with
/// no event at all.
fn configured_schedule_and_clock(data: Data) {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let logs = TempDir::new();
    let server = Server::start_with_env(
        &data.url(),
        &logs.0,
        &[
            ("ENTITLED_OUTBOUND_RETRY_SCHEDULE", "1,1,2"),
            ("ENTITLED_CLOCK_INTERVAL_SECONDS", "1"),
        ],
    );
    receiver.trust(&create_endpoint(&server, "backend", &receiver.url));
    receiver.answer_always(500);
    let now = time::OffsetDateTime::now_utc();
    grant(
        &server,
        "ada@example.com",
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    );

    let failed = until(Duration::from_secs(30), || {
        let listed = messages(&server, "backend");
        (listed.first()?["status"] == "failed").then(|| listed[0].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "not failed: {:#?}\n{}",
            messages(&server, "backend"),
            server.log()
        )
    });
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{failed:#}");
    let at: Vec<_> = attempts.iter().map(|a| instant(&a["at"])).collect();
    for (gap, wanted) in at.windows(2).map(|w| w[1] - w[0]).zip([1, 1, 2]) {
        // Never earlier than the schedule says (a millisecond of rounding aside).
        assert!(
            gap >= time::Duration::seconds(wanted) - time::Duration::milliseconds(5),
            "retried after {gap}, scheduled {wanted} s: {failed:#}"
        );
    }
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    assert!(
        received
            .iter()
            .all(|m| m.id == failed["id"].as_str().unwrap())
    );
    assert!(received.iter().all(|m| m.verified_by == vec![0]));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(receiver.received().len(), 4, "nothing after the schedule");

    receiver.answer_always(200);
    let (status, resent) = server.admin(
        "POST",
        &format!(
            "/v1/admin/endpoints/backend/messages/{}/resend",
            failed["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 200, "{resent}");
    assert_eq!(resent["status"], "delivered");
    assert_eq!(receiver.received()[4].id, failed["id"].as_str().unwrap());

    // A grant that ends in two seconds: the clock's change comes by itself.
    let ends = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let id = grant(
        &server,
        "bea@example.com",
        now - time::Duration::hours(1),
        ends,
    );
    let ended = until(Duration::from_secs(30), || {
        receiver
            .received()
            .into_iter()
            .find(|m| m.body["data"]["cause"]["kind"] == "clock")
    })
    .unwrap_or_else(|| {
        panic!(
            "no clock change: {:#?}\n{}",
            receiver.received(),
            server.log()
        )
    });
    let change = &ended.body["data"];
    assert_eq!(change["email"], "bea@example.com");
    assert_eq!(change["answer"]["reason"], "period_ended");
    assert_eq!(
        change["cause"]["source"],
        json!({"kind": "grant", "id": id})
    );
    assert_eq!(ended.verified_by, vec![0]);
    let lag = instant(&change["at"]) - ends;
    println!(
        "the clock appended the grant's end {:.2} s after it",
        lag.as_seconds_f64()
    );
    assert!(
        lag >= time::Duration::ZERO,
        "not before the instant: {change}"
    );
}

#[test]
fn after_a_sigkill_every_committed_change_is_delivered_or_superseded_on_sqlite() {
    sigkill_with_messages_pending(Data::sqlite());
}

#[test]
fn after_a_sigkill_every_committed_change_is_delivered_or_superseded_on_postgres() {
    if let Some(data) =
        Data::postgres("after_a_sigkill_every_committed_change_is_delivered_or_superseded")
    {
        sigkill_with_messages_pending(data);
    }
}

fn sigkill_with_messages_pending(data: Data) {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let logs = TempDir::new();
    let env = [("ENTITLED_OUTBOUND_RETRY_SCHEDULE", "1,1,1,1,1,1,1,1,1,1")];
    let mut server = Server::start_with_env(&data.url(), &logs.0, &env);
    receiver.trust(&create_endpoint(&server, "backend", &receiver.url));
    // The receiver is down (503) and slow: messages are pending, some in
    // flight, when the process dies.
    receiver.answer_always(503);
    receiver.delay(Some(Duration::from_millis(300)));
    let now = time::OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(grant(
            &server,
            &format!("c{}@example.com", i % 5),
            now - time::Duration::hours(1),
            now + time::Duration::days(1 + i),
        ));
    }
    let (status, _) = server.admin("DELETE", &format!("/v1/admin/grants/{}", ids[5]), None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(400));
    server.kill();

    receiver.answer_always(200);
    receiver.delay(None);
    let server = Server::start_with_env(&data.url(), &logs.0, &env);
    let listed = until(Duration::from_secs(60), || {
        let listed = messages(&server, "backend");
        listed
            .iter()
            .all(|m| m["status"] == "delivered" || m["status"] == "superseded")
            .then_some(listed)
    })
    .unwrap_or_else(|| {
        panic!(
            "not all settled: {:#?}\n{}",
            messages(&server, "backend"),
            server.log()
        )
    });
    let log = changes(&server);
    assert_eq!(log.len(), 9, "{log:#?}");
    let by_sequence: std::collections::BTreeMap<i64, &Value> = listed
        .iter()
        .map(|m| (m["sequence"].as_i64().unwrap(), m))
        .collect();
    let received = receiver.received();
    let delivered_ids: BTreeSet<&str> = received
        .iter()
        .filter(|m| m.answered == 200)
        .map(|m| m.id.as_str())
        .collect();
    for change in &log {
        let sequence = change["sequence"].as_i64().unwrap();
        let message = by_sequence
            .get(&sequence)
            .unwrap_or_else(|| panic!("change {sequence} has no message: {listed:#?}"));
        if message["status"] == "delivered" {
            assert!(
                delivered_ids.contains(message["id"].as_str().unwrap()),
                "{message}"
            );
        } else {
            // Superseded only by a newer change of the same customer.
            assert!(
                log.iter()
                    .any(|c| c["email"] == change["email"]
                        && c["sequence"].as_i64().unwrap() > sequence),
                "{message} superseded by nothing"
            );
        }
    }
    // The latest change of each customer reached the receiver.
    for email in (0..5).map(|i| format!("c{i}@example.com")) {
        let last = log
            .iter()
            .rev()
            .find(|c| c["email"] == email.as_str())
            .unwrap();
        assert!(
            received
                .iter()
                .any(|m| m.answered == 200 && m.body["data"] == *last),
            "{email}'s last change did not arrive"
        );
    }
    assert!(received.iter().all(|m: &Received| m.verified_by == vec![0]));
}

/// An SSE client on a raw socket: every `id:` line it has read.
struct EventReader {
    ids: std::sync::Arc<std::sync::Mutex<Vec<(i64, Instant)>>>,
}

impl EventReader {
    fn open(server: &Server, query: &str) -> Self {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        write!(
            stream,
            "GET /v1/events{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n",
            server.addr
        )
        .unwrap();
        let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ids.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..n]));
                while let Some(start) = text
                    .find("\nid: ")
                    .or_else(|| text.starts_with("id: ").then_some(0))
                {
                    let from = if text[start..].starts_with('\n') {
                        start + 1
                    } else {
                        start
                    };
                    let Some(end) = text[from..].find('\n') else {
                        break;
                    };
                    let id: i64 = text[from + 4..from + end].trim().parse().unwrap();
                    seen.lock().unwrap().push((id, Instant::now()));
                    text.drain(..from + end);
                }
            }
        });
        Self { ids }
    }

    fn ids(&self) -> Vec<i64> {
        self.ids.lock().unwrap().iter().map(|(id, _)| *id).collect()
    }

    fn seen_at(&self, id: i64) -> Option<Instant> {
        self.ids
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, at)| *at)
    }
}

/// Two replicas on one PostgreSQL database: deliveries arrive at A; every
/// message goes out once (both replicas send), and B's event stream and a
/// check waiting on B see each delivery.
#[test]
fn two_replicas_send_every_message_once_and_stream_and_wait_on_either() {
    let Some(db) = PgDatabase::create() else {
        eprintln!(
            "skipped two_replicas_send_every_message_once_and_stream_and_wait_on_either: \
             set ENTITLED_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let logs = TempDir::new();
    let mut servers = [
        Server::spawn(&db.url, &logs.0),
        Server::spawn(&db.url, &logs.0),
    ];
    for server in &mut servers {
        server.wait_ready();
    }
    let [a, b] = &servers;
    let integration = json!({"provider": "zenofy", "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}});
    let (status, body) = a.admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");
    receiver.trust(&create_endpoint(a, "backend", &receiver.url));
    let stream = EventReader::open(b, "");

    let now = time_fmt::truncate(time_fmt::now());
    let mut stream_lags = Vec::new();
    let mut wait_lags = Vec::new();
    for i in 0..10 {
        let email = format!("replica-{i}@example.com");
        // A check waiting on B for a customer who has not paid yet.
        let path = format!("/v1/access?email={}&product=pro&wait=30", urlencode(&email));
        let waiting = {
            let addr = b.addr;
            std::thread::spawn(move || {
                let auth = format!("Bearer {ADMIN_TOKEN}");
                let answer = common::server::http_request(
                    addr,
                    "GET",
                    &path,
                    &[("authorization", auth.as_str())],
                    b"",
                );
                (answer, Instant::now())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let mut body = fixture_json("zenofy/subscription.activated.json");
        body["subscriptionId"] = json!(format!("sub-{i}"));
        body["customerEmail"] = json!(email);
        body["currentPeriodStart"] = json!(time_fmt::rfc3339(now - time::Duration::days(1)));
        body["currentPeriodEnd"] = json!(time_fmt::rfc3339(now + time::Duration::days(30)));
        let (status, reply) = a.call(
            "POST",
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{reply}");
        let delivered = Instant::now();
        let log = changes(a);
        let sequence = log.iter().find(|c| c["email"] == email.as_str()).unwrap()["sequence"]
            .as_i64()
            .unwrap();
        let seen = until(Duration::from_secs(10), || stream.seen_at(sequence))
            .unwrap_or_else(|| panic!("B's stream never showed {sequence}: {:?}", stream.ids()));
        stream_lags.push(seen.saturating_duration_since(delivered));
        let (answer, answered) = waiting.join().unwrap();
        let (status, answer) = answer.unwrap();
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["entitled"], true, "{answer}");
        wait_lags.push(answered.saturating_duration_since(delivered));
    }
    let max = |lags: &[Duration]| lags.iter().max().copied().unwrap_or_default();
    println!(
        "replica B after a delivery on A: event stream within {:.3} s, waiting check within {:.3} s (max of 10)",
        max(&stream_lags).as_secs_f64(),
        max(&wait_lags).as_secs_f64()
    );
    // Every change once, in order, on B's stream.
    let log = changes(a);
    assert_eq!(
        stream.ids(),
        log.iter()
            .map(|c| c["sequence"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    // Every message delivered once, by one replica or the other.
    let received = until(Duration::from_secs(30), || {
        let received = receiver.received();
        (received.len() >= log.len()).then_some(received)
    })
    .unwrap_or_else(|| {
        panic!(
            "only {} of {} messages",
            receiver.received().len(),
            log.len()
        )
    });
    std::thread::sleep(Duration::from_millis(1000));
    let received_now = receiver.received();
    assert_eq!(
        received_now.len(),
        log.len(),
        "a message was sent twice: {received_now:#?}"
    );
    let ids: BTreeSet<&str> = received.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), log.len());
    let mut sent: Vec<i64> = received
        .iter()
        .map(|m| m.body["data"]["sequence"].as_i64().unwrap())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, (1..=log.len() as i64).collect::<Vec<_>>());
    for message in messages(b, "backend") {
        assert_eq!(message["status"], "delivered");
        assert_eq!(
            message["attempts"].as_array().unwrap().len(),
            1,
            "{message}"
        );
    }
}
