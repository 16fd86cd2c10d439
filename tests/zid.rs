//! Zid App Market events through HTTP: a merchant's subscription to the app from
//! install to uninstall, reinstall, invalid transitions, the events that mean
//! nothing, authentication and malformed payloads. Fixtures: `fixtures/zid/`.
//! Merchant events (the bare store entities): `tests/zid_merchant.rs`.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Reply, TestApp, fixture, fixture_json};
use serde_json::{Value, json};

const SECRET: &str = "zid-webhook-secret-0123456789";
const EMAIL: &str = "info@ehmp.com.sa";
const PRODUCT: &str = "zid-app";
/// The sample's plan, النمو ("growth").
const GROWTH: &str = "النمو";
/// The plan the derived upgrade moves to, الاحترافي ("professional").
const PRO: &str = "الاحترافي";

on_both_databases!(
    whole_lifecycle_drives_state_history_and_access,
    reinstall_after_uninstall_starts_again_from_pending,
    refund_of_a_pending_subscription_is_rejected,
    app_and_merchant_events_that_mean_nothing_are_ignored,
    warning_for_an_unknown_subscription_is_ignored,
    basic_auth_is_accepted,
    other_credentials_are_refused_and_nothing_is_stored,
    missing_key_fields_are_malformed_naming_the_field,
    lenient_ids_and_the_older_shape,
);

// ---------------------------------------------------------------- helpers

/// Creates integration `zid` with `SECRET`, mapping app 1292 to `zid-app`.
async fn zid_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zid",
            Some(json!({
                "provider": "zid",
                "secret": SECRET,
                "product_map": {"1292": PRODUCT}
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// Posts a body to the integration, authenticated by `?token=`.
async fn post(app: &TestApp, body: impl Into<Vec<u8>>) -> Reply {
    app.webhook(
        &format!("/v1/webhooks/zid?token={SECRET}"),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// A fixture under `fixtures/zid/`.
fn zid(name: &str) -> Vec<u8> {
    fixture(&format!("zid/{name}.json"))
}

/// A fixture under `fixtures/zid/` with some top-level fields replaced.
fn zid_with(name: &str, fields: Value) -> Vec<u8> {
    let mut body = fixture_json(&format!("zid/{name}.json"));
    for (key, value) in fields.as_object().expect("an object of fields") {
        body[key] = value.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

/// A fixture with one top-level field removed.
fn zid_without(name: &str, field: &str) -> Vec<u8> {
    let mut body = fixture_json(&format!("zid/{name}.json"));
    body.as_object_mut()
        .unwrap()
        .remove(field)
        .expect("field in fixture");
    serde_json::to_vec(&body).unwrap()
}

/// Asserts a 200 answer with `outcome` reaching the subscription in `state`.
fn assert_answer(what: &str, reply: &Reply, outcome: &str, state: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    assert_eq!(reply.body["outcome"], outcome, "{what}: {:?}", reply.body);
    assert_eq!(reply.body["subject"]["kind"], "subscription", "{what}");
    assert_eq!(reply.body["subject"]["state"], state, "{what}");
    assert!(reply.body["delivery_id"].is_string(), "{what}");
    if outcome == "applied" {
        assert!(reply.body["reason"].is_null(), "{what}: {:?}", reply.body);
    } else {
        assert!(reply.body["reason"].is_string(), "{what}: {:?}", reply.body);
    }
}

/// Asserts a 200 `ignored` answer that reached no subscription.
fn assert_ignored(what: &str, reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    assert_eq!(reply.body["outcome"], "ignored", "{what}: {:?}", reply.body);
    assert!(reply.body["subject"].is_null(), "{what}: {:?}", reply.body);
    assert!(reply.body["delivery_id"].is_string(), "{what}");
}

/// The access answer for the merchant and the app at `at`.
async fn access(app: &TestApp, at: &str) -> Value {
    let reply = app.access(EMAIL, PRODUCT, Some(at)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["email"], EMAIL);
    assert_eq!(reply.body["product"], PRODUCT);
    reply.body
}

/// Asserts `entitled`, `reason`, `valid_until` and `plan` of an access answer.
async fn assert_access(
    app: &TestApp,
    what: &str,
    at: &str,
    entitled: bool,
    reason: &str,
    valid_until: Value,
    plan: Value,
) {
    let body = access(app, at).await;
    let got = (
        body["entitled"].clone(),
        body["reason"].clone(),
        body["valid_until"].clone(),
        body["plan"].clone(),
    );
    assert_eq!(
        got,
        (json!(entitled), json!(reason), valid_until, plan),
        "{what}, at {at}: {body:?}"
    );
}

/// The subscription's state, plan, period and `access_from`.
fn summary(detail: &Value) -> (Value, Value, Value, Value, Value) {
    (
        detail["state"].clone(),
        detail["plan"].clone(),
        detail["current_period_start"].clone(),
        detail["current_period_end"].clone(),
        detail["access_from"].clone(),
    )
}

/// The history as (event, from, to, outcome, delivery id) tuples.
fn history(detail: &Value) -> Vec<(String, Value, Value, String, Value)> {
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
                h["delivery_id"].clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- lifecycle

/// install → active → warning → upgrade → renew → suspended → expired →
/// resubscribe with a later period → refund → uninstall.
async fn whole_lifecycle_drives_state_history_and_access(app: TestApp) {
    zid_integration(&app).await;
    let mut deliveries = Vec::new();
    let first = (json!("2025-02-21T08:05:29Z"), json!("2025-03-22T08:05:29Z"));

    // Install: pending, no access yet.
    let reply = post(&app, zid("app.market.application.install")).await;
    assert_answer("install", &reply, "applied", "pending");
    deliveries.push(reply.body["delivery_id"].clone());
    let id = reply.body["subject"]["id"].as_str().unwrap().to_owned();
    let detail = app.subscription(&id).await;
    assert_eq!(detail["integration"], "zid");
    assert_eq!(detail["provider"], "zid");
    assert_eq!(detail["external_id"], "507530:1292");
    assert_eq!(detail["email"], EMAIL);
    assert_eq!(detail["product"], PRODUCT);
    assert_eq!(
        summary(&detail),
        (
            json!("pending"),
            json!(GROWTH),
            first.0.clone(),
            first.1.clone(),
            first.0.clone()
        )
    );
    assert_access(
        &app,
        "installed",
        "2025-03-01T00:00:00Z",
        false,
        "pending",
        Value::Null,
        Value::Null,
    )
    .await;

    // Active: entitled for the period, then the grace, then no more.
    let reply = post(&app, zid("app.market.subscription.active")).await;
    assert_answer("active", &reply, "applied", "active");
    assert_eq!(reply.body["subject"]["id"], id.as_str());
    deliveries.push(reply.body["delivery_id"].clone());
    assert_eq!(
        summary(&app.subscription(&id).await),
        (
            json!("active"),
            json!(GROWTH),
            first.0.clone(),
            first.1.clone(),
            first.0.clone()
        )
    );
    let until = json!("2025-03-25T08:05:29Z");
    assert_access(
        &app,
        "active",
        "2025-03-01T00:00:00Z",
        true,
        "active",
        until.clone(),
        json!(GROWTH),
    )
    .await;
    assert_access(
        &app,
        "active, at the period start",
        "2025-02-21T08:05:29Z",
        true,
        "active",
        until.clone(),
        json!(GROWTH),
    )
    .await;
    assert_access(
        &app,
        "active, in the grace",
        "2025-03-23T00:00:00Z",
        true,
        "grace_period",
        until.clone(),
        json!(GROWTH),
    )
    .await;
    assert_access(
        &app,
        "active, after the grace",
        "2025-03-25T08:05:29Z",
        false,
        "period_ended",
        until.clone(),
        Value::Null,
    )
    .await;
    assert_access(
        &app,
        "active, before access began",
        "2025-02-21T08:05:28Z",
        false,
        "no_entitlement",
        Value::Null,
        Value::Null,
    )
    .await;

    // Warning: noted, nothing changes.
    let reply = post(&app, zid("app.market.subscription.warning")).await;
    assert_answer("warning", &reply, "noted", "active");
    deliveries.push(reply.body["delivery_id"].clone());
    assert_eq!(
        summary(&app.subscription(&id).await),
        (
            json!("active"),
            json!(GROWTH),
            first.0.clone(),
            first.1.clone(),
            first.0.clone()
        )
    );
    assert_access(
        &app,
        "warned",
        "2025-03-20T00:00:00Z",
        true,
        "active",
        until.clone(),
        json!(GROWTH),
    )
    .await;

    // Upgrade: the plan changes, with a new period; access keeps its start.
    let reply = post(&app, zid("app.market.subscription.upgrade")).await;
    assert_answer("upgrade", &reply, "applied", "active");
    deliveries.push(reply.body["delivery_id"].clone());
    let detail = app.subscription(&id).await;
    assert_eq!(
        summary(&detail),
        (
            json!("active"),
            json!(PRO),
            json!("2025-03-20T11:42:10.123456Z"),
            json!("2025-04-19T11:42:10.123456Z"),
            first.0.clone()
        )
    );
    let upgraded = detail["history"].as_array().unwrap().last().unwrap();
    assert_eq!(upgraded["event"], "upgraded");
    assert_eq!(upgraded["plan"], PRO);
    assert_eq!(upgraded["previous_plan"], GROWTH);
    let until = json!("2025-04-22T11:42:10.123456Z");
    for at in ["2025-03-01T00:00:00Z", "2025-04-10T00:00:00Z"] {
        assert_access(
            &app,
            "upgraded",
            at,
            true,
            "active",
            until.clone(),
            json!(PRO),
        )
        .await;
    }

    // Renew, five days before the end: the period extends, no gap opens.
    let reply = post(&app, zid("app.market.subscription.renew")).await;
    assert_answer("renew", &reply, "applied", "active");
    deliveries.push(reply.body["delivery_id"].clone());
    let renewed = (
        json!("2025-04-19T11:42:10.123456Z"),
        json!("2025-05-19T11:42:10.123456Z"),
    );
    assert_eq!(
        summary(&app.subscription(&id).await),
        (
            json!("active"),
            json!(PRO),
            renewed.0.clone(),
            renewed.1.clone(),
            first.0.clone()
        )
    );
    let until = json!("2025-05-22T11:42:10.123456Z");
    for at in [
        "2025-03-01T00:00:00Z",
        "2025-04-19T11:42:10Z",
        "2025-05-10T00:00:00Z",
    ] {
        assert_access(
            &app,
            "renewed",
            at,
            true,
            "active",
            until.clone(),
            json!(PRO),
        )
        .await;
    }
    assert_access(
        &app,
        "renewed, in the grace",
        "2025-05-20T00:00:00Z",
        true,
        "grace_period",
        until.clone(),
        json!(PRO),
    )
    .await;

    // Suspended: no access under the default policy.
    let reply = post(&app, zid("app.market.subscription.suspended")).await;
    assert_answer("suspended", &reply, "applied", "suspended");
    deliveries.push(reply.body["delivery_id"].clone());
    assert_eq!(
        summary(&app.subscription(&id).await),
        (
            json!("suspended"),
            json!(PRO),
            renewed.0.clone(),
            renewed.1.clone(),
            first.0.clone()
        )
    );
    assert_access(
        &app,
        "suspended",
        "2025-05-10T00:00:00Z",
        false,
        "suspended",
        Value::Null,
        Value::Null,
    )
    .await;

    // Expired.
    let reply = post(&app, zid("app.market.subscription.expired")).await;
    assert_answer("expired", &reply, "applied", "expired");
    deliveries.push(reply.body["delivery_id"].clone());
    assert_eq!(app.subscription(&id).await["state"], "expired");
    assert_access(
        &app,
        "expired",
        "2025-05-10T00:00:00Z",
        false,
        "expired",
        Value::Null,
        Value::Null,
    )
    .await;

    // The merchant subscribes again, for a later period: active again, and
    // access starts afresh with the new period.
    let reply = post(&app, zid("app.market.subscription.active.resubscribe")).await;
    assert_answer("resubscribe", &reply, "applied", "active");
    assert_eq!(reply.body["subject"]["id"], id.as_str());
    deliveries.push(reply.body["delivery_id"].clone());
    let later = (json!("2025-06-02T09:15:00Z"), json!("2025-07-02T09:15:00Z"));
    assert_eq!(
        summary(&app.subscription(&id).await),
        (
            json!("active"),
            json!(GROWTH),
            later.0.clone(),
            later.1.clone(),
            later.0.clone()
        )
    );
    assert_access(
        &app,
        "resubscribed",
        "2025-06-10T00:00:00Z",
        true,
        "active",
        json!("2025-07-05T09:15:00Z"),
        json!(GROWTH),
    )
    .await;
    // The old stretch of access is not granted again.
    assert_access(
        &app,
        "resubscribed, before the new period",
        "2025-05-10T00:00:00Z",
        false,
        "no_entitlement",
        Value::Null,
        Value::Null,
    )
    .await;

    // Refund: no access.
    let reply = post(&app, zid("app.market.subscription.refunded")).await;
    assert_answer("refund", &reply, "applied", "refunded");
    deliveries.push(reply.body["delivery_id"].clone());
    assert_access(
        &app,
        "refunded",
        "2025-06-10T00:00:00Z",
        false,
        "refunded",
        Value::Null,
        Value::Null,
    )
    .await;

    // Uninstall after the refund: noted, the subscription stays refunded.
    let reply = post(&app, zid("app.market.application.uninstall")).await;
    assert_answer("uninstall", &reply, "noted", "refunded");
    deliveries.push(reply.body["delivery_id"].clone());
    assert_access(
        &app,
        "uninstalled",
        "2025-06-10T00:00:00Z",
        false,
        "refunded",
        Value::Null,
        Value::Null,
    )
    .await;

    // One history entry per delivery, in order.
    let detail = app.subscription(&id).await;
    assert_eq!(
        summary(&detail),
        (
            json!("refunded"),
            json!(GROWTH),
            later.0.clone(),
            later.1.clone(),
            later.0.clone()
        )
    );
    let (active, suspended, expired, refunded) = (
        json!("active"),
        json!("suspended"),
        json!("expired"),
        json!("refunded"),
    );
    let want: Vec<(&str, Value, Value, &str)> = vec![
        ("installed", Value::Null, json!("pending"), "applied"),
        ("activated", json!("pending"), active.clone(), "applied"),
        ("warned", active.clone(), active.clone(), "noted"),
        ("upgraded", active.clone(), active.clone(), "applied"),
        ("renewed", active.clone(), active.clone(), "applied"),
        ("suspended", active.clone(), suspended.clone(), "applied"),
        ("expired", suspended.clone(), expired.clone(), "applied"),
        ("activated", expired.clone(), active.clone(), "applied"),
        ("refunded", active.clone(), refunded.clone(), "applied"),
        ("uninstalled", refunded.clone(), refunded.clone(), "noted"),
    ];
    let want: Vec<_> = want
        .into_iter()
        .zip(&deliveries)
        .map(|((event, from, to, outcome), delivery)| {
            (
                event.to_owned(),
                from,
                to,
                outcome.to_owned(),
                delivery.clone(),
            )
        })
        .collect();
    assert_eq!(history(&detail), want);

    // Each entry names the plan its event named; only the upgrade a previous one.
    let plans: Vec<_> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["plan"].clone(), h["previous_plan"].clone()))
        .collect();
    let (growth, pro) = (json!(GROWTH), json!(PRO));
    assert_eq!(
        plans,
        vec![
            (growth.clone(), Value::Null),
            (growth.clone(), Value::Null),
            (growth.clone(), Value::Null),
            (pro.clone(), growth.clone()),
            (pro.clone(), Value::Null),
            (pro.clone(), Value::Null),
            (pro.clone(), Value::Null),
            (growth.clone(), Value::Null),
            (growth.clone(), Value::Null),
            (growth.clone(), Value::Null),
        ]
    );
}

/// An uninstall cancels; installing again opens a new lifecycle from pending.
async fn reinstall_after_uninstall_starts_again_from_pending(app: TestApp) {
    zid_integration(&app).await;
    let reply = post(&app, zid("app.market.application.install")).await;
    assert_answer("install", &reply, "applied", "pending");
    let id = reply.body["subject"]["id"].as_str().unwrap().to_owned();
    let reply = post(&app, zid("app.market.subscription.active")).await;
    assert_answer("active", &reply, "applied", "active");

    // Uninstalled within the first month (the period the events carry then).
    let uninstall = zid_with(
        "app.market.application.uninstall",
        json!({
            "start_date": "2025-02-21T08:05:29.000000Z",
            "end_date": "2025-03-22T08:05:29.000000Z",
        }),
    );
    let reply = post(&app, uninstall).await;
    assert_answer("uninstall", &reply, "applied", "canceled");
    assert_access(
        &app,
        "uninstalled",
        "2025-03-01T00:00:00Z",
        false,
        "canceled",
        Value::Null,
        Value::Null,
    )
    .await;

    // Installed again, later.
    let period = json!({
        "start_date": "2025-04-01T10:00:00.000000Z",
        "end_date": "2025-05-01T10:00:00.000000Z",
        "payment_date": "2025-04-01T10:00:00.000000Z",
    });
    let reply = post(
        &app,
        zid_with("app.market.application.install", period.clone()),
    )
    .await;
    assert_answer("reinstall", &reply, "applied", "pending");
    assert_eq!(
        reply.body["subject"]["id"],
        id.as_str(),
        "the same store and app"
    );
    assert_access(
        &app,
        "reinstalled",
        "2025-04-10T00:00:00Z",
        false,
        "pending",
        Value::Null,
        Value::Null,
    )
    .await;

    // And activated: access from the new period on.
    let reply = post(
        &app,
        zid_with("app.market.subscription.active", period.clone()),
    )
    .await;
    assert_answer("active again", &reply, "applied", "active");
    let detail = app.subscription(&id).await;
    assert_eq!(
        summary(&detail),
        (
            json!("active"),
            json!(GROWTH),
            json!("2025-04-01T10:00:00Z"),
            json!("2025-05-01T10:00:00Z"),
            json!("2025-04-01T10:00:00Z")
        )
    );
    assert_access(
        &app,
        "active again",
        "2025-04-10T00:00:00Z",
        true,
        "active",
        json!("2025-05-04T10:00:00Z"),
        json!(GROWTH),
    )
    .await;
    let steps: Vec<_> = history(&detail)
        .into_iter()
        .map(|(event, from, to, outcome, _)| (event, from, to, outcome))
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        steps,
        vec![
            (s("installed"), Value::Null, json!("pending"), s("applied")),
            (
                s("activated"),
                json!("pending"),
                json!("active"),
                s("applied")
            ),
            (
                s("uninstalled"),
                json!("active"),
                json!("canceled"),
                s("applied")
            ),
            (
                s("installed"),
                json!("canceled"),
                json!("pending"),
                s("applied")
            ),
            (
                s("activated"),
                json!("pending"),
                json!("active"),
                s("applied")
            ),
        ]
    );
}

/// Nothing was paid yet: a refund cannot be right.
async fn refund_of_a_pending_subscription_is_rejected(app: TestApp) {
    zid_integration(&app).await;
    let reply = post(&app, zid("app.market.application.install")).await;
    assert_answer("install", &reply, "applied", "pending");
    let id = reply.body["subject"]["id"].as_str().unwrap().to_owned();

    let reply = post(&app, zid("app.market.subscription.refunded")).await;
    assert_answer("refund", &reply, "rejected", "pending");
    let reason = reply.body["reason"].as_str().unwrap();
    assert!(
        reason.contains("pending") && reason.contains("refunded"),
        "the reason names both states: {reason}"
    );

    let detail = app.subscription(&id).await;
    assert_eq!(detail["state"], "pending");
    let history = history(&detail);
    assert_eq!(history.len(), 2, "the rejection is in the history");
    assert_eq!(
        (
            history[1].0.as_str(),
            &history[1].1,
            &history[1].2,
            history[1].3.as_str()
        ),
        ("refunded", &json!("pending"), &json!("pending"), "rejected")
    );
    assert_eq!(history[1].4, reply.body["delivery_id"]);
    assert_access(
        &app,
        "after the rejected refund",
        "2025-03-01T00:00:00Z",
        false,
        "pending",
        Value::Null,
        Value::Null,
    )
    .await;
}

// ---------------------------------------------------------------- ignored

async fn app_and_merchant_events_that_mean_nothing_are_ignored(app: TestApp) {
    zid_integration(&app).await;
    let bodies = [
        (
            "app.market.application.authorized",
            zid("app.market.application.authorized"),
        ),
        (
            "app.market.application.rated",
            zid("app.market.application.rated"),
        ),
        (
            "app.market.private.plan.request",
            zid("app.market.private.plan.request"),
        ),
        (
            "app.market.subscription.usage_based.payment_success",
            zid("app.market.subscription.usage_based.payment_success"),
        ),
        (
            "app.market.subscription.usage_based.payment_failure",
            zid_with(
                "app.market.subscription.usage_based.payment_success",
                json!({"event_name": "app.market.subscription.usage_based.payment_failure"}),
            ),
        ),
        (
            "app.market.subscription.paused",
            zid_with(
                "app.market.subscription.active",
                json!({"event_name": "app.market.subscription.paused"}),
            ),
        ),
        (
            "app.market.application.rated",
            zid_without("app.market.application.rated", "merchant_email"),
        ),
        (
            "product.create",
            json!({"event_name": "product.create", "id": "b5e3", "store_id": 507530, "name": "Tea"})
                .to_string()
                .into_bytes(),
        ),
        (
            "customer.login",
            json!({"event_name": "customer.login", "id": 8412033, "email": "Sara.Alharbi@example.com"})
                .to_string()
                .into_bytes(),
        ),
    ];
    let mut delivery_ids = Vec::new();
    for (name, body) in bodies {
        let reply = post(&app, body).await;
        assert_ignored(name, &reply);
        let reason = reply.body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(name), "{name}: {reason}");
        delivery_ids.push(reply.body["delivery_id"].as_str().unwrap().to_owned());
    }
    let distinct: std::collections::BTreeSet<_> = delivery_ids.iter().collect();
    assert_eq!(distinct.len(), delivery_ids.len(), "one delivery each");

    // No subscription was made of any of them.
    let list = app
        .admin(Method::GET, "/v1/admin/subscriptions?integration=zid", None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body["items"], json!([]));
    assert_access(
        &app,
        "after ignored events",
        "2025-03-01T00:00:00Z",
        false,
        "no_entitlement",
        Value::Null,
        Value::Null,
    )
    .await;
}

/// DESIGN.md rule 1: a warning about a subscription never seen is ignored.
async fn warning_for_an_unknown_subscription_is_ignored(app: TestApp) {
    zid_integration(&app).await;
    let reply = post(&app, zid("app.market.subscription.warning")).await;
    assert_ignored("warning first", &reply);
    let list = app
        .admin(Method::GET, "/v1/admin/subscriptions?integration=zid", None)
        .await;
    assert_eq!(list.body["items"], json!([]));
    // The subscription starts with the next event, in its target state.
    let reply = post(&app, zid("app.market.subscription.active")).await;
    assert_answer("active after the warning", &reply, "applied", "active");
}

// ---------------------------------------------------------------- authentication

async fn basic_auth_is_accepted(app: TestApp) {
    zid_integration(&app).await;
    let credentials = format!("Basic {}", BASE64.encode(format!("zid:{SECRET}")));
    let reply = app
        .webhook(
            "/v1/webhooks/zid",
            &[
                ("content-type", "application/json"),
                ("authorization", &credentials),
            ],
            zid("app.market.subscription.active"),
        )
        .await;
    assert_answer("basic auth", &reply, "applied", "active");
}

async fn other_credentials_are_refused_and_nothing_is_stored(app: TestApp) {
    zid_integration(&app).await;
    let body = zid("app.market.subscription.active");
    let wrong_basic = format!("Basic {}", BASE64.encode("zid:not-the-secret-0000"));
    let bearer = format!("Bearer {SECRET}");
    let refused: [(&str, Vec<(&str, &str)>); 6] = [
        ("/v1/webhooks/zid?token=not-the-secret-0000", vec![]),
        ("/v1/webhooks/zid", vec![]),
        (
            "/v1/webhooks/zid",
            vec![("authorization", wrong_basic.as_str())],
        ),
        ("/v1/webhooks/zid", vec![("authorization", bearer.as_str())]),
        ("/v1/webhooks/zid", vec![("x-webhook-secret", SECRET)]),
        (
            "/v1/webhooks/zid?token=not-the-secret-0000",
            vec![("authorization", "Basic %%%not-base64%%%")],
        ),
    ];
    for (path, headers) in refused {
        let mut headers = headers;
        headers.push(("content-type", "application/json"));
        let reply = app.webhook(path, &headers, body.clone()).await;
        reply.assert_problem(StatusCode::UNAUTHORIZED, None);
        assert!(reply.body.get("delivery_id").is_none(), "{:?}", reply.body);
    }
    // Nothing was stored: the same body, authenticated, is new.
    let reply = post(&app, body).await;
    assert_answer("after refusals", &reply, "applied", "active");
    let detail = app
        .subscription(reply.body["subject"]["id"].as_str().unwrap())
        .await;
    assert_eq!(detail["history"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- malformed

async fn missing_key_fields_are_malformed_naming_the_field(app: TestApp) {
    zid_integration(&app).await;
    let cases = [
        (
            "merchant_email",
            zid_without("app.market.subscription.active", "merchant_email"),
        ),
        (
            "merchant_email",
            zid_with(
                "app.market.subscription.active",
                json!({"merchant_email": "not an email"}),
            ),
        ),
        (
            "event_name",
            zid_with("app.market.subscription.active", json!({"event_name": " "})),
        ),
        (
            "store_id",
            zid_without("app.market.subscription.active", "store_id"),
        ),
        (
            "store_id",
            zid_with(
                "app.market.subscription.active",
                json!({"store_id": {"id": 507530}}),
            ),
        ),
        (
            "app_id",
            zid_without("app.market.subscription.active", "app_id"),
        ),
        (
            "end_date",
            zid_with(
                "app.market.subscription.active",
                json!({"end_date": "next month"}),
            ),
        ),
        (
            "store_id",
            zid_without("app.market.application.rated", "store_id"),
        ),
    ];
    for (field, body) in cases {
        let reply = post(&app, body).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
        assert_eq!(reply.body["outcome"], "malformed", "{field}");
        assert!(reply.body["delivery_id"].is_string(), "{field}");
    }
    // Nothing reached a subscription.
    let list = app
        .admin(Method::GET, "/v1/admin/subscriptions?integration=zid", None)
        .await;
    assert_eq!(list.body["items"], json!([]));
}

// ---------------------------------------------------------------- leniency

async fn lenient_ids_and_the_older_shape(app: TestApp) {
    zid_integration(&app).await;
    // Ids as numbers, then as strings: the same subscription.
    let reply = post(&app, zid("app.market.application.install")).await;
    assert_answer("install", &reply, "applied", "pending");
    let id = reply.body["subject"]["id"].clone();
    let reply = post(
        &app,
        zid_with(
            "app.market.subscription.active",
            json!({"store_id": "507530", "app_id": "1292", "amount_paid": "79"}),
        ),
    )
    .await;
    assert_answer("active, string ids", &reply, "applied", "active");
    assert_eq!(reply.body["subject"]["id"], id);

    // The older sample, verbatim: an app not in the product map is its own key.
    let reply = post(&app, zid("app.market.subscription.active.legacy")).await;
    assert_answer("legacy", &reply, "applied", "active");
    let detail = app
        .subscription(reply.body["subject"]["id"].as_str().unwrap())
        .await;
    assert_eq!(detail["external_id"], "12594:65");
    assert_eq!(detail["product"], "65");
    assert_eq!(detail["email"], "merchant@example.com");
    assert_eq!(detail["plan"], "Super 30");
    assert_eq!(detail["current_period_start"], "2021-10-13T19:36:36Z");
    assert_eq!(detail["current_period_end"], "2021-11-11T19:36:36Z");
    let access = app
        .access("Merchant@Example.com", "65", Some("2021-11-01T00:00:00Z"))
        .await;
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["plan"], "Super 30");
}
