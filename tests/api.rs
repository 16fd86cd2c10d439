//! The HTTP API as clients see it: webhook ingress (authentication, limits,
//! malformed bodies, dedup), outcomes through HTTP, the access decision over
//! time and policy, the admin API, bearer authentication, input validation and
//! the health endpoints. Every test asserts bodies, not only status codes.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN_TOKEN, Reply, SECRET, TestApp, fixture, fixture_json, urlencode, variant};
use serde_json::{Value, json};

on_both_databases!(
    webhook_to_unknown_integration_is_404,
    webhook_to_disabled_integration_is_404_until_enabled,
    webhook_failed_authentication_is_401_and_stores_nothing,
    webhook_body_over_the_limit_is_413_and_stores_nothing,
    malformed_bodies_are_400_naming_the_field_and_never_duplicates,
    ignored_events_answer_ignored_without_subject,
    same_bytes_twice_is_duplicate_naming_the_first_delivery,
    header_secret_or_query_token_both_authenticate,
    lenient_parsing_numeric_ids_date_shapes_and_email_case,
    earlier_period_after_a_later_one_is_stale,
    suspended_on_pending_is_rejected_naming_both_states,
    activated_on_canceled_needs_a_later_period,
    active_subscription_past_grace_is_period_ended_without_expiry,
    zero_grace_policy_recomputes_rows,
    suspended_access_policy_grants_a_suspended_subscription,
    canceled_access_period_end_grants_until_the_period_end,
    unknown_customer_has_no_entitlement,
    customer_entitlements_has_one_item_per_product,
    integration_put_get_delete_never_show_the_secret,
    integration_put_rejects_bad_bodies_naming_the_field,
    integration_put_invalid_product_key_names_the_map_entry,
    products_put_get_and_validation,
    subscriptions_list_filters_and_validation,
    subscriptions_pagination_walks_every_page,
    subscription_detail_unknown_id_is_404,
    bearer_authentication_is_required,
    access_query_validation_names_the_field,
    health_ready_and_unknown_path,
    every_admin_list_walks_every_page_with_limit_and_cursor,
);

const ACTIVATED: &str = "zenofy/subscription.activated.json";
const CREATED: &str = "zenofy/subscription.created.json";
const RENEWED: &str = "zenofy/subscription.renewed.json";
const SUSPENDED: &str = "zenofy/subscription.suspended.json";
const CANCELED: &str = "zenofy/subscription.canceled.json";

// ---------------------------------------------------------------- helpers

/// What is wrong with a reply that should be a 400 `invalid-request` problem
/// naming `field` (status, content type, type, `field`, a `detail` naming it);
/// empty when nothing is. For table-driven tests that report every case.
fn invalid_mismatches(reply: &Reply, field: &str) -> Vec<String> {
    let body = &reply.body;
    let mut wrong = Vec::new();
    if reply.status != StatusCode::BAD_REQUEST {
        wrong.push(format!("status {} (want 400): {body}", reply.status));
    }
    if reply.content_type != "application/problem+json" {
        wrong.push(format!("content type {:?}: {body}", reply.content_type));
    }
    if body["type"] != "urn:entitled:problem:invalid-request" || body["status"] != 400 {
        wrong.push(format!("type/status: {body}"));
    }
    if body["field"] != field {
        wrong.push(format!("field {} (want {field:?}): {body}", body["field"]));
    }
    if !body["detail"].as_str().is_some_and(|d| d.contains(field)) {
        wrong.push(format!("detail does not name {field:?}: {body}"));
    }
    wrong
}

/// Asserts a 200 delivery answer with this outcome and returns the body.
fn assert_outcome(reply: &Reply, outcome: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.content_type, "application/json", "{:?}", reply.body);
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

/// `GET /v1/admin/subscriptions?{query}`, expected to succeed.
async fn subscriptions(app: &TestApp, query: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/v1/admin/subscriptions{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// Asserts that no subscription exists.
async fn assert_no_subscriptions(app: &TestApp) {
    let list = subscriptions(app, "").await;
    assert_eq!(list["items"], json!([]), "{list:?}");
    assert_eq!(list["next_cursor"], Value::Null);
}

/// The `(event, from_state, to_state, outcome)` of each history entry.
fn history(detail: &Value) -> Vec<(String, Value, Value, String)> {
    detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap().to_owned(),
                h["from_state"].clone(),
                h["to_state"].clone(),
                h["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(event: &str, from: Value, to: Value, outcome: &str) -> (String, Value, Value, String) {
    (event.to_owned(), from, to, outcome.to_owned())
}

/// A request with no `Authorization` header at all.
async fn anonymous(app: &TestApp, method: Method, path: &str) -> Reply {
    app.send(
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// An access answer at `at`, expected to succeed.
async fn access_at(app: &TestApp, product: &str, at: &str) -> Value {
    let reply = app.access("buyer@example.com", product, Some(at)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// Delivers a body and asserts it was applied; returns the subject's id.
async fn applied(app: &TestApp, body: impl Into<Vec<u8>>) -> String {
    let reply = app.zenofy(body).await;
    let answer = assert_outcome(&reply, "applied");
    answer["subject"]["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- ingress

async fn webhook_to_unknown_integration_is_404(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .webhook(
            "/v1/webhooks/nope",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            fixture(ACTIVATED),
        )
        .await;
    reply.assert_not_found();
    assert!(
        reply.body["detail"].as_str().unwrap().contains("nope"),
        "{:?}",
        reply.body
    );
    assert_no_subscriptions(&app).await;
}

async fn webhook_to_disabled_integration_is_404_until_enabled(app: TestApp) {
    let put = |enabled: bool| {
        json!({
            "provider": "zenofy",
            "secret": SECRET,
            "product_map": {"507f1f77bcf86cd799439011": "pro"},
            "enabled": enabled,
        })
    };
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy",
            Some(put(false)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["enabled"], false);

    app.zenofy(fixture(ACTIVATED)).await.assert_not_found();
    assert_no_subscriptions(&app).await;

    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy",
            Some(put(true)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["enabled"], true);
    // The 404 stored nothing: the same bytes are new.
    let answer = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    assert_eq!(answer["subject"]["state"], "active");
}

async fn webhook_failed_authentication_is_401_and_stores_nothing(app: TestApp) {
    app.zenofy_integration().await;
    let body = fixture(ACTIVATED);
    let attempts: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "/v1/webhooks/zenofy",
            vec![("x-webhook-secret", "not-the-secret")],
        ),
        ("/v1/webhooks/zenofy?token=not-the-secret", vec![]),
        ("/v1/webhooks/zenofy", vec![]),
        ("/v1/webhooks/zenofy?token=", vec![("x-webhook-secret", "")]),
        // A prefix of the secret is not the secret.
        ("/v1/webhooks/zenofy?token=zenofy-secret-12", vec![]),
        // Another header name is not where Zenofy puts it.
        (
            "/v1/webhooks/zenofy",
            vec![("authorization", "Bearer zenofy-secret-123")],
        ),
    ];
    for (path, mut headers) in attempts {
        headers.push(("content-type", "application/json"));
        let reply = app.webhook(path, &headers, body.clone()).await;
        reply.assert_problem(StatusCode::UNAUTHORIZED, None);
        assert_eq!(
            reply.body["type"], "urn:entitled:problem:webhook-unauthorized",
            "{path} {headers:?}: {:?}",
            reply.body
        );
        assert!(reply.body.get("delivery_id").is_none(), "{:?}", reply.body);
        assert!(reply.body.get("outcome").is_none(), "{:?}", reply.body);
    }
    assert_no_subscriptions(&app).await;

    // Nothing was stored, so the same bytes, authenticated, are not a duplicate.
    let answer = assert_outcome(&app.zenofy(body).await, "applied");
    assert_eq!(answer["subject"]["state"], "active");
}

async fn webhook_body_over_the_limit_is_413_and_stores_nothing(app: TestApp) {
    let db = app.db;
    drop(app);
    let app = TestApp::start_with(
        db,
        entitled::Settings {
            max_body_bytes: 1024,
            ..entitled::Settings::default()
        },
    )
    .await
    .expect("the engine the test was started on");
    app.zenofy_integration().await;

    // A body of exactly `len` bytes: the activated fixture, padded.
    let sized = |len: usize| {
        let mut json = fixture_json(ACTIVATED);
        json["customerNameSnapshot"] = json!("");
        let base = serde_json::to_vec(&json).unwrap().len();
        json["customerNameSnapshot"] = json!("x".repeat(len - base));
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(bytes.len(), len);
        bytes
    };

    for len in [1025, 4096] {
        let reply = app.zenofy(sized(len)).await;
        reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, None);
        assert_eq!(
            reply.body["type"], "urn:entitled:problem:payload-too-large",
            "{:?}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains("1024"),
            "{:?}",
            reply.body
        );
        assert!(reply.body.get("delivery_id").is_none(), "{:?}", reply.body);
    }
    assert_no_subscriptions(&app).await;

    // At most the limit is fine.
    let answer = assert_outcome(&app.zenofy(sized(1024)).await, "applied");
    assert_eq!(answer["subject"]["state"], "active");
}

async fn malformed_bodies_are_400_naming_the_field_and_never_duplicates(app: TestApp) {
    app.zenofy_integration().await;
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("not JSON", b"this is not json {".to_vec(), None),
        (
            "a JSON array",
            serde_json::to_vec(&json!([fixture_json(ACTIVATED)])).unwrap(),
            None,
        ),
        (
            "no subscriptionId",
            variant(ACTIVATED, |j| {
                j.as_object_mut().unwrap().remove("subscriptionId");
            }),
            Some("subscriptionId"),
        ),
        (
            "customerEmail not an email",
            variant(ACTIVATED, |j| j["customerEmail"] = json!("not-an-email")),
            Some("customerEmail"),
        ),
        (
            "currentPeriodEnd not a date",
            variant(ACTIVATED, |j| j["currentPeriodEnd"] = json!("next tuesday")),
            Some("currentPeriodEnd"),
        ),
        ("an empty body", Vec::new(), None),
        (
            "no productId",
            variant(ACTIVATED, |j| {
                j.as_object_mut().unwrap().remove("productId");
            }),
            Some("productId"),
        ),
        (
            "customerEmail null",
            variant(ACTIVATED, |j| j["customerEmail"] = Value::Null),
            Some("customerEmail"),
        ),
        (
            "subscriptionId of the wrong type",
            variant(ACTIVATED, |j| j["subscriptionId"] = json!(true)),
            Some("subscriptionId"),
        ),
        (
            "renewal.newPeriodEnd not a date",
            variant(RENEWED, |j| j["renewal"]["newPeriodEnd"] = json!("soon")),
            Some("renewal.newPeriodEnd"),
        ),
    ];
    for (what, body, field) in cases {
        let mut ids = Vec::new();
        for attempt in 1..=2 {
            let reply = app.zenofy(body.clone()).await;
            reply.assert_problem(StatusCode::BAD_REQUEST, field);
            assert_eq!(
                reply.body["type"], "urn:entitled:problem:malformed",
                "{what} #{attempt}: {:?}",
                reply.body
            );
            assert_eq!(
                reply.body["outcome"], "malformed",
                "{what} #{attempt}: {:?}",
                reply.body
            );
            if field.is_none() {
                assert!(
                    reply.body.get("field").is_none(),
                    "{what}: {:?}",
                    reply.body
                );
            }
            let id = reply.body["delivery_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{what} #{attempt}: no delivery_id: {:?}", reply.body));
            assert!(!id.is_empty());
            ids.push(id.to_owned());
        }
        assert_ne!(ids[0], ids[1], "{what}: each malformed delivery is its own");
    }
    assert_no_subscriptions(&app).await;
}

async fn ignored_events_answer_ignored_without_subject(app: TestApp) {
    app.zenofy_integration().await;
    let paused = variant(ACTIVATED, |j| j["event"] = json!("subscription.paused"));
    for (name, body) in [
        ("subscription.paused", paused),
        (
            "payout.created",
            variant(ACTIVATED, |j| j["event"] = json!("payout.created")),
        ),
    ] {
        let reply = app.zenofy(body).await;
        let answer = assert_outcome(&reply, "ignored");
        assert_eq!(answer["subject"], Value::Null, "{name}: {answer:?}");
        assert!(
            answer["reason"].as_str().is_some_and(|r| r.contains(name)),
            "{name}: {answer:?}"
        );
    }
    assert_no_subscriptions(&app).await;
    let access = app.access("buyer@example.com", "pro", None).await;
    assert_eq!(access.body["reason"], "no_entitlement", "{:?}", access.body);
}

async fn same_bytes_twice_is_duplicate_naming_the_first_delivery(app: TestApp) {
    app.zenofy_integration().await;
    let first = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "applied");
    let second = assert_outcome(&app.zenofy(fixture(ACTIVATED)).await, "duplicate");
    let first_id = first["delivery_id"].as_str().unwrap();
    assert_ne!(second["delivery_id"], first["delivery_id"]);
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|r| r.contains(first_id)),
        "the reason names delivery {first_id}: {second:?}"
    );
    assert_eq!(second["subject"], first["subject"], "{second:?}");
    assert_eq!(second["subject"]["state"], "active");

    // One subscription, unchanged.
    let list = subscriptions(&app, "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list:?}");
    let detail = app
        .subscription(first["subject"]["id"].as_str().unwrap())
        .await;
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["history"][0]["outcome"], "applied");

    // Different bytes that change nothing: a duplicate by meaning, which
    // reaches the subscription's history.
    let same_meaning = variant(ACTIVATED, |j| j["customerNameSnapshot"] = json!("Ada B."));
    let by_meaning = assert_outcome(&app.zenofy(same_meaning).await, "duplicate");
    assert_eq!(by_meaning["subject"], first["subject"]);
    assert!(
        !by_meaning["reason"]
            .as_str()
            .is_some_and(|r| r.contains(first_id)),
        "not a redelivery of the same message: {by_meaning:?}"
    );
    let detail = app
        .subscription(first["subject"]["id"].as_str().unwrap())
        .await;
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["outcome"], "duplicate", "{detail:?}");
    assert_eq!(last["delivery_id"], by_meaning["delivery_id"]);
    assert_eq!(last["from_state"], "active");
    assert_eq!(last["to_state"], "active");

    // An ignored event twice is a duplicate too, with no subject.
    let paused = variant(ACTIVATED, |j| j["event"] = json!("subscription.paused"));
    let first = assert_outcome(&app.zenofy(paused.clone()).await, "ignored");
    let second = assert_outcome(&app.zenofy(paused).await, "duplicate");
    assert_eq!(second["subject"], Value::Null, "{second:?}");
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|r| r.contains(first["delivery_id"].as_str().unwrap())),
        "{second:?}"
    );

    // The dedup key is per integration: the same bytes to another integration
    // are new, and reach that integration's own subscription.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy-b",
            Some(json!({"provider": "zenofy", "secret": SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply = app
        .webhook(
            "/v1/webhooks/zenofy-b",
            &[("x-webhook-secret", SECRET)],
            fixture(ACTIVATED),
        )
        .await;
    let other = assert_outcome(&reply, "applied");
    assert_ne!(other["subject"]["id"], first["subject"]["id"]);
    let list = subscriptions(&app, "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list:?}");
}

async fn header_secret_or_query_token_both_authenticate(app: TestApp) {
    app.zenofy_integration().await;
    let by_header = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[("x-webhook-secret", SECRET)],
            fixture(CREATED),
        )
        .await;
    let created = assert_outcome(&by_header, "applied");
    assert_eq!(created["subject"]["state"], "pending");

    let by_query = app
        .webhook(
            &format!("/v1/webhooks/zenofy?token={SECRET}"),
            &[("content-type", "application/json")],
            fixture(ACTIVATED),
        )
        .await;
    let activated = assert_outcome(&by_query, "applied");
    assert_eq!(activated["subject"]["state"], "active");
    assert_eq!(activated["subject"]["id"], created["subject"]["id"]);

    // A secret with characters that must be percent-encoded in a query.
    let odd = "s3cret+/=&?é x";
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/odd",
            Some(json!({"provider": "zenofy", "secret": odd})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply = app
        .webhook(
            &format!("/v1/webhooks/odd?source=zenofy&token={}", urlencode(odd)),
            &[],
            fixture(ACTIVATED),
        )
        .await;
    assert_outcome(&reply, "applied");
    // Unencoded, the `&` ends the token early: not the secret.
    let reply = app
        .webhook(
            "/v1/webhooks/odd?token=s3cret%2B%2F%3D&x",
            &[],
            fixture(RENEWED),
        )
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
}

async fn lenient_parsing_numeric_ids_date_shapes_and_email_case(app: TestApp) {
    app.zenofy_integration().await;
    let body = variant(ACTIVATED, |j| {
        j["subscriptionId"] = json!(987654321);
        j["customerEmail"] = json!("  Ada.Buyer@Example.COM ");
        j["currentPeriodStart"] = json!("2026-05-01T08:00:00.123456Z");
        j["currentPeriodEnd"] = json!("2026-06-01T03:00:00-05:00");
        j["somethingNew"] = json!({"nested": [1, 2, 3]});
    });
    let id = applied(&app, body).await;
    let detail = app.subscription(&id).await;
    assert_eq!(detail["external_id"], "987654321");
    assert_eq!(detail["email"], "ada.buyer@example.com");
    assert_eq!(detail["product"], "pro");
    assert_eq!(
        detail["current_period_start"],
        "2026-05-01T08:00:00.123456Z"
    );
    assert_eq!(detail["current_period_end"], "2026-06-01T08:00:00Z");

    // The same id as a string is the same subscription.
    let renewed = variant(RENEWED, |j| {
        j["subscriptionId"] = json!("987654321");
        j["customerEmail"] = json!("ada.buyer@example.com");
    });
    let answer = assert_outcome(&app.zenofy(renewed).await, "applied");
    assert_eq!(answer["subject"]["id"], id.as_str());
    let access = app
        .access("ADA.BUYER@example.com", "pro", Some("2026-06-20T00:00:00Z"))
        .await;
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["valid_until"], "2026-07-04T08:00:00Z");
}

// ---------------------------------------------------------------- outcomes

async fn earlier_period_after_a_later_one_is_stale(app: TestApp) {
    app.zenofy_integration().await;
    let id = applied(&app, fixture(ACTIVATED)).await;
    applied(&app, fixture(RENEWED)).await;
    // A renewal for the period ending 2026-06-01, arriving after the one ending
    // 2026-07-01.
    let late = variant(RENEWED, |j| {
        j["currentPeriodStart"] = json!("2026-04-01T10:00:00+02:00");
        j["currentPeriodEnd"] = json!("2026-06-01T10:00:00+02:00");
        j["renewal"]["previousPeriodEnd"] = json!("2026-05-01T10:00:00+02:00");
        j["renewal"]["newPeriodEnd"] = json!("2026-06-01T10:00:00+02:00");
        j["renewal"]["renewalOrderId"] = json!("673f92b2c3d94a0012abcd50");
        j["orderId"] = json!("673f92b2c3d94a0012abcd50");
    });
    let answer = assert_outcome(&app.zenofy(late).await, "stale");
    assert_eq!(answer["subject"]["id"], id.as_str());
    assert_eq!(answer["subject"]["state"], "active");
    let reason = answer["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("2026-06-01T08:00:00Z") && reason.contains("2026-07-01T08:00:00Z"),
        "{reason}"
    );

    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["current_period_start"], "2026-05-01T08:00:00Z");
    assert_eq!(detail["current_period_end"], "2026-07-01T08:00:00Z");
    assert_eq!(
        history(&detail),
        vec![
            entry("activated", Value::Null, json!("active"), "applied"),
            entry("renewed", json!("active"), json!("active"), "applied"),
            entry("renewed", json!("active"), json!("active"), "stale"),
        ]
    );
    assert_eq!(
        detail["history"][2]["delivery_id"], answer["delivery_id"],
        "{detail:?}"
    );
    assert_eq!(detail["history"][2]["reason"], reason);
    let access = access_at(&app, "pro", "2026-06-20T00:00:00Z").await;
    assert_eq!(access["entitled"], true);
    assert_eq!(access["valid_until"], "2026-07-04T08:00:00Z");
}

async fn suspended_on_pending_is_rejected_naming_both_states(app: TestApp) {
    app.zenofy_integration().await;
    let id = applied(&app, fixture(CREATED)).await;
    let answer = assert_outcome(&app.zenofy(fixture(SUSPENDED)).await, "rejected");
    assert_eq!(answer["subject"]["id"], id.as_str());
    assert_eq!(answer["subject"]["state"], "pending");
    let reason = answer["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("pending") && reason.contains("suspended"),
        "{reason}"
    );

    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "pending");
    assert_eq!(detail["current_period_end"], Value::Null);
    assert_eq!(
        history(&detail),
        vec![
            entry("created", Value::Null, json!("pending"), "applied"),
            entry("suspended", json!("pending"), json!("pending"), "rejected"),
        ]
    );
    assert_eq!(detail["history"][1]["reason"], reason);
    assert_eq!(detail["history"][1]["delivery_id"], answer["delivery_id"]);

    let access = app.access("buyer@example.com", "pro", None).await;
    assert_eq!(access.body["entitled"], false);
    assert_eq!(access.body["reason"], "pending");
    assert_eq!(access.body["valid_until"], Value::Null, "{:?}", access.body);
    assert_eq!(access.body["sources"][0]["state"], "pending");
    assert_eq!(access.body["sources"][0]["access_until"], Value::Null);
}

async fn activated_on_canceled_needs_a_later_period(app: TestApp) {
    app.zenofy_integration().await;
    let id = applied(&app, fixture(ACTIVATED)).await;
    // Canceled, for the period ending 2026-07-01.
    let canceled = assert_outcome(&app.zenofy(fixture(CANCELED)).await, "applied");
    assert_eq!(canceled["subject"]["state"], "canceled");

    // Activated again for that same period: cannot be right.
    let same_period = variant(ACTIVATED, |j| {
        j["currentPeriodStart"] = json!("2026-06-01T10:00:00+02:00");
        j["currentPeriodEnd"] = json!("2026-07-01T10:00:00+02:00");
    });
    let rejected = assert_outcome(&app.zenofy(same_period).await, "rejected");
    assert_eq!(rejected["subject"]["state"], "canceled");
    let reason = rejected["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("canceled") && reason.contains("active"),
        "{reason}"
    );
    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "canceled");
    assert_eq!(detail["current_period_end"], "2026-07-01T08:00:00Z");

    // A later paid period reactivates it.
    let later_period = variant(ACTIVATED, |j| {
        j["currentPeriodStart"] = json!("2026-07-01T10:00:00+02:00");
        j["currentPeriodEnd"] = json!("2026-08-01T10:00:00+02:00");
        j["orderId"] = json!("673f92b2c3d94a0012abcd77");
        j["lastPaidOrderId"] = json!("673f92b2c3d94a0012abcd77");
    });
    let reactivated = assert_outcome(&app.zenofy(later_period).await, "applied");
    assert_eq!(reactivated["subject"]["id"], id.as_str());
    assert_eq!(reactivated["subject"]["state"], "active");

    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["current_period_start"], "2026-07-01T08:00:00Z");
    assert_eq!(detail["current_period_end"], "2026-08-01T08:00:00Z");
    assert_eq!(
        history(&detail),
        vec![
            entry("activated", Value::Null, json!("active"), "applied"),
            entry("canceled", json!("active"), json!("canceled"), "applied"),
            entry(
                "activated",
                json!("canceled"),
                json!("canceled"),
                "rejected"
            ),
            entry("activated", json!("canceled"), json!("active"), "applied"),
        ]
    );
    assert_eq!(detail["history"][2]["reason"], reason);

    // Access reopens from the new period's start, not during the gap.
    let during = access_at(&app, "pro", "2026-07-15T00:00:00Z").await;
    assert_eq!(during["entitled"], true, "{during:?}");
    assert_eq!(during["reason"], "active");
    assert_eq!(during["valid_until"], "2026-08-04T08:00:00Z");
    assert_eq!(during["sources"][0]["access_from"], "2026-07-01T08:00:00Z");
}

// ---------------------------------------------------------------- access

async fn active_subscription_past_grace_is_period_ended_without_expiry(app: TestApp) {
    app.zenofy_integration().await;
    let id = applied(&app, fixture(ACTIVATED)).await;
    // The period: 2026-05-01T08:00:00Z to 2026-06-01T08:00:00Z; grace 3 days.
    let inside = access_at(&app, "pro", "2026-05-15T00:00:00Z").await;
    assert_eq!(inside["email"], "buyer@example.com");
    assert_eq!(inside["product"], "pro");
    assert_eq!(inside["at"], "2026-05-15T00:00:00Z");
    assert_eq!(inside["entitled"], true, "{inside:?}");
    assert_eq!(inside["reason"], "active");
    assert_eq!(inside["valid_until"], "2026-06-04T08:00:00Z");
    let sources = inside["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{inside:?}");
    assert_eq!(sources[0]["kind"], "subscription");
    assert_eq!(sources[0]["id"], id.as_str());
    assert_eq!(sources[0]["state"], "active");
    assert_eq!(sources[0]["provider"], "zenofy");
    assert_eq!(sources[0]["integration"], "zenofy");
    assert_eq!(sources[0]["access_from"], "2026-05-01T08:00:00Z");
    assert_eq!(sources[0]["access_until"], "2026-06-04T08:00:00Z");

    let grace = access_at(&app, "pro", "2026-06-02T08:00:00Z").await;
    assert_eq!(grace["entitled"], true, "{grace:?}");
    assert_eq!(grace["reason"], "grace_period");
    assert_eq!(grace["valid_until"], "2026-06-04T08:00:00Z");

    let after = access_at(&app, "pro", "2026-06-05T08:00:00Z").await;
    assert_eq!(after["entitled"], false, "{after:?}");
    assert_eq!(after["reason"], "period_ended");
    assert_eq!(after["valid_until"], "2026-06-04T08:00:00Z");
    assert_eq!(after["sources"][0]["state"], "active");

    // Other offsets and fractional seconds in `at` mean the same instant.
    let offset = access_at(&app, "pro", "2026-06-05T10:00:00.000+02:00").await;
    assert_eq!(offset["at"], "2026-06-05T08:00:00Z");
    assert_eq!(offset["reason"], "period_ended");

    // Nothing changed in the subscription itself: no event arrived.
    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["history"].as_array().unwrap().len(), 1);
}

async fn zero_grace_policy_recomputes_rows(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, fixture(ACTIVATED)).await;
    let before = access_at(&app, "pro", "2026-06-02T08:00:00Z").await;
    assert_eq!(before["reason"], "grace_period", "{before:?}");

    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"grace_period_seconds": 0})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["grace_period_seconds"], 0);

    let after = access_at(&app, "pro", "2026-06-02T08:00:00Z").await;
    assert_eq!(after["entitled"], false, "{after:?}");
    assert_eq!(after["reason"], "period_ended");
    assert_eq!(after["valid_until"], "2026-06-01T08:00:00Z");
    assert_eq!(after["sources"][0]["access_until"], "2026-06-01T08:00:00Z");
    let inside = access_at(&app, "pro", "2026-05-31T08:00:00Z").await;
    assert_eq!(inside["entitled"], true, "{inside:?}");
    assert_eq!(inside["reason"], "active");
    assert_eq!(inside["valid_until"], "2026-06-01T08:00:00Z");

    // And back: a two-day grace.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"grace_period_seconds": 172800})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let again = access_at(&app, "pro", "2026-06-02T08:00:00Z").await;
    assert_eq!(again["entitled"], true, "{again:?}");
    assert_eq!(again["reason"], "grace_period");
    assert_eq!(again["valid_until"], "2026-06-03T08:00:00Z");
}

async fn suspended_access_policy_grants_a_suspended_subscription(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, fixture(ACTIVATED)).await;
    applied(&app, fixture(RENEWED)).await;
    applied(&app, fixture(SUSPENDED)).await;
    let denied = access_at(&app, "pro", "2026-06-15T00:00:00Z").await;
    assert_eq!(denied["entitled"], false, "{denied:?}");
    assert_eq!(denied["reason"], "suspended");
    assert_eq!(denied["sources"][0]["state"], "suspended");

    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"suspended_access": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["suspended_access"], true);

    let granted = access_at(&app, "pro", "2026-06-15T00:00:00Z").await;
    assert_eq!(granted["entitled"], true, "{granted:?}");
    assert_eq!(granted["reason"], "active");
    assert_eq!(granted["valid_until"], "2026-07-04T08:00:00Z");
    assert_eq!(granted["sources"][0]["state"], "suspended");
    let grace = access_at(&app, "pro", "2026-07-02T00:00:00Z").await;
    assert_eq!(grace["entitled"], true, "{grace:?}");
    assert_eq!(grace["reason"], "grace_period");
    let ended = access_at(&app, "pro", "2026-07-05T00:00:00Z").await;
    assert_eq!(ended["entitled"], false, "{ended:?}");
    assert_eq!(ended["reason"], "suspended");
}

async fn canceled_access_period_end_grants_until_the_period_end(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, fixture(ACTIVATED)).await;
    applied(&app, fixture(CANCELED)).await;
    let denied = access_at(&app, "pro", "2026-06-15T00:00:00Z").await;
    assert_eq!(denied["entitled"], false, "{denied:?}");
    assert_eq!(denied["reason"], "canceled");

    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"canceled_access": "period_end"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["canceled_access"], "period_end");

    let granted = access_at(&app, "pro", "2026-06-15T00:00:00Z").await;
    assert_eq!(granted["entitled"], true, "{granted:?}");
    assert_eq!(granted["reason"], "active");
    assert_eq!(granted["valid_until"], "2026-07-01T08:00:00Z");
    assert_eq!(granted["sources"][0]["state"], "canceled");
    // No grace after a cancellation.
    let after = access_at(&app, "pro", "2026-07-02T00:00:00Z").await;
    assert_eq!(after["entitled"], false, "{after:?}");
    assert_eq!(after["reason"], "canceled");
    assert_eq!(after["valid_until"], "2026-07-01T08:00:00Z");
}

async fn unknown_customer_has_no_entitlement(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, fixture(ACTIVATED)).await;
    let reply = app
        .access("  Nobody@Example.COM ", "pro", Some("2026-05-15T00:00:00Z"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "email": "nobody@example.com",
            "product": "pro",
            "entitled": false,
            "reason": "no_entitlement",
            "valid_until": null,
            "plan": null,
            "at": "2026-05-15T00:00:00Z",
            "sources": [],
        })
    );
    // A known customer, a product they have nothing for.
    let other = access_at(&app, "enterprise", "2026-05-15T00:00:00Z").await;
    assert_eq!(other["entitled"], false);
    assert_eq!(other["reason"], "no_entitlement");
    assert_eq!(other["sources"], json!([]));
    // The email is normalised on the way in.
    let upper = app
        .access("BUYER@example.com", "pro", Some("2026-05-15T00:00:00Z"))
        .await;
    assert_eq!(upper.body["email"], "buyer@example.com");
    assert_eq!(upper.body["entitled"], true, "{:?}", upper.body);
}

async fn customer_entitlements_has_one_item_per_product(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, fixture(ACTIVATED)).await;
    // Another subscription, to a product the integration does not map: its
    // external id is its own key.
    applied(
        &app,
        variant(ACTIVATED, |j| {
            j["subscriptionId"] = json!("683a1b2c3d4e5f6789099999");
            j["productId"] = json!("basic-plan-id");
        }),
    )
    .await;
    // And a pending one for that product, which must not add an item.
    applied(
        &app,
        variant(CREATED, |j| {
            j["subscriptionId"] = json!("683a1b2c3d4e5f6789088888");
            j["productId"] = json!("basic-plan-id");
        }),
    )
    .await;

    let reply = app
        .admin(
            Method::GET,
            "/v1/customers/Buyer%40Example.com/entitlements?at=2026-05-15T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["email"], "buyer@example.com");
    assert_eq!(reply.body["at"], "2026-05-15T00:00:00Z");
    let items = reply.body["items"].as_array().unwrap();
    let mut products: Vec<_> = items
        .iter()
        .map(|i| i["product"].as_str().unwrap())
        .collect();
    products.sort();
    assert_eq!(products, ["basic-plan-id", "pro"], "{:?}", reply.body);
    for item in items {
        assert_eq!(item["email"], "buyer@example.com");
        assert_eq!(item["entitled"], true, "{item:?}");
        assert_eq!(item["reason"], "active");
        assert_eq!(item["valid_until"], "2026-06-04T08:00:00Z");
        assert_eq!(item["at"], "2026-05-15T00:00:00Z");
    }
    let basic = items
        .iter()
        .find(|i| i["product"] == "basic-plan-id")
        .unwrap();
    assert_eq!(basic["sources"].as_array().unwrap().len(), 2, "{basic:?}");

    // Each item is the access answer for that product.
    let single = access_at(&app, "basic-plan-id", "2026-05-15T00:00:00Z").await;
    assert_eq!(&single, basic);

    let nobody = app
        .admin(
            Method::GET,
            "/v1/customers/nobody@example.com/entitlements",
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::OK, "{:?}", nobody.body);
    assert_eq!(nobody.body["items"], json!([]));
}

// ---------------------------------------------------------------- admin

async fn integration_put_get_delete_never_show_the_secret(app: TestApp) {
    let first_secret = "first-secret-value-42";
    let second_secret = "second-secret-value-43";
    let no_secret = |reply: &Reply| {
        let text = reply.body.to_string();
        assert!(
            !text.contains(first_secret) && !text.contains(second_secret),
            "a secret in {text}"
        );
        assert!(reply.body.get("secret").is_none(), "{text}");
    };

    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop",
            Some(json!({
                "provider": "zenofy",
                "secret": first_secret,
                "product_map": {"507f1f77bcf86cd799439011": "pro"},
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    no_secret(&reply);
    assert_eq!(reply.body["id"], "shop");
    assert_eq!(reply.body["provider"], "zenofy");
    assert_eq!(
        reply.body["product_map"],
        json!({"507f1f77bcf86cd799439011": "pro"})
    );
    assert_eq!(reply.body["enabled"], true, "enabled by default");
    assert_eq!(reply.body["webhook_path"], "/v1/webhooks/shop");
    let created_at = reply.body["created_at"].clone();
    assert!(created_at.is_string());

    // Replace, secret included.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop",
            Some(json!({
                "provider": "zenofy",
                "secret": second_secret,
                "product_map": {"507f1f77bcf86cd799439011": "premium"},
                "enabled": true,
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_secret(&reply);
    assert_eq!(
        reply.body["product_map"],
        json!({"507f1f77bcf86cd799439011": "premium"})
    );
    assert_eq!(reply.body["created_at"], created_at);

    let list = app.admin(Method::GET, "/v1/admin/integrations", None).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    no_secret(&list);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", list.body);
    assert_eq!(items[0]["id"], "shop");
    assert_eq!(list.body["next_cursor"], Value::Null);

    let one = app
        .admin(Method::GET, "/v1/admin/integrations/shop", None)
        .await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    no_secret(&one);
    assert_eq!(one.body, items[0]);

    // The replaced secret is the one that authenticates now.
    let old = app
        .webhook(
            "/v1/webhooks/shop",
            &[("x-webhook-secret", first_secret)],
            fixture(ACTIVATED),
        )
        .await;
    old.assert_problem(StatusCode::UNAUTHORIZED, None);
    let new = app
        .webhook(
            "/v1/webhooks/shop",
            &[("x-webhook-secret", second_secret)],
            fixture(ACTIVATED),
        )
        .await;
    assert_outcome(&new, "applied");
    let list = subscriptions(&app, "").await;
    assert_eq!(list["items"][0]["product"], "premium", "{list:?}");

    let reply = app
        .admin(Method::DELETE, "/v1/admin/integrations/shop", None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    assert_eq!(reply.body, Value::Null);
    app.admin(Method::DELETE, "/v1/admin/integrations/shop", None)
        .await
        .assert_not_found();
    app.admin(Method::GET, "/v1/admin/integrations/shop", None)
        .await
        .assert_not_found();
    let list = app.admin(Method::GET, "/v1/admin/integrations", None).await;
    assert_eq!(list.body["items"], json!([]));
    app.webhook(
        "/v1/webhooks/shop",
        &[("x-webhook-secret", second_secret)],
        fixture(RENEWED),
    )
    .await
    .assert_not_found();
    // What it delivered stays.
    let list = subscriptions(&app, "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list:?}");
}

async fn integration_put_rejects_bad_bodies_naming_the_field(app: TestApp) {
    let good = || {
        json!({
            "provider": "zenofy",
            "secret": SECRET,
            "product_map": {"507f1f77bcf86cd799439011": "pro"},
            "enabled": true,
        })
    };
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut body = good();
        f(body.as_object_mut().unwrap());
        body
    };
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "unknown provider",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("provider".into(), json!("stripe"));
            }),
            "provider",
        ),
        (
            "missing provider",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.remove("provider");
            }),
            "provider",
        ),
        (
            "missing secret",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.remove("secret");
            }),
            "secret",
        ),
        (
            "empty secret",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("secret".into(), json!(""));
            }),
            "secret",
        ),
        (
            "blank secret",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("secret".into(), json!("     "));
            }),
            "secret",
        ),
        (
            "secret not a string",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("secret".into(), json!(12345678));
            }),
            "secret",
        ),
        ("bad id", "/v1/admin/integrations/Bad%20Id", good(), "id"),
        (
            "product_map value not a string",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("product_map".into(), json!({"507f": 7}));
            }),
            "product_map.507f",
        ),
        (
            "enabled not a boolean",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("enabled".into(), json!("yes"));
            }),
            "enabled",
        ),
        (
            "unknown field",
            "/v1/admin/integrations/shop",
            edit(&|b| {
                b.insert("colour".into(), json!("blue"));
            }),
            "colour",
        ),
    ];
    let mut failures = Vec::new();
    for (what, path, body, field) in cases {
        let reply = app.admin(Method::PUT, path, Some(body)).await;
        failures.extend(
            invalid_mismatches(&reply, field)
                .into_iter()
                .map(|m| format!("{what}: {m}")),
        );
        assert!(
            !reply.body.to_string().contains(SECRET),
            "{what}: the secret echoed in {:?}",
            reply.body
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");

    for limit in ["0", "501", "x"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/integrations?limit={limit}"),
                None,
            )
            .await;
        reply.assert_invalid(limit, "limit");
    }

    // Not JSON at all.
    let reply = app
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/admin/integrations/shop")
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, None);

    // Nothing was saved.
    let list = app.admin(Method::GET, "/v1/admin/integrations", None).await;
    assert_eq!(list.body["items"], json!([]), "{:?}", list.body);
}

/// An invalid product key in `product_map` is a 400 whose `field` and `detail`
/// both name the entry, like every other invalid field.
async fn integration_put_invalid_product_key_names_the_map_entry(app: TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop",
            Some(json!({
                "provider": "zenofy",
                "secret": SECRET,
                "product_map": {"507f": ""},
            })),
        )
        .await;
    let failures = invalid_mismatches(&reply, "product_map.507f");
    assert!(failures.is_empty(), "{failures:#?}");
    let list = app.admin(Method::GET, "/v1/admin/integrations", None).await;
    assert_eq!(list.body["items"], json!([]), "{:?}", list.body);
}

async fn products_put_get_and_validation(app: TestApp) {
    app.admin(Method::GET, "/v1/admin/products/pro", None)
        .await
        .assert_not_found();

    let reply = app
        .admin(Method::PUT, "/v1/admin/products/pro", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["key"], "pro");
    assert_eq!(reply.body["grace_period_seconds"], 259200);
    assert_eq!(reply.body["suspended_access"], false);
    assert_eq!(reply.body["canceled_access"], "immediate");
    assert_eq!(reply.body["purchase_access_seconds"], Value::Null);

    let policy = json!({
        "grace_period_seconds": 3600,
        "suspended_access": true,
        "canceled_access": "period_end",
        "purchase_access_seconds": 86400,
    });
    let reply = app
        .admin(Method::PUT, "/v1/admin/products/pro", Some(policy.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let shown = app.admin(Method::GET, "/v1/admin/products/pro", None).await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    for (key, value) in policy.as_object().unwrap() {
        assert_eq!(&shown.body[key], value, "{key}: {:?}", shown.body);
    }
    assert_eq!(shown.body, reply.body);

    let list = app.admin(Method::GET, "/v1/admin/products", None).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body["items"], json!([shown.body]));
    app.admin(Method::GET, "/v1/admin/products/enterprise", None)
        .await
        .assert_not_found();

    let bad: [(Value, &str); 5] = [
        (json!({"canceled_access": "sometimes"}), "canceled_access"),
        (json!({"grace_period_seconds": -1}), "grace_period_seconds"),
        (
            json!({"grace_period_seconds": "3 days"}),
            "grace_period_seconds",
        ),
        (json!({"suspended_access": "yes"}), "suspended_access"),
        (
            json!({"purchase_access_seconds": 0}),
            "purchase_access_seconds",
        ),
    ];
    let mut failures = Vec::new();
    for (body, field) in bad {
        let reply = app
            .admin(Method::PUT, "/v1/admin/products/pro", Some(body.clone()))
            .await;
        failures.extend(
            invalid_mismatches(&reply, field)
                .into_iter()
                .map(|m| format!("{body}: {m}")),
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The rejected bodies changed nothing.
    let after = app.admin(Method::GET, "/v1/admin/products/pro", None).await;
    assert_eq!(after.body, shown.body);
}

async fn subscriptions_list_filters_and_validation(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy-b",
            Some(json!({"provider": "zenofy", "secret": SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // buyer, pro, active, on `zenofy`.
    let buyer_pro = applied(&app, fixture(ACTIVATED)).await;
    // other, pro, pending, on `zenofy`.
    let other_pro = applied(
        &app,
        variant(CREATED, |j| {
            j["subscriptionId"] = json!("683a1b2c3d4e5f6789000002");
            j["customerEmail"] = json!("Other@Example.com");
        }),
    )
    .await;
    // buyer, basic, active, on `zenofy-b`.
    let reply = app
        .webhook(
            "/v1/webhooks/zenofy-b",
            &[("x-webhook-secret", SECRET)],
            variant(ACTIVATED, |j| {
                j["subscriptionId"] = json!("683a1b2c3d4e5f6789000003");
                j["productId"] = json!("basic");
            }),
        )
        .await;
    let buyer_basic = assert_outcome(&reply, "applied")["subject"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ids = |list: &Value| {
        let mut ids: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };

    let all = subscriptions(&app, "").await;
    assert_eq!(
        ids(&all),
        sorted(vec![&buyer_pro, &other_pro, &buyer_basic])
    );
    assert_eq!(all["next_cursor"], Value::Null);
    let item = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == buyer_pro.as_str())
        .unwrap();
    assert_eq!(item["integration"], "zenofy");
    assert_eq!(item["provider"], "zenofy");
    assert_eq!(item["external_id"], "683a1b2c3d4e5f6789012345");
    assert_eq!(item["email"], "buyer@example.com");
    assert_eq!(item["product"], "pro");
    assert_eq!(item["plan"], Value::Null);
    assert_eq!(item["state"], "active");
    assert_eq!(item["current_period_start"], "2026-05-01T08:00:00Z");
    assert_eq!(item["current_period_end"], "2026-06-01T08:00:00Z");
    assert!(item["created_at"].is_string() && item["updated_at"].is_string());
    assert!(item.get("history").is_none());

    let cases: [(&str, Vec<&String>); 7] = [
        ("?email=BUYER%40example.com", vec![&buyer_pro, &buyer_basic]),
        ("?email=%20other%40example.COM%20", vec![&other_pro]),
        ("?state=pending", vec![&other_pro]),
        ("?state=active", vec![&buyer_pro, &buyer_basic]),
        ("?product=basic", vec![&buyer_basic]),
        ("?integration=zenofy-b", vec![&buyer_basic]),
        (
            "?email=buyer%40example.com&product=pro&state=active&integration=zenofy",
            vec![&buyer_pro],
        ),
    ];
    for (query, expected) in cases {
        let list = subscriptions(&app, query).await;
        assert_eq!(ids(&list), sorted(expected), "{query}: {list:?}");
    }
    for query in [
        "?state=canceled",
        "?email=nobody%40example.com",
        "?integration=nope",
    ] {
        let list = subscriptions(&app, query).await;
        assert_eq!(list["items"], json!([]), "{query}");
    }

    let reply = app
        .admin(Method::GET, "/v1/admin/subscriptions?state=bogus", None)
        .await;
    reply.assert_invalid("state filter", "state");
    let reply = app
        .admin(
            Method::GET,
            "/v1/admin/subscriptions?email=not-an-email",
            None,
        )
        .await;
    reply.assert_invalid("email filter", "email");
    for limit in ["0", "501", "x", "-1", "1.5"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/subscriptions?limit={limit}"),
                None,
            )
            .await;
        reply.assert_invalid(limit, "limit");
    }
    for limit in ["1", "500"] {
        let list = subscriptions(&app, &format!("?limit={limit}")).await;
        assert!(list["items"].as_array().unwrap().len() <= 500);
    }
}

async fn subscriptions_pagination_walks_every_page(app: TestApp) {
    app.zenofy_integration().await;
    let mut created = Vec::new();
    for n in 0..4 {
        created.push(
            applied(
                &app,
                variant(ACTIVATED, |j| {
                    j["subscriptionId"] = json!(format!("sub-{n}"));
                }),
            )
            .await,
        );
    }
    let everything = subscriptions(&app, "").await;
    let in_order: Vec<String> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(in_order.len(), 4);

    let mut walked = Vec::new();
    let mut query = "?limit=1".to_owned();
    for page in 1.. {
        assert!(page <= 4, "more pages than subscriptions: {walked:?}");
        let list = subscriptions(&app, &query).await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "page {page}: {list:?}");
        walked.push(items[0]["id"].as_str().unwrap().to_owned());
        match list["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={}", common::urlencode(cursor)),
            None => break,
        }
    }
    assert_eq!(walked, in_order, "pages in the list's order, none repeated");
    created.sort();
    walked.sort();
    assert_eq!(walked, created);

    // Pages of two: two pages, the second ending the walk.
    let first = subscriptions(&app, "?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = subscriptions(&app, &format!("?limit=2&cursor={}", urlencode(cursor))).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    assert_eq!(second["next_cursor"], Value::Null, "{second:?}");
    // Filters hold across pages.
    let filtered = subscriptions(&app, "?limit=1&state=pending").await;
    assert_eq!(filtered["items"], json!([]));
    assert_eq!(filtered["next_cursor"], Value::Null);
}

async fn subscription_detail_unknown_id_is_404(app: TestApp) {
    app.zenofy_integration().await;
    let id = applied(&app, fixture(ACTIVATED)).await;
    let detail = app.subscription(&id).await;
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["history"][0]["event"], "activated");
    assert_eq!(detail["history"][0]["reason"], Value::Null);
    assert!(detail["history"][0]["at"].is_string());
    assert!(detail["history"][0]["delivery_id"].is_string());

    for unknown in ["nope", "00000000-0000-0000-0000-000000000000"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/subscriptions/{unknown}"),
                None,
            )
            .await;
        reply.assert_not_found();
    }
}

// ---------------------------------------------------------------- auth

async fn bearer_authentication_is_required(app: TestApp) {
    let paths = [
        (Method::GET, "/v1/admin/integrations"),
        (Method::GET, "/v1/admin/subscriptions"),
        (Method::GET, "/v1/admin/products"),
        (Method::DELETE, "/v1/admin/integrations/zenofy"),
        (
            Method::GET,
            "/v1/access?email=buyer%40example.com&product=pro",
        ),
        (
            Method::GET,
            "/v1/customers/buyer%40example.com/entitlements",
        ),
    ];
    let assert_unauthorized = |reply: &Reply, what: &str| {
        reply.assert_problem(StatusCode::UNAUTHORIZED, None);
        assert_eq!(
            reply.body["type"], "urn:entitled:problem:unauthorized",
            "{what}: {:?}",
            reply.body
        );
    };
    for (method, path) in paths {
        let what = format!("{method} {path}");
        assert_unauthorized(&anonymous(&app, method.clone(), path).await, &what);
        for token in ["unknown-token-0123456789", "", " "] {
            let reply = app.with_token(token, method.clone(), path, None).await;
            assert_unauthorized(&reply, &format!("{what} with {token:?}"));
        }
        // The admin token, but not as a bearer token.
        let reply = app
            .send(
                Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header("authorization", format!("Basic {ADMIN_TOKEN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_unauthorized(&reply, &format!("{what} with Basic"));
        let reply = app
            .send(
                Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header("authorization", ADMIN_TOKEN)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_unauthorized(&reply, &format!("{what} without a scheme"));
    }
    // A PUT without a token changes nothing.
    let reply = app
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/admin/integrations/zenofy")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"provider": "zenofy", "secret": SECRET}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_unauthorized(&reply, "PUT without a token");
    let list = app.admin(Method::GET, "/v1/admin/integrations", None).await;
    assert_eq!(list.body["items"], json!([]));
    // The scheme is case-insensitive.
    let reply = app
        .send(
            Request::builder()
                .uri("/v1/admin/integrations")
                .header("authorization", format!("bearer {ADMIN_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

async fn access_query_validation_names_the_field(app: TestApp) {
    let cases = [
        ("/v1/access?product=pro", "email"),
        ("/v1/access?email=&product=pro", "email"),
        ("/v1/access?email=not-an-email&product=pro", "email"),
        ("/v1/access?email=a%20b%40example.com&product=pro", "email"),
        ("/v1/access?email=buyer%40example.com", "product"),
        ("/v1/access?email=buyer%40example.com&product=", "product"),
        (
            "/v1/access?email=buyer%40example.com&product=pro&at=yesterday",
            "at",
        ),
        (
            "/v1/access?email=buyer%40example.com&product=pro&at=2026-13-01T00%3A00%3A00Z",
            "at",
        ),
        ("/v1/customers/not-an-email/entitlements", "email"),
        (
            "/v1/customers/buyer%40example.com/entitlements?at=yesterday",
            "at",
        ),
    ];
    let mut failures = Vec::new();
    for (path, field) in cases {
        let reply = app.admin(Method::GET, path, None).await;
        failures.extend(
            invalid_mismatches(&reply, field)
                .into_iter()
                .map(|m| format!("{path}: {m}")),
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------- health

async fn health_ready_and_unknown_path(app: TestApp) {
    let health = anonymous(&app, Method::GET, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    assert_eq!(health.body, json!({"status": "ok"}));

    let ready = anonymous(&app, Method::GET, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");

    for path in ["/nope", "/v1/nope", "/v1/admin/nope"] {
        let reply = anonymous(&app, Method::GET, path).await;
        reply.assert_not_found();
    }
    let reply = app.admin(Method::GET, "/v2/access", None).await;
    reply.assert_not_found();
}

/// Walks a list one item at a time and returns the ids (or keys) in order.
async fn walk(app: &TestApp, path: &str, key: &str) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1&cursor={}", urlencode(c)),
            None => format!("{path}{sep}limit=1"),
        };
        let reply = app.admin(Method::GET, &url, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{url}: {:?}", reply.body);
        let items = reply.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{url}: {:?}", reply.body);
        seen.extend(items.iter().map(|i| i[key].as_str().unwrap().to_owned()));
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
        assert!(seen.len() < 50, "{url} never ends");
    }
}

/// Integrations, products, tokens and grants take `limit` and `cursor` like
/// every list, and a walk with `limit=1` sees each item exactly once.
async fn every_admin_list_walks_every_page_with_limit_and_cursor(app: TestApp) {
    for id in ["a-zenofy", "b-zenofy", "c-zenofy"] {
        let reply = app
            .admin(
                Method::PUT,
                &format!("/v1/admin/integrations/{id}"),
                Some(json!({"provider": "zenofy", "secret": SECRET})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    assert_eq!(
        walk(&app, "/v1/admin/integrations", "id").await,
        ["a-zenofy", "b-zenofy", "c-zenofy"]
    );

    for key in ["basic", "pro", "team"] {
        let reply = app
            .admin(
                Method::PUT,
                &format!("/v1/admin/products/{key}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    assert_eq!(
        walk(&app, "/v1/admin/products", "key").await,
        ["basic", "pro", "team"]
    );

    let mut tokens = Vec::new();
    for name in ["one", "two"] {
        let reply = app
            .admin(
                Method::POST,
                "/v1/admin/tokens",
                Some(json!({"name": name, "scope": "app"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        tokens.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let walked = walk(&app, "/v1/admin/tokens", "id").await;
    assert_eq!(
        walked.len(),
        3,
        "the bootstrap token and two more: {walked:?}"
    );
    assert!(tokens.iter().all(|t| walked.contains(t)));

    let mut grants = Vec::new();
    for product in ["basic", "pro", "team"] {
        let reply = app
            .admin(
                Method::POST,
                "/v1/admin/grants",
                Some(json!({"email": "ada@example.com", "product": product, "reason": "comp"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        grants.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    grants.reverse();
    assert_eq!(
        walk(&app, "/v1/admin/grants?email=ada@example.com", "id").await,
        grants
    );

    let bad = app
        .admin(Method::GET, "/v1/admin/tokens?limit=0", None)
        .await;
    bad.assert_problem(StatusCode::BAD_REQUEST, Some("limit"));
}
