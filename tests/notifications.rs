//! Telling the SaaS backend when access changes, on both databases: outbound
//! webhooks to a receiver that verifies every signature with the project's
//! own verifier, the change log as Server-Sent Events, and the clock's
//! time-driven changes. The sender is stepped (`deliver_due`) and the clock
//! is called with the instant to settle, so nothing here waits on time; the
//! real loops, the environment settings, SIGKILL and two replicas are in
//! `tests/notification_processes.rs`.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::receiver::Receiver;
use common::{ADMIN_TOKEN, TestApp, fixture_json, urlencode};
use entitled::time_fmt;

on_both_databases!(
    endpoints_are_created_updated_listed_and_deleted_and_the_secret_is_shown_once,
    bad_endpoint_requests_are_problems_that_name_the_field_and_change_nothing,
    a_lifecycle_sends_exactly_the_logged_changes_signed_in_order_to_matching_endpoints,
    a_failing_endpoint_is_retried_with_the_same_webhook_id_then_failed_and_resend_delivers,
    a_newer_change_supersedes_a_pending_message_of_the_same_pair,
    a_slow_endpoint_holds_a_few_sends_and_the_others_keep_receiving,
    after_rotate_secret_messages_verify_under_the_old_and_the_new_secret,
    test_sends_an_endpoint_test_at_once_and_answers_the_attempt,
    time_alone_changes_answers_through_the_clock_once_whoever_settles,
    a_time_driven_change_is_sent_with_no_provider_event,
    events_stream_every_change_once_in_order_and_resume_after_the_last_id,
    each_streamed_event_is_what_the_document_describes,
    bad_event_stream_requests_are_problems_that_name_the_field,
    metrics_count_messages_attempts_the_oldest_pending_and_open_streams,
);

/// A Zenofy subscription event, its period around now (or ending at `end`).
fn zenofy(event: &str, subscription: &str, email: &str, end: time::OffsetDateTime) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenofy/subscription.{event}.json"));
    let now = time::OffsetDateTime::now_utc();
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["currentPeriodStart"] = json!(fmt(now - time::Duration::days(1)));
    body["currentPeriodEnd"] = json!(fmt(end));
    if body["renewal"].is_object() {
        body["renewal"]["newPeriodEnd"] = json!(fmt(end));
    }
    serde_json::to_vec(&body).unwrap()
}

fn fmt(at: time::OffsetDateTime) -> String {
    time_fmt::rfc3339(time_fmt::truncate(at))
}

fn in_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// Creates endpoint `id` for `url` and `products`, and returns its secret.
async fn endpoint(app: &TestApp, id: &str, url: &str, products: Value) -> String {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/endpoints/{id}"),
            Some(json!({"url": url, "products": products})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["secret"].as_str().unwrap().to_owned()
}

/// Steps the sender until nothing is due.
async fn deliver(app: &TestApp) -> usize {
    let mut tried = 0;
    loop {
        let n = app.state.sender.deliver_due().await.expect("deliver");
        if n == 0 {
            return tried;
        }
        tried += n;
    }
}

async fn all_changes(app: &TestApp) -> Vec<Value> {
    let reply = app
        .admin(Method::GET, "/v1/admin/changes?limit=500", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

async fn messages(app: &TestApp, endpoint: &str, query: &str) -> Vec<Value> {
    let reply = app
        .admin(
            Method::GET,
            &format!("/v1/admin/endpoints/{endpoint}/messages?limit=500{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

async fn grant(app: &TestApp, email: &str, product: &str, from: &str, until: &str) -> String {
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(
                json!({"email": email, "product": product, "valid_from": from,
                "valid_until": until, "reason": "support"}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn endpoints_are_created_updated_listed_and_deleted_and_the_secret_is_shown_once(
    app: TestApp,
) {
    let created = app
        .admin(
            Method::PUT,
            "/v1/admin/endpoints/backend",
            Some(json!({"url": "https://backend.example.com/hooks", "products": ["pro", "pro", "basic"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(secret.len(), "whsec_".len() + 32, "24 bytes in base64");
    assert_eq!(created.body["id"], "backend");
    assert_eq!(created.body["products"], json!(["basic", "pro"]));
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["status"], "healthy");

    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/backend", None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.get("secret").is_none(), "{:?}", shown.body);
    assert!(!shown.body.to_string().contains(secret));

    let updated = app
        .admin(
            Method::PUT,
            "/v1/admin/endpoints/backend",
            Some(json!({"url": "http://127.0.0.1:9/other", "enabled": false})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert!(updated.body.get("secret").is_none());
    assert_eq!(updated.body["url"], "http://127.0.0.1:9/other");
    assert_eq!(
        updated.body["products"],
        Value::Null,
        "omitted: every product"
    );
    assert_eq!(updated.body["status"], "disabled");
    assert_eq!(updated.body["created_at"], created.body["created_at"]);

    let listed = app.admin(Method::GET, "/v1/admin/endpoints", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["id"], "backend");
    assert!(!listed.body.to_string().contains(secret));

    let deleted = app
        .admin(Method::DELETE, "/v1/admin/endpoints/backend", None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for (method, path) in [
        (Method::GET, "/v1/admin/endpoints/backend"),
        (Method::DELETE, "/v1/admin/endpoints/backend"),
        (Method::POST, "/v1/admin/endpoints/backend/rotate-secret"),
        (Method::POST, "/v1/admin/endpoints/backend/test"),
        (Method::GET, "/v1/admin/endpoints/backend/messages"),
        (
            Method::POST,
            "/v1/admin/endpoints/backend/messages/msg_x/resend",
        ),
    ] {
        app.admin(method, path, None)
            .await
            .assert_problem(StatusCode::NOT_FOUND, None);
    }
    // The app scope cannot reach them.
    let token = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "backend", "scope": "app"})),
        )
        .await;
    let token = token.body["token"].as_str().unwrap();
    app.with_token(token, Method::GET, "/v1/admin/endpoints", None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
}

async fn bad_endpoint_requests_are_problems_that_name_the_field_and_change_nothing(app: TestApp) {
    let put = |body: Value| {
        let app = &app;
        async move {
            app.admin(Method::PUT, "/v1/admin/endpoints/backend", Some(body))
                .await
        }
    };
    for (body, field) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "http://example.com:0/"}), "url"),
        (json!({"url": "http://user:pw@example.com/"}), "url"),
        (json!({"url": "http://example.com/a b"}), "url"),
        (json!({"url": "http://example.com/\u{0}"}), "url"),
        (
            json!({"url": format!("http://example.com/{}", "a".repeat(2048))}),
            "url",
        ),
        (
            json!({"url": "http://example.com/", "products": ["ok", "not ok"]}),
            "products[1]",
        ),
        (
            json!({"url": "http://example.com/", "products": vec!["a"; 101]}),
            "products",
        ),
    ] {
        put(body.clone())
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    put(json!({"products": null}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("url"));
    put(json!({"url": "http://example.com/", "colour": "red"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, None);
    app.admin(
        Method::PUT,
        "/v1/admin/endpoints/not%20an%20id",
        Some(json!({"url": "http://example.com/"})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, Some("id"));
    let listed = app.admin(Method::GET, "/v1/admin/endpoints", None).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was stored");

    endpoint(&app, "backend", "http://127.0.0.1:9/", Value::Null).await;
    for (query, field) in [
        ("?status=sent", "status"),
        ("?limit=0", "limit"),
        ("?cursor=nope", "cursor"),
    ] {
        app.admin(
            Method::GET,
            &format!("/v1/admin/endpoints/backend/messages{query}"),
            None,
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    // A body of the wrong type is 415, as everywhere.
    let reply = app
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/admin/endpoints/backend")
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .header("content-type", "text/plain")
                .body(Body::from("url=x"))
                .unwrap(),
        )
        .await;
    reply.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
}

async fn a_lifecycle_sends_exactly_the_logged_changes_signed_in_order_to_matching_endpoints(
    app: TestApp,
) {
    app.zenofy_integration().await;
    let all = Receiver::start().await;
    let pro_only = Receiver::start().await;
    let other_only = Receiver::start().await;
    all.trust(&endpoint(&app, "all", &all.url, Value::Null).await);
    pro_only.trust(&endpoint(&app, "pro-only", &pro_only.url, json!(["pro"])).await);
    other_only.trust(&endpoint(&app, "other-only", &other_only.url, json!(["other"])).await);
    // A disabled endpoint gets no messages.
    let disabled = Receiver::start().await;
    endpoint(&app, "disabled", &disabled.url, Value::Null).await;
    app.admin(
        Method::PUT,
        "/v1/admin/endpoints/disabled",
        Some(json!({"url": disabled.url, "enabled": false})),
    )
    .await;

    // Delivering after each write: every change is sent (nothing supersedes).
    let steps: Vec<Vec<u8>> = vec![
        zenofy("activated", "sub-1", "ada@example.com", in_days(30)),
        zenofy("renewed", "sub-1", "ada@example.com", in_days(60)),
        zenofy("suspended", "sub-1", "ada@example.com", in_days(60)),
        zenofy("activated", "sub-1", "ada@example.com", in_days(60)),
        zenofy("canceled", "sub-1", "ada@example.com", in_days(60)),
    ];
    for body in steps {
        let reply = app.zenofy(body).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        deliver(&app).await;
    }
    let now = time::OffsetDateTime::now_utc();
    grant(
        &app,
        "bea@example.com",
        "other",
        &fmt(now - time::Duration::hours(1)),
        &fmt(now + time::Duration::days(1)),
    )
    .await;
    deliver(&app).await;

    let log = all_changes(&app).await;
    let summary: Vec<(String, String, String, String)> = log
        .iter()
        .map(|c| {
            (
                c["product"].as_str().unwrap().to_owned(),
                c["answer"]["reason"].as_str().unwrap().to_owned(),
                c["cause"]["kind"].as_str().unwrap().to_owned(),
                c["cause"]["event"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let s = |p: &str, r: &str, k: &str, e: &str| (p.into(), r.into(), k.into(), e.into());
    assert_eq!(
        summary,
        vec![
            s("pro", "active", "delivery", "activated"),
            s("pro", "active", "delivery", "renewed"),
            s("pro", "suspended", "delivery", "suspended"),
            s("pro", "active", "delivery", "activated"),
            s("pro", "canceled", "delivery", "canceled"),
            s("other", "grant", "grant", "granted"),
        ],
        "{log:#?}"
    );

    // The all-products endpoint got every change, once, in sequence order,
    // each body the change as the log lists it.
    let received = all.received();
    assert_eq!(received.len(), log.len(), "{received:#?}");
    for (message, change) in received.iter().zip(&log) {
        assert_eq!(message.verified_by, vec![0], "{message:?}");
        assert_eq!(message.body["type"], "access.changed");
        assert_eq!(message.body["data"], *change);
        assert_eq!(message.body["timestamp"], change["at"]);
        assert!(message.id.starts_with("msg_"), "{}", message.id);
        let sent: i64 = message.timestamp.parse().unwrap();
        assert!((time::OffsetDateTime::now_utc().unix_timestamp() - sent).abs() < 300);
    }
    let ids: std::collections::BTreeSet<_> = received.iter().map(|m| &m.id).collect();
    assert_eq!(ids.len(), received.len(), "one webhook-id per message");

    // The product filters: each got only its product's changes.
    let sequences = |r: &Receiver| -> Vec<Value> {
        r.received()
            .iter()
            .map(|m| m.body["data"]["sequence"].clone())
            .collect()
    };
    assert_eq!(
        sequences(&pro_only),
        vec![json!(1), json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(sequences(&other_only), vec![json!(6)]);
    assert!(disabled.received().is_empty());

    // The history: every message delivered after one attempt, newest first,
    // its id the webhook-id that was sent.
    let listed = messages(&app, "all", "").await;
    assert_eq!(listed.len(), log.len());
    for (message, sent) in listed.iter().rev().zip(&received) {
        assert_eq!(message["id"], sent.id.as_str());
        assert_eq!(message["endpoint"], "all");
        assert_eq!(message["type"], "access.changed");
        assert_eq!(message["status"], "delivered");
        assert_eq!(message["sequence"], sent.body["data"]["sequence"]);
        assert_eq!(message["next_attempt_at"], Value::Null);
        let attempts = message["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{message}");
        assert_eq!(attempts[0]["status_code"], 200);
        assert_eq!(attempts[0]["error"], Value::Null);
        assert!(attempts[0]["duration_ms"].as_i64().unwrap() >= 0);
    }
    assert_eq!(
        messages(&app, "all", "&status=delivered").await.len(),
        log.len()
    );
    assert!(messages(&app, "all", "&status=pending").await.is_empty());
    // Pages of two, newest first, cover all.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/endpoints/all/messages?limit=2{cursor}"),
                None,
            )
            .await;
        for m in reply.body["items"].as_array().unwrap() {
            seen.push(m["id"].clone());
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        listed.iter().map(|m| m["id"].clone()).collect::<Vec<_>>()
    );
    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/all", None)
        .await;
    assert_eq!(shown.body["status"], "healthy");
}

async fn a_failing_endpoint_is_retried_with_the_same_webhook_id_then_failed_and_resend_delivers(
    app: TestApp,
) {
    // A schedule of three immediate retries: each step of the sender is one
    // attempt (the process tests run the configured schedule in real time).
    let db = app.db;
    drop(app);
    let app = TestApp::start_with(
        db,
        entitled::Settings {
            retry_schedule: vec![0, 0, 0],
            ..entitled::Settings::default()
        },
    )
    .await
    .expect("the engine the test was started on");
    let receiver = Receiver::start().await;
    receiver.trust(&endpoint(&app, "backend", &receiver.url, Value::Null).await);
    receiver.answer_always(500);
    let now = time::OffsetDateTime::now_utc();
    grant(
        &app,
        "ada@example.com",
        "pro",
        &fmt(now - time::Duration::hours(1)),
        &fmt(now + time::Duration::days(1)),
    )
    .await;

    for attempt in 1..=4 {
        assert_eq!(
            app.state.sender.deliver_due().await.unwrap(),
            1,
            "attempt {attempt}"
        );
        let listed = messages(&app, "backend", "").await;
        let expected = if attempt < 4 { "pending" } else { "failed" };
        assert_eq!(listed[0]["status"], expected, "after attempt {attempt}");
    }
    assert_eq!(
        app.state.sender.deliver_due().await.unwrap(),
        0,
        "tried once plus once per retry"
    );
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    assert!(
        received.iter().all(|m| m.id == received[0].id),
        "one webhook-id throughout"
    );
    assert!(received.iter().all(|m| m.verified_by == vec![0]));
    assert!(
        received.iter().all(|m| m.body == received[0].body),
        "the same body each time"
    );

    let failed = messages(&app, "backend", "&status=failed").await;
    assert_eq!(failed.len(), 1);
    let attempts = failed[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    for attempt in attempts {
        assert_eq!(attempt["status_code"], 500);
        assert_eq!(attempt["error"], "the endpoint answered 500");
    }
    assert_eq!(failed[0]["next_attempt_at"], Value::Null);
    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/backend", None)
        .await;
    assert_eq!(shown.body["status"], "failing");

    receiver.answer_always(204);
    let id = failed[0]["id"].as_str().unwrap();
    let resent = app
        .admin(
            Method::POST,
            &format!("/v1/admin/endpoints/backend/messages/{id}/resend"),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{:?}", resent.body);
    assert_eq!(resent.body["status"], "delivered");
    assert_eq!(resent.body["attempts"].as_array().unwrap().len(), 5);
    assert_eq!(resent.body["attempts"][4]["status_code"], 204);
    let received = receiver.received();
    assert_eq!(received.len(), 5);
    assert_eq!(received[4].id, id, "a resend keeps the webhook-id");
    assert_eq!(received[4].body, received[0].body);
    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/backend", None)
        .await;
    assert_eq!(shown.body["status"], "healthy");
    app.admin(
        Method::POST,
        "/v1/admin/endpoints/backend/messages/msg_nope/resend",
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, None);
}

async fn a_newer_change_supersedes_a_pending_message_of_the_same_pair(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.trust(&endpoint(&app, "backend", &receiver.url, Value::Null).await);
    let now = time::OffsetDateTime::now_utc();
    let hour = time::Duration::hours(1);

    // The first attempt fails: the message waits for its retry (5 s).
    receiver.answer_next(&[503]);
    let first = grant(
        &app,
        "ada@example.com",
        "pro",
        &fmt(now - hour),
        &fmt(now + hour),
    )
    .await;
    assert_eq!(deliver(&app).await, 1);
    // Another customer's change is not the same pair: it is not superseded.
    grant(
        &app,
        "bea@example.com",
        "pro",
        &fmt(now - hour),
        &fmt(now + hour),
    )
    .await;
    // A newer change for ada's pair: revoking the grant.
    let revoked = app
        .admin(Method::DELETE, &format!("/v1/admin/grants/{first}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(deliver(&app).await, 2, "bea's grant and ada's revocation");

    let log = all_changes(&app).await;
    assert_eq!(log.len(), 3);
    let received = receiver.received();
    // ada's first attempt came first; the two after it went out together.
    assert_eq!(received[0].body["data"]["sequence"], 1);
    let mut sent: Vec<(&str, i64, u16)> = received
        .iter()
        .map(|m| {
            (
                m.body["data"]["email"].as_str().unwrap(),
                m.body["data"]["sequence"].as_i64().unwrap(),
                m.answered,
            )
        })
        .collect();
    sent.sort_by_key(|(_, sequence, _)| *sequence);
    assert_eq!(
        sent,
        vec![
            ("ada@example.com", 1, 503),
            ("bea@example.com", 2, 200),
            ("ada@example.com", 3, 200),
        ]
    );
    let listed = messages(&app, "backend", "").await;
    let status: Vec<(i64, &str, usize)> = listed
        .iter()
        .map(|m| {
            (
                m["sequence"].as_i64().unwrap(),
                m["status"].as_str().unwrap(),
                m["attempts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        status,
        vec![
            (3, "delivered", 1),
            (2, "delivered", 1),
            (1, "superseded", 1)
        ]
    );
    assert_eq!(listed[2]["next_attempt_at"], Value::Null);
    assert_eq!(
        messages(&app, "backend", "&status=superseded").await.len(),
        1
    );
}

async fn a_slow_endpoint_holds_a_few_sends_and_the_others_keep_receiving(app: TestApp) {
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.trust(&endpoint(&app, "slow", &slow.url, Value::Null).await);
    fast.trust(&endpoint(&app, "fast", &fast.url, Value::Null).await);
    slow.delay(Some(Duration::from_secs(2)));
    let now = time::OffsetDateTime::now_utc();
    let (from, until) = (
        fmt(now - time::Duration::hours(1)),
        fmt(now + time::Duration::days(1)),
    );
    let customers = 3 * entitled::outbound::PER_ENDPOINT;
    for i in 0..customers {
        grant(&app, &format!("c{i}@example.com"), "pro", &from, &until).await;
    }
    let sender = tokio::spawn(app.state.sender.clone().run());
    // Every message to the fast endpoint arrives while the slow one is still
    // working through its first few.
    let to_fast = fast.wait_for(customers, Duration::from_secs(20)).await;
    let to_slow = slow.received().len();
    assert_eq!(to_fast.len(), customers);
    assert!(to_fast.iter().all(|m| m.verified_by == vec![0]));
    assert!(
        to_slow < customers,
        "the slow endpoint had them all already: {to_slow}"
    );
    let all_slow = slow.wait_for(customers, Duration::from_secs(60)).await;
    sender.abort();
    assert_eq!(all_slow.len(), customers);
    assert_eq!(
        slow.most_in_flight(),
        entitled::outbound::PER_ENDPOINT,
        "sends to one endpoint at once"
    );
}

async fn after_rotate_secret_messages_verify_under_the_old_and_the_new_secret(app: TestApp) {
    let receiver = Receiver::start().await;
    let old = endpoint(&app, "backend", &receiver.url, Value::Null).await;
    receiver.trust(&old);
    let rotated = app
        .admin(
            Method::POST,
            "/v1/admin/endpoints/backend/rotate-secret",
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(rotated.body["id"], "backend");
    receiver.trust(&new);
    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/backend", None)
        .await;
    assert!(!shown.body.to_string().contains(&new));

    let now = time::OffsetDateTime::now_utc();
    grant(
        &app,
        "ada@example.com",
        "pro",
        &fmt(now - time::Duration::hours(1)),
        &fmt(now + time::Duration::hours(1)),
    )
    .await;
    deliver(&app).await;
    let test = app
        .admin(Method::POST, "/v1/admin/endpoints/backend/test", None)
        .await;
    assert_eq!(test.status, StatusCode::OK);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for message in &received {
        // The new secret's signature first, the old one's beside it.
        assert_eq!(
            message.signature.split(' ').count(),
            2,
            "{}",
            message.signature
        );
        assert_eq!(message.verified_by, vec![0, 1], "{message:?}");
    }
    // A receiver that knows only one of them verifies too.
    for secret in [&old, &new] {
        let only = Receiver::start().await;
        only.trust(secret);
        app.admin(
            Method::PUT,
            "/v1/admin/endpoints/backend",
            Some(json!({"url": only.url})),
        )
        .await;
        app.admin(Method::POST, "/v1/admin/endpoints/backend/test", None)
            .await;
        assert_eq!(only.received()[0].verified_by, vec![0]);
    }
}

async fn test_sends_an_endpoint_test_at_once_and_answers_the_attempt(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.trust(&endpoint(&app, "backend", &receiver.url, Value::Null).await);
    let reply = app
        .admin(Method::POST, "/v1/admin/endpoints/backend/test", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status_code"], 200);
    assert_eq!(reply.body["error"], Value::Null);
    assert!(reply.body["at"].is_string() && reply.body["duration_ms"].is_i64());
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].verified_by, vec![0]);
    assert_eq!(received[0].body["type"], "endpoint.test");
    assert_eq!(received[0].body["data"]["endpoint"], "backend");
    assert!(received[0].body["timestamp"].is_string());
    let listed = messages(&app, "backend", "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], received[0].id.as_str());
    assert_eq!(listed[0]["type"], "endpoint.test");
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["sequence"], Value::Null);

    // Nobody listening: still a 200, the attempt says why.
    let dead = common::server::free_addr();
    app.admin(
        Method::PUT,
        "/v1/admin/endpoints/backend",
        Some(json!({"url": format!("http://{dead}/hooks")})),
    )
    .await;
    let reply = app
        .admin(Method::POST, "/v1/admin/endpoints/backend/test", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status_code"], Value::Null);
    let error = reply.body["error"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(
        !error.contains(&dead.to_string()),
        "no URL in errors: {error}"
    );
    let shown = app
        .admin(Method::GET, "/v1/admin/endpoints/backend", None)
        .await;
    assert_eq!(shown.body["status"], "failing");
    let failed = messages(&app, "backend", "&status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["type"], "endpoint.test");
    // A resend of the test message delivers once the receiver is back.
    app.admin(
        Method::PUT,
        "/v1/admin/endpoints/backend",
        Some(json!({"url": receiver.url})),
    )
    .await;
    let id = failed[0]["id"].as_str().unwrap();
    let resent = app
        .admin(
            Method::POST,
            &format!("/v1/admin/endpoints/backend/messages/{id}/resend"),
            None,
        )
        .await;
    assert_eq!(resent.body["status"], "delivered", "{:?}", resent.body);
    assert_eq!(receiver.received()[1].id, id);
}

/// The pair's answer and its last change, in brief.
fn brief(change: &Value) -> (String, bool, String, String, String, Value) {
    (
        change["email"].as_str().unwrap().to_owned(),
        change["answer"]["entitled"].as_bool().unwrap(),
        change["answer"]["reason"].as_str().unwrap().to_owned(),
        change["cause"]["kind"].as_str().unwrap().to_owned(),
        change["cause"]["event"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        change["cause"]["source"]["kind"].clone(),
    )
}

async fn time_alone_changes_answers_through_the_clock_once_whoever_settles(app: TestApp) {
    app.zenofy_integration().await;
    let now = time_fmt::truncate(time_fmt::now());
    let day = time::Duration::days(1);
    // ada: active until tomorrow, then 3 days of grace (the default policy).
    app.zenofy(zenofy("activated", "sub-ada", "ada@example.com", now + day))
        .await;
    // bea: a grant from in two hours to in three.
    let hour = time::Duration::hours(1);
    grant(
        &app,
        "bea@example.com",
        "pro",
        &fmt(now + 2 * hour),
        &fmt(now + 3 * hour),
    )
    .await;
    // cat: canceled, keeping the paid period (canceled_access: period_end,
    // product "keep").
    let policy = app
        .admin(
            Method::PUT,
            "/v1/admin/products/keep",
            Some(json!({"canceled_access": "period_end"})),
        )
        .await;
    assert!(policy.status.is_success(), "{:?}", policy.body);
    app.admin(
        Method::PUT,
        "/v1/admin/integrations/zenofy",
        Some(json!({"provider": "zenofy", "secret": common::SECRET,
            "product_map": {"507f1f77bcf86cd799439011": "keep"}})),
    )
    .await;
    app.zenofy(zenofy(
        "canceled",
        "sub-cat",
        "cat@example.com",
        now + 2 * day,
    ))
    .await;
    let before = all_changes(&app).await.len();
    assert_eq!(
        before, 2,
        "ada's activation, cat's cancelation (bea's grant has not begun)"
    );

    // Settling at the same instants from two stores at once (two replicas):
    // each change is appended once.
    let (other, _workers) = entitled::workers::connect(&app.url).await.unwrap();
    let mut expected = Vec::new();
    for (at, change) in [
        (
            now + 2 * hour,
            ("bea@example.com", true, "grant", "access_began"),
        ),
        (
            now + 3 * hour,
            ("bea@example.com", false, "period_ended", "access_ended"),
        ),
        (
            now + day,
            ("ada@example.com", true, "grace_period", "period_ended"),
        ),
        (
            now + 2 * day,
            ("cat@example.com", false, "canceled", "access_ended"),
        ),
        (
            now + 4 * day,
            ("ada@example.com", false, "period_ended", "access_ended"),
        ),
    ] {
        let settle = at + time::Duration::seconds(1);
        let (a, b) = tokio::join!(
            app.store.settle_due_timers(settle),
            other.settle_due_timers(settle)
        );
        assert_eq!(a.unwrap() + b.unwrap(), 1, "one change at {at}");
        assert_eq!(app.store.settle_due_timers(settle).await.unwrap(), 0);
        expected.push(change);
    }
    other.close().await;
    let log = all_changes(&app).await;
    let clock: Vec<_> = log[before..].iter().map(brief).collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(email, entitled, reason, event)| {
            let kind = if email.starts_with("bea") {
                "grant"
            } else {
                "subscription"
            };
            (
                (*email).to_owned(),
                *entitled,
                (*reason).to_owned(),
                "clock".to_owned(),
                (*event).to_owned(),
                json!(kind),
            )
        })
        .collect();
    assert_eq!(clock, want, "{log:#?}");
    // Each clock change continues its pair's chain.
    for change in &log[before..] {
        let earlier = log.iter().rfind(|c| {
            c["email"] == change["email"] && c["sequence"].as_i64() < change["sequence"].as_i64()
        });
        match earlier {
            Some(earlier) => assert_eq!(change["previous"], earlier["answer"], "{change}"),
            None => assert_eq!(change["previous"], Value::Null, "{change}"),
        }
    }
    // Nothing is left to settle: no edge lies ahead.
    assert_eq!(
        app.store
            .settle_due_timers(now + time::Duration::days(3650))
            .await
            .unwrap(),
        0
    );
}

async fn a_time_driven_change_is_sent_with_no_provider_event(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.trust(&endpoint(&app, "backend", &receiver.url, json!(["pro"])).await);
    let now = time_fmt::truncate(time_fmt::now());
    let id = grant(
        &app,
        "ada@example.com",
        "pro",
        &fmt(now - time::Duration::hours(1)),
        &fmt(now + time::Duration::minutes(10)),
    )
    .await;
    deliver(&app).await;
    app.store
        .settle_due_timers(now + time::Duration::minutes(11))
        .await
        .unwrap();
    assert_eq!(deliver(&app).await, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let change = &received[1].body["data"];
    assert_eq!(change["answer"]["entitled"], false);
    assert_eq!(change["answer"]["reason"], "period_ended");
    assert_eq!(change["previous"]["reason"], "grant");
    assert_eq!(change["cause"]["kind"], "clock");
    assert_eq!(change["cause"]["event"], "access_ended");
    assert_eq!(change["cause"]["delivery_id"], Value::Null);
    assert_eq!(
        change["cause"]["source"],
        json!({"kind": "grant", "id": id})
    );
    assert_eq!(received[1].verified_by, vec![0]);
}

/// One Server-Sent Event, or a comment.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Event { id: i64, event: String, data: Value },
    Comment(String),
}

/// Reads an event stream's body, frame by frame.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> (StatusCode, Self) {
        let mut request = Request::builder()
            .uri(format!("/v1/events{query}"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::OK {
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            assert_eq!(response.headers()["cache-control"], "no-cache");
        }
        (
            status,
            Self {
                body: response.into_body(),
                buffer: String::new(),
            },
        )
    }

    /// The next frame, or `None` when none comes within `patience`.
    async fn next(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_frame(block.trim_end()));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            let data = frame.ok()?.into_data().ok()?;
            self.buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
    }

    /// The next `n` events, skipping comments.
    async fn events(&mut self, n: usize) -> Vec<(i64, Value)> {
        let mut events = Vec::new();
        while events.len() < n {
            match self.next(Duration::from_secs(10)).await {
                Some(Frame::Event { id, event, data }) => {
                    assert_eq!(event, "access.changed");
                    assert_eq!(data["sequence"], id);
                    events.push((id, data));
                }
                Some(Frame::Comment(_)) => {}
                None => panic!("only {} of {n} events came: {events:#?}", events.len()),
            }
        }
        events
    }

    /// Asserts that no event comes within `quiet` (comments may).
    async fn nothing_more(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Some(frame) = self.next(deadline - tokio::time::Instant::now()).await {
            assert!(matches!(frame, Frame::Comment(_)), "unexpected {frame:?}");
        }
    }
}

fn parse_frame(block: &str) -> Frame {
    if let Some(comment) = block.strip_prefix(':') {
        return Frame::Comment(comment.trim().to_owned());
    }
    let mut id = None;
    let mut event = None;
    let mut data = None;
    for line in block.lines() {
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => id = Some(value.parse().unwrap()),
            "event" => event = Some(value.to_owned()),
            "data" => data = Some(serde_json::from_str(value).unwrap()),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    Frame::Event {
        id: id.unwrap(),
        event: event.unwrap(),
        data: data.unwrap(),
    }
}

async fn events_stream_every_change_once_in_order_and_resume_after_the_last_id(app: TestApp) {
    let now = time::OffsetDateTime::now_utc();
    let (from, until) = (
        fmt(now - time::Duration::hours(1)),
        fmt(now + time::Duration::days(1)),
    );
    grant(&app, "ada@example.com", "pro", &from, &until).await;
    grant(&app, "bea@example.com", "pro", &from, &until).await;
    grant(&app, "ada@example.com", "basic", &from, &until).await;

    let (status, mut stream) = Stream::open(&app, "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some(Frame::Comment("stream open".into()))
    );
    let first = stream.events(3).await;
    let log = all_changes(&app).await;
    assert_eq!(
        first,
        log.iter()
            .map(|c| (c["sequence"].as_i64().unwrap(), c.clone()))
            .collect::<Vec<_>>()
    );
    // A change made while the stream is open arrives, once.
    grant(&app, "cat@example.com", "pro", &from, &until).await;
    let live = stream.events(1).await;
    assert_eq!(live[0].0, 4);
    assert_eq!(live[0].1["email"], "cat@example.com");
    stream.nothing_more(Duration::from_millis(1200)).await;

    // Resuming: after Last-Event-ID (which takes the place of since), or since.
    let (_, mut resumed) = Stream::open(&app, "?since=0", &[("last-event-id", "2")]).await;
    assert_eq!(
        resumed
            .events(2)
            .await
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    resumed.nothing_more(Duration::from_millis(700)).await;
    let (_, mut since) = Stream::open(&app, "?since=3", &[]).await;
    assert_eq!(since.events(1).await[0].0, 4);
    let (_, mut beyond) = Stream::open(&app, "?since=99", &[]).await;
    beyond.nothing_more(Duration::from_millis(700)).await;

    // Filters.
    let (_, mut ada) = Stream::open(
        &app,
        &format!("?email={}", urlencode("ADA@example.com")),
        &[],
    )
    .await;
    assert_eq!(
        ada.events(2).await.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
    ada.nothing_more(Duration::from_millis(700)).await;
    let (_, mut basic) = Stream::open(&app, "?product=basic", &[]).await;
    assert_eq!(basic.events(1).await[0].0, 3);
    let (_, mut both) = Stream::open(
        &app,
        &format!("?email={}&product=pro", urlencode("cat@example.com")),
        &[],
    )
    .await;
    assert_eq!(both.events(1).await[0].0, 4);
    // The app scope may stream.
    let token = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "backend", "scope": "app"})),
        )
        .await;
    let token = token.body["token"].as_str().unwrap().to_owned();
    let response = app
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/events?since=3")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Where `value` departs from `schema` (a small JSON Schema reader: `$ref`,
/// `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`,
/// `items`, `oneOf`/`anyOf`/`allOf`; patterns and formats are not read).
fn departures(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{at}: no {reference}"));
        return departures(document, target, value, at);
    }
    let mut wrong = Vec::new();
    let type_name = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_ok = |t: &&str| *t == type_name || (*t == "number" && type_name == "integer");
    if !types.is_empty() && !types.iter().any(type_ok) {
        wrong.push(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        wrong.push(format!("{at}: {value} is not {constant}"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        wrong.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = schema.get(key)
            && !options
                .iter()
                .any(|option| departures(document, option, value, at).is_empty())
        {
            wrong.push(format!("{at}: {value} matches no {key} option"));
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        wrong.extend(departures(document, part, value, at));
    }
    if let Value::Object(fields) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(name.as_str().unwrap()) {
                wrong.push(format!("{at}: {name} is missing"));
            }
        }
        for (name, field) in fields {
            match schema["properties"].get(name) {
                Some(property) => wrong.extend(departures(
                    document,
                    property,
                    field,
                    &format!("{at}.{name}"),
                )),
                None if schema["additionalProperties"] == false => {
                    wrong.push(format!("{at}: {name} is not described"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, value) in items.iter().enumerate() {
            wrong.extend(departures(document, item, value, &format!("{at}[{i}]")));
        }
    }
    wrong
}

/// Every event the stream sends is one the OpenAPI document describes: `id`
/// (the sequence), `event` and `data`, the data a change as the change log
/// lists it; and the document says so where OpenAPI tools read it (the
/// `text/event-stream` media type's schema, one event).
async fn each_streamed_event_is_what_the_document_describes(app: TestApp) {
    let document = entitled::http::openapi::document_value();
    let event_schema = document
        .pointer("/paths/~1v1~1events/get/responses/200/content/text~1event-stream/schema")
        .expect("the stream's media type")
        .clone();
    assert_eq!(event_schema["type"], "object", "{event_schema}");
    assert_eq!(event_schema["required"], json!(["id", "event", "data"]));
    assert_eq!(
        event_schema["properties"]["event"]["const"],
        "access.changed"
    );
    assert_eq!(
        event_schema["properties"]["data"]["contentMediaType"],
        "application/json"
    );
    let change_schema = event_schema["properties"]["data"]["contentSchema"].clone();
    assert_eq!(change_schema["$ref"], "#/components/schemas/ChangeView");
    // The change log's items are the same schema (inlined in its page).
    assert_eq!(
        document.pointer("/components/schemas/Page_ChangeView/properties/items/items"),
        document.pointer("/components/schemas/ChangeView")
    );

    // Changes of every shape: new (no previous), revoked (a previous), from a
    // delivery (a delivery and a source), with a plan and a validity.
    let now = time::OffsetDateTime::now_utc();
    let (from, until) = (
        fmt(now - time::Duration::hours(1)),
        fmt(now + time::Duration::days(1)),
    );
    let granted = grant(&app, "ada@example.com", "pro", &from, &until).await;
    let revoked = app
        .admin(Method::DELETE, &format!("/v1/admin/grants/{granted}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    app.zenofy_integration().await;
    let delivered = app
        .zenofy(zenofy("activated", "sub-1", "bea@example.com", in_days(30)))
        .await;
    assert_eq!(delivered.body["outcome"], "applied", "{:?}", delivered.body);
    let log = all_changes(&app).await;
    assert!(log.len() >= 3, "{log:#?}");

    let (status, mut stream) = Stream::open(&app, "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = Vec::new();
    while seen.len() < log.len() {
        match stream.next(Duration::from_secs(10)).await {
            Some(Frame::Event { id, event, data }) => {
                assert!(id > 0, "the id is a sequence: {id}");
                let as_parsed =
                    json!({"id": id.to_string(), "event": event, "data": data.to_string()});
                let wrong = departures(&document, &event_schema, &as_parsed, "event");
                assert!(wrong.is_empty(), "{wrong:#?}");
                let wrong = departures(&document, &change_schema, &data, "data");
                assert!(wrong.is_empty(), "{wrong:#?}\n{data:#}");
                assert_eq!(data["sequence"], id);
                seen.push(data);
            }
            Some(Frame::Comment(_)) => {}
            None => panic!("only {} of {} events came", seen.len(), log.len()),
        }
    }
    assert_eq!(seen, log, "the stream's data is the change log's");
    assert!(seen.iter().any(|c| c["previous"].is_object()), "{seen:#?}");
    assert!(
        seen.iter().any(|c| c["cause"]["delivery_id"].is_string()),
        "{seen:#?}"
    );
}

async fn bad_event_stream_requests_are_problems_that_name_the_field(app: TestApp) {
    for (query, headers, field) in [
        ("?since=-1", vec![], "since"),
        ("?since=x", vec![], "since"),
        ("?since=1000000000000000000", vec![], "since"),
        ("", vec![("last-event-id", "abc")], "Last-Event-ID"),
        ("?since=1", vec![("last-event-id", "-5")], "Last-Event-ID"),
        // `since` is checked even when `Last-Event-ID` takes its place.
        ("?since=-1", vec![("last-event-id", "2")], "since"),
        ("?since=x", vec![("last-event-id", "2")], "since"),
        (
            "?since=1000000000000000000",
            vec![("last-event-id", "0")],
            "since",
        ),
        ("?email=nobody", vec![], "email"),
        ("?product=not%20a%20key", vec![], "product"),
        ("?email=%00a@example.com", vec![], "email"),
    ] {
        let mut request = Request::builder()
            .uri(format!("/v1/events{query}"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        app.send(request.body(Body::empty()).unwrap())
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    app.send(
        Request::builder()
            .uri("/v1/events")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, None);
}

/// A metric's value in the Prometheus text exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

async fn scrape(app: &TestApp) -> String {
    let reply = app.admin(Method::GET, "/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body.as_str().unwrap().to_owned()
}

async fn metrics_count_messages_attempts_the_oldest_pending_and_open_streams(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.trust(&endpoint(&app, "backend", &receiver.url, Value::Null).await);
    let now = time::OffsetDateTime::now_utc();
    let (from, until) = (
        fmt(now - time::Duration::hours(1)),
        fmt(now + time::Duration::days(1)),
    );
    grant(&app, "ada@example.com", "pro", &from, &until).await;
    receiver.answer_next(&[500]);
    deliver(&app).await;
    grant(&app, "bea@example.com", "pro", &from, &until).await;
    deliver(&app).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = scrape(&app).await;
    assert_eq!(
        metric(&text, "entitled_outbound_messages{status=\"pending\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "entitled_outbound_messages{status=\"delivered\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "entitled_outbound_messages{status=\"failed\"}"),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            "entitled_outbound_attempts_total{result=\"rejected\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "entitled_outbound_attempts_total{result=\"delivered\"}"
        ),
        1.0
    );
    assert!(metric(&text, "entitled_outbound_oldest_pending_age_seconds") >= 1.0);
    assert_eq!(metric(&text, "entitled_event_streams_open"), 0.0);
    assert!(text.contains("# HELP entitled_outbound_messages "));

    let (_, mut stream) = Stream::open(&app, "", &[]).await;
    stream.events(2).await;
    assert_eq!(
        metric(&scrape(&app).await, "entitled_event_streams_open"),
        1.0
    );
    drop(stream);
    // The stream's task notices the client went away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&scrape(&app).await, "entitled_event_streams_open") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream stayed counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
