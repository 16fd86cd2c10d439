//! What operators see and do, through HTTP: the delivery log (filters, cursor,
//! raw body, redacted headers, attempts), replay, grants, API tokens and their
//! scopes, the customer view with its merged timeline, Prometheus metrics,
//! request ids and the clock that expires lapsed subscriptions. Then, on a real
//! `entitled serve` process: JSON logs with a request id on every request line
//! and no secret anywhere, and a SIGTERM that lets in-flight requests finish.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::{ADMIN_TOKEN, Reply, SECRET, TestApp, fixture, urlencode, variant};
use serde_json::{Value, json};
use tower::ServiceExt;

on_both_databases!(
    delivery_log_lists_newest_first_and_filters,
    delivery_log_cursor_walk_visits_each_delivery_once,
    delivery_detail_has_raw_body_redacted_headers_and_attempts,
    replay_applies_the_stored_body_to_the_current_state,
    replay_of_malformed_ignored_unknown_and_orphaned_deliveries,
    grants_create_list_revoke,
    grants_validation_names_the_field,
    tokens_are_shown_once_listed_without_values_and_deleted,
    app_tokens_reach_only_app_endpoints,
    customer_view_merges_sources_entitlements_and_timeline,
    metrics_count_deliveries_auth_failures_access_checks_and_latency,
    request_ids_are_generated_or_echoed,
    clock_expires_lapsed_active_subscriptions_only,
);

const ACTIVATED: &str = "zenofy/subscription.activated.json";
const CREATED: &str = "zenofy/subscription.created.json";
const SUSPENDED: &str = "zenofy/subscription.suspended.json";
const CANCELED: &str = "zenofy/subscription.canceled.json";
const ORDER_PAID: &str = "zenofy/order_paid.json";

/// The customer of the Zenofy fixtures.
const BUYER: &str = "buyer@example.com";

// ---------------------------------------------------------------- helpers

/// A Zenofy subscription fixture for another subscription and customer.
fn for_subscription(path: &str, external_id: &str, email: &str) -> Vec<u8> {
    variant(path, |j| {
        j["subscriptionId"] = json!(external_id);
        j["customerEmail"] = json!(email);
        if j["order"].is_object() {
            j["order"]["customer"]["email"] = json!(email);
        }
    })
}

/// Asserts a 200 delivery answer with this outcome and returns the body.
fn assert_outcome(reply: &Reply, outcome: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["outcome"], outcome, "{:?}", reply.body);
    assert!(
        reply.body["delivery_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{:?}",
        reply.body
    );
    reply.body.clone()
}

/// The delivery id of a webhook answer (or a malformed problem).
fn delivery_id(answer: &Value) -> String {
    answer["delivery_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery_id: {answer:?}"))
        .to_owned()
}

/// An admin `GET`, expected to succeed.
async fn get_ok(app: &TestApp, path: &str) -> Value {
    let reply = app.admin(Method::GET, path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {path}: {:?}", reply.body);
    assert_eq!(reply.content_type, "application/json", "GET {path}");
    reply.body
}

/// The `id`s of a list's items, in order.
fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {list:?}"))
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// An RFC 3339 instant from a response.
fn instant(value: &Value) -> time::OffsetDateTime {
    value
        .as_str()
        .and_then(entitled::time_fmt::parse_lenient)
        .unwrap_or_else(|| panic!("not an instant: {value:?}"))
}

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {:?}",
        reply.body
    );
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
}

/// Sends a request and keeps the response headers too.
async fn send_raw(app: &TestApp, request: Request<Body>) -> (StatusCode, HeaderMap) {
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    (response.status(), response.headers().clone())
}

/// The `x-request-id` of a response.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id in {headers:?}"))
        .to_owned()
}

/// Creates a token; returns `(id, value)`.
async fn create_token(app: &TestApp, name: &str, scope: &str) -> (String, String) {
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": name, "scope": scope})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (
        reply.body["id"].as_str().expect("id").to_owned(),
        reply.body["token"].as_str().expect("token").to_owned(),
    )
}

/// Creates a grant; returns its body.
async fn create_grant(app: &TestApp, body: Value) -> Value {
    let reply = app
        .admin(Method::POST, "/v1/admin/grants", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body
}

/// An access answer, expected to succeed.
async fn access(app: &TestApp, email: &str, product: &str, at: Option<&str>) -> Value {
    let reply = app.access(email, product, at).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// The `(event, from_state, to_state, outcome, delivery_id, source)` of each
/// history entry.
fn history(detail: &Value) -> Vec<(String, Value, Value, String, Value, String)> {
    detail["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {detail:?}"))
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap().to_owned(),
                h["from_state"].clone(),
                h["to_state"].clone(),
                h["outcome"].as_str().unwrap().to_owned(),
                h["delivery_id"].clone(),
                h["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(
    event: &str,
    from: Value,
    to: Value,
    outcome: &str,
    delivery: Value,
    source: &str,
) -> (String, Value, Value, String, Value, String) {
    (
        event.to_owned(),
        from,
        to,
        outcome.to_owned(),
        delivery,
        source.to_owned(),
    )
}

/// Asserts that the `at` of a list of entries never goes back in time.
fn assert_oldest_first(entries: &Value, what: &str) {
    let ats: Vec<_> = entries
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not a list: {entries:?}"))
        .iter()
        .map(|e| instant(&e["at"]))
        .collect();
    assert!(
        ats.windows(2).all(|w| w[0] <= w[1]),
        "{what} is not oldest first: {entries:#}"
    );
}

// ---------------------------------------------------------------- delivery log

async fn delivery_log_lists_newest_first_and_filters(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy-b",
            Some(json!({"provider": "zenofy", "secret": "zenofy-b-secret-456", "product_map": {}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    let applied = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let subscription = applied["subject"]["id"].as_str().unwrap().to_owned();
    let duplicate = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "duplicate");
    let malformed = app.zenofy("{not json").await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, None);
    assert_eq!(
        malformed.body["outcome"], "malformed",
        "{:?}",
        malformed.body
    );
    let ignored = assert_outcome(
        &app.zenofy(variant(ACTIVATED, |j| j["event"] = json!("payout.created")))
            .await,
        "ignored",
    );
    // Refused: nothing stored, so not listed.
    let refused = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[("x-webhook-secret", "not-the-secret")],
            fixture(ACTIVATED),
        )
        .await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, None);
    let elsewhere = assert_outcome(
        &app.webhook(
            "/v1/webhooks/zenofy-b?token=zenofy-b-secret-456",
            &[("content-type", "application/json")],
            for_subscription(ACTIVATED, "sub-b", "b@example.com"),
        )
        .await,
        "applied",
    );
    let [
        applied_id,
        duplicate_id,
        malformed_id,
        ignored_id,
        elsewhere_id,
    ] = [&applied, &duplicate, &malformed.body, &ignored, &elsewhere].map(delivery_id);

    let all = get_ok(&app, "/v1/admin/deliveries").await;
    assert_eq!(
        ids(&all),
        vec![
            elsewhere_id.clone(),
            ignored_id.clone(),
            malformed_id.clone(),
            duplicate_id.clone(),
            applied_id.clone()
        ],
        "newest first: {all:#}"
    );
    assert_eq!(all["next_cursor"], Value::Null);
    assert_oldest_first(
        &Value::Array(
            all["items"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .map(|d| json!({"at": d["received_at"]}))
                .collect(),
        ),
        "received_at, read backwards",
    );

    let items = all["items"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|d| d["id"] == id).unwrap().clone();
    let subject = json!({"kind": "subscription", "id": subscription});
    let expect = |id: &str, integration: &str, event: Value, outcome: &str, subject: Value| {
        let item = by_id(id);
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "id",
            "integration",
            "provider",
            "received_at",
            "event",
            "outcome",
            "reason",
            "subject",
        ] {
            assert!(keys.contains(&key), "{key} missing from {item:#}");
        }
        assert_eq!(item["integration"], integration, "{item:#}");
        assert_eq!(item["provider"], "zenofy", "{item:#}");
        assert_eq!(item["event"], event, "{item:#}");
        assert_eq!(item["outcome"], outcome, "{item:#}");
        assert_eq!(item["subject"], subject, "{item:#}");
        instant(&item["received_at"]);
        item
    };
    let item = expect(
        &applied_id,
        "zenofy",
        json!("subscription.activated"),
        "applied",
        subject.clone(),
    );
    assert_eq!(item["reason"], applied["reason"]);
    let item = expect(
        &duplicate_id,
        "zenofy",
        json!("subscription.activated"),
        "duplicate",
        subject.clone(),
    );
    assert!(
        item["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&applied_id)),
        "a duplicate names the first delivery: {item:#}"
    );
    let item = expect(
        &malformed_id,
        "zenofy",
        Value::Null,
        "malformed",
        Value::Null,
    );
    assert_eq!(item["reason"], malformed.body["detail"], "{item:#}");
    let item = expect(
        &ignored_id,
        "zenofy",
        json!("payout.created"),
        "ignored",
        Value::Null,
    );
    assert_eq!(item["reason"], ignored["reason"]);
    expect(
        &elsewhere_id,
        "zenofy-b",
        json!("subscription.activated"),
        "applied",
        json!({"kind": "subscription", "id": elsewhere["subject"]["id"]}),
    );

    // Filters, alone and together.
    for (query, expected) in [
        (
            "integration=zenofy",
            vec![&ignored_id, &malformed_id, &duplicate_id, &applied_id],
        ),
        ("integration=zenofy-b", vec![&elsewhere_id]),
        ("outcome=applied", vec![&elsewhere_id, &applied_id]),
        ("outcome=duplicate", vec![&duplicate_id]),
        ("outcome=malformed", vec![&malformed_id]),
        ("outcome=ignored", vec![&ignored_id]),
        ("outcome=rejected", vec![]),
        ("integration=zenofy&outcome=applied", vec![&applied_id]),
        ("integration=zenofy-b&outcome=duplicate", vec![]),
        ("integration=nope", vec![]),
    ] {
        let list = get_ok(&app, &format!("/v1/admin/deliveries?{query}")).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&list), expected, "{query}: {list:#}");
        assert_eq!(list["next_cursor"], Value::Null, "{query}");
    }

    // Bad filters name the parameter.
    for (query, field) in [
        ("outcome=bogus", "outcome"),
        ("outcome=", "outcome"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
    ] {
        let reply = app
            .admin(Method::GET, &format!("/v1/admin/deliveries?{query}"), None)
            .await;
        reply.assert_invalid(query, field);
    }

    // Admin only.
    let reply = app
        .send(
            Request::builder()
                .uri("/v1/admin/deliveries")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_unauthorized(&reply, "no token");
}

async fn delivery_log_cursor_walk_visits_each_delivery_once(app: TestApp) {
    app.zenofy_integration().await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let body = for_subscription(
            ACTIVATED,
            &format!("sub-walk-{n}"),
            &format!("walk{n}@example.com"),
        );
        sent.push(delivery_id(&assert_outcome(
            &app.zenofy(body).await,
            "applied",
        )));
        let ignored = variant(ACTIVATED, |j| {
            j["event"] = json!("payout.created");
            j["subscriptionId"] = json!(format!("sub-walk-{n}"));
        });
        sent.push(delivery_id(&assert_outcome(
            &app.zenofy(ignored).await,
            "ignored",
        )));
    }
    sent.reverse(); // newest first

    let walk = |query: &'static str, limit: usize| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/admin/deliveries?limit={limit}{query}");
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={}", urlencode(cursor)));
                }
                let page = get_ok(app, &path).await;
                let page_ids = ids(&page);
                pages.push(page_ids.len());
                assert!(pages.len() <= 20, "the walk does not end: {pages:?}");
                seen.extend(page_ids);
                match page["next_cursor"].as_str() {
                    Some(next) => {
                        assert_ne!(
                            Some(next),
                            seen.last().map(String::as_str),
                            "the cursor is opaque, not the last item's key"
                        );
                        cursor = Some(next.to_owned());
                    }
                    None => break,
                }
            }
            (seen, pages)
        }
    };

    let (seen, pages) = walk("", 1).await;
    assert_eq!(
        seen, sent,
        "limit=1 visits every delivery once, newest first"
    );
    assert_eq!(pages, vec![1; 10]);

    let (seen, pages) = walk("", 3).await;
    assert_eq!(seen, sent);
    assert_eq!(pages, vec![3, 3, 3, 1]);

    let (seen, pages) = walk("", 5).await;
    assert_eq!(seen, sent);
    assert_eq!(pages, vec![5, 5], "no empty page after an exact fit");

    // The cursor keeps the filter's company.
    let applied: Vec<String> = sent.iter().skip(1).step_by(2).cloned().collect();
    let (seen, pages) = walk("&outcome=applied", 2).await;
    assert_eq!(seen, applied);
    assert_eq!(pages, vec![2, 2, 1]);
    let (seen, _) = walk("&integration=zenofy&outcome=ignored", 1).await;
    let ignored: Vec<String> = sent.iter().step_by(2).cloned().collect();
    assert_eq!(seen, ignored);
}

async fn delivery_detail_has_raw_body_redacted_headers_and_attempts(app: TestApp) {
    app.zenofy_integration().await;
    // The provider's own bytes (layout, line breaks), with non-ASCII text.
    let body = String::from_utf8(fixture(ACTIVATED))
        .unwrap()
        .replace("Ada Buyer", "Zoë Ñandú — 東京");
    let bearer = format!("Bearer {SECRET}");
    let reply = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
                ("authorization", &bearer),
                ("cookie", "session=zenofy-session-cookie"),
                ("user-agent", "Zenofy-Webhooks/1.0"),
                ("x-zenofy-event", "subscription.activated"),
            ],
            body.clone(),
        )
        .await;
    let answer = assert_outcome(&reply, "applied");
    let id = delivery_id(&answer);

    let detail = get_ok(&app, &format!("/v1/admin/deliveries/{id}")).await;
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["integration"], "zenofy");
    assert_eq!(detail["provider"], "zenofy");
    assert_eq!(detail["event"], "subscription.activated");
    assert_eq!(detail["outcome"], "applied");
    assert_eq!(detail["reason"], answer["reason"]);
    assert_eq!(
        detail["subject"],
        json!({"kind": "subscription", "id": answer["subject"]["id"]})
    );
    assert_eq!(
        detail["body"].as_str(),
        Some(body.as_str()),
        "the body exactly as received"
    );
    assert_eq!(
        detail["headers"],
        json!({
            "content-type": "application/json",
            "x-webhook-secret": "[REDACTED]",
            "authorization": "[REDACTED]",
            "cookie": "[REDACTED]",
            "user-agent": "Zenofy-Webhooks/1.0",
            "x-zenofy-event": "subscription.activated",
        }),
        "{detail:#}"
    );
    assert_eq!(
        detail["attempts"],
        json!([{
            "at": detail["received_at"],
            "trigger": "received",
            "outcome": "applied",
            "reason": answer["reason"],
            "subject": {"kind": "subscription", "id": answer["subject"]["id"]},
        }]),
        "{detail:#}"
    );

    // The list item is the detail without body, headers and attempts.
    let list = get_ok(&app, "/v1/admin/deliveries").await;
    let mut item = detail.clone();
    for key in ["body", "body_dropped_at", "headers", "attempts"] {
        item.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(list["items"][0], item);

    // Authenticated by query token: the query is not kept at all.
    let by_query = assert_outcome(
        &app.webhook(
            &format!("/v1/webhooks/zenofy?token={SECRET}"),
            &[("content-type", "application/json")],
            variant(ACTIVATED, |j| j["event"] = json!("payout.created")),
        )
        .await,
        "ignored",
    );
    let by_query = get_ok(
        &app,
        &format!("/v1/admin/deliveries/{}", delivery_id(&by_query)),
    )
    .await;
    assert_eq!(
        by_query["headers"],
        json!({"content-type": "application/json"})
    );
    assert_eq!(
        by_query["attempts"][0]["trigger"], "received",
        "{by_query:#}"
    );
    assert_eq!(by_query["attempts"][0]["outcome"], "ignored");

    // A malformed delivery keeps its bytes and its one attempt.
    let malformed = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[("x-webhook-secret", SECRET)],
            "{\"event\": \"subscription.activated\", broken",
        )
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, None);
    let malformed_id = delivery_id(&malformed.body);
    let detail_malformed = get_ok(&app, &format!("/v1/admin/deliveries/{malformed_id}")).await;
    assert_eq!(
        detail_malformed["body"],
        "{\"event\": \"subscription.activated\", broken"
    );
    assert_eq!(detail_malformed["outcome"], "malformed");
    assert_eq!(detail_malformed["subject"], Value::Null);
    assert_eq!(
        detail_malformed["headers"],
        json!({"x-webhook-secret": "[REDACTED]"})
    );
    assert_eq!(
        detail_malformed["attempts"],
        json!([{
            "at": detail_malformed["received_at"],
            "trigger": "received",
            "outcome": "malformed",
            "reason": malformed.body["detail"],
            "subject": null,
        }])
    );

    // The secret (and the other credentials) appear nowhere.
    let everything = format!(
        "{detail}{list}{by_query}{detail_malformed}{}",
        get_ok(&app, "/v1/admin/deliveries?limit=500").await
    );
    for secret in [SECRET, "zenofy-session-cookie", ADMIN_TOKEN] {
        assert!(
            !everything.contains(secret),
            "{secret} shown by the delivery log: {everything}"
        );
    }

    // Unknown ids.
    for unknown in ["00000000-0000-7000-8000-000000000000", "nope"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/deliveries/{unknown}"),
                None,
            )
            .await;
        reply.assert_not_found();
    }
}

// ---------------------------------------------------------------- replay

async fn replay_applies_the_stored_body_to_the_current_state(app: TestApp) {
    app.zenofy_integration().await;
    let activated = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let activation = delivery_id(&activated);
    let subscription = activated["subject"]["id"].as_str().unwrap().to_owned();
    // Canceled for the same period the activation paid for.
    let canceled = assert_outcome(
        &app.zenofy(variant(CANCELED, |j| {
            j["currentPeriodEnd"] = json!("2026-06-01T10:00:00+02:00");
        }))
        .await,
        "applied",
    );
    assert_eq!(canceled["subject"]["state"], "canceled");
    let cancellation = delivery_id(&canceled);

    // The activation again, on the canceled subscription: rejected.
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{activation}/replay"),
            None,
        )
        .await;
    let replayed = assert_outcome(&reply, "rejected");
    assert_eq!(replayed["delivery_id"], activation.as_str());
    assert_eq!(
        replayed["subject"],
        json!({"kind": "subscription", "id": subscription, "state": "canceled"})
    );
    let reason = replayed["reason"].as_str().expect("a reason").to_owned();
    assert!(
        reason.contains("canceled") && reason.contains("active"),
        "{reason}"
    );

    // Both attempts, oldest first; the delivery shows the latest outcome.
    let detail = get_ok(&app, &format!("/v1/admin/deliveries/{activation}")).await;
    assert_eq!(detail["outcome"], "rejected", "{detail:#}");
    assert_eq!(detail["reason"], reason.as_str());
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{detail:#}");
    assert_eq!(attempts[0]["trigger"], "received");
    assert_eq!(attempts[0]["outcome"], "applied");
    assert_eq!(attempts[0]["reason"], activated["reason"]);
    assert_eq!(attempts[0]["at"], detail["received_at"]);
    assert_eq!(attempts[1]["trigger"], "replay");
    assert_eq!(attempts[1]["outcome"], "rejected");
    assert_eq!(attempts[1]["reason"], reason.as_str());
    assert_eq!(
        attempts[1]["subject"],
        json!({"kind": "subscription", "id": subscription})
    );
    assert_oldest_first(&detail["attempts"], "attempts");
    // The body replayed is the body received.
    assert_eq!(
        detail["body"].as_str().map(str::as_bytes),
        Some(fixture(ACTIVATED).as_slice())
    );

    // Still one delivery in the log (a replay is not a new delivery).
    let list = get_ok(&app, "/v1/admin/deliveries").await;
    assert_eq!(ids(&list), vec![cancellation.clone(), activation.clone()]);
    let rejected = get_ok(&app, "/v1/admin/deliveries?outcome=rejected").await;
    assert_eq!(ids(&rejected), vec![activation.clone()]);

    // The subscription's history gains the replay, naming the delivery.
    let detail = app.subscription(&subscription).await;
    assert_eq!(detail["state"], "canceled");
    assert_eq!(
        history(&detail),
        vec![
            entry(
                "activated",
                Value::Null,
                json!("active"),
                "applied",
                json!(activation),
                "delivery"
            ),
            entry(
                "canceled",
                json!("active"),
                json!("canceled"),
                "applied",
                json!(cancellation),
                "delivery"
            ),
            entry(
                "activated",
                json!("canceled"),
                json!("canceled"),
                "rejected",
                json!(activation),
                "replay"
            ),
        ],
        "{detail:#}"
    );
    assert_eq!(detail["history"][2]["reason"], reason.as_str());
    let first_history = detail;
    let denied = access(&app, BUYER, "pro", None).await;
    assert_eq!(denied["entitled"], false);
    assert_eq!(denied["reason"], "canceled", "{denied:#}");

    // A delivery rejected on receipt applies once the state allows it.
    let created = assert_outcome(
        &app.zenofy(for_subscription(CREATED, "sub-2", "two@example.com"))
            .await,
        "applied",
    );
    let second = created["subject"]["id"].as_str().unwrap().to_owned();
    let suspended = assert_outcome(
        &app.zenofy(for_subscription(SUSPENDED, "sub-2", "two@example.com"))
            .await,
        "rejected",
    );
    let suspension = delivery_id(&suspended);
    assert_outcome(
        &app.zenofy(for_subscription(ACTIVATED, "sub-2", "two@example.com"))
            .await,
        "applied",
    );
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{suspension}/replay"),
            None,
        )
        .await;
    let replayed = assert_outcome(&reply, "applied");
    assert_eq!(
        replayed["subject"],
        json!({"kind": "subscription", "id": second, "state": "suspended"})
    );
    let detail = app.subscription(&second).await;
    assert_eq!(detail["state"], "suspended");
    assert_eq!(detail["current_period_end"], "2026-07-01T08:00:00Z");
    let last = history(&detail).pop().unwrap();
    assert_eq!(
        last,
        entry(
            "suspended",
            json!("active"),
            json!("suspended"),
            "applied",
            json!(suspension),
            "replay"
        )
    );
    let attempts = get_ok(&app, &format!("/v1/admin/deliveries/{suspension}")).await;
    let outcomes: Vec<(&str, &str)> = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["trigger"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![("received", "rejected"), ("replay", "applied")]
    );

    // Replaying again: the state is already there.
    let again = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{suspension}/replay"),
            None,
        )
        .await;
    assert_outcome(&again, "duplicate");
    let attempts = get_ok(&app, &format!("/v1/admin/deliveries/{suspension}")).await;
    assert_eq!(attempts["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(attempts["outcome"], "duplicate");

    // Checked last: the replay happened after the cancellation, so its
    // history entry is dated after it, and the customer's timeline (sorted by
    // date) shows it after the cancellation too.
    let history_at = |i: usize| first_history["history"][i]["at"].clone();
    let mut wrong = Vec::new();
    if instant(&history_at(2)) < instant(&history_at(1)) {
        wrong.push(format!(
            "the replay's history entry is dated {} (when the delivery was first received), \
             before the cancellation ({}) it was applied after",
            history_at(2),
            history_at(1)
        ));
    }
    let view = get_ok(&app, &format!("/v1/admin/customers/{}", urlencode(BUYER))).await;
    let timeline: Vec<(String, String)> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event"].as_str().unwrap().to_owned(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let in_order = [
        ("activated", "applied"),
        ("canceled", "applied"),
        ("activated", "rejected"),
    ]
    .map(|(e, o)| (e.to_owned(), o.to_owned()))
    .to_vec();
    if timeline != in_order {
        wrong.push(format!("the customer's timeline reads {timeline:?}"));
    }
    assert!(wrong.is_empty(), "{}\n{first_history:#}", wrong.join("\n"));
}

async fn replay_of_malformed_ignored_unknown_and_orphaned_deliveries(app: TestApp) {
    app.zenofy_integration().await;
    let malformed = app.zenofy("{not json").await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, None);
    let malformed_id = delivery_id(&malformed.body);

    // The replay ran; its outcome is that the body is still malformed. The
    // replay request itself succeeded, so it is a 200 carrying the outcome.
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{malformed_id}/replay"),
            None,
        )
        .await;
    let replayed = assert_outcome(&reply, "malformed");
    assert_eq!(replayed["delivery_id"], malformed_id.as_str());
    assert_eq!(replayed["subject"], Value::Null);
    assert!(replayed["reason"].is_string(), "{replayed:?}");
    let detail = get_ok(&app, &format!("/v1/admin/deliveries/{malformed_id}")).await;
    let attempts: Vec<(&str, &str)> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["trigger"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![("received", "malformed"), ("replay", "malformed")]
    );
    assert_eq!(detail["outcome"], "malformed");

    let ignored = assert_outcome(
        &app.zenofy(variant(ACTIVATED, |j| j["event"] = json!("payout.created")))
            .await,
        "ignored",
    );
    let ignored_id = delivery_id(&ignored);
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{ignored_id}/replay"),
            None,
        )
        .await;
    let replayed = assert_outcome(&reply, "ignored");
    assert_eq!(replayed["reason"], ignored["reason"]);
    assert_eq!(replayed["subject"], Value::Null);

    // Unknown delivery.
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/deliveries/00000000-0000-7000-8000-000000000000/replay",
            None,
        )
        .await;
    reply.assert_not_found();

    // A delivery whose integration is gone stays readable but cannot be applied.
    let applied = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let applied_id = delivery_id(&applied);
    let reply = app
        .admin(Method::DELETE, "/v1/admin/integrations/zenofy", None)
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/deliveries/{applied_id}/replay"),
            None,
        )
        .await;
    reply.assert_problem(StatusCode::CONFLICT, None);
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("zenofy")),
        "{:?}",
        reply.body
    );
    let detail = get_ok(&app, &format!("/v1/admin/deliveries/{applied_id}")).await;
    assert_eq!(detail["outcome"], "applied");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- grants

async fn grants_create_list_revoke(app: TestApp) {
    // For ever, from now; the email is normalised.
    let forever = create_grant(
        &app,
        json!({"email": "  Comp@Example.COM ", "product": "pro", "reason": "support comp"}),
    )
    .await;
    let forever_id = forever["id"].as_str().expect("id").to_owned();
    assert_eq!(forever["email"], "comp@example.com");
    assert_eq!(forever["product"], "pro");
    assert_eq!(forever["reason"], "support comp");
    assert_eq!(forever["valid_until"], Value::Null);
    assert_eq!(forever["revoked_at"], Value::Null);
    assert_eq!(forever["valid_from"], forever["created_at"]);
    instant(&forever["created_at"]);

    let answer = access(&app, "comp@example.com", "pro", None).await;
    assert_eq!(answer["entitled"], true, "{answer:#}");
    assert_eq!(answer["reason"], "grant");
    assert_eq!(answer["valid_until"], Value::Null);
    assert_eq!(answer["sources"].as_array().unwrap().len(), 1);
    assert_eq!(answer["sources"][0]["kind"], "grant");
    assert_eq!(answer["sources"][0]["id"], forever_id.as_str());
    assert_eq!(answer["sources"][0]["access_from"], forever["valid_from"]);
    assert_eq!(answer["sources"][0]["access_until"], Value::Null);

    // A window in the past: answered by `at=`.
    let window = create_grant(
        &app,
        json!({
            "email": "comp@example.com",
            "product": "course",
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": "2026-02-01T01:00:00+01:00",
            "reason": "trial month",
        }),
    )
    .await;
    let window_id = window["id"].as_str().unwrap().to_owned();
    assert_eq!(window["valid_from"], "2026-01-01T00:00:00Z");
    assert_eq!(window["valid_until"], "2026-02-01T00:00:00Z");
    let now = access(&app, "comp@example.com", "course", None).await;
    assert_eq!(now["entitled"], false, "{now:#}");
    assert_eq!(now["reason"], "period_ended");
    assert_eq!(now["valid_until"], "2026-02-01T00:00:00Z");
    let during = access(
        &app,
        "comp@example.com",
        "course",
        Some("2026-01-15T00:00:00Z"),
    )
    .await;
    assert_eq!(during["entitled"], true, "{during:#}");
    assert_eq!(during["reason"], "grant");
    assert_eq!(during["valid_until"], "2026-02-01T00:00:00Z");
    let before = access(
        &app,
        "comp@example.com",
        "course",
        Some("2025-12-31T23:59:59Z"),
    )
    .await;
    assert_eq!(before["entitled"], false, "{before:#}");

    // Someone else's grant.
    let other = create_grant(
        &app,
        json!({"email": "other@example.com", "product": "pro", "reason": "partner"}),
    )
    .await;
    let other_id = other["id"].as_str().unwrap().to_owned();

    // Listed by customer (newest first), and all together without `email`.
    let list = get_ok(
        &app,
        &format!("/v1/admin/grants?email={}", urlencode(" COMP@example.com")),
    )
    .await;
    assert_eq!(ids(&list), vec![window_id.clone(), forever_id.clone()]);
    assert_eq!(list["items"][1], forever);
    assert_eq!(list["items"][0], window);
    assert_eq!(list["next_cursor"], Value::Null);
    let all = get_ok(&app, "/v1/admin/grants").await;
    assert_eq!(
        ids(&all),
        vec![other_id.clone(), window_id.clone(), forever_id.clone()]
    );
    let none = get_ok(&app, "/v1/admin/grants?email=nobody%40example.com").await;
    assert_eq!(none["items"], json!([]));

    // Revoke: 200, the row stays with `revoked_at`.
    let reply = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/grants/{forever_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let revoked = reply.body;
    let revoked_at = instant(&revoked["revoked_at"]);
    assert!(revoked_at >= instant(&forever["created_at"]));
    for key in [
        "id",
        "email",
        "product",
        "valid_from",
        "valid_until",
        "reason",
        "created_at",
    ] {
        assert_eq!(revoked[key], forever[key], "{key}");
    }
    let answer = access(&app, "comp@example.com", "pro", None).await;
    assert_eq!(answer["entitled"], false, "{answer:#}");
    assert_eq!(answer["reason"], "revoked");
    assert_eq!(answer["sources"][0]["state"], "revoked", "{answer:#}");
    let list = get_ok(&app, "/v1/admin/grants?email=comp%40example.com").await;
    assert_eq!(ids(&list), vec![window_id.clone(), forever_id.clone()]);
    assert_eq!(list["items"][1], revoked);
    // Someone else's grant is untouched.
    let answer = access(&app, "other@example.com", "pro", None).await;
    assert_eq!(answer["reason"], "grant", "{answer:#}");

    // Revoking again changes nothing.
    let again = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/grants/{forever_id}"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body, revoked);

    let reply = app
        .admin(Method::DELETE, "/v1/admin/grants/no-such-grant", None)
        .await;
    reply.assert_not_found();
}

async fn grants_validation_names_the_field(app: TestApp) {
    for (body, field) in [
        (
            json!({"email": "a@example.com", "product": "pro"}),
            "reason",
        ),
        (
            json!({"email": "a@example.com", "product": "pro", "reason": "   "}),
            "reason",
        ),
        (json!({"product": "pro", "reason": "comp"}), "email"),
        (
            json!({"email": "not-an-email", "product": "pro", "reason": "comp"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "reason": "comp"}),
            "product",
        ),
        (
            json!({"email": "a@example.com", "product": "   ", "reason": "comp"}),
            "product",
        ),
        (
            json!({"email": "a@example.com", "product": "Not A Key!", "reason": "comp"}),
            "product",
        ),
        (
            json!({"email": "a@example.com", "product": "pro", "reason": "comp",
                   "valid_from": "2026-03-01T00:00:00Z", "valid_until": "2026-02-01T00:00:00Z"}),
            "valid_until",
        ),
        (
            json!({"email": "a@example.com", "product": "pro", "reason": "comp",
                   "valid_from": "2026-03-01T00:00:00Z", "valid_until": "2026-03-01T00:00:00Z"}),
            "valid_until",
        ),
        // `valid_from` defaults to now: a `valid_until` in the past is before it.
        (
            json!({"email": "a@example.com", "product": "pro", "reason": "comp",
                   "valid_until": "2020-01-01T00:00:00Z"}),
            "valid_until",
        ),
        (
            json!({"email": "a@example.com", "product": "pro", "reason": "comp",
                   "valid_from": "yesterday"}),
            "valid_from",
        ),
        (
            json!({"email": "a@example.com", "product": "pro", "reason": 42}),
            "reason",
        ),
    ] {
        let reply = app
            .admin(Method::POST, "/v1/admin/grants", Some(body.clone()))
            .await;
        reply.assert_invalid(&body.to_string(), field);
    }
    let reply = app
        .admin(Method::GET, "/v1/admin/grants?email=not-an-email", None)
        .await;
    reply.assert_invalid("email filter", "email");
    // Nothing was stored.
    let all = get_ok(&app, "/v1/admin/grants").await;
    assert_eq!(all["items"], json!([]));
    let answer = access(&app, "a@example.com", "pro", None).await;
    assert_eq!(answer["reason"], "no_entitlement");
}

// ---------------------------------------------------------------- tokens

async fn tokens_are_shown_once_listed_without_values_and_deleted(app: TestApp) {
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "backend", "scope": "app"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let created = reply.body;
    let app_id = created["id"].as_str().expect("id").to_owned();
    let app_token = created["token"].as_str().expect("token").to_owned();
    assert!(app_token.len() >= 32, "{created:?}");
    assert_eq!(created["name"], "backend");
    assert_eq!(created["scope"], "app");
    instant(&created["created_at"]);

    let (admin_id, admin_token) = create_token(&app, "ops", "admin").await;
    assert_ne!(admin_token, app_token);

    // Listed without values.
    let list = get_ok(&app, "/v1/admin/tokens").await;
    let listed = list.to_string();
    for value in [&app_token, &admin_token, &ADMIN_TOKEN.to_owned()] {
        assert!(
            !listed.contains(value.as_str()),
            "a token value is listed: {listed}"
        );
    }
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{list:#}");
    for item in items {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["created_at", "id", "name", "scope"], "{item}");
    }
    let find = |id: &str| items.iter().find(|t| t["id"] == id).cloned();
    assert_eq!(
        find(&app_id),
        Some(
            json!({"id": app_id, "name": "backend", "scope": "app", "created_at": created["created_at"]})
        )
    );
    assert_eq!(find(&admin_id).unwrap()["scope"], "admin");
    assert!(
        items
            .iter()
            .any(|t| t["name"] == "bootstrap" && t["scope"] == "admin"),
        "{list:#}"
    );

    // The app token answers access checks; the new admin token administers.
    let reply = app
        .with_token(
            &app_token,
            Method::GET,
            "/v1/access?email=a%40example.com&product=pro",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "no_entitlement");
    let reply = app
        .with_token(&admin_token, Method::GET, "/v1/admin/integrations", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = app
        .with_token(
            &admin_token,
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "a@example.com", "product": "pro", "reason": "by ops"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // Deleted: it stops working at once, and is no longer listed.
    let reply = app
        .admin(Method::DELETE, &format!("/v1/admin/tokens/{app_id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    assert_eq!(reply.body, Value::Null);
    let reply = app
        .with_token(
            &app_token,
            Method::GET,
            "/v1/access?email=a%40example.com&product=pro",
            None,
        )
        .await;
    assert_unauthorized(&reply, "deleted token");
    assert_eq!(reply.body["type"], "urn:entitled:problem:unauthorized");
    let list = get_ok(&app, "/v1/admin/tokens").await;
    assert!(!ids(&list).contains(&app_id), "{list:#}");
    assert_eq!(ids(&list).len(), 2);
    let reply = app
        .admin(Method::DELETE, &format!("/v1/admin/tokens/{app_id}"), None)
        .await;
    reply.assert_not_found();

    // An admin token deleted stops administering too.
    let reply = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/tokens/{admin_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    let reply = app
        .with_token(&admin_token, Method::GET, "/v1/admin/tokens", None)
        .await;
    assert_unauthorized(&reply, "deleted admin token");

    // Validation.
    for (body, field) in [
        (json!({"name": "x", "scope": "root"}), "scope"),
        (json!({"name": "x", "scope": "APP"}), "scope"),
        (json!({"name": "x"}), "scope"),
        (json!({"name": "x", "scope": 1}), "scope"),
        (json!({"scope": "app"}), "name"),
        (json!({"name": "  ", "scope": "app"}), "name"),
    ] {
        let reply = app
            .admin(Method::POST, "/v1/admin/tokens", Some(body.clone()))
            .await;
        reply.assert_invalid(&body.to_string(), field);
    }
    let list = get_ok(&app, "/v1/admin/tokens").await;
    assert_eq!(
        ids(&list).len(),
        1,
        "only the bootstrap token is left: {list:#}"
    );
}

async fn app_tokens_reach_only_app_endpoints(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zaypay",
            Some(json!({"provider": "zaypay", "secret": "zaypay-token-0123456789"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let activated = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let delivery = delivery_id(&activated);
    let subscription = activated["subject"]["id"].as_str().unwrap().to_owned();
    let grant = create_grant(
        &app,
        json!({"email": BUYER, "product": "support", "reason": "comp"}),
    )
    .await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    let (token_id, token) = create_token(&app, "backend", "app").await;

    // What a SaaS backend needs.
    let reply = app
        .with_token(
            &token,
            Method::GET,
            "/v1/access?email=buyer%40example.com&product=support",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["entitled"], true);
    let reply = app
        .with_token(
            &token,
            Method::GET,
            "/v1/customers/buyer%40example.com/entitlements",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 2);
    let reply = app
        .with_token(
            &token,
            Method::POST,
            "/v1/orders",
            Some(json!({"integration": "zaypay", "external_id": "zp-1", "email": BUYER, "product": "pro"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["state"], "pending");
    let order = reply.body["id"].as_str().unwrap().to_owned();

    // Nothing under /v1/admin.
    let admin_calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/integrations".into(), None),
        (Method::GET, "/v1/admin/integrations/zenofy".into(), None),
        (
            Method::PUT,
            "/v1/admin/integrations/evil".into(),
            Some(json!({"provider": "zenofy", "secret": "evil-secret-0123456789"})),
        ),
        (Method::DELETE, "/v1/admin/integrations/zenofy".into(), None),
        (Method::GET, "/v1/admin/products".into(), None),
        (Method::GET, "/v1/admin/products/pro".into(), None),
        (
            Method::PUT,
            "/v1/admin/products/pro".into(),
            Some(json!({"grace_period_seconds": 0})),
        ),
        (Method::GET, "/v1/admin/subscriptions".into(), None),
        (
            Method::GET,
            format!("/v1/admin/subscriptions/{subscription}"),
            None,
        ),
        (Method::GET, "/v1/admin/orders".into(), None),
        (Method::GET, format!("/v1/admin/orders/{order}"), None),
        (Method::GET, "/v1/admin/deliveries".into(), None),
        (
            Method::GET,
            format!("/v1/admin/deliveries/{delivery}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/deliveries/{delivery}/replay"),
            None,
        ),
        (Method::GET, "/v1/admin/grants".into(), None),
        (
            Method::POST,
            "/v1/admin/grants".into(),
            Some(json!({"email": "me@example.com", "product": "pro", "reason": "self"})),
        ),
        (Method::DELETE, format!("/v1/admin/grants/{grant_id}"), None),
        (Method::GET, "/v1/admin/tokens".into(), None),
        (
            Method::POST,
            "/v1/admin/tokens".into(),
            Some(json!({"name": "escalate", "scope": "admin"})),
        ),
        (Method::DELETE, format!("/v1/admin/tokens/{token_id}"), None),
        (
            Method::GET,
            "/v1/admin/customers/buyer%40example.com".into(),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body) in admin_calls {
        let reply = app.with_token(&token, method.clone(), &path, body).await;
        if reply.status != StatusCode::FORBIDDEN
            || reply.content_type != "application/problem+json"
            || reply.body["type"] != "urn:entitled:problem:forbidden"
            || reply.body["status"] != 403
        {
            wrong.push(format!(
                "{method} {path}: {} {:?}",
                reply.status, reply.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "not 403 for an app token:\n{}",
        wrong.join("\n")
    );

    // And none of them did anything.
    let integrations = get_ok(&app, "/v1/admin/integrations").await;
    let mut integration_ids = ids(&integrations);
    integration_ids.sort();
    assert_eq!(
        integration_ids,
        vec!["zaypay", "zenofy"],
        "{integrations:#}"
    );
    let product = app.admin(Method::GET, "/v1/admin/products/pro", None).await;
    assert_ne!(
        product.body["grace_period_seconds"], 0,
        "{:?}",
        product.body
    );
    let grants = get_ok(&app, "/v1/admin/grants").await;
    assert_eq!(ids(&grants), vec![grant_id.clone()]);
    assert_eq!(grants["items"][0]["revoked_at"], Value::Null);
    let tokens = get_ok(&app, "/v1/admin/tokens").await;
    assert_eq!(ids(&tokens).len(), 2, "{tokens:#}");
    let detail = get_ok(&app, &format!("/v1/admin/deliveries/{delivery}")).await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    // The app token still works.
    let reply = app
        .with_token(
            &token,
            Method::GET,
            "/v1/access?email=buyer%40example.com&product=support",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

// ---------------------------------------------------------------- customer view

async fn customer_view_merges_sources_entitlements_and_timeline(app: TestApp) {
    app.zenofy_integration().await;
    let email = "ada@example.com";
    let subscribed = assert_outcome(
        &app.zenofy(for_subscription(ACTIVATED, "sub-ada", "Ada@Example.com"))
            .await,
        "applied",
    );
    let subscription = subscribed["subject"]["id"].as_str().unwrap().to_owned();
    let paid = assert_outcome(
        &app.zenofy(variant(ORDER_PAID, |j| {
            j["customer"]["email"] = json!(email);
        }))
        .await,
        "applied",
    );
    assert_eq!(paid["subject"]["kind"], "order");
    let order = paid["subject"]["id"].as_str().unwrap().to_owned();
    let grant = create_grant(
        &app,
        json!({"email": email, "product": "support", "reason": "priority support"}),
    )
    .await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    // Another customer, not to be shown.
    assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    create_grant(
        &app,
        json!({"email": BUYER, "product": "support", "reason": "not ada"}),
    )
    .await;

    let view = get_ok(&app, "/v1/admin/customers/ADA%40Example.com").await;
    assert_eq!(view["email"], email);
    instant(&view["at"]);
    assert_eq!(
        ids(&json!({"items": view["subscriptions"]})),
        vec![subscription.clone()]
    );
    assert_eq!(view["subscriptions"][0]["state"], "active");
    assert_eq!(view["subscriptions"][0]["email"], email);
    assert_eq!(view["subscriptions"][0]["product"], "pro");
    assert_eq!(ids(&json!({"items": view["orders"]})), vec![order.clone()]);
    assert_eq!(view["orders"][0]["state"], "paid");
    assert_eq!(view["orders"][0]["products"], json!(["pro"]));
    assert_eq!(view["grants"], json!([grant]));

    // One answer per product, the same as the access check gives.
    let entitlements = view["entitlements"].as_array().expect("entitlements");
    let products: Vec<&str> = entitlements
        .iter()
        .map(|e| e["product"].as_str().unwrap())
        .collect();
    assert_eq!(products, vec!["pro", "support"], "{view:#}");
    for answer in entitlements {
        let product = answer["product"].as_str().unwrap();
        let direct = access(&app, email, product, None).await;
        for key in [
            "email",
            "product",
            "entitled",
            "reason",
            "valid_until",
            "plan",
            "sources",
        ] {
            assert_eq!(
                answer[key], direct[key],
                "{product} {key}: {answer:#} vs {direct:#}"
            );
        }
    }
    // The subscription's period (2026-06) is over. The order paid for the
    // same product through the subscription's own integration: it never
    // outlives the subscription (DESIGN.md, Order state machine), so the
    // subscription speaks.
    assert_eq!(entitlements[0]["entitled"], false);
    assert_eq!(entitlements[0]["reason"], "period_ended");
    let mut kinds: Vec<&str> = entitlements[0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["order", "subscription"]);
    assert_eq!(entitlements[1]["entitled"], true);
    assert_eq!(entitlements[1]["reason"], "grant");

    // The timeline: every source's history, oldest first.
    let timeline = |view: &Value| -> Vec<(String, String, String, String, Value)> {
        view["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|t| {
                (
                    t["kind"].as_str().unwrap().to_owned(),
                    t["id"].as_str().unwrap().to_owned(),
                    t["event"].as_str().unwrap().to_owned(),
                    t["outcome"].as_str().unwrap().to_owned(),
                    t["delivery_id"].clone(),
                )
            })
            .collect()
    };
    let first = vec![
        (
            "subscription".to_owned(),
            subscription.clone(),
            "activated".to_owned(),
            "applied".to_owned(),
            subscribed["delivery_id"].clone(),
        ),
        (
            "order".to_owned(),
            order.clone(),
            "paid".to_owned(),
            "applied".to_owned(),
            paid["delivery_id"].clone(),
        ),
        (
            "grant".to_owned(),
            grant_id.clone(),
            "granted".to_owned(),
            "applied".to_owned(),
            Value::Null,
        ),
    ];
    assert_eq!(timeline(&view), first, "{view:#}");
    assert_oldest_first(&view["timeline"], "timeline");
    assert_eq!(view["timeline"][0]["to_state"], "active");
    assert_eq!(view["timeline"][1]["to_state"], "paid");
    assert_eq!(view["timeline"][2]["to_state"], "active");
    assert_eq!(view["timeline"][2]["at"], grant["created_at"]);
    // Each source's entries are the same as its own history.
    let detail = app.subscription(&subscription).await;
    assert_eq!(view["timeline"][0]["at"], detail["history"][0]["at"]);

    // Revoked: the grant's `revoked` entry comes last.
    let reply = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/grants/{grant_id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let revoked_at = reply.body["revoked_at"].clone();
    let view = get_ok(&app, "/v1/admin/customers/ada%40example.com").await;
    let mut expected = first.clone();
    expected.push((
        "grant".to_owned(),
        grant_id.clone(),
        "revoked".to_owned(),
        "applied".to_owned(),
        Value::Null,
    ));
    assert_eq!(timeline(&view), expected, "{view:#}");
    assert_oldest_first(&view["timeline"], "timeline");
    assert_eq!(view["timeline"][3]["at"], revoked_at);
    assert_eq!(view["timeline"][3]["from_state"], "active");
    assert_eq!(view["timeline"][3]["to_state"], "revoked");
    assert_eq!(view["grants"][0]["revoked_at"], revoked_at);
    assert_eq!(view["entitlements"][1]["entitled"], false);
    assert_eq!(view["entitlements"][1]["reason"], "revoked");

    // Someone nobody knows: an empty view, not an error.
    let view = get_ok(&app, "/v1/admin/customers/nobody%40example.com").await;
    assert_eq!(view["email"], "nobody@example.com");
    for key in [
        "subscriptions",
        "orders",
        "grants",
        "entitlements",
        "timeline",
    ] {
        assert_eq!(view[key], json!([]), "{key}: {view:#}");
    }
    let reply = app
        .admin(Method::GET, "/v1/admin/customers/not-an-email", None)
        .await;
    reply.assert_invalid("customer email", "email");
}

// ---------------------------------------------------------------- metrics

/// The value of the one sample of `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_part, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| {
                    label_part
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                })
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches several samples:\n{text}"
    );
    matching.first().copied()
}

async fn metrics_count_deliveries_auth_failures_access_checks_and_latency(app: TestApp) {
    app.zenofy_integration().await;
    assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "duplicate");
    app.zenofy("not json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, None);
    for path in [
        "/v1/webhooks/zenofy?token=wrong-token",
        "/v1/webhooks/zenofy",
    ] {
        app.webhook(
            path,
            &[("x-webhook-secret", "wrong-secret")],
            fixture(ACTIVATED),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, None);
    }
    // An unknown integration is not a failed authentication.
    app.webhook("/v1/webhooks/nope", &[], fixture(ACTIVATED))
        .await
        .assert_not_found();
    create_grant(
        &app,
        json!({"email": BUYER, "product": "support", "reason": "comp"}),
    )
    .await;
    assert_eq!(access(&app, BUYER, "support", None).await["entitled"], true);
    assert_eq!(
        access(&app, BUYER, "pro", None).await["reason"],
        "period_ended"
    );
    assert_eq!(
        access(&app, "nobody@example.com", "pro", None).await["reason"],
        "no_entitlement"
    );

    // No token needed.
    let reply = app
        .send(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("text/plain")
            || reply
                .content_type
                .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type
    );
    let text = reply.body.as_str().expect("text").to_owned();

    let deliveries = "entitled_webhook_deliveries_total";
    assert!(
        text.contains(
            r#"entitled_webhook_deliveries_total{provider="zenofy",outcome="applied"} 1"#
        ),
        "{text}"
    );
    for (outcome, n) in [("applied", 1.0), ("duplicate", 1.0), ("malformed", 1.0)] {
        assert_eq!(
            sample(
                &text,
                deliveries,
                &[("provider", "zenofy"), ("outcome", outcome)]
            ),
            Some(n),
            "{outcome}:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, deliveries, &[("outcome", "ignored")]),
        None,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "entitled_webhook_auth_failures_total",
            &[("provider", "zenofy")]
        ),
        Some(2.0),
        "{text}"
    );
    let checks = "entitled_access_checks_total";
    assert_eq!(
        sample(
            &text,
            checks,
            &[("result", "entitled"), ("reason", "grant")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            checks,
            &[("result", "denied"), ("reason", "period_ended")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            checks,
            &[("result", "denied"), ("reason", "no_entitlement")]
        ),
        Some(1.0),
        "{text}"
    );

    // Latency, by method, route template and status.
    assert!(
        text.contains("entitled_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    let hook = [("method", "POST"), ("route", "/v1/webhooks/{integration}")];
    for (status, n) in [("200", 2.0), ("400", 1.0), ("401", 2.0), ("404", 1.0)] {
        let labels: Vec<(&str, &str)> = hook.iter().copied().chain([("status", status)]).collect();
        assert_eq!(
            sample(
                &text,
                "entitled_http_request_duration_seconds_count",
                &labels
            ),
            Some(n),
            "{status}:\n{text}"
        );
        let inf: Vec<(&str, &str)> = labels.iter().copied().chain([("le", "+Inf")]).collect();
        assert_eq!(
            sample(&text, "entitled_http_request_duration_seconds_bucket", &inf),
            Some(n),
            "{status}:\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "entitled_http_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("route", "/v1/access"),
                ("status", "200")
            ]
        ),
        Some(3.0),
        "{text}"
    );
    // Labels carry templates, never paths, queries or secrets.
    for leak in [SECRET, "wrong-token", BUYER, "nope", "buyer%40"] {
        assert!(!text.contains(leak), "{leak} in the metrics:\n{text}");
    }
}

// ---------------------------------------------------------------- request ids

async fn request_ids_are_generated_or_echoed(app: TestApp) {
    let get = |path: &str, id: Option<&str>| {
        let mut request = Request::builder().uri(path);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.body(Body::empty()).unwrap()
    };
    let (status, headers) = send_raw(&app, get("/healthz", None)).await;
    assert_eq!(status, StatusCode::OK);
    let first = request_id(&headers);
    assert!(!first.is_empty());
    let (_, headers) = send_raw(&app, get("/healthz", None)).await;
    assert_ne!(request_id(&headers), first, "each request gets its own id");

    let (status, headers) = send_raw(&app, get("/healthz", Some("abc-123"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(request_id(&headers), "abc-123");

    // Echoed on errors too: 401 bearer, 401 webhook, 404 problem, 400.
    let (status, headers) = send_raw(&app, get("/v1/admin/tokens", Some("req-401"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(request_id(&headers), "req-401");
    app.zenofy_integration().await;
    let hook = Request::builder()
        .method(Method::POST)
        .uri("/v1/webhooks/zenofy")
        .header("x-webhook-secret", "wrong")
        .header("x-request-id", "hook-1")
        .body(Body::from(fixture(ACTIVATED)))
        .unwrap();
    let (status, headers) = send_raw(&app, hook).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(request_id(&headers), "hook-1");
    let bad = Request::builder()
        .uri("/v1/admin/deliveries?outcome=bogus")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("x-request-id", "req-400")
        .body(Body::empty())
        .unwrap();
    let (status, headers) = send_raw(&app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(request_id(&headers), "req-400");
    let (status, headers) = send_raw(&app, get("/metrics", Some("scrape-1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(request_id(&headers), "scrape-1");

    // An id that cannot be a header value or a log field is replaced.
    let long = "x".repeat(200);
    for unusable in ["has space", long.as_str()] {
        let (_, headers) = send_raw(&app, get("/healthz", Some(unusable))).await;
        let id = request_id(&headers);
        assert!(!id.is_empty() && id != unusable, "{unusable:?} -> {id:?}");
    }

    // A method a path does not take is a request too.
    let patch = Request::builder()
        .method(Method::PATCH)
        .uri("/v1/admin/tokens")
        .header("x-request-id", "req-405")
        .body(Body::empty())
        .unwrap();
    let (status, headers) = send_raw(&app, patch).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let echoed_405 = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    // A path nothing serves is a request too.
    let (status, headers) = send_raw(&app, get("/v1/nothing-here", Some("req-404"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let echoed_404 = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut missing = Vec::new();
    if echoed_404.as_deref() != Some("req-404") {
        missing.push(format!("404 for an unknown path: {echoed_404:?}"));
    }
    if echoed_405.as_deref() != Some("req-405") {
        missing.push(format!(
            "405 for a method the route does not take: {echoed_405:?}"
        ));
    }
    assert!(
        missing.is_empty(),
        "x-request-id not echoed on: {}",
        missing.join("; ")
    );
}

// ---------------------------------------------------------------- clock

async fn clock_expires_lapsed_active_subscriptions_only(app: TestApp) {
    use entitled::time_fmt::rfc3339;
    use time::Duration;

    app.zenofy_integration().await;
    let now = time::OffsetDateTime::now_utc();
    let with_period =
        |id: &str, email: &str, start: time::OffsetDateTime, end: time::OffsetDateTime| {
            let mut json: Value =
                serde_json::from_slice(&for_subscription(ACTIVATED, id, email)).unwrap();
            json["currentPeriodStart"] = json!(rfc3339(start));
            json["currentPeriodEnd"] = json!(rfc3339(end));
            serde_json::to_vec(&json).unwrap()
        };

    // Period ended 2026-06-01: long past the grace.
    let lapsed = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let lapsed_id = lapsed["subject"]["id"].as_str().unwrap().to_owned();
    // Period still running.
    let running = assert_outcome(
        &app.zenofy(with_period(
            "sub-running",
            "running@example.com",
            now - Duration::days(1),
            now + Duration::days(30),
        ))
        .await,
        "applied",
    );
    let running_id = running["subject"]["id"].as_str().unwrap().to_owned();
    // Period ended yesterday: inside the 3-day grace.
    let grace = assert_outcome(
        &app.zenofy(with_period(
            "sub-grace",
            "grace@example.com",
            now - Duration::days(31),
            now - Duration::days(1),
        ))
        .await,
        "applied",
    );
    let grace_id = grace["subject"]["id"].as_str().unwrap().to_owned();
    // Canceled long ago: not active, not the clock's business.
    let canceled = assert_outcome(
        &app.zenofy(for_subscription(
            ACTIVATED,
            "sub-canceled",
            "canceled@example.com",
        ))
        .await,
        "applied",
    );
    let canceled_id = canceled["subject"]["id"].as_str().unwrap().to_owned();
    assert_outcome(
        &app.zenofy(for_subscription(
            CANCELED,
            "sub-canceled",
            "canceled@example.com",
        ))
        .await,
        "applied",
    );
    assert_eq!(
        access(&app, "grace@example.com", "pro", None).await["reason"],
        "grace_period"
    );

    let expired = app
        .store
        .expire_lapsed(entitled::time_fmt::now())
        .await
        .expect("clock");
    assert_eq!(expired, 1);

    let detail = app.subscription(&lapsed_id).await;
    assert_eq!(detail["state"], "expired", "{detail:#}");
    assert_eq!(detail["current_period_end"], "2026-06-01T08:00:00Z");
    let entries = detail["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{detail:#}");
    let last = &entries[1];
    assert_eq!(last["event"], "expired");
    assert_eq!(last["source"], "clock");
    assert_eq!(last["from_state"], "active");
    assert_eq!(last["to_state"], "expired");
    assert_eq!(last["outcome"], "applied");
    assert_eq!(last["delivery_id"], Value::Null);
    assert!(last["reason"].is_string(), "{last}");
    assert!(instant(&last["at"]) > instant(&entries[0]["at"]));
    assert_eq!(detail["updated_at"], last["at"]);
    let answer = access(&app, BUYER, "pro", None).await;
    assert_eq!(answer["entitled"], false);
    assert_eq!(answer["reason"], "expired", "{answer:#}");
    assert_eq!(answer["sources"][0]["state"], "expired");

    // Untouched: running, in grace, canceled.
    for (id, state, entries) in [
        (&running_id, "active", 1),
        (&grace_id, "active", 1),
        (&canceled_id, "canceled", 2),
    ] {
        let detail = app.subscription(id).await;
        assert_eq!(detail["state"], state, "{detail:#}");
        assert_eq!(
            detail["history"].as_array().unwrap().len(),
            entries,
            "{detail:#}"
        );
    }
    assert_eq!(
        access(&app, "running@example.com", "pro", None).await["reason"],
        "active"
    );
    assert_eq!(
        access(&app, "grace@example.com", "pro", None).await["reason"],
        "grace_period"
    );

    // The clock does it once.
    let again = app
        .store
        .expire_lapsed(entitled::time_fmt::now())
        .await
        .expect("clock");
    assert_eq!(again, 0);
    assert_eq!(
        app.subscription(&lapsed_id).await["history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The clock's entry is in the customer's timeline; no delivery was logged.
    let view = get_ok(&app, "/v1/admin/customers/buyer%40example.com").await;
    let last = view["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "expired");
    assert_eq!(last["source"], "clock");
    let log = get_ok(&app, "/v1/admin/deliveries?limit=500").await;
    assert_eq!(ids(&log).len(), 5);

    // The grace comes from the product's policy.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"grace_period_seconds": 0})),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    let expired = app
        .store
        .expire_lapsed(entitled::time_fmt::now())
        .await
        .expect("clock");
    assert_eq!(expired, 1);
    assert_eq!(app.subscription(&grace_id).await["state"], "expired");
    assert_eq!(app.subscription(&running_id).await["state"], "active");

    // A later paid period brings the expired subscription back.
    let renewed = assert_outcome(
        &app.zenofy(with_period(
            "683a1b2c3d4e5f6789012345",
            BUYER,
            now - Duration::days(1),
            now + Duration::days(30),
        ))
        .await,
        "applied",
    );
    assert_eq!(renewed["subject"]["id"], lapsed_id.as_str());
    assert_eq!(renewed["subject"]["state"], "active");
    assert_eq!(access(&app, BUYER, "pro", None).await["entitled"], true);
    let none = app
        .store
        .expire_lapsed(entitled::time_fmt::now())
        .await
        .expect("clock");
    assert_eq!(none, 0);
}

// ---------------------------------------------------------------- process

/// Tests on a real `entitled serve`, SQLite only.
mod process {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use entitled::time_fmt::rfc3339;
    use serde_json::{Value, json};

    use super::common::server::{Server, parse_response};
    use super::common::{ADMIN_TOKEN, TempDir, fixture_json};

    /// How long to wait for something the process will do (a hang, not a
    /// performance assertion).
    const PATIENCE: Duration = Duration::from_secs(60);

    const HOOK_SECRET: &str = "hook-secret-must-never-be-logged-7f3a91";

    fn sqlite_url(dir: &TempDir) -> String {
        format!("sqlite://{}/entitled.db", dir.0.display())
    }

    fn zenofy_integration(server: &Server) {
        let (status, body) = server.admin(
            "PUT",
            "/v1/admin/integrations/zenofy",
            Some(&json!({
                "provider": "zenofy",
                "secret": HOOK_SECRET,
                "product_map": {"507f1f77bcf86cd799439011": "pro"},
            })),
        );
        assert_eq!(status, 201, "{body:?}");
    }

    /// A `subscription.activated` for a subscription nobody has seen, for a
    /// period that is still running (so the clock leaves it alone).
    fn fresh_activation() -> Vec<u8> {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let now = time::OffsetDateTime::now_utc();
        let mut body = fixture_json("zenofy/subscription.activated.json");
        body["subscriptionId"] = json!(format!("sub-{unique}"));
        body["customerEmail"] = json!(format!("buyer-{unique}@example.com"));
        body["currentPeriodStart"] = json!(rfc3339(now - time::Duration::days(1)));
        body["currentPeriodEnd"] = json!(rfc3339(now + time::Duration::days(30)));
        body.to_string().into_bytes()
    }

    /// Waits until the process's log contains `needle`.
    fn wait_for_log(server: &Server, needle: &str) {
        let started = std::time::Instant::now();
        while !server.log().contains(needle) {
            assert!(
                started.elapsed() < PATIENCE,
                "the log never said {needle:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigterm(server: &Server) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(server.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM: {status}");
    }

    /// One request of the log test: request id, method, path, headers, body and
    /// the status it must get.
    type Call<'a> = (
        &'a str,
        &'a str,
        String,
        Vec<(&'a str, String)>,
        Vec<u8>,
        u16,
    );

    /// The `request_id` of a JSON log line, wherever the formatter put it.
    fn logged_request_id(line: &Value) -> Option<&str> {
        line["request_id"]
            .as_str()
            .or_else(|| line["span"]["request_id"].as_str())
            .or_else(|| line["fields"]["request_id"].as_str())
            .or_else(|| {
                line["spans"]
                    .as_array()?
                    .iter()
                    .find_map(|s| s["request_id"].as_str())
            })
    }

    #[test]
    fn sqlite_json_logs_carry_request_ids_and_no_secret() {
        let dir = TempDir::new();
        let mut server = Server::start_with_env(
            &sqlite_url(&dir),
            &dir.0,
            &[("ENTITLED_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        );
        zenofy_integration(&server);
        let admin = format!("Bearer {ADMIN_TOKEN}");
        let wrong_secret = "wrong-but-private-secret-3c1d";
        let wrong_token = "not-a-real-token-but-private-9d2e";
        // (request id, method, path, headers, body, expected status)
        let body = fresh_activation();
        let mut calls: Vec<Call> = vec![
            (
                "req-hook-query",
                "POST",
                format!("/v1/webhooks/zenofy?token={HOOK_SECRET}"),
                vec![("content-type", "application/json".into())],
                body.clone(),
                200,
            ),
            (
                "req-hook-header",
                "POST",
                "/v1/webhooks/zenofy".into(),
                vec![("x-webhook-secret", HOOK_SECRET.into())],
                body,
                200,
            ),
            (
                "req-hook-refused",
                "POST",
                format!("/v1/webhooks/zenofy?token={wrong_secret}"),
                vec![("x-webhook-secret", wrong_secret.into())],
                fresh_activation(),
                401,
            ),
            (
                "req-hook-malformed",
                "POST",
                "/v1/webhooks/zenofy".into(),
                vec![("x-webhook-secret", HOOK_SECRET.into())],
                b"{oops".to_vec(),
                400,
            ),
            (
                "req-admin",
                "GET",
                "/v1/admin/deliveries".into(),
                vec![("authorization", admin.clone())],
                Vec::new(),
                200,
            ),
            (
                "req-bad-bearer",
                "GET",
                "/v1/admin/integrations".into(),
                vec![("authorization", format!("Bearer {wrong_token}"))],
                Vec::new(),
                401,
            ),
            (
                "req-unknown-path",
                "GET",
                "/v1/nothing-here".into(),
                Vec::new(),
                Vec::new(),
                404,
            ),
        ];
        // A token created over HTTP, then used.
        let (status, created) = server.call(
            "POST",
            "/v1/admin/tokens",
            &[
                ("authorization", admin.as_str()),
                ("content-type", "application/json"),
                ("x-request-id", "req-token"),
            ],
            json!({"name": "backend", "scope": "app"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 201, "{created:?}");
        let app_token = created["token"].as_str().expect("token").to_owned();
        calls.push((
            "req-app",
            "GET",
            "/v1/access?email=a%40example.com&product=pro".into(),
            vec![("authorization", format!("Bearer {app_token}"))],
            Vec::new(),
            200,
        ));
        for (id, method, path, headers, body, expected) in &calls {
            let mut headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            headers.push(("x-request-id", id));
            let (status, answer) = server.call(method, path, &headers, body);
            assert_eq!(status, *expected, "{id}: {answer:?}");
        }

        // Stop it, so every line is written.
        sigterm(&server);
        let status = server.wait_exit(PATIENCE).expect("exits after SIGTERM");
        assert!(status.success(), "{status}");
        let log = server.log();

        let mut lines = Vec::new();
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n\n{log}"));
            assert!(parsed.is_object(), "{line}");
            lines.push(parsed);
        }
        let requests: Vec<&Value> = lines
            .iter()
            .filter(|l| l["message"] == "request" || l["fields"]["message"] == "request")
            .collect();
        // The webhook's own line is under the request's id.
        assert!(
            lines.iter().any(|l| {
                logged_request_id(l) == Some("req-hook-query")
                    && l.to_string().contains("webhook delivery")
            }),
            "{log}"
        );

        for secret in [
            HOOK_SECRET,
            ADMIN_TOKEN,
            &app_token,
            wrong_secret,
            wrong_token,
        ] {
            assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
        }
        assert!(
            !log.contains("token="),
            "a query string is in the log:\n{log}"
        );

        // One request line per request, under its id; checked last, as the
        // unknown-path line is the one known to lack it.
        let mut ids: Vec<&str> = calls.iter().map(|c| c.0).chain(["req-token"]).collect();
        ids.sort_by_key(|id| *id == "req-unknown-path");
        for id in ids {
            let n = requests
                .iter()
                .filter(|l| logged_request_id(l) == Some(id))
                .count();
            assert_eq!(n, 1, "{id}: {n} request lines\n{log}");
        }
        let missing: Vec<String> = requests
            .iter()
            .filter(|l| logged_request_id(l).is_none_or(str::is_empty))
            .map(|l| l.to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "request lines without a request id:\n{}",
            missing.join("\n")
        );
    }

    /// What one request got.
    enum Sent {
        /// A complete response.
        Answered(u16, Value),
        /// No byte of a response: never accepted, or closed unread.
        NoAnswer,
        /// Some bytes, but not a complete response.
        Cut(String),
    }

    fn send_activation(addr: SocketAddr, body: &[u8]) -> Sent {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return Sent::NoAnswer;
        };
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let head = format!(
            "POST /v1/webhooks/zenofy HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nX-Webhook-Secret: {HOOK_SECRET}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let _ = stream.write_all(&request);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        if raw.is_empty() {
            return Sent::NoAnswer;
        }
        match parse_response(&raw) {
            Ok((status, body)) => Sent::Answered(
                status,
                serde_json::from_str(&body).unwrap_or(Value::String(body)),
            ),
            Err(e) => Sent::Cut(format!("{e}: {}", String::from_utf8_lossy(&raw))),
        }
    }

    #[test]
    fn sqlite_sigterm_finishes_in_flight_requests_and_exits_cleanly() {
        let dir = TempDir::new();
        let url = sqlite_url(&dir);
        let mut server = Server::start_with_env(&url, &dir.0, &[("RUST_LOG", "info")]);
        zenofy_integration(&server);
        let addr = server.addr;

        // Load: senders post fresh activations until the server stops answering.
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let answered = Arc::clone(&answered);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut results = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let sent = send_activation(addr, &fresh_activation());
                        let over = matches!(sent, Sent::NoAnswer);
                        if matches!(sent, Sent::Answered(..)) {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        results.push(sent);
                        if over {
                            break;
                        }
                    }
                    results
                })
            })
            .collect();
        let started = std::time::Instant::now();
        while answered.load(Ordering::SeqCst) < 8 {
            assert!(started.elapsed() < PATIENCE, "the load never got going");
            std::thread::sleep(Duration::from_millis(5));
        }

        // One request provably in flight: its handler is reading the body
        // (hyper answers `100 Continue` when it first asks for it) when the
        // SIGTERM arrives; the body follows only after the shutdown began.
        let slow_body = fresh_activation();
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.set_read_timeout(Some(PATIENCE)).unwrap();
        let head = format!(
            "POST /v1/webhooks/zenofy HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nX-Webhook-Secret: {HOOK_SECRET}\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            slow_body.len()
        );
        slow.write_all(head.as_bytes()).unwrap();
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            let n = slow.read(&mut byte).expect("read 100 Continue");
            assert_eq!(n, 1, "closed before 100 Continue: {interim:?}");
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );

        sigterm(&server);
        wait_for_log(&server, "shutting down");
        slow.write_all(&slow_body).unwrap();
        let mut raw = Vec::new();
        slow.read_to_end(&mut raw).expect("the in-flight answer");
        let (status, body) = parse_response(&raw)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
        assert_eq!(status, 200, "{body}");
        let slow_answer: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(slow_answer["outcome"], "applied", "{slow_answer}");

        let status = server.wait_exit(PATIENCE).expect("exits after SIGTERM");
        stop.store(true, Ordering::SeqCst);
        assert!(status.success(), "exit status {status}:\n{}", server.log());
        assert!(server.log().contains("stopped"), "{}", server.log());

        let mut acknowledged = vec![slow_answer];
        let mut faults = Vec::new();
        for sender in senders {
            for sent in sender.join().expect("sender") {
                match sent {
                    Sent::Answered(200, answer) if answer["outcome"] == "applied" => {
                        acknowledged.push(answer);
                    }
                    Sent::Answered(status, answer) => faults.push(format!("{status}: {answer}")),
                    Sent::Cut(what) => faults.push(format!("cut short: {what}")),
                    Sent::NoAnswer => {}
                }
            }
        }
        assert!(
            faults.is_empty(),
            "incomplete or failed answers:\n{}",
            faults.join("\n")
        );

        // A fresh start serves, and holds exactly what was acknowledged.
        let server = Server::start(&url, &dir.0);
        let mut stored = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = server.admin(
                "GET",
                &format!("/v1/admin/deliveries?limit=500{cursor}"),
                None,
            );
            assert_eq!(status, 200, "{page:?}");
            for item in page["items"].as_array().unwrap() {
                assert_eq!(item["outcome"], "applied", "{item}");
                stored.push(item["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let mut acknowledged_ids: Vec<String> = acknowledged
            .iter()
            .map(|a| a["delivery_id"].as_str().unwrap().to_owned())
            .collect();
        acknowledged_ids.sort();
        stored.sort();
        assert_eq!(
            stored, acknowledged_ids,
            "stored deliveries are exactly the acknowledged ones"
        );
        for answer in &acknowledged {
            let id = answer["subject"]["id"].as_str().unwrap();
            let (status, detail) =
                server.admin("GET", &format!("/v1/admin/subscriptions/{id}"), None);
            assert_eq!(status, 200, "{detail:?}");
            assert_eq!(detail["state"], "active");
            assert_eq!(
                detail["history"][0]["delivery_id"], answer["delivery_id"],
                "{detail}"
            );
        }
        match send_activation(server.addr, &fresh_activation()) {
            Sent::Answered(200, answer) => assert_eq!(answer["outcome"], "applied"),
            Sent::Answered(status, answer) => panic!("{status}: {answer}"),
            Sent::Cut(what) => panic!("cut short: {what}"),
            Sent::NoAnswer => panic!("no answer after the restart"),
        }
    }
}
