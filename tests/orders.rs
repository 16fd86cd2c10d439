//! One-time purchases through HTTP on both databases: Zenofy order webhooks
//! (first sight creates the order), Zeno Bank checkouts (Standard Webhooks
//! signatures, message-id dedup) and ZayPay order status changes (`?token=`),
//! the registration of orders whose payloads carry no email (`POST /v1/orders`),
//! payments that arrive before their registration, the product's
//! `purchase_access_seconds`, and the admin order views.
//! Fixtures: `fixtures/zenofy/order_*.json`, `fixtures/zenobank/`, `fixtures/zaypay/`.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Reply, SECRET, TestApp, fixture, fixture_json, standard_webhooks_signature as sign};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    zenofy_order_paid_entitles_every_item_and_refund_revokes,
    zenofy_order_cancelled_revokes_and_a_later_payment_is_rejected,
    purchase_access_seconds_bounds_a_purchase_and_recomputes_rows,
    zenobank_secret_must_be_a_signing_secret,
    zenobank_registered_checkout_completed_entitles_at_once,
    zenobank_signatures_timestamps_and_replays,
    zenobank_expired_and_partially_paid,
    payment_before_registration_is_applied_by_the_registration,
    zaypay_order_lifecycle_with_token_auth,
    zaypay_unregistered_deliveries_apply_in_arrival_order,
    order_registration_validation,
    admin_orders_list_filters_pagination_and_detail,
    concurrent_payment_and_registration_never_lose_the_payment,
    concurrent_retries_and_double_registrations_apply_once,
);

/// Zenofy's sample order (`order_paid.json`, `order_refunded.json`).
const ZENOFY_ORDER: &str = "673f92b2c3d94a0012abcd01";
/// The sample's buyer.
const ADA: &str = "ada@example.com";
/// The sample's `paidAt` (2026-05-01T10:42:18+02:00) in UTC.
const ZENOFY_PAID_AT: &str = "2026-05-01T08:42:18Z";
/// The sample item's product id, mapped to `pro`.
const ZENOFY_PRODUCT_ID: &str = "507f1f77bcf86cd799439011";
/// A bump product's id, mapped to `bonus`.
const BUMP_PRODUCT_ID: &str = "5f0c0ffee0ddba11c0ffee01";

/// The Zeno Bank integration and its signing secret (the Standard Webhooks
/// known-answer secret).
const ZB: &str = "zb";
const ZB_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another valid signing secret: the key before a rotation.
const OLD_ZB_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The Zeno Bank sample's order.
const ZB_ORDER: &str = "order-12345";

/// The ZayPay integration and the token in its URL.
const ZP: &str = "zp";
const ZP_TOKEN: &str = "zaypay-url-token-0123456789";
/// The ZayPay sample's order UUID.
const ZP_SUBJECT: &str = "c9d5e882-5ea9-47de-8e49-08b4fe35056e";

const BUYER: &str = "buyer@example.com";

// ---------------------------------------------------------------- helpers

/// Creates integration `zenofy` with the shared test secret, mapping the
/// sample's product to `pro` and the bump product to `bonus`.
async fn zenofy_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zenofy",
            Some(json!({
                "provider": "zenofy",
                "secret": SECRET,
                "product_map": {ZENOFY_PRODUCT_ID: "pro", BUMP_PRODUCT_ID: "bonus"}
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

async fn zenobank_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{ZB}"),
            Some(json!({"provider": "zenobank", "secret": ZB_SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

async fn zaypay_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{ZP}"),
            Some(json!({"provider": "zaypay", "secret": ZP_TOKEN})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// A Zenofy order fixture with some fields changed, as bytes.
fn zenofy_variant(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenofy/{name}.json"));
    edit(&mut body);
    serde_json::to_vec(&body).unwrap()
}

/// The bump item Zenofy lists beside the main one.
fn bump_item() -> Value {
    json!({
        "productId": BUMP_PRODUCT_ID,
        "productName": "Bonus pack",
        "quantity": 1,
        "unitPrice": 19.99,
        "totalPrice": 19.99,
        "currency": "MZN",
        "isBumpProduct": true
    })
}

/// `order_paid` or `order_refunded` for the sample order with a bump item.
fn zenofy_with_bump(name: &str) -> Vec<u8> {
    zenofy_variant(name, |body| {
        body["items"].as_array_mut().unwrap().push(bump_item());
    })
}


/// Unix seconds now, by the same clock the server checks against.
fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Posts a body to the Zeno Bank integration with exactly these headers (plus
/// the content type).
async fn zenobank_raw(app: &TestApp, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    app.webhook(&format!("/v1/webhooks/{ZB}"), &all, body.to_vec())
        .await
}

/// `svix-*` headers for one message.
async fn zenobank_svix(
    app: &TestApp,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &[u8],
) -> Reply {
    let timestamp = timestamp.to_string();
    zenobank_raw(
        app,
        &[
            ("svix-id", id),
            ("svix-timestamp", &timestamp),
            ("svix-signature", signature),
        ],
        body,
    )
    .await
}

/// A message signed now with `ZB_SECRET`, as Svix sends it.
async fn zenobank(app: &TestApp, id: &str, body: &[u8]) -> Reply {
    let ts = now_unix();
    zenobank_svix(app, id, ts, &sign(ZB_SECRET, id, ts, body), body).await
}

/// A Zeno Bank fixture (`checkout.completed`, …) for another order id.
fn zb_body(kind: &str, order_id: &str) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenobank/{kind}.json"));
    body["data"]["orderId"] = json!(order_id);
    serde_json::to_vec(&body).unwrap()
}

/// A ZayPay fixture (named by status) for another subject id.
fn zp_body(status: &str, subject: &str) -> Vec<u8> {
    let mut body = fixture_json(&format!("zaypay/{status}.json"));
    body["subject_id"] = json!(subject);
    body["payload"]["order"]["id"] = json!(subject);
    serde_json::to_vec(&body).unwrap()
}

/// Posts a body to the ZayPay integration with the right token.
async fn zaypay(app: &TestApp, body: impl Into<Vec<u8>>) -> Reply {
    app.webhook(
        &format!("/v1/webhooks/{ZP}?token={ZP_TOKEN}"),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// `POST /v1/orders` with the admin token (which covers the `app` scope).
async fn register(
    app: &TestApp,
    integration: &str,
    external_id: &str,
    email: &str,
    product: &str,
) -> Reply {
    app.admin(
        Method::POST,
        "/v1/orders",
        Some(json!({
            "integration": integration,
            "external_id": external_id,
            "email": email,
            "product": product,
        })),
    )
    .await
}

/// Asserts an order answer with this status and state; returns the body.
fn assert_order(what: &str, reply: &Reply, status: StatusCode, state: &str) -> Value {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    assert_eq!(reply.content_type, "application/json", "{what}");
    assert_eq!(reply.body["state"], state, "{what}: {:?}", reply.body);
    assert!(
        reply.body["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{what}: {:?}",
        reply.body
    );
    for key in ["created_at", "updated_at"] {
        assert!(
            reply.body[key]
                .as_str()
                .is_some_and(|t| parse(t) > OffsetDateTime::UNIX_EPOCH),
            "{what}: {key} {:?}",
            reply.body
        );
    }
    reply.body.clone()
}

/// Asserts a 200 delivery answer with `outcome`; `state` is the order's state
/// afterwards (`None`: no subject). Returns the body.
fn assert_delivery(what: &str, reply: &Reply, outcome: &str, state: Option<&str>) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    assert_eq!(reply.content_type, "application/json", "{what}");
    assert_eq!(reply.body["outcome"], outcome, "{what}: {:?}", reply.body);
    assert!(
        reply.body["delivery_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{what}: {:?}",
        reply.body
    );
    if outcome == "applied" {
        assert!(reply.body["reason"].is_null(), "{what}: {:?}", reply.body);
    } else {
        assert!(
            reply.body["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}: {:?}",
            reply.body
        );
    }
    match state {
        Some(state) => {
            assert_eq!(
                reply.body["subject"]["kind"], "order",
                "{what}: {:?}",
                reply.body
            );
            assert_eq!(
                reply.body["subject"]["state"], state,
                "{what}: {:?}",
                reply.body
            );
            assert!(reply.body["subject"]["id"].is_string(), "{what}");
        }
        None => assert!(reply.body["subject"].is_null(), "{what}: {:?}", reply.body),
    }
    reply.body.clone()
}

/// Asserts a 401 webhook problem, with nothing about a delivery in it.
fn assert_webhook_unauthorized(what: &str, reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {:?}",
        reply.body
    );
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
    assert_eq!(
        reply.body["type"], "urn:entitled:problem:webhook-unauthorized",
        "{what}: {:?}",
        reply.body
    );
    assert!(
        reply.body.get("delivery_id").is_none(),
        "{what}: {:?}",
        reply.body
    );
    assert!(
        reply.body.get("outcome").is_none(),
        "{what}: {:?}",
        reply.body
    );
}

/// Asserts a 400 `invalid-request` problem naming `field`.
fn assert_invalid(what: &str, reply: &Reply, field: &str) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{what}: {:?}",
        reply.body
    );
    reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    assert_eq!(
        reply.body["type"], "urn:entitled:problem:invalid-request",
        "{what}: {:?}",
        reply.body
    );
}

/// `GET /v1/admin/orders{query}`, expected to succeed.
async fn orders(app: &TestApp, query: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/orders{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    reply.body
}

/// The ids of `GET /v1/admin/orders{query}`, in the order listed.
async fn order_ids(app: &TestApp, query: &str) -> Vec<String> {
    orders(app, query).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/admin/orders/{id}`, expected to succeed.
async fn order(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/orders/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["id"], id);
    reply.body
}

/// `GET /v1/admin/deliveries{query}` items, expected to succeed.
async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/deliveries{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    reply.body["items"].as_array().expect("items").clone()
}

/// `GET /v1/admin/deliveries/{id}`, expected to succeed.
async fn delivery(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/deliveries/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// One history entry: `(event, from_state, to_state, outcome, delivery_id)`.
type Entry = (String, Value, Value, String, Value);

fn entry(event: &str, from: Value, to: Value, outcome: &str, delivery: Value) -> Entry {
    (event.to_owned(), from, to, outcome.to_owned(), delivery)
}

/// An order's history entries, oldest first, leaving out entries of the
/// deliveries in `redeliveries` (the very same message again need not reach the
/// history).
fn history(detail: &Value, redeliveries: &[&Value]) -> Vec<Entry> {
    let entries = detail["history"].as_array().expect("history");
    for h in entries {
        assert!(
            h["at"]
                .as_str()
                .is_some_and(|t| parse(t) > OffsetDateTime::UNIX_EPOCH),
            "{h:?}"
        );
    }
    entries
        .iter()
        .filter(|h| !redeliveries.contains(&&h["delivery_id"]))
        .map(|h| {
            entry(
                h["event"].as_str().expect("event"),
                h["from_state"].clone(),
                h["to_state"].clone(),
                h["outcome"].as_str().expect("outcome"),
                h["delivery_id"].clone(),
            )
        })
        .collect()
}

/// Asserts `entitled`, `reason` and `valid_until` of an access answer; returns it.
async fn assert_access(
    app: &TestApp,
    what: &str,
    (email, product, at): (&str, &str, Option<&str>),
    entitled: bool,
    reason: &str,
    valid_until: Value,
) -> Value {
    let reply = app.access(email, product, at).await;
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    let body = reply.body;
    assert_eq!(
        (
            body["entitled"].clone(),
            body["reason"].clone(),
            body["valid_until"].clone()
        ),
        (json!(entitled), json!(reason), valid_until),
        "{what} ({email}, {product}, at {at:?}): {body:?}"
    );
    body
}

fn parse(at: &str) -> OffsetDateTime {
    OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("{at:?}: {e}"))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

// ---------------------------------------------------------------- Zenofy

async fn zenofy_order_paid_entitles_every_item_and_refund_revokes(app: TestApp) {
    zenofy_integration(&app).await;

    // First sight of a paid order creates it, paid, with every item's product.
    let paid = assert_delivery(
        "order_paid",
        &app.zenofy(zenofy_with_bump("order_paid")).await,
        "applied",
        Some("paid"),
    );
    let id = paid["subject"]["id"].as_str().unwrap().to_owned();

    // The buyer is entitled to both products, for ever (default policy).
    for product in ["pro", "bonus"] {
        let answer = assert_access(
            &app,
            "after order_paid",
            (ADA, product, None),
            true,
            "purchase",
            Value::Null,
        )
        .await;
        let sources = answer["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 1, "{answer:?}");
        assert_eq!(
            (
                &sources[0]["kind"],
                &sources[0]["id"],
                &sources[0]["state"],
                &sources[0]["provider"],
                &sources[0]["integration"],
                &sources[0]["access_from"],
                &sources[0]["access_until"],
            ),
            (
                &json!("order"),
                &json!(id),
                &json!("paid"),
                &json!("zenofy"),
                &json!("zenofy"),
                &json!(ZENOFY_PAID_AT),
                &Value::Null,
            ),
            "{answer:?}"
        );
    }
    // The email is normalised in queries too; a product not bought is not granted.
    assert_access(
        &app,
        "email in another case",
        ("  Ada@Example.COM ", "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    assert_access(
        &app,
        "product not bought",
        (ADA, "507f191e810c19729de860ea", None),
        false,
        "no_entitlement",
        Value::Null,
    )
    .await;

    // The order as the admin sees it.
    let listed = orders(
        &app,
        &format!("?email={}", common::urlencode("ADA@example.com")),
    )
    .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed:?}");
    let view = &items[0];
    assert_eq!(
        (
            &view["id"],
            &view["integration"],
            &view["provider"],
            &view["external_id"],
            &view["email"],
            &view["products"],
            &view["state"],
            &view["paid_at"],
        ),
        (
            &json!(id),
            &json!("zenofy"),
            &json!("zenofy"),
            &json!(ZENOFY_ORDER),
            &json!(ADA),
            &json!(["bonus", "pro"]),
            &json!("paid"),
            &json!(ZENOFY_PAID_AT),
        ),
        "{view:?}"
    );
    assert!(
        view.get("history").is_none(),
        "the list has no history: {view:?}"
    );

    // The very same bytes again: a duplicate, pointing at the order.
    let replay = assert_delivery(
        "same order_paid bytes again",
        &app.zenofy(zenofy_with_bump("order_paid")).await,
        "duplicate",
        Some("paid"),
    );
    assert_eq!(replay["subject"]["id"], id);
    assert_ne!(replay["delivery_id"], paid["delivery_id"]);

    // Another order_paid for the paid order (other bytes): changes nothing.
    let again = assert_delivery(
        "order_paid on a paid order",
        &app.zenofy(zenofy_variant("order_paid", |b| {
            b["items"].as_array_mut().unwrap().push(bump_item());
            b["paymentReference"] = json!("PC673F92_1B");
        }))
        .await,
        "duplicate",
        Some("paid"),
    );
    assert_eq!(again["subject"]["id"], id);

    // The refund takes both products away.
    let refunded = assert_delivery(
        "order_refunded",
        &app.zenofy(zenofy_with_bump("order_refunded")).await,
        "applied",
        Some("refunded"),
    );
    assert_eq!(refunded["subject"]["id"], id);
    for product in ["pro", "bonus"] {
        let answer = assert_access(
            &app,
            "after order_refunded",
            (ADA, product, None),
            false,
            "refunded",
            Value::Null,
        )
        .await;
        assert_eq!(answer["sources"][0]["state"], "refunded", "{answer:?}");
    }

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "refunded");
    assert_eq!(detail["products"], json!(["bonus", "pro"]));
    assert_eq!(detail["email"], ADA);
    assert_eq!(
        detail["paid_at"], ZENOFY_PAID_AT,
        "a refund keeps when it was paid"
    );
    assert_eq!(
        history(&detail, &[&replay["delivery_id"]]),
        vec![
            entry(
                "paid",
                Value::Null,
                json!("paid"),
                "applied",
                paid["delivery_id"].clone()
            ),
            entry(
                "paid",
                json!("paid"),
                json!("paid"),
                "duplicate",
                again["delivery_id"].clone()
            ),
            entry(
                "refunded",
                json!("paid"),
                json!("refunded"),
                "applied",
                refunded["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );
    let reasons: Vec<_> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].clone())
        .collect();
    assert!(reasons[0].is_null(), "{reasons:?}");
    assert!(reasons[1].is_string(), "{reasons:?}");

    // SaaS subscription payloads still go through the same integration,
    // told apart by `event`: a subscription, not an order.
    let reply = app
        .zenofy(fixture("zenofy/subscription.activated.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    assert_eq!(
        reply.body["subject"]["kind"], "subscription",
        "{:?}",
        reply.body
    );
    assert_eq!(order_ids(&app, "").await, vec![id.clone()]);

    // The customer's entitlements list one answer per bought product.
    let reply = app
        .admin(
            Method::GET,
            &format!("/v1/customers/{ADA}/entitlements"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items: Vec<_> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["product"].clone(),
                i["entitled"].clone(),
                i["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (json!("bonus"), json!(false), json!("refunded")),
            (json!("pro"), json!(false), json!("refunded")),
        ],
        "{:?}",
        reply.body
    );

    // The state filter follows the order.
    assert_eq!(order_ids(&app, "?state=paid").await, Vec::<String>::new());
    assert_eq!(order_ids(&app, "?state=refunded").await, vec![id.clone()]);
    assert_eq!(
        order_ids(
            &app,
            &format!("?email={ADA}&state=refunded&integration=zenofy")
        )
        .await,
        vec![id]
    );
}

async fn zenofy_order_cancelled_revokes_and_a_later_payment_is_rejected(app: TestApp) {
    zenofy_integration(&app).await;
    let paid = assert_delivery(
        "order_paid",
        &app.zenofy(fixture("zenofy/order_paid.json")).await,
        "applied",
        Some("paid"),
    );
    let id = paid["subject"]["id"].as_str().unwrap().to_owned();
    assert_access(
        &app,
        "paid",
        (ADA, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // Zenofy cancels the paid order: access goes at once.
    let cancel = |reference: &'static str| {
        zenofy_variant("order_cancelled", move |b| {
            b["orderId"] = json!(ZENOFY_ORDER);
            b["customer"]["email"] = json!(ADA);
            b["items"][0]["productId"] = json!(ZENOFY_PRODUCT_ID);
            b["paymentReference"] = json!(reference);
        })
    };
    let canceled = assert_delivery(
        "order_cancelled for the paid order",
        &app.zenofy(cancel("first")).await,
        "applied",
        Some("canceled"),
    );
    assert_eq!(canceled["subject"]["id"], id);
    let answer = assert_access(
        &app,
        "canceled",
        (ADA, "pro", None),
        false,
        "canceled",
        Value::Null,
    )
    .await;
    assert_eq!(answer["sources"][0]["state"], "canceled", "{answer:?}");

    // A payment for a canceled order cannot be right: rejected, naming both states.
    let rejected = assert_delivery(
        "order_paid after the cancel",
        &app.zenofy(zenofy_variant("order_paid", |b| {
            b["paymentReference"] = json!("PC673F92_2A");
        }))
        .await,
        "rejected",
        Some("canceled"),
    );
    let reason = rejected["reason"].as_str().unwrap();
    assert!(reason.contains("canceled -> paid"), "{reason}");
    assert_access(
        &app,
        "after the rejected payment",
        (ADA, "pro", None),
        false,
        "canceled",
        Value::Null,
    )
    .await;

    // Refunded from canceled; then another cancel is only noted.
    let refunded = assert_delivery(
        "order_refunded for the canceled order",
        &app.zenofy(fixture("zenofy/order_refunded.json")).await,
        "applied",
        Some("refunded"),
    );
    let noted = assert_delivery(
        "order_cancelled for the refunded order",
        &app.zenofy(cancel("second")).await,
        "noted",
        Some("refunded"),
    );
    assert_access(
        &app,
        "refunded",
        (ADA, "pro", None),
        false,
        "refunded",
        Value::Null,
    )
    .await;

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "refunded");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "paid",
                Value::Null,
                json!("paid"),
                "applied",
                paid["delivery_id"].clone()
            ),
            entry(
                "canceled",
                json!("paid"),
                json!("canceled"),
                "applied",
                canceled["delivery_id"].clone()
            ),
            entry(
                "paid",
                json!("canceled"),
                json!("canceled"),
                "rejected",
                rejected["delivery_id"].clone()
            ),
            entry(
                "refunded",
                json!("canceled"),
                json!("refunded"),
                "applied",
                refunded["delivery_id"].clone()
            ),
            entry(
                "canceled",
                json!("refunded"),
                json!("refunded"),
                "noted",
                noted["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // The sample cancel, first sight: an order created canceled, for an
    // unmapped product (its own key), never granting.
    let sample = assert_delivery(
        "sample order_cancelled",
        &app.zenofy(fixture("zenofy/order_cancelled.json")).await,
        "applied",
        Some("canceled"),
    );
    let other = order(&app, sample["subject"]["id"].as_str().unwrap()).await;
    assert_eq!(
        (
            &other["email"],
            &other["products"],
            &other["paid_at"],
            &other["external_id"]
        ),
        (
            &json!("buyer@example.org"),
            &json!(["507f191e810c19729de860ea"]),
            &Value::Null,
            &json!("673f92b2c3d94a0012abcd02"),
        ),
        "{other:?}"
    );
    assert_access(
        &app,
        "an order first seen canceled",
        ("buyer@example.org", "507f191e810c19729de860ea", None),
        false,
        "canceled",
        Value::Null,
    )
    .await;
}

async fn purchase_access_seconds_bounds_a_purchase_and_recomputes_rows(app: TestApp) {
    zenofy_integration(&app).await;
    assert_delivery(
        "order_paid",
        &app.zenofy(zenofy_with_bump("order_paid")).await,
        "applied",
        Some("paid"),
    );

    // One day of access per purchase of `pro`; the existing row is recomputed.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"purchase_access_seconds": 86400})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(
        reply.body["purchase_access_seconds"], 86400,
        "{:?}",
        reply.body
    );

    let day_after = "2026-05-02T08:42:18Z";
    let answer = assert_access(
        &app,
        "within the day",
        (ADA, "pro", Some("2026-05-02T08:42:17Z")),
        true,
        "purchase",
        json!(day_after),
    )
    .await;
    assert_eq!(
        answer["sources"][0]["access_from"], ZENOFY_PAID_AT,
        "{answer:?}"
    );
    assert_eq!(
        answer["sources"][0]["access_until"], day_after,
        "{answer:?}"
    );
    assert_access(
        &app,
        "a day after the payment",
        (ADA, "pro", Some(day_after)),
        false,
        "period_ended",
        json!(day_after),
    )
    .await;
    assert_access(
        &app,
        "now, months later",
        (ADA, "pro", None),
        false,
        "period_ended",
        json!(day_after),
    )
    .await;
    // The bump product keeps the default: for ever.
    assert_access(
        &app,
        "bump product, lifetime",
        (ADA, "bonus", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // A purchase made under the policy: paid an hour ago, a day from then.
    let paid_at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::hours(1);
    let fresh = zenofy_variant("order_paid", |b| {
        b["orderId"] = json!("fresh-order-1");
        b["customer"]["email"] = json!(BUYER);
        b["paidAt"] = json!(rfc3339(paid_at));
    });
    assert_delivery(
        "fresh order_paid",
        &app.zenofy(fresh).await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "a purchase an hour old",
        (BUYER, "pro", None),
        true,
        "purchase",
        json!(rfc3339(paid_at + Duration::days(1))),
    )
    .await;

    // Invalid policy values name the field.
    for bad in [json!(0), json!(-5), json!("a day")] {
        let reply = app
            .admin(
                Method::PUT,
                "/v1/admin/products/pro",
                Some(json!({"purchase_access_seconds": bad})),
            )
            .await;
        assert_invalid(&format!("{bad}"), &reply, "purchase_access_seconds");
    }

    // Back to lifetime: the rows are recomputed again.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/products/pro",
            Some(json!({"purchase_access_seconds": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        reply.body["purchase_access_seconds"].is_null(),
        "{:?}",
        reply.body
    );
    assert_access(
        &app,
        "lifetime again",
        (ADA, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
}

// ---------------------------------------------------------------- Zeno Bank

async fn zenobank_secret_must_be_a_signing_secret(app: TestApp) {
    for bad in [
        "not base64 at all!",
        "whsec_",
        "whsec_%%%%%%%%",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!",
    ] {
        let reply = app
            .admin(
                Method::PUT,
                "/v1/admin/integrations/zb",
                Some(json!({"provider": "zenobank", "secret": bad})),
            )
            .await;
        assert_invalid(bad, &reply, "secret");
        // (`whsec_` alone is the prefix the detail itself names.)
        assert!(
            bad == "whsec_" || !reply.body["detail"].as_str().unwrap().contains(bad),
            "the detail repeats the secret: {:?}",
            reply.body
        );
    }
    let reply = app
        .admin(Method::GET, "/v1/admin/integrations/zb", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);

    zenobank_integration(&app).await;
    let reply = app
        .admin(Method::GET, "/v1/admin/integrations/zb", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["provider"], "zenobank");
    assert!(reply.body.get("secret").is_none(), "{:?}", reply.body);
    assert!(
        !reply
            .body
            .to_string()
            .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );

    // The secret without its `whsec_` prefix is the same key.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zb2",
            Some(json!({"provider": "zenobank", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_order(
        "registration on zb2",
        &register(&app, "zb2", ZB_ORDER, BUYER, "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    let body = fixture("zenobank/checkout.completed.json");
    let ts = now_unix();
    let reply = app
        .webhook(
            "/v1/webhooks/zb2",
            &[
                ("content-type", "application/json"),
                ("svix-id", "msg_zb2"),
                ("svix-timestamp", &ts.to_string()),
                ("svix-signature", &sign(ZB_SECRET, "msg_zb2", ts, &body)),
            ],
            body,
        )
        .await;
    assert_delivery("signed for zb2", &reply, "applied", Some("paid"));
}

async fn zenobank_registered_checkout_completed_entitles_at_once(app: TestApp) {
    zenobank_integration(&app).await;

    let registered = assert_order(
        "registration",
        &register(&app, ZB, ZB_ORDER, " Buyer@Example.com ", "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    let id = registered["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &registered["integration"],
            &registered["provider"],
            &registered["external_id"],
            &registered["email"],
            &registered["products"],
            &registered["paid_at"],
        ),
        (
            &json!(ZB),
            &json!("zenobank"),
            &json!(ZB_ORDER),
            &json!(BUYER),
            &json!(["pro"]),
            &Value::Null,
        ),
        "{registered:?}"
    );
    assert_access(
        &app,
        "registered, not paid",
        (BUYER, "pro", None),
        false,
        "pending",
        Value::Null,
    )
    .await;

    // The payment: applied, and the buyer is entitled right after.
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let body = fixture("zenobank/checkout.completed.json");
    let ts = now_unix();
    let signature = sign(ZB_SECRET, "msg_completed", ts, &body);
    let paid = assert_delivery(
        "checkout.completed",
        &zenobank_svix(&app, "msg_completed", ts, &signature, &body).await,
        "applied",
        Some("paid"),
    );
    assert_eq!(paid["subject"]["id"], id);
    let answer = assert_access(
        &app,
        "paid",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let source = &answer["sources"][0];
    assert_eq!(
        (
            &source["kind"],
            &source["id"],
            &source["provider"],
            &source["integration"]
        ),
        (&json!("order"), &json!(id), &json!("zenobank"), &json!(ZB)),
        "{answer:?}"
    );

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "paid");
    // No paid time in the payload: it was paid when the payment arrived.
    let paid_at = parse(detail["paid_at"].as_str().expect("paid_at"));
    assert!(
        paid_at >= before && paid_at <= OffsetDateTime::now_utc(),
        "{detail:?}"
    );
    assert_eq!(source["access_from"], detail["paid_at"], "{answer:?}");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                paid["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // Svix retries the same message (same headers, same body): a duplicate.
    let replay = assert_delivery(
        "the same message again",
        &zenobank_svix(&app, "msg_completed", ts, &signature, &body).await,
        "duplicate",
        Some("paid"),
    );
    assert_eq!(replay["subject"]["id"], id);
    assert!(
        replay["reason"]
            .as_str()
            .unwrap()
            .contains(paid["delivery_id"].as_str().unwrap()),
        "the reason names the first delivery: {replay:?}"
    );
    // The message id is the dedup key: even other bytes under it are the same message.
    let other_bytes = zb_body("checkout.partially_paid", ZB_ORDER);
    let same_id = assert_delivery(
        "same message id, other body",
        &zenobank(&app, "msg_completed", &other_bytes).await,
        "duplicate",
        Some("paid"),
    );

    // A partial payment notice after the payment is only noted.
    let noted = assert_delivery(
        "checkout.partially_paid on a paid order",
        &zenobank(&app, "msg_partial", &other_bytes).await,
        "noted",
        Some("paid"),
    );
    // And a second checkout.completed message for the same order changes nothing.
    let again = assert_delivery(
        "another checkout.completed message",
        &zenobank(&app, "msg_completed_2", &body).await,
        "duplicate",
        Some("paid"),
    );
    assert_access(
        &app,
        "still paid",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let detail = order(&app, &id).await;
    assert_eq!(
        history(&detail, &[&replay["delivery_id"], &same_id["delivery_id"]]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                paid["delivery_id"].clone()
            ),
            entry(
                "informational",
                json!("paid"),
                json!("paid"),
                "noted",
                noted["delivery_id"].clone()
            ),
            entry(
                "paid",
                json!("paid"),
                json!("paid"),
                "duplicate",
                again["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // Ids as numbers or strings: an order id sent as a number matches the
    // registration of its digits.
    let numeric = assert_order(
        "numeric order id",
        &register(&app, ZB, "778899", "numeric@example.com", "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    let mut body_num = fixture_json("zenobank/checkout.completed.json");
    body_num["data"]["orderId"] = json!(778899);
    let reply = zenobank(&app, "msg_numeric", &serde_json::to_vec(&body_num).unwrap()).await;
    let answer = assert_delivery("numeric orderId", &reply, "applied", Some("paid"));
    assert_eq!(answer["subject"]["id"], numeric["id"]);
    assert_access(
        &app,
        "numeric order id",
        ("numeric@example.com", "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // Registering it again, the same way: 200, unchanged.
    let same = assert_order(
        "registration again",
        &register(&app, ZB, ZB_ORDER, BUYER, "pro").await,
        StatusCode::OK,
        "paid",
    );
    assert_eq!(same["id"], id);
    assert_eq!(same["paid_at"], detail["paid_at"]);
}

async fn zenobank_signatures_timestamps_and_replays(app: TestApp) {
    // The signing helper agrees with the Standard Webhooks known-answer vector.
    assert_eq!(
        sign(
            ZB_SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    zenobank_integration(&app).await;
    for n in 1..=5 {
        assert_order(
            "registration",
            &register(&app, ZB, &format!("order-sig-{n}"), BUYER, &format!("p{n}")).await,
            StatusCode::CREATED,
            "pending",
        );
    }

    // 1. A bad signature (another key's): 401, nothing stored; the same
    //    message id correctly signed afterwards is applied, not a duplicate.
    let body = zb_body("checkout.completed", "order-sig-1");
    let ts = now_unix();
    let bad = sign(OLD_ZB_SECRET, "msg_sig_1", ts, &body);
    assert_webhook_unauthorized(
        "bad signature",
        &zenobank_svix(&app, "msg_sig_1", ts, &bad, &body).await,
    );
    // A correct signature over other bytes (the body tampered with).
    let tampered = zb_body("checkout.completed", "order-sig-2");
    assert_webhook_unauthorized(
        "body tampered with",
        &zenobank_svix(
            &app,
            "msg_sig_1",
            ts,
            &sign(ZB_SECRET, "msg_sig_1", ts, &body),
            &tampered,
        )
        .await,
    );
    // The last character of a good signature changed.
    let good = sign(ZB_SECRET, "msg_sig_1", ts, &body);
    let mut flipped = good.clone();
    let at = flipped.len() - 2;
    let last = if &flipped[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    flipped.replace_range(at..at + 1, last);
    assert_ne!(flipped, good);
    assert_webhook_unauthorized(
        "one character changed",
        &zenobank_svix(&app, "msg_sig_1", ts, &flipped, &body).await,
    );
    // A signature for another message id.
    assert_webhook_unauthorized(
        "signed for another id",
        &zenobank_svix(
            &app,
            "msg_sig_1",
            ts,
            &sign(ZB_SECRET, "msg_other", ts, &body),
            &body,
        )
        .await,
    );
    let pending = order_ids(&app, "?state=pending").await;
    assert_eq!(pending.len(), 5, "nothing was applied");
    assert_eq!(
        deliveries(&app, &format!("?integration={ZB}&limit=500")).await,
        Vec::<Value>::new(),
        "nothing was stored"
    );
    assert_access(
        &app,
        "after rejected signatures",
        (BUYER, "p1", None),
        false,
        "pending",
        Value::Null,
    )
    .await;
    let applied = assert_delivery(
        "the same message id, correctly signed",
        &zenobank_svix(&app, "msg_sig_1", ts, &good, &body).await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "order-sig-1",
        (BUYER, "p1", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let detail = order(&app, applied["subject"]["id"].as_str().unwrap()).await;
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                applied["delivery_id"].clone()
            ),
        ],
        "only the authenticated delivery reached the order: {detail:#?}"
    );
    // Replayed as is: a duplicate.
    assert_delivery(
        "replayed message",
        &zenobank_svix(&app, "msg_sig_1", ts, &good, &body).await,
        "duplicate",
        Some("paid"),
    );

    let stored = deliveries(&app, &format!("?integration={ZB}&limit=500")).await;
    assert_eq!(
        stored.len(),
        2,
        "the applied message and its replay: {stored:#?}"
    );

    // 2. Timestamps: more than five minutes old or ahead is refused even when
    //    correctly signed; four minutes old is fine.
    let body = zb_body("checkout.completed", "order-sig-2");
    for (what, offset) in [("stale", -330), ("future", 330), ("far past", -86_400)] {
        let ts = now_unix() + offset;
        let id = format!("msg_sig_2_{what}");
        assert_webhook_unauthorized(
            what,
            &zenobank_svix(&app, &id, ts, &sign(ZB_SECRET, &id, ts, &body), &body).await,
        );
    }
    for (what, timestamp) in [
        ("not a number", "soon".to_owned()),
        ("fractional", format!("{}.5", now_unix())),
        ("negative", format!("-{}", now_unix())),
    ] {
        let signature = format!(
            "v1,{}",
            BASE64.encode({
                let key = BASE64.decode(&ZB_SECRET[6..]).unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("msg_sig_2_ts.{timestamp}.").as_bytes());
                mac.update(&body);
                mac.finalize().into_bytes()
            })
        );
        assert_webhook_unauthorized(
            what,
            &zenobank_raw(
                &app,
                &[
                    ("svix-id", "msg_sig_2_ts"),
                    ("svix-timestamp", &timestamp),
                    ("svix-signature", &signature),
                ],
                &body,
            )
            .await,
        );
    }
    assert_access(
        &app,
        "order-sig-2",
        (BUYER, "p2", None),
        false,
        "pending",
        Value::Null,
    )
    .await;
    let ts = now_unix() - 240;
    assert_delivery(
        "four minutes old",
        &zenobank_svix(
            &app,
            "msg_sig_2",
            ts,
            &sign(ZB_SECRET, "msg_sig_2", ts, &body),
            &body,
        )
        .await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "order-sig-2",
        (BUYER, "p2", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // 3. Missing headers, empty or other-version signatures.
    let body = zb_body("checkout.completed", "order-sig-3");
    let ts = now_unix();
    let tss = ts.to_string();
    let good = sign(ZB_SECRET, "msg_sig_3", ts, &body);
    let v2 = good.replacen("v1,", "v2,", 1);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no headers", vec![]),
        (
            "no id",
            vec![("svix-timestamp", &tss), ("svix-signature", &good)],
        ),
        (
            "no timestamp",
            vec![("svix-id", "msg_sig_3"), ("svix-signature", &good)],
        ),
        (
            "no signature",
            vec![("svix-id", "msg_sig_3"), ("svix-timestamp", &tss)],
        ),
        (
            "truncated signature",
            vec![
                ("svix-id", "msg_sig_3"),
                ("svix-timestamp", &tss),
                ("svix-signature", "v1,"),
            ],
        ),
        (
            "only another version",
            vec![
                ("svix-id", "msg_sig_3"),
                ("svix-timestamp", &tss),
                ("svix-signature", &v2),
            ],
        ),
        (
            "mixed header sets",
            vec![
                ("svix-id", "msg_sig_3"),
                ("webhook-timestamp", &tss),
                ("webhook-signature", &good),
            ],
        ),
    ];
    for (what, headers) in cases {
        assert_webhook_unauthorized(what, &zenobank_raw(&app, &headers, &body).await);
    }
    assert_access(
        &app,
        "order-sig-3",
        (BUYER, "p3", None),
        false,
        "pending",
        Value::Null,
    )
    .await;

    let stored = deliveries(&app, &format!("?integration={ZB}&limit=500")).await;
    assert_eq!(
        stored.len(),
        3,
        "no refused request was stored: {stored:#?}"
    );

    // 4. Key rotation: the header lists several signatures; one valid `v1`
    //    entry is enough, other versions are skipped.
    let old = sign(OLD_ZB_SECRET, "msg_sig_3", ts, &body);
    let rotated = format!("{old} v2,bm90IGEgc2lnbmF0dXJl {good}");
    assert_delivery(
        "rotated key list",
        &zenobank_svix(&app, "msg_sig_3", ts, &rotated, &body).await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "order-sig-3",
        (BUYER, "p3", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let body = zb_body("checkout.completed", "order-sig-4");
    let ts = now_unix();
    let good = sign(ZB_SECRET, "msg_sig_4", ts, &body);
    assert_delivery(
        "v1,<bad> v1,<good>",
        &zenobank_svix(
            &app,
            "msg_sig_4",
            ts,
            &format!("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU= {good}"),
            &body,
        )
        .await,
        "applied",
        Some("paid"),
    );

    // 5. The unbranded `webhook-*` headers.
    let body = zb_body("checkout.completed", "order-sig-5");
    let ts = now_unix();
    let tss = ts.to_string();
    let good = sign(ZB_SECRET, "msg_sig_5", ts, &body);
    let headers = [
        ("webhook-id", "msg_sig_5"),
        ("webhook-timestamp", tss.as_str()),
        ("webhook-signature", good.as_str()),
    ];
    assert_delivery(
        "webhook-* headers",
        &zenobank_raw(&app, &headers, &body).await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "order-sig-5",
        (BUYER, "p5", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    assert_delivery(
        "webhook-* replayed",
        &zenobank_raw(&app, &headers, &body).await,
        "duplicate",
        Some("paid"),
    );

    // 6. The operator rotates the integration's secret: the old key no longer
    //    verifies, the new one does.
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{ZB}"),
            Some(json!({"provider": "zenobank", "secret": OLD_ZB_SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = zb_body("checkout.partially_paid", "order-sig-1");
    let ts = now_unix();
    assert_webhook_unauthorized(
        "signed with the replaced key",
        &zenobank_svix(
            &app,
            "msg_sig_6",
            ts,
            &sign(ZB_SECRET, "msg_sig_6", ts, &body),
            &body,
        )
        .await,
    );
    assert_delivery(
        "signed with the new key",
        &zenobank_svix(
            &app,
            "msg_sig_6",
            ts,
            &sign(OLD_ZB_SECRET, "msg_sig_6", ts, &body),
            &body,
        )
        .await,
        "noted",
        Some("paid"),
    );
}

async fn zenobank_expired_and_partially_paid(app: TestApp) {
    zenobank_integration(&app).await;
    let registered = assert_order(
        "registration",
        &register(&app, ZB, "order-67890", BUYER, "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    let id = registered["id"].as_str().unwrap().to_owned();

    let partial = assert_delivery(
        "checkout.partially_paid",
        &zenobank(
            &app,
            "msg_partial",
            &zb_body("checkout.partially_paid", "order-67890"),
        )
        .await,
        "noted",
        Some("pending"),
    );
    assert_eq!(partial["subject"]["id"], id);
    assert_access(
        &app,
        "partially paid",
        (BUYER, "pro", None),
        false,
        "pending",
        Value::Null,
    )
    .await;

    let expired = assert_delivery(
        "checkout.expired",
        &zenobank(
            &app,
            "msg_expired",
            &fixture("zenobank/checkout.expired.json"),
        )
        .await,
        "applied",
        Some("expired"),
    );
    assert_access(
        &app,
        "expired",
        (BUYER, "pro", None),
        false,
        "expired",
        Value::Null,
    )
    .await;

    // Completing an expired checkout cannot be right.
    let late = assert_delivery(
        "checkout.completed after expiry",
        &zenobank(
            &app,
            "msg_late",
            &zb_body("checkout.completed", "order-67890"),
        )
        .await,
        "rejected",
        Some("expired"),
    );
    let reason = late["reason"].as_str().unwrap();
    assert!(reason.contains("expired -> paid"), "{reason}");
    assert_access(
        &app,
        "still expired",
        (BUYER, "pro", None),
        false,
        "expired",
        Value::Null,
    )
    .await;

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "expired");
    assert!(detail["paid_at"].is_null(), "{detail:?}");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "informational",
                json!("pending"),
                json!("pending"),
                "noted",
                partial["delivery_id"].clone()
            ),
            entry(
                "expired",
                json!("pending"),
                json!("expired"),
                "applied",
                expired["delivery_id"].clone()
            ),
            entry(
                "paid",
                json!("expired"),
                json!("expired"),
                "rejected",
                late["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // An expiry notice for a paid order is rejected and takes nothing away.
    assert_order(
        "second registration",
        &register(&app, ZB, ZB_ORDER, "other@example.com", "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    assert_delivery(
        "paid",
        &zenobank(
            &app,
            "msg_paid_2",
            &fixture("zenobank/checkout.completed.json"),
        )
        .await,
        "applied",
        Some("paid"),
    );
    assert_delivery(
        "checkout.expired on a paid order",
        &zenobank(
            &app,
            "msg_expired_2",
            &zb_body("checkout.expired", ZB_ORDER),
        )
        .await,
        "rejected",
        Some("paid"),
    );
    assert_access(
        &app,
        "paid, expiry rejected",
        ("other@example.com", "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // An authenticated payload without its order id is malformed, naming it.
    let mut no_order = fixture_json("zenobank/checkout.completed.json");
    no_order["data"].as_object_mut().unwrap().remove("orderId");
    let reply = zenobank(
        &app,
        "msg_malformed",
        &serde_json::to_vec(&no_order).unwrap(),
    )
    .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("data.orderId"));
    assert_eq!(reply.body["outcome"], "malformed", "{:?}", reply.body);
    assert!(reply.body["delivery_id"].is_string(), "{:?}", reply.body);
}

async fn payment_before_registration_is_applied_by_the_registration(app: TestApp) {
    zenobank_integration(&app).await;

    // The payment races ahead of the registration: stored, unmatched.
    let body = fixture("zenobank/checkout.completed.json");
    let ts = now_unix();
    let signature = sign(ZB_SECRET, "msg_early", ts, &body);
    let early = assert_delivery(
        "checkout.completed before the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "unmatched",
        None,
    );
    assert!(
        early["reason"].as_str().unwrap().contains(ZB_ORDER),
        "{early:?}"
    );
    assert_access(
        &app,
        "unmatched payment",
        (BUYER, "pro", None),
        false,
        "no_entitlement",
        Value::Null,
    )
    .await;
    assert_eq!(orders(&app, "").await["items"], json!([]));
    // Retried by Svix before the registration: still one message.
    assert_delivery(
        "retry before the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "duplicate",
        None,
    );

    // The registration applies it: paid in the registration's own answer.
    let reply = register(&app, ZB, ZB_ORDER, BUYER, "pro").await;
    let registered = assert_order("registration", &reply, StatusCode::CREATED, "paid");
    let id = registered["id"].as_str().unwrap().to_owned();
    let paid_at = parse(registered["paid_at"].as_str().expect("paid_at"));
    assert!(
        paid_at <= parse(registered["created_at"].as_str().unwrap()),
        "paid when the payment arrived, before the registration: {registered:?}"
    );
    let answer = assert_access(
        &app,
        "right after the registration",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    assert_eq!(answer["sources"][0]["id"], id, "{answer:?}");
    assert_eq!(answer["sources"][0]["access_from"], registered["paid_at"]);

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "paid");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                early["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // The delivery log: the early delivery now carries the registration's
    // outcome, beside the one it got when it arrived.
    let early_id = early["delivery_id"].as_str().unwrap();
    let logged = delivery(&app, early_id).await;
    assert_eq!(logged["outcome"], "applied", "{logged:#?}");
    assert_eq!(
        logged["subject"],
        json!({"kind": "order", "id": id}),
        "{logged:#?}"
    );
    assert_eq!(logged["event"], "checkout.completed", "{logged:#?}");
    assert_eq!(logged["body"].as_str().unwrap().as_bytes(), &body[..]);
    let attempts: Vec<_> = logged["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["trigger"].clone(),
                a["outcome"].clone(),
                a["subject"].clone(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            (json!("received"), json!("unmatched"), Value::Null),
            (
                json!("registration"),
                json!("applied"),
                json!({"kind": "order", "id": id})
            ),
        ],
        "{logged:#?}"
    );
    assert!(
        deliveries(&app, "?outcome=unmatched").await.is_empty(),
        "no delivery is left unmatched"
    );

    // A retry of the early message now: still a duplicate, pointing at the order.
    let retry = assert_delivery(
        "retry after the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "duplicate",
        Some("paid"),
    );
    assert_eq!(retry["subject"]["id"], id);

    // Registering again: the same buyer and product (in any case) is harmless.
    for email in [BUYER, " BUYER@example.COM "] {
        let again = assert_order(
            "registration again",
            &register(&app, ZB, ZB_ORDER, email, "pro").await,
            StatusCode::OK,
            "paid",
        );
        assert_eq!(again["id"], id);
        assert_eq!(again["paid_at"], registered["paid_at"]);
    }
    // Another buyer or product for the same order is a conflict.
    for (email, product) in [("thief@example.com", "pro"), (BUYER, "enterprise")] {
        let reply = register(&app, ZB, ZB_ORDER, email, product).await;
        reply.assert_problem(StatusCode::CONFLICT, None);
        assert_eq!(
            reply.body["type"], "urn:entitled:problem:conflict",
            "{:?}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains(ZB_ORDER),
            "{:?}",
            reply.body
        );
    }
    assert_access(
        &app,
        "the conflicting buyer",
        ("thief@example.com", "pro", None),
        false,
        "no_entitlement",
        Value::Null,
    )
    .await;
    let detail = order(&app, &id).await;
    assert_eq!(detail["email"], BUYER);
    assert_eq!(detail["products"], json!(["pro"]));
    assert_eq!(
        detail["history"].as_array().unwrap().len(),
        2,
        "{detail:#?}"
    );
}

// ---------------------------------------------------------------- ZayPay

async fn zaypay_order_lifecycle_with_token_auth(app: TestApp) {
    zaypay_integration(&app).await;
    let registered = assert_order(
        "registration",
        &register(&app, ZP, ZP_SUBJECT, BUYER, "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    let id = registered["id"].as_str().unwrap().to_owned();
    assert_eq!(registered["provider"], "zaypay");

    // Wrong, missing or misplaced credentials: 401, nothing stored.
    let body = fixture("zaypay/completed.json");
    for (what, path, headers) in [
        (
            "wrong token",
            format!("/v1/webhooks/{ZP}?token=nope"),
            vec![],
        ),
        ("no token", format!("/v1/webhooks/{ZP}"), vec![]),
        (
            "a prefix of the token",
            format!(
                "/v1/webhooks/{ZP}?token={}",
                &ZP_TOKEN[..ZP_TOKEN.len() - 1]
            ),
            vec![],
        ),
        (
            "token in a header",
            format!("/v1/webhooks/{ZP}"),
            vec![("x-webhook-secret", ZP_TOKEN)],
        ),
    ] {
        let mut headers = headers;
        headers.push(("content-type", "application/json"));
        assert_webhook_unauthorized(what, &app.webhook(&path, &headers, body.clone()).await);
    }
    assert_access(
        &app,
        "after refused deliveries",
        (BUYER, "pro", None),
        false,
        "pending",
        Value::Null,
    )
    .await;

    let step = |status: &'static str| fixture(&format!("zaypay/{status}.json"));
    let transfer = assert_delivery(
        "transfer_pending",
        &zaypay(&app, step("transfer_pending")).await,
        "duplicate",
        Some("pending"),
    );
    assert_eq!(transfer["subject"]["id"], id);
    let deposit = assert_delivery(
        "deposit_received",
        &zaypay(&app, step("deposit_received")).await,
        "duplicate",
        Some("pending"),
    );
    let paid = assert_delivery(
        "completed",
        &zaypay(&app, step("completed")).await,
        "applied",
        Some("paid"),
    );
    assert_eq!(paid["subject"]["id"], id);
    let answer = assert_access(
        &app,
        "completed",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    assert_eq!(answer["sources"][0]["provider"], "zaypay", "{answer:?}");
    let detail = order(&app, &id).await;
    assert_eq!(
        detail["paid_at"], "2025-09-24T07:23:45Z",
        "paid when ZayPay says the status changed: {detail:?}"
    );

    let replay = assert_delivery(
        "the same bytes again",
        &zaypay(&app, step("completed")).await,
        "duplicate",
        Some("paid"),
    );
    let initiated = assert_delivery(
        "refund_initiated",
        &zaypay(&app, step("refund_initiated")).await,
        "noted",
        Some("paid"),
    );
    assert_access(
        &app,
        "refund initiated",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let refunded = assert_delivery(
        "refund_completed",
        &zaypay(&app, step("refund_completed")).await,
        "applied",
        Some("refunded"),
    );
    assert_access(
        &app,
        "refunded",
        (BUYER, "pro", None),
        false,
        "refunded",
        Value::Null,
    )
    .await;
    let cancelled = assert_delivery(
        "cancelled after refunded",
        &zaypay(&app, step("cancelled")).await,
        "noted",
        Some("refunded"),
    );
    assert_access(
        &app,
        "still refunded",
        (BUYER, "pro", None),
        false,
        "refunded",
        Value::Null,
    )
    .await;

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "refunded");
    assert_eq!(detail["paid_at"], "2025-09-24T07:23:45Z");
    assert_eq!(
        history(&detail, &[&replay["delivery_id"]]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "progressed",
                json!("pending"),
                json!("pending"),
                "duplicate",
                transfer["delivery_id"].clone()
            ),
            entry(
                "progressed",
                json!("pending"),
                json!("pending"),
                "duplicate",
                deposit["delivery_id"].clone()
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                paid["delivery_id"].clone()
            ),
            entry(
                "informational",
                json!("paid"),
                json!("paid"),
                "noted",
                initiated["delivery_id"].clone()
            ),
            entry(
                "refunded",
                json!("paid"),
                json!("refunded"),
                "applied",
                refunded["delivery_id"].clone()
            ),
            entry(
                "canceled",
                json!("refunded"),
                json!("refunded"),
                "noted",
                cancelled["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // An unknown status or another event type means nothing for entitlements.
    let mut unknown = fixture_json("zaypay/completed.json");
    unknown["payload"]["order"]["status"] = json!("teleported");
    let ignored = zaypay(&app, serde_json::to_vec(&unknown).unwrap()).await;
    assert_delivery("unknown status", &ignored, "ignored", None);
    let mut other = fixture_json("zaypay/completed.json");
    other["event_type"] = json!("wallet_updated");
    let ignored = zaypay(&app, serde_json::to_vec(&other).unwrap()).await;
    assert_delivery("other event type", &ignored, "ignored", None);
    assert_eq!(order(&app, &id).await["state"], "refunded");

    // A subject nobody registered: unmatched, stored, granting nothing.
    let stranger = assert_delivery(
        "unregistered subject",
        &zaypay(
            &app,
            zp_body("completed", "0b5e7a9c-0000-4000-8000-000000000001"),
        )
        .await,
        "unmatched",
        None,
    );
    assert!(stranger["reason"].is_string());
    assert_eq!(
        order_ids(&app, &format!("?integration={ZP}")).await,
        vec![id]
    );
}

async fn zaypay_unregistered_deliveries_apply_in_arrival_order(app: TestApp) {
    zaypay_integration(&app).await;
    let (a, b, c) = (
        "aaaaaaaa-0000-4000-8000-00000000000a",
        "bbbbbbbb-0000-4000-8000-00000000000b",
        "cccccccc-0000-4000-8000-00000000000c",
    );

    // A: paid, then a refund starts; both before the registration.
    let a_paid = assert_delivery(
        "A completed",
        &zaypay(&app, zp_body("completed", a)).await,
        "unmatched",
        None,
    );
    let a_initiated = assert_delivery(
        "A refund_initiated",
        &zaypay(&app, zp_body("refund_initiated", a)).await,
        "unmatched",
        None,
    );
    // B: paid and refunded before the registration.
    let b_paid = assert_delivery(
        "B completed",
        &zaypay(&app, zp_body("completed", b)).await,
        "unmatched",
        None,
    );
    let b_refunded = assert_delivery(
        "B refund_completed",
        &zaypay(&app, zp_body("refund_completed", b)).await,
        "unmatched",
        None,
    );
    // C: only waiting for the deposit.
    let c_pending = assert_delivery(
        "C transfer_pending",
        &zaypay(&app, zp_body("transfer_pending", c)).await,
        "unmatched",
        None,
    );
    assert_eq!(orders(&app, "").await["items"], json!([]));

    let ra = assert_order(
        "register A",
        &register(&app, ZP, a, "a@example.com", "pro").await,
        StatusCode::CREATED,
        "paid",
    );
    assert_eq!(ra["paid_at"], "2025-09-24T07:23:45Z", "{ra:?}");
    assert_access(
        &app,
        "A",
        ("a@example.com", "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    let detail = order(&app, ra["id"].as_str().unwrap()).await;
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                a_paid["delivery_id"].clone()
            ),
            entry(
                "informational",
                json!("paid"),
                json!("paid"),
                "noted",
                a_initiated["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    let rb = assert_order(
        "register B",
        &register(&app, ZP, b, "b@example.com", "pro").await,
        StatusCode::CREATED,
        "refunded",
    );
    assert_access(
        &app,
        "B",
        ("b@example.com", "pro", None),
        false,
        "refunded",
        Value::Null,
    )
    .await;
    let detail = order(&app, rb["id"].as_str().unwrap()).await;
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                b_paid["delivery_id"].clone()
            ),
            entry(
                "refunded",
                json!("paid"),
                json!("refunded"),
                "applied",
                b_refunded["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    let rc = assert_order(
        "register C",
        &register(&app, ZP, c, "c@example.com", "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    assert_access(
        &app,
        "C",
        ("c@example.com", "pro", None),
        false,
        "pending",
        Value::Null,
    )
    .await;
    let detail = order(&app, rc["id"].as_str().unwrap()).await;
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "progressed",
                json!("pending"),
                json!("pending"),
                "duplicate",
                c_pending["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );
    // And C's payment, now registered, applies at once.
    assert_delivery(
        "C completed",
        &zaypay(&app, zp_body("completed", c)).await,
        "applied",
        Some("paid"),
    );
    assert_access(
        &app,
        "C paid",
        ("c@example.com", "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;

    // D: registered, then ZayPay blocks the order's creation: canceled, and a
    // completion after that is rejected.
    let d = "dddddddd-0000-4000-8000-00000000000d";
    assert_order(
        "register D",
        &register(&app, ZP, d, "d@example.com", "pro").await,
        StatusCode::CREATED,
        "pending",
    );
    assert_delivery(
        "D creation_blocked",
        &zaypay(&app, zp_body("creation_blocked", d)).await,
        "applied",
        Some("canceled"),
    );
    assert_delivery(
        "D completed after the block",
        &zaypay(&app, zp_body("completed", d)).await,
        "rejected",
        Some("canceled"),
    );
    assert_access(
        &app,
        "D",
        ("d@example.com", "pro", None),
        false,
        "canceled",
        Value::Null,
    )
    .await;
}

// ---------------------------------------------------------------- the API

async fn order_registration_validation(app: TestApp) {
    zenobank_integration(&app).await;
    app.zenofy_integration().await;
    let valid = json!({
        "integration": ZB,
        "external_id": ZB_ORDER,
        "email": BUYER,
        "product": "pro",
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no email", without("email"), "email"),
        ("empty email", with("email", json!("")), "email"),
        (
            "invalid email",
            with("email", json!("not-an-email")),
            "email",
        ),
        ("email not a string", with("email", json!(42)), "email"),
        (
            "unknown integration",
            with("integration", json!("nope")),
            "integration",
        ),
        (
            "a zenofy integration",
            with("integration", json!("zenofy")),
            "integration",
        ),
        ("no integration", without("integration"), "integration"),
        (
            "empty external_id",
            with("external_id", json!("")),
            "external_id",
        ),
        (
            "blank external_id",
            with("external_id", json!("   ")),
            "external_id",
        ),
        ("no external_id", without("external_id"), "external_id"),
        ("empty product", with("product", json!("")), "product"),
        ("no product", without("product"), "product"),
    ];
    for (what, body, field) in cases {
        let reply = app.admin(Method::POST, "/v1/orders", Some(body)).await;
        assert_invalid(what, &reply, field);
    }
    let reply = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(with("zenofy", json!(true))),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown field: {:?}",
        reply.body
    );
    let reply = app.admin(Method::POST, "/v1/orders", Some(json!([]))).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "not an object: {:?}",
        reply.body
    );

    // Without a valid token: 401.
    let anonymous = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/orders")
                .header("content-type", "application/json")
                .body(Body::from(valid.to_string()))
                .unwrap(),
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, None);
    let wrong = app
        .with_token(
            "not-a-token",
            Method::POST,
            "/v1/orders",
            Some(valid.clone()),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, None);
    assert_eq!(
        orders(&app, "").await["items"],
        json!([]),
        "nothing registered"
    );

    // An `app` token registers orders; it cannot read the admin views.
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "saas backend", "scope": "app"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let reply = app
        .with_token(&token, Method::POST, "/v1/orders", Some(valid))
        .await;
    let registered = assert_order("valid", &reply, StatusCode::CREATED, "pending");
    let forbidden = app
        .with_token(&token, Method::GET, "/v1/admin/orders", None)
        .await;
    forbidden.assert_problem(StatusCode::FORBIDDEN, None);
    let forbidden = app
        .with_token(
            &token,
            Method::GET,
            &format!("/v1/admin/orders/{}", registered["id"].as_str().unwrap()),
            None,
        )
        .await;
    forbidden.assert_problem(StatusCode::FORBIDDEN, None);

    // The admin views validate their parameters.
    assert_invalid(
        "state filter",
        &app.admin(Method::GET, "/v1/admin/orders?state=bogus", None)
            .await,
        "state",
    );
    assert_invalid(
        "email filter",
        &app.admin(Method::GET, "/v1/admin/orders?email=nope", None)
            .await,
        "email",
    );
    let missing = app
        .admin(Method::GET, "/v1/admin/orders/no-such-order", None)
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND, None);
    let anonymous = app
        .send(
            Request::builder()
                .uri("/v1/admin/orders")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, None);
}

async fn admin_orders_list_filters_pagination_and_detail(app: TestApp) {
    zenofy_integration(&app).await;
    zenobank_integration(&app).await;
    zaypay_integration(&app).await;

    let zenofy = assert_delivery(
        "zenofy order",
        &app.zenofy(fixture("zenofy/order_paid.json")).await,
        "applied",
        Some("paid"),
    )["subject"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let zb = assert_order(
        "zeno bank order",
        &register(&app, ZB, ZB_ORDER, BUYER, "pro").await,
        StatusCode::CREATED,
        "pending",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let zp = assert_order(
        "zaypay order",
        &register(&app, ZP, ZP_SUBJECT, BUYER, "course").await,
        StatusCode::CREATED,
        "pending",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_delivery(
        "zaypay paid",
        &zaypay(&app, fixture("zaypay/completed.json")).await,
        "applied",
        Some("paid"),
    );

    let mut all = order_ids(&app, "").await;
    assert_eq!(all.len(), 3);
    all.sort();
    let mut expected = vec![zenofy.clone(), zb.clone(), zp.clone()];
    expected.sort();
    assert_eq!(all, expected);

    assert_eq!(order_ids(&app, &format!("?email={BUYER}")).await.len(), 2);
    assert_eq!(
        order_ids(&app, &format!("?email={ADA}")).await,
        vec![zenofy.clone()]
    );
    assert_eq!(
        order_ids(&app, "?integration=zenofy").await,
        vec![zenofy.clone()]
    );
    assert_eq!(
        order_ids(&app, &format!("?integration={ZB}")).await,
        vec![zb.clone()]
    );
    assert_eq!(
        order_ids(&app, &format!("?integration={ZP}")).await,
        vec![zp.clone()]
    );
    assert_eq!(order_ids(&app, "?state=pending").await, vec![zb.clone()]);
    assert_eq!(
        order_ids(&app, &format!("?email={BUYER}&state=paid")).await,
        vec![zp.clone()]
    );
    assert_eq!(
        order_ids(&app, "?email=nobody@example.com").await,
        Vec::<String>::new()
    );

    // Pagination walks every order once.
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let page = orders(&app, &query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{page:?}");
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={}", common::urlencode(cursor)),
            None => break,
        }
        assert!(seen.len() <= 3, "pagination does not end: {seen:?}");
    }
    seen.sort();
    assert_eq!(seen, expected);

    // The detail carries products and history.
    let detail = order(&app, &zp).await;
    assert_eq!(
        (
            &detail["integration"],
            &detail["provider"],
            &detail["external_id"],
            &detail["email"],
            &detail["products"],
            &detail["state"],
        ),
        (
            &json!(ZP),
            &json!("zaypay"),
            &json!(ZP_SUBJECT),
            &json!(BUYER),
            &json!(["course"]),
            &json!("paid"),
        ),
        "{detail:?}"
    );
    let entries = detail["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{detail:#?}");
    assert_eq!(entries[0]["source"], "registration", "{detail:#?}");
    assert_eq!(entries[1]["source"], "delivery", "{detail:#?}");

    // The customer's two products from two providers.
    assert_access(
        &app,
        "zb pending",
        (BUYER, "pro", None),
        false,
        "pending",
        Value::Null,
    )
    .await;
    assert_access(
        &app,
        "zp paid",
        (BUYER, "course", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
}

// ---------------------------------------------------------------- concurrency

/// A request to run concurrently with others.
type Pending = std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Runs every request at the same instant (each in its own task, released
/// together, spawned in the order given); the replies in that order.
async fn together(requests: Vec<Pending>) -> Vec<Reply> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// Runs `payment` and `registration` at the same instant.
async fn race(
    payment: impl Future<Output = Reply> + Send + 'static,
    registration: impl Future<Output = Reply> + Send + 'static,
    payment_first: bool,
) -> (Reply, Reply) {
    if payment_first {
        let mut replies = together(vec![Box::pin(payment), Box::pin(registration)]).await;
        let registered = replies.pop().unwrap();
        (replies.pop().unwrap(), registered)
    } else {
        let mut replies = together(vec![Box::pin(registration), Box::pin(payment)]).await;
        let paid = replies.pop().unwrap();
        (paid, replies.pop().unwrap())
    }
}

/// Checks one raced order: paid, the buyer entitled, one `paid` entry in the
/// history carrying the payment's delivery id, and answers consistent with the
/// order the two requests were serialised in.
async fn check_race(app: &TestApp, what: &str, email: &str, payment: &Reply, registration: &Reply) {
    let delivery = &payment.body["delivery_id"];
    match payment.body["outcome"].as_str() {
        Some("applied") => {
            // Registered first: the registration answered pending.
            assert_delivery(what, payment, "applied", Some("paid"));
            assert_order(what, registration, StatusCode::CREATED, "pending");
        }
        Some("unmatched") => {
            // Paid first: the registration applied it.
            assert_delivery(what, payment, "unmatched", None);
            assert_order(what, registration, StatusCode::CREATED, "paid");
        }
        _ => panic!("{what}: payment {:?}", payment.body),
    }
    let id = registration.body["id"].as_str().unwrap();
    let detail = order(app, id).await;
    assert_eq!(detail["state"], "paid", "{what}: {detail:#?}");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                delivery.clone()
            ),
        ],
        "{what}: {detail:#?}"
    );
    assert_access(
        app,
        what,
        (email, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
}

async fn concurrent_payment_and_registration_never_lose_the_payment(app: TestApp) {
    zenobank_integration(&app).await;
    zaypay_integration(&app).await;
    let app = Arc::new(app);
    let mut outcomes = Vec::new();

    for n in 0..10 {
        let order_id = format!("race-order-{n}");
        let email = format!("racer{n}@example.com");
        let body = zb_body("checkout.completed", &order_id);
        let msg = format!("msg_race_{n}");
        let payment = {
            let app = app.clone();
            async move { zenobank(&app, &msg, &body).await }
        };
        let registration = {
            let (app, order_id, email) = (app.clone(), order_id.clone(), email.clone());
            async move { register(&app, ZB, &order_id, &email, "pro").await }
        };
        let (paid, registered) = race(payment, registration, n % 2 == 0).await;
        let what = format!("zeno bank race {n}");
        check_race(&app, &what, &email, &paid, &registered).await;
        outcomes.push(paid.body["outcome"].as_str().unwrap().to_owned());
    }

    for n in 0..6 {
        let subject = format!("dddddddd-0000-4000-8000-{n:012}");
        let email = format!("zp-racer{n}@example.com");
        let body = zp_body("completed", &subject);
        let payment = {
            let app = app.clone();
            async move { zaypay(&app, body).await }
        };
        let registration = {
            let (app, subject, email) = (app.clone(), subject.clone(), email.clone());
            async move { register(&app, ZP, &subject, &email, "pro").await }
        };
        let (paid, registered) = race(payment, registration, n % 2 == 1).await;
        let what = format!("zaypay race {n}");
        check_race(&app, &what, &email, &paid, &registered).await;
        outcomes.push(paid.body["outcome"].as_str().unwrap().to_owned());
    }
    eprintln!("race outcomes: {outcomes:?}");
    assert_eq!(order_ids(&app, "?state=paid&limit=500").await.len(), 16);
    assert_eq!(order_ids(&app, "?state=pending").await.len(), 0);
}

async fn concurrent_retries_and_double_registrations_apply_once(app: TestApp) {
    zenobank_integration(&app).await;
    let app = Arc::new(app);
    for n in 0..6 {
        let order_id = format!("retry-race-{n}");
        let email = format!("retry{n}@example.com");
        let body = zb_body("checkout.completed", &order_id);
        let msg = format!("msg_retry_race_{n}");
        // Svix sends the message and retries it (same id, timestamp and
        // signature) while the backend registers the order twice.
        let ts = now_unix();
        let signature = sign(ZB_SECRET, &msg, ts, &body);
        let payment = || -> Pending {
            let (app, msg, signature, body) =
                (app.clone(), msg.clone(), signature.clone(), body.clone());
            Box::pin(async move { zenobank_svix(&app, &msg, ts, &signature, &body).await })
        };
        let registration = || -> Pending {
            let (app, order_id, email) = (app.clone(), order_id.clone(), email.clone());
            Box::pin(async move { register(&app, ZB, &order_id, &email, "pro").await })
        };
        let requests = if n % 2 == 0 {
            vec![payment(), registration(), payment(), registration()]
        } else {
            vec![registration(), payment(), registration(), payment()]
        };
        let replies = together(requests).await;
        let (payments, registrations): (Vec<_>, Vec<_>) = replies
            .iter()
            .partition(|r| r.body.get("delivery_id").is_some());
        let what = format!("retry race {n}");
        assert_eq!(payments.len(), 2, "{what}: {replies:?}");
        assert_eq!(registrations.len(), 2, "{what}: {replies:?}");

        // One message: exactly one of the two is the duplicate.
        let first: Vec<_> = payments
            .iter()
            .filter(|r| r.body["outcome"] != "duplicate")
            .collect();
        assert_eq!(first.len(), 1, "{what}: {payments:?}");
        assert!(
            ["applied", "unmatched"].contains(&first[0].body["outcome"].as_str().unwrap()),
            "{what}: {payments:?}"
        );
        for reply in &payments {
            assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
        }
        // One order: created once, the other registration returns it.
        let mut statuses: Vec<_> = registrations.iter().map(|r| r.status).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            vec![StatusCode::OK, StatusCode::CREATED],
            "{what}: {registrations:?}"
        );
        let id = &registrations[0].body["id"];
        assert_eq!(&registrations[1].body["id"], id, "{what}");

        let detail = order(&app, id.as_str().unwrap()).await;
        assert_eq!(detail["state"], "paid", "{what}: {detail:#?}");
        assert_eq!(
            history(&detail, &[]),
            vec![
                entry(
                    "registered",
                    Value::Null,
                    json!("pending"),
                    "applied",
                    Value::Null
                ),
                entry(
                    "paid",
                    json!("pending"),
                    json!("paid"),
                    "applied",
                    first[0].body["delivery_id"].clone()
                ),
            ],
            "{what}: {detail:#?}"
        );
        assert_access(
            &app,
            &what,
            (&email, "pro", None),
            true,
            "purchase",
            Value::Null,
        )
        .await;
    }
}
