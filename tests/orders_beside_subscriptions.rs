//! DESIGN.md "An order never outlives the subscription it paid for", over
//! HTTP: a Zenofy SaaS product whose payments also arrive as `order_paid` to
//! the same integration. The subscription decides; the order stays `paid` and
//! is listed with an empty window. Through another integration, or for a
//! product with no subscription, an order is a purchase as before.

mod common;

use axum::http::{Method, StatusCode};
use common::{SECRET, TestApp, fixture_json};
use serde_json::{Value, json};

const BUYER: &str = "buyer@example.com";
/// During the subscription's first period.
const IN_PERIOD: &str = "2026-05-15T00:00:00Z";
/// The subscription's period end plus the default grace (3 days).
const PERIOD_END_AND_GRACE: &str = "2026-06-04T08:00:00Z";

on_both_databases!(
    an_order_beside_its_subscription_follows_the_subscription,
    the_same_order_through_another_integration_is_a_purchase,
    an_order_of_a_product_without_a_subscription_is_a_purchase,
);

/// A Zenofy fixture for the buyer (orders carry the email in `customer`).
fn zenofy(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = fixture_json(&format!("zenofy/{name}.json"));
    if body["customer"].is_object() {
        body["customer"]["email"] = json!(BUYER);
    }
    edit(&mut body);
    serde_json::to_vec(&body).unwrap()
}

/// Posts to another Zenofy integration, `shop`, selling the same product.
async fn shop(app: &TestApp, body: Vec<u8>) -> Value {
    let made = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop",
            Some(json!({
                "provider": "zenofy",
                "secret": SECRET,
                "product_map": {"507f1f77bcf86cd799439011": "pro"}
            })),
        )
        .await;
    assert!(made.status.is_success(), "{:?}", made.body);
    let reply = app
        .webhook("/v1/webhooks/shop", &[("x-webhook-secret", SECRET)], body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn applied(app: &TestApp, body: Vec<u8>) -> Value {
    let reply = app.zenofy(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    reply.body
}

/// `(entitled, reason, valid_until)` of the buyer's `pro` at `at`, and the
/// answer.
async fn access(app: &TestApp, at: &str) -> ((Value, Value, Value), Value) {
    let reply = app.access(BUYER, "pro", Some(at)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let b = reply.body;
    (
        (
            b["entitled"].clone(),
            b["reason"].clone(),
            b["valid_until"].clone(),
        ),
        b,
    )
}

/// The order among an answer's sources.
fn order_source(answer: &Value) -> Value {
    answer["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "order")
        .cloned()
        .unwrap_or_else(|| panic!("no order among {answer:?}"))
}

/// The case: activated, `order_paid` for the same product, then
/// canceled or expired: never `purchase`, and a year later not entitled.
async fn an_order_beside_its_subscription_follows_the_subscription(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, zenofy("subscription.activated", |_| {})).await;
    applied(&app, zenofy("order_paid", |_| {})).await;

    // Active: the subscription speaks, with its own valid_until.
    let (answer, body) = access(&app, IN_PERIOD).await;
    assert_eq!(
        answer,
        (json!(true), json!("active"), json!(PERIOD_END_AND_GRACE))
    );
    let order = order_source(&body);
    assert_eq!(order["state"], "paid");
    assert_eq!(order["integration"], "zenofy");
    assert_eq!(order["access_from"], "2026-05-01T08:42:18Z");
    assert_eq!(
        order["access_until"], order["access_from"],
        "an empty window"
    );

    // Past the period and its grace: period_ended, not purchase.
    let (answer, _) = access(&app, "2027-06-01T00:00:00Z").await;
    assert_eq!(
        answer,
        (
            json!(false),
            json!("period_ended"),
            json!(PERIOD_END_AND_GRACE)
        )
    );

    // Canceled (access ends at once by default): not entitled, even though
    // the order was the last source to change before it.
    applied(&app, zenofy("subscription.canceled", |_| {})).await;
    let (answer, body) = access(&app, IN_PERIOD).await;
    assert_eq!(answer, (json!(false), json!("canceled"), Value::Null));
    assert_eq!(order_source(&body)["state"], "paid");

    // Expired, a year later: the subscription's state speaks.
    applied(&app, zenofy("subscription.expired", |_| {})).await;
    let (answer, _) = access(&app, "2027-06-01T00:00:00Z").await;
    assert_eq!(answer, (json!(false), json!("expired"), Value::Null));

    // The customer's entitlements say the same, and the change log never
    // showed a purchase.
    let reply = app
        .admin(
            Method::GET,
            &format!("/v1/customers/{BUYER}/entitlements"),
            None,
        )
        .await;
    assert_eq!(
        reply.body["items"][0]["reason"], "expired",
        "{:?}",
        reply.body
    );
    let changes = app
        .admin(
            Method::GET,
            "/v1/admin/changes?email=buyer%40example.com",
            None,
        )
        .await;
    let reasons: Vec<&Value> = changes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["answer"]["reason"])
        .collect();
    assert!(!reasons.contains(&&json!("purchase")), "{reasons:?}");
}

/// The same payment through another integration is a purchase of its own:
/// lifetime access (no `purchase_access_seconds`), whatever the subscription.
async fn the_same_order_through_another_integration_is_a_purchase(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, zenofy("subscription.activated", |_| {})).await;
    let reply = shop(&app, zenofy("order_paid", |_| {})).await;
    assert_eq!(reply["outcome"], "applied", "{reply:?}");
    applied(&app, zenofy("subscription.canceled", |_| {})).await;

    let (answer, body) = access(&app, "2027-06-01T00:00:00Z").await;
    assert_eq!(answer, (json!(true), json!("purchase"), Value::Null));
    let order = order_source(&body);
    assert_eq!(order["integration"], "shop");
    assert_eq!(order["access_until"], Value::Null, "for ever");
}

/// An order of a product its integration sells no subscription for is a
/// purchase, beside a subscription of another product.
async fn an_order_of_a_product_without_a_subscription_is_a_purchase(app: TestApp) {
    app.zenofy_integration().await;
    applied(&app, zenofy("subscription.activated", |_| {})).await;
    applied(
        &app,
        zenofy("order_paid", |body| {
            body["items"][0]["productId"] = json!("course-101");
        }),
    )
    .await;
    applied(&app, zenofy("subscription.expired", |_| {})).await;

    let reply = app
        .access(BUYER, "course-101", Some("2027-06-01T00:00:00Z"))
        .await;
    assert_eq!(
        (&reply.body["entitled"], &reply.body["reason"]),
        (&json!(true), &json!("purchase")),
        "{:?}",
        reply.body
    );
    let (answer, _) = access(&app, "2027-06-01T00:00:00Z").await;
    assert_eq!(answer, (json!(false), json!("expired"), Value::Null));
}
