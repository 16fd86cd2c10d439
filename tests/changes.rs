//! The change log on both databases: every change of an access answer is
//! appended with its cause in the transaction that causes it, nothing else is,
//! and sequences are dense and in commit order even with concurrent writers.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, fixture_json, urlencode};
use serde_json::{Value, json};

on_both_databases!(
    a_lifecycle_appends_exactly_the_changes_of_the_answer_with_their_causes,
    events_that_change_no_answer_append_nothing,
    an_order_paid_before_its_registration_changes_on_registration,
    changes_filter_by_customer_and_product_and_page_with_since_and_cursor,
    concurrent_writers_leave_no_gap_a_consumer_could_skip,
    concurrent_writers_of_one_customer_log_a_chain_ending_in_the_answer,
    changes_past_their_retention_are_dropped_and_sequences_go_on,
    delivery_bodies_past_their_retention_are_dropped_and_the_row_stays,
    the_clock_expires_through_the_same_writer_and_logs_its_change,
);

/// A Zenofy subscription event for `subscription` and `email`, its period
/// around now (so that the answer at the time it is received grants access).
fn zenofy(event: &str, subscription: &str, email: &str) -> Vec<u8> {
    let fixture = match event {
        "activated" => "zenofy/subscription.activated.json",
        "suspended" => "zenofy/subscription.suspended.json",
        "canceled" => "zenofy/subscription.canceled.json",
        other => panic!("no fixture for {other}"),
    };
    let mut body = fixture_json(fixture);
    let now = time::OffsetDateTime::now_utc();
    let fmt =
        |at: time::OffsetDateTime| entitled::time_fmt::rfc3339(entitled::time_fmt::truncate(at));
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["currentPeriodStart"] = json!(fmt(now - time::Duration::days(1)));
    body["currentPeriodEnd"] = json!(fmt(now + time::Duration::days(30)));
    serde_json::to_vec(&body).unwrap()
}

async fn changes(app: &TestApp, query: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/v1/admin/changes?limit=500{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn all_changes(app: &TestApp) -> Vec<Value> {
    changes(app, "").await["items"].as_array().unwrap().clone()
}

/// A change in brief: sequence, answer, previous answer, cause kind, event.
type Summary = (i64, (bool, String), Option<(bool, String)>, String, Value);

/// `(entitled, reason)` of an answer.
fn said(answer: &Value) -> (bool, String) {
    (
        answer["entitled"].as_bool().unwrap(),
        answer["reason"].as_str().unwrap().to_owned(),
    )
}

async fn a_lifecycle_appends_exactly_the_changes_of_the_answer_with_their_causes(app: TestApp) {
    app.zenofy_integration().await;
    let activation = app
        .zenofy(zenofy("activated", "sub-1", "ada@example.com"))
        .await;
    assert_eq!(
        activation.body["outcome"], "applied",
        "{:?}",
        activation.body
    );
    let subscription = activation.body["subject"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let log = all_changes(&app).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    let first = &log[0];
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["email"], "ada@example.com");
    assert_eq!(first["product"], "pro");
    assert_eq!(said(&first["answer"]), (true, "active".into()));
    assert!(first["answer"]["valid_until"].is_string());
    assert_eq!(
        first["previous"],
        Value::Null,
        "a first source has no previous answer"
    );
    assert_eq!(first["cause"]["kind"], "delivery");
    assert_eq!(
        first["cause"]["delivery_id"],
        activation.body["delivery_id"]
    );
    assert_eq!(first["cause"]["event"], "activated");
    assert_eq!(
        first["cause"]["source"],
        json!({"kind": "subscription", "id": subscription})
    );
    // The answer the log records is the one the API gives.
    let access = app.access("ada@example.com", "pro", None).await.body;
    assert_eq!(said(&access), said(&first["answer"]));
    assert_eq!(access["valid_until"], first["answer"]["valid_until"]);

    let suspension = app
        .zenofy(zenofy("suspended", "sub-1", "ada@example.com"))
        .await;
    assert_eq!(
        suspension.body["outcome"], "applied",
        "{:?}",
        suspension.body
    );
    let grant = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "ada@example.com", "product": "pro", "reason": "support"})),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{:?}", grant.body);
    let grant_id = grant.body["id"].as_str().unwrap().to_owned();
    let revoke = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/grants/{grant_id}"),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
    let policy = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"suspended_access": true})),
        )
        .await;
    assert!(policy.status.is_success(), "{:?}", policy.body);

    let log = all_changes(&app).await;
    let summary: Vec<Summary> = log
        .iter()
        .map(|c| {
            (
                c["sequence"].as_i64().unwrap(),
                said(&c["answer"]),
                (!c["previous"].is_null()).then(|| said(&c["previous"])),
                c["cause"]["kind"].as_str().unwrap().to_owned(),
                c["cause"]["event"].clone(),
            )
        })
        .collect();
    let active = (true, "active".to_owned());
    let suspended = (false, "suspended".to_owned());
    let granted = (true, "grant".to_owned());
    let revoked = (false, "revoked".to_owned());
    assert_eq!(
        summary,
        vec![
            (
                1,
                active.clone(),
                None,
                "delivery".into(),
                json!("activated")
            ),
            (
                2,
                suspended.clone(),
                Some(active.clone()),
                "delivery".into(),
                json!("suspended")
            ),
            (
                3,
                granted.clone(),
                Some(suspended.clone()),
                "grant".into(),
                json!("granted")
            ),
            // The revoked grant is the most recently changed source: it explains.
            (
                4,
                revoked.clone(),
                Some(granted),
                "grant".into(),
                json!("revoked")
            ),
            (
                5,
                active,
                Some(revoked),
                "policy".into(),
                json!("policy_changed")
            ),
        ]
    );
    assert_eq!(
        log[1]["cause"]["delivery_id"],
        suspension.body["delivery_id"]
    );
    assert_eq!(
        log[2]["cause"]["source"],
        json!({"kind": "grant", "id": grant_id})
    );
    assert_eq!(
        log[4]["cause"]["source"],
        Value::Null,
        "a policy is no source"
    );
    assert_eq!(log[4]["cause"]["delivery_id"], Value::Null);
}

async fn events_that_change_no_answer_append_nothing(app: TestApp) {
    app.zenofy_integration().await;
    let body = zenofy("activated", "sub-1", "ada@example.com");
    assert_eq!(app.zenofy(body.clone()).await.body["outcome"], "applied");
    // The same bytes again, a rejected event, an unknown customer's check, a
    // policy change that moves no window of this customer's.
    assert_eq!(app.zenofy(body).await.body["outcome"], "duplicate");
    let mut other = fixture_json("zenofy/subscription.created.json");
    other["subscriptionId"] = json!("sub-1");
    other["customerEmail"] = json!("ada@example.com");
    let reply = app.zenofy(serde_json::to_vec(&other).unwrap()).await;
    assert_ne!(reply.body["outcome"], "applied", "{:?}", reply.body);
    app.access("nobody@example.com", "pro", None).await;
    let policy = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"suspended_access": true})),
        )
        .await;
    assert!(policy.status.is_success(), "{:?}", policy.body);
    let log = all_changes(&app).await;
    assert_eq!(
        log.len(),
        1,
        "only the activation changed an answer: {log:#?}"
    );
}

async fn an_order_paid_before_its_registration_changes_on_registration(app: TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zaypay",
            Some(json!({"provider": "zaypay", "secret": "zaypay-url-token-0123456789"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let mut body = fixture_json("zaypay/completed.json");
    body["subject_id"] = json!("zp-order-1");
    body["payload"]["order"]["id"] = json!("zp-order-1");
    let paid = app
        .webhook(
            "/v1/webhooks/zaypay?token=zaypay-url-token-0123456789",
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(paid.body["outcome"], "unmatched", "{:?}", paid.body);
    assert!(
        all_changes(&app).await.is_empty(),
        "nobody's answer changed yet"
    );
    let registered = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(json!({"integration": "zaypay", "external_id": "zp-order-1",
                        "email": "bo@example.com", "product": "pro"})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    assert_eq!(registered.body["state"], "paid", "{:?}", registered.body);
    let log = all_changes(&app).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(said(&log[0]["answer"]), (true, "purchase".into()));
    assert_eq!(log[0]["cause"]["kind"], "registration");
    assert_eq!(log[0]["cause"]["delivery_id"], paid.body["delivery_id"]);
    assert_eq!(
        log[0]["cause"]["source"],
        json!({"kind": "order", "id": registered.body["id"]})
    );
}

async fn changes_filter_by_customer_and_product_and_page_with_since_and_cursor(app: TestApp) {
    app.zenofy_integration().await;
    for (i, email) in ["a@x.io", "b@x.io", "a@x.io", "c@x.io"].iter().enumerate() {
        let reply = app
            .zenofy(zenofy("activated", &format!("sub-{i}"), email))
            .await;
        assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    }
    let all = all_changes(&app).await;
    let of_a = changes(&app, &format!("&email={}", urlencode("A@x.io"))).await;
    let expected: Vec<&Value> = all.iter().filter(|c| c["email"] == "a@x.io").collect();
    assert_eq!(
        of_a["items"].as_array().unwrap().iter().collect::<Vec<_>>(),
        expected
    );
    assert_eq!(changes(&app, "&product=other").await["items"], json!([]));
    let after_first = changes(&app, "&since=1").await;
    assert_eq!(after_first["items"].as_array().unwrap()[..], all[1..]);
    // Page by page, with the cursor: every change once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => {
                app.admin(
                    Method::GET,
                    &format!("/v1/admin/changes?limit=1&cursor={c}"),
                    None,
                )
                .await
                .body
            }
            None => {
                app.admin(Method::GET, "/v1/admin/changes?limit=1", None)
                    .await
                    .body
            }
        };
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= all.len(), "the walk does not end");
    }
    assert_eq!(seen, all);
    for bad in [
        "since=-1",
        "since=x",
        "cursor=c1.x",
        "cursor=1",
        "email=nope",
        // A cursor takes the place of `since`, which is still checked.
        "since=true&cursor=c1.1",
    ] {
        let reply = app
            .admin(Method::GET, &format!("/v1/admin/changes?{bad}"), None)
            .await;
        let field = bad.split('=').next().unwrap();
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
}

async fn concurrent_writers_leave_no_gap_a_consumer_could_skip(app: TestApp) {
    app.zenofy_integration().await;
    const WRITERS: usize = 8;
    const EACH: usize = 8;
    let app = std::sync::Arc::new(app);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A consumer reading on from the last sequence it saw, while writers commit.
    let consumer = {
        let app = app.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let since = seen.last().copied().unwrap_or(0);
                let page = changes(&app, &format!("&since={since}")).await;
                seen.extend(
                    page["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["sequence"].as_i64().unwrap()),
                );
                if finished && page["items"].as_array().unwrap().is_empty() {
                    break seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let email = format!("w{w}-{i}@example.com");
                    let reply = app
                        .zenofy(zenofy("activated", &format!("sub-{w}-{i}"), &email))
                        .await;
                    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = consumer.await.unwrap();
    let total = (WRITERS * EACH) as i64;
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "the consumer saw every sequence once, in order"
    );
    let stored: Vec<i64> = all_changes(&app)
        .await
        .iter()
        .map(|c| c["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, (1..=total).collect::<Vec<_>>());
}

/// Writers of different sources of one (customer, product) at once: grants
/// given and revoked, subscriptions activated and canceled. Each change's
/// `previous` is the change before it (nobody compared against a state the
/// other had not committed), and the last change says what an access check
/// answers.
async fn concurrent_writers_of_one_customer_log_a_chain_ending_in_the_answer(app: TestApp) {
    app.zenofy_integration().await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..4 {
                let grant = app
                    .admin(
                        Method::POST,
                        "/v1/admin/grants",
                        Some(
                            json!({"email": "ada@example.com", "product": "pro", "reason": "comp"}),
                        ),
                    )
                    .await;
                assert_eq!(grant.status, StatusCode::CREATED, "{:?}", grant.body);
                let id = grant.body["id"].as_str().unwrap().to_owned();
                let subscription = format!("sub-{w}-{i}");
                let reply = app
                    .zenofy(zenofy("activated", &subscription, "ada@example.com"))
                    .await;
                assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
                let revoked = app
                    .admin(Method::DELETE, &format!("/v1/admin/grants/{id}"), None)
                    .await;
                assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
                if i % 2 == 0 {
                    let reply = app
                        .zenofy(zenofy("canceled", &subscription, "ada@example.com"))
                        .await;
                    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let log = all_changes(&app).await;
    assert!(!log.is_empty());
    let mut previous = Value::Null;
    for change in &log {
        assert_eq!(
            change["previous"], previous,
            "change {} follows the one before it: {log:#?}",
            change["sequence"]
        );
        previous = change["answer"].clone();
    }
    let access = app.access("ada@example.com", "pro", None).await;
    for field in ["entitled", "reason", "valid_until", "plan"] {
        assert_eq!(
            previous[field], access.body[field],
            "the last change is the answer ({field}): {:?}",
            access.body
        );
    }
}

async fn changes_past_their_retention_are_dropped_and_sequences_go_on(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .zenofy(zenofy("activated", "sub-1", "ada@example.com"))
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let past = entitled::time_fmt::now() - time::Duration::days(1);
    assert_eq!(app.store.drop_changes_before(past).await.unwrap(), 0);
    assert_eq!(all_changes(&app).await.len(), 1, "a fresh change is kept");
    let future = entitled::time_fmt::now() + time::Duration::seconds(1);
    assert_eq!(app.store.drop_changes_before(future).await.unwrap(), 1);
    assert!(all_changes(&app).await.is_empty());
    let reply = app
        .zenofy(zenofy("suspended", "sub-1", "ada@example.com"))
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let log = all_changes(&app).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0]["sequence"], 2,
        "a dropped change's number is not reused"
    );
}

async fn delivery_bodies_past_their_retention_are_dropped_and_the_row_stays(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .zenofy(zenofy("activated", "sub-1", "ada@example.com"))
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let id = reply.body["delivery_id"].as_str().unwrap().to_owned();
    let now = entitled::time_fmt::now();
    let past = now - time::Duration::days(1);
    let dropped = app.store.drop_delivery_bodies_before(past, now, 100).await;
    assert_eq!(dropped.unwrap(), 0, "a fresh body is kept");
    let future = now + time::Duration::seconds(1);
    let dropped = app
        .store
        .drop_delivery_bodies_before(future, now, 100)
        .await;
    assert_eq!(dropped.unwrap(), 1);
    let detail = app
        .admin(Method::GET, &format!("/v1/admin/deliveries/{id}"), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{:?}", detail.body);
    assert_eq!(detail.body["body"], Value::Null);
    assert!(
        detail.body["body_dropped_at"].is_string(),
        "{:?}",
        detail.body
    );
    assert_eq!(detail.body["outcome"], "applied", "the outcome stays");
    assert_eq!(detail.body["attempts"].as_array().unwrap().len(), 1);
    let replay = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{id}/replay"),
            None,
        )
        .await;
    replay.assert_problem(StatusCode::CONFLICT, None);
    assert!(
        replay.body["detail"].as_str().unwrap().contains("dropped"),
        "{:?}",
        replay.body
    );
}

async fn the_clock_expires_through_the_same_writer_and_logs_its_change(app: TestApp) {
    app.zenofy_integration().await;
    let mut body = fixture_json("zenofy/subscription.activated.json");
    body["subscriptionId"] = json!("sub-lapsed");
    body["customerEmail"] = json!("ada@example.com");
    body["currentPeriodStart"] = json!("2026-01-01T00:00:00Z");
    body["currentPeriodEnd"] = json!("2026-02-01T00:00:00Z");
    let reply = app.zenofy(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let subscription = reply.body["subject"]["id"].as_str().unwrap().to_owned();
    let expired = app
        .store
        .expire_lapsed(entitled::time_fmt::now())
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let log = all_changes(&app).await;
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(said(&log[0]["answer"]), (false, "period_ended".into()));
    assert_eq!(said(&log[1]["answer"]), (false, "expired".into()));
    assert_eq!(said(&log[1]["previous"]), (false, "period_ended".into()));
    assert_eq!(
        log[1]["cause"],
        json!({"kind": "clock", "delivery_id": null, "event": "expired",
               "source": {"kind": "subscription", "id": subscription}})
    );
    let detail = app.subscription(&subscription).await;
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["source"], "clock");
    assert_eq!(last["to_state"], "expired");
    assert_eq!(last["delivery_id"], Value::Null);
    assert_eq!(
        last["reason"],
        "the period and its grace ended without a renewal"
    );
    // Once expired, the clock finds nothing more to do.
    let again = app.store.expire_lapsed(entitled::time_fmt::now()).await;
    assert_eq!(again.unwrap(), 0);
}
