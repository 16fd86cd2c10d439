//! Fast reads: every answer comes from the replica's memory, and is exactly
//! the answer the database's rows give (DESIGN.md "The change log, fast reads
//! and notifications").

mod common;

use axum::http::{Method, StatusCode};
use common::lifecycle::{CUSTOMERS, Lifecycle, PRODUCTS};
use common::{SECRET, TestApp, fixture_json, urlencode};
use entitled::domain::{Email, Instant, ProductKey};
use entitled::store::{Answer, EntitlementRow};
use entitled::time_fmt;
use serde_json::{Value, json};

on_both_databases!(
    random_lifecycles_are_answered_from_memory_exactly_as_from_the_database,
    a_new_token_works_and_a_deleted_one_is_refused_at_once,
    a_check_that_waits_is_answered_once_the_payment_arrives,
    a_check_that_waits_for_nothing_answers_as_usual_and_wait_is_validated,
);

fn instant(raw: &Value) -> Option<Instant> {
    raw.as_str()
        .map(|s| time_fmt::parse_lenient(s).unwrap_or_else(|| panic!("not an instant: {s}")))
}

/// Asserts one access answer (as served) against the database's rows of that
/// customer and product.
fn assert_answer(what: &str, served: &Value, rows: &[EntitlementRow], at: Instant) {
    let expected = Answer::of(rows, at);
    assert_eq!(served["entitled"], expected.entitled, "{what}: {served:#}");
    assert_eq!(
        served["reason"],
        expected.reason.as_str(),
        "{what}: {served:#}"
    );
    assert_eq!(
        instant(&served["valid_until"]),
        expected.valid_until,
        "{what}: {served:#}"
    );
    assert_eq!(
        served["plan"].as_str(),
        expected.plan.as_deref(),
        "{what}: {served:#}"
    );
    assert_eq!(instant(&served["at"]), Some(at), "{what}");
    let sources = served["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), rows.len(), "{what}: {served:#}");
    for (source, row) in sources.iter().zip(rows) {
        assert_eq!(
            source["kind"],
            row.state.kind().as_str(),
            "{what}: {source:#}"
        );
        assert_eq!(source["id"], row.source_id.as_str(), "{what}: {source:#}");
        assert_eq!(source["state"], row.state.as_str(), "{what}: {source:#}");
        assert_eq!(
            source["provider"].as_str(),
            row.provider.as_deref(),
            "{what}"
        );
        assert_eq!(
            source["integration"].as_str(),
            row.integration.as_deref(),
            "{what}"
        );
        assert_eq!(source["plan"].as_str(), row.plan.as_deref(), "{what}");
        assert_eq!(
            instant(&source["access_from"]),
            row.window.map(|w| w.from),
            "{what}"
        );
        assert_eq!(
            instant(&source["access_until"]),
            row.window.and_then(|w| w.until),
            "{what}"
        );
    }
}

/// Every customer, every product, at several instants: the memory's rows are
/// the database's, and both endpoints answer what those rows give.
async fn assert_everyone_as_stored(app: &TestApp, step: usize, now: Instant) -> usize {
    let instants = [
        now - time::Duration::days(30),
        now,
        now + time::Duration::days(2),
        now + time::Duration::days(35),
    ];
    let mut sources = 0;
    for customer in CUSTOMERS {
        let email = Email::parse(customer).unwrap();
        let stored = app
            .store
            .stored_entitlement_rows(&email, None)
            .await
            .unwrap();
        let in_memory = app.store.entitlement_rows(&email, None).await.unwrap();
        assert_eq!(in_memory, stored, "step {step}: {customer}'s rows");
        sources += stored.len();
        for at in instants {
            let at_param = urlencode(&time_fmt::rfc3339(at));
            let list = app
                .admin(
                    Method::GET,
                    &format!(
                        "/v1/customers/{}/entitlements?at={at_param}",
                        urlencode(customer)
                    ),
                    None,
                )
                .await;
            assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
            let items = list.body["items"].as_array().unwrap();
            let mut products: Vec<&str> = stored.iter().map(|r| r.product.as_str()).collect();
            products.dedup();
            let listed: Vec<&str> = items
                .iter()
                .map(|i| i["product"].as_str().unwrap())
                .collect();
            assert_eq!(listed, products, "step {step}: {customer}'s products");
            for item in items {
                let product = item["product"].as_str().unwrap();
                let rows: Vec<EntitlementRow> = stored
                    .iter()
                    .filter(|r| r.product.as_str() == product)
                    .cloned()
                    .collect();
                assert_answer(
                    &format!("step {step}: {customer} list {product}"),
                    item,
                    &rows,
                    at,
                );
            }
            for product in PRODUCTS.iter().chain(&["absent"]) {
                let key = ProductKey::parse(product).unwrap();
                let rows: Vec<EntitlementRow> = stored
                    .iter()
                    .filter(|r| r.product == key)
                    .cloned()
                    .collect();
                let reply = app
                    .access(customer, product, Some(&time_fmt::rfc3339(at)))
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                assert_answer(
                    &format!("step {step}: {customer} {product} at {at}"),
                    &reply.body,
                    &rows,
                    at,
                );
            }
        }
    }
    sources
}

/// Reordered, duplicated and lost deliveries, subscriptions moving between
/// customers and products, grants given and revoked, orders paid, registered
/// and refunded, policy changes and the clock: after every step, every answer
/// from memory is the database's.
async fn random_lifecycles_are_answered_from_memory_exactly_as_from_the_database(app: TestApp) {
    let mut run = Lifecycle::start(&app, 0x0005_eed0_f5a1_1ad5).await;
    let now = run.now;
    let mut sources = 0;
    for step in 0..150 {
        run.step(&app).await;
        sources = assert_everyone_as_stored(&app, step, now).await;
    }
    assert!(sources >= 5, "the run built some state: {sources} sources");

    // A replica started now loads the same rows in one scan.
    let (replica, _workers) = entitled::workers::connect(&app.url).await.unwrap();
    assert!(replica.wait_ready(std::time::Duration::from_secs(30)).await);
    for customer in CUSTOMERS {
        let email = Email::parse(customer).unwrap();
        assert_eq!(
            replica.entitlement_rows(&email, None).await.unwrap(),
            app.store
                .stored_entitlement_rows(&email, None)
                .await
                .unwrap(),
            "{customer}'s rows as a fresh replica loads them"
        );
    }
    replica.close().await;
}

/// Tokens are read from memory too: one made on this replica works in its
/// creation's next request, and one deleted is refused in the next.
async fn a_new_token_works_and_a_deleted_one_is_refused_at_once(app: TestApp) {
    let made = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "backend", "scope": "app"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    let check = "/v1/access?email=ada%40example.com&product=pro";
    let reply = app.with_token(&token, Method::GET, check, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "no_entitlement");
    let id = made.body["id"].as_str().unwrap();
    let deleted = app
        .admin(Method::DELETE, &format!("/v1/admin/tokens/{id}"), None)
        .await;
    assert!(deleted.status.is_success(), "{:?}", deleted.body);
    let reply = app.with_token(&token, Method::GET, check, None).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
}

fn activation(subscription: &str, email: &str) -> Vec<u8> {
    let now = time_fmt::truncate(time_fmt::now());
    let mut body = fixture_json("zenofy/subscription.activated.json");
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["currentPeriodStart"] = json!(time_fmt::rfc3339(now - time::Duration::days(1)));
    body["currentPeriodEnd"] = json!(time_fmt::rfc3339(now + time::Duration::days(30)));
    serde_json::to_vec(&body).unwrap()
}

/// The checkout race: the customer is back before the provider's webhook. A
/// check with `wait` is answered entitled once the webhook is applied.
async fn a_check_that_waits_is_answered_once_the_payment_arrives(app: TestApp) {
    app.zenofy_integration().await;
    let app = std::sync::Arc::new(app);
    let check = {
        let app = app.clone();
        tokio::spawn(async move {
            app.admin(
                Method::GET,
                "/v1/access?email=late%40example.com&product=pro&wait=30",
                None,
            )
            .await
        })
    };
    // The check is waiting (not entitled yet) when the webhook arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !check.is_finished(),
        "a check that waits does not answer `no` at once"
    );
    let delivered = app.zenofy(activation("sub-late", "late@example.com")).await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    let reply = check.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["entitled"], true, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "active");
    assert_eq!(
        reply.body["sources"][0]["id"], delivered.body["subject"]["id"],
        "{:?}",
        reply.body
    );
    // Already entitled: answered at once, whatever the wait.
    let reply = app.access("late@example.com", "pro", None).await;
    assert_eq!(reply.body["entitled"], true);
}

async fn a_check_that_waits_for_nothing_answers_as_usual_and_wait_is_validated(app: TestApp) {
    let reply = app
        .admin(
            Method::GET,
            "/v1/access?email=nobody%40example.com&product=pro&wait=1",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["entitled"], false);
    assert_eq!(reply.body["reason"], "no_entitlement");
    let reply = app
        .admin(
            Method::GET,
            "/v1/access?email=nobody%40example.com&product=pro&wait=0",
            None,
        )
        .await;
    assert_eq!(reply.body["reason"], "no_entitlement", "{:?}", reply.body);
    for bad in ["61", "-1", "1.5", "soon", ""] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/access?email=nobody%40example.com&product=pro&wait={bad}"),
                None,
            )
            .await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some("wait"));
    }
}

/// What an access answer says, without the instant it was computed for.
fn said(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(object) = answer.as_object_mut() {
        object.remove("at");
    }
    answer
}

/// Polls `server` until `check` holds for its answer to `path`; returns how
/// long that took. Gives up (panics) after 20 s: a hang guard, not a speed
/// check; the lags are printed for the record.
fn until(
    server: &common::server::Server,
    path: &str,
    token: &str,
    check: impl Fn(u16, &Value) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    let auth = format!("Bearer {token}");
    loop {
        let (status, body) = server.call("GET", path, &[("authorization", &auth)], b"");
        if check(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{path}: still {status} {body}\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The replicas' case: deliveries, grants and tokens spread across two
/// `entitled serve` processes on one PostgreSQL database. The replica that
/// took a write answers with it at once; the other comes to the same answer
/// (its follower runs every 200 ms).
#[test]
fn two_replicas_answer_alike_after_writes_on_either() {
    use common::server::{PgDatabase, Server};
    let Some(db) = PgDatabase::create() else {
        eprintln!(
            "skipped two_replicas_answer_alike_after_writes_on_either: \
             set ENTITLED_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    let logs = common::TempDir::new();
    let mut servers = [
        Server::spawn(&db.url, &logs.0),
        Server::spawn(&db.url, &logs.0),
    ];
    for server in &mut servers {
        server.wait_ready();
    }
    let integration = json!({"provider": "zenofy", "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}});
    let (status, body) =
        servers[0].admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");

    let now = time_fmt::truncate(time_fmt::now());
    let mut lags = Vec::new();
    let events = [
        "subscription.activated",
        "subscription.canceled",
        "subscription.renewed",
        "subscription.suspended",
        "subscription.activated",
        "subscription.expired",
    ];
    for i in 0..12 {
        // Each of three subscriptions: activated, canceled, renewed, suspended.
        let event = events[i / 3];
        let (writer, other) = (&servers[i % 2], &servers[1 - i % 2]);
        let email = format!("replica-{}@example.com", i % 3);
        let mut body = fixture_json(&format!("zenofy/{event}.json"));
        body["subscriptionId"] = json!(format!("sub-replica-{}", i % 3));
        body["customerEmail"] = json!(email);
        body["currentPeriodStart"] = json!(time_fmt::rfc3339(now - time::Duration::days(1)));
        body["currentPeriodEnd"] =
            json!(time_fmt::rfc3339(now + time::Duration::days(30 + i as i64)));
        let (status, reply) = writer.call(
            "POST",
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{reply}");
        let path = format!("/v1/access?email={}&product=pro", urlencode(&email));
        let (status, written) = writer.admin("GET", &path, None);
        assert_eq!(status, 200, "{written}");
        // Read-your-writes: the state the delivery left is in the answer.
        assert_eq!(
            written["sources"][0]["state"], reply["subject"]["state"],
            "{event}: {reply} then {written}"
        );
        lags.push(until(
            other,
            &path,
            common::ADMIN_TOKEN,
            |status, answer| status == 200 && said(answer) == said(&written),
        ));
    }

    // A check waiting on one replica is answered once the other takes the payment.
    let waiting = {
        let path = "/v1/access?email=checkout%40example.com&product=pro&wait=30";
        let server = &servers[1];
        std::thread::scope(|scope| {
            let check = scope.spawn(|| server.admin("GET", path, None));
            std::thread::sleep(std::time::Duration::from_millis(300));
            let (status, reply) = servers[0].call(
                "POST",
                "/v1/webhooks/zenofy",
                &[
                    ("content-type", "application/json"),
                    ("x-webhook-secret", SECRET),
                ],
                &activation("sub-checkout", "checkout@example.com"),
            );
            assert_eq!(status, 200, "{reply}");
            check.join().unwrap()
        })
    };
    assert_eq!(waiting.0, 200, "{}", waiting.1);
    assert_eq!(waiting.1["entitled"], true, "{}", waiting.1);

    // A grant given on one replica, revoked on the other.
    let (status, grant) = servers[1].admin(
        "POST",
        "/v1/admin/grants",
        Some(&json!({"email": "granted@example.com", "product": "pro", "reason": "support"})),
    );
    assert_eq!(status, 201, "{grant}");
    let path = "/v1/access?email=granted%40example.com&product=pro";
    lags.push(until(&servers[0], path, common::ADMIN_TOKEN, |_, a| {
        a["entitled"] == true && a["reason"] == "grant"
    }));
    let id = grant["id"].as_str().unwrap();
    let (status, _) = servers[0].admin("DELETE", &format!("/v1/admin/grants/{id}"), None);
    assert!((200..300).contains(&status));
    lags.push(until(&servers[1], path, common::ADMIN_TOKEN, |_, a| {
        a["entitled"] == false && a["reason"] == "revoked"
    }));

    // A token made on one replica works on the other; deleted, it stops.
    let (status, token) = servers[0].admin(
        "POST",
        "/v1/admin/tokens",
        Some(&json!({"name": "backend", "scope": "app"})),
    );
    assert_eq!(status, 201, "{token}");
    let secret = token["token"].as_str().unwrap();
    lags.push(until(&servers[1], path, secret, |status, _| status == 200));
    let id = token["id"].as_str().unwrap();
    let (status, _) = servers[0].admin("DELETE", &format!("/v1/admin/tokens/{id}"), None);
    assert!((200..300).contains(&status));
    let (status, _) = servers[0].call(
        "GET",
        path,
        &[("authorization", &format!("Bearer {secret}"))],
        b"",
    );
    assert_eq!(status, 401, "refused at once where it was deleted");
    lags.push(until(&servers[1], path, secret, |status, _| status == 401));

    lags.sort();
    eprintln!(
        "the other replica caught up after at most {:?} (median {:?}, {} writes)",
        lags.last().unwrap(),
        lags[lags.len() / 2],
        lags.len()
    );
}
