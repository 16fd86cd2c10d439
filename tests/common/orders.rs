//! What the order tests share: the Zenofy, Zeno Bank and ZayPay integrations
//! and posting to them (Zeno Bank messages signed by
//! [`super::standard_webhooks_signature`]), the registration of orders, the
//! admin order and delivery views, and the assertions on their answers.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::standard_webhooks_signature as sign;
use super::{Reply, SECRET, TestApp, fixture_json};

/// The sample's buyer.
pub const ADA: &str = "ada@example.com";

/// The sample item's product id, mapped to `pro`.
pub const ZENOFY_PRODUCT_ID: &str = "507f1f77bcf86cd799439011";

/// A bump product's id, mapped to `bonus`.
pub const BUMP_PRODUCT_ID: &str = "5f0c0ffee0ddba11c0ffee01";

/// The Zeno Bank integration and its signing secret (the Standard Webhooks
/// known-answer secret).
pub const ZB: &str = "zb";
pub const ZB_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The Zeno Bank sample's order.
pub const ZB_ORDER: &str = "order-12345";

/// The ZayPay integration and the token in its URL.
pub const ZP: &str = "zp";
pub const ZP_TOKEN: &str = "zaypay-url-token-0123456789";

/// The ZayPay sample's order UUID.
pub const ZP_SUBJECT: &str = "c9d5e882-5ea9-47de-8e49-08b4fe35056e";

/// The buyer of the registered orders (their payloads carry no email).
pub const BUYER: &str = "buyer@example.com";

/// Creates integration `zenofy` with the shared test secret, mapping the
/// sample's product to `pro` and the bump product to `bonus`.
pub async fn zenofy_integration(app: &TestApp) {
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

/// Creates the Zeno Bank integration `zb` with `ZB_SECRET`.
pub async fn zenobank_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{ZB}"),
            Some(json!({"provider": "zenobank", "secret": ZB_SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// Creates the ZayPay integration `zp` with `ZP_TOKEN`.
pub async fn zaypay_integration(app: &TestApp) {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{ZP}"),
            Some(json!({"provider": "zaypay", "secret": ZP_TOKEN})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

// ---------------------------------------------------------------- deliveries

/// Unix seconds now, by the same clock the server checks against.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Posts a body to the Zeno Bank integration with exactly these headers (plus
/// the content type).
pub async fn zenobank_raw(app: &TestApp, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    app.webhook(&format!("/v1/webhooks/{ZB}"), &all, body.to_vec())
        .await
}

/// `svix-*` headers for one message.
pub async fn zenobank_svix(
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
pub async fn zenobank(app: &TestApp, id: &str, body: &[u8]) -> Reply {
    let ts = now_unix();
    zenobank_svix(app, id, ts, &sign(ZB_SECRET, id, ts, body), body).await
}

/// A Zeno Bank fixture (`checkout.completed`, …) for another order id.
pub fn zb_body(kind: &str, order_id: &str) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenobank/{kind}.json"));
    body["data"]["orderId"] = json!(order_id);
    serde_json::to_vec(&body).unwrap()
}

/// Posts a body to the ZayPay integration with the right token.
pub async fn zaypay(app: &TestApp, body: impl Into<Vec<u8>>) -> Reply {
    app.webhook(
        &format!("/v1/webhooks/{ZP}?token={ZP_TOKEN}"),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

// ---------------------------------------------------------------- the views

/// `POST /v1/orders` with the admin token (which covers the `app` scope).
pub async fn register(
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

/// `GET /v1/admin/orders{query}`, expected to succeed.
pub async fn orders(app: &TestApp, query: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/orders{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    reply.body
}

/// The ids of `GET /v1/admin/orders{query}`, in the order listed.
pub async fn order_ids(app: &TestApp, query: &str) -> Vec<String> {
    orders(app, query).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/admin/orders/{id}`, expected to succeed.
pub async fn order(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/orders/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["id"], id);
    reply.body
}

/// `GET /v1/admin/deliveries{query}` items, expected to succeed.
pub async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/deliveries{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    reply.body["items"].as_array().expect("items").clone()
}

/// `GET /v1/admin/deliveries/{id}`, expected to succeed.
pub async fn delivery(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/deliveries/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// One history entry: `(event, from_state, to_state, outcome, delivery_id)`.
pub type Entry = (String, Value, Value, String, Value);

pub fn entry(event: &str, from: Value, to: Value, outcome: &str, delivery: Value) -> Entry {
    (event.to_owned(), from, to, outcome.to_owned(), delivery)
}

/// An order's history entries, oldest first, leaving out entries of the
/// deliveries in `redeliveries` (the very same message again need not reach the
/// history).
pub fn history(detail: &Value, redeliveries: &[&Value]) -> Vec<Entry> {
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

// ---------------------------------------------------------------- assertions

/// Asserts an order answer with this status and state; returns the body.
pub fn assert_order(what: &str, reply: &Reply, status: StatusCode, state: &str) -> Value {
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
pub fn assert_delivery(what: &str, reply: &Reply, outcome: &str, state: Option<&str>) -> Value {
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
pub fn assert_webhook_unauthorized(what: &str, reply: &Reply) {
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

/// Asserts `entitled`, `reason` and `valid_until` of an access answer; returns it.
pub async fn assert_access(
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

/// An RFC 3339 instant from a response.
pub fn parse(at: &str) -> OffsetDateTime {
    OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("{at:?}: {e}"))
}
