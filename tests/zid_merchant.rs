//! Zid merchant events through HTTP (DESIGN.md "Order state machine", "Zid
//! merchant events"): the bare store entities Zid sends with no event name, as
//! documented (`fixtures/zid/merchant/`), with `?token=` and with HTTP Basic
//! auth. Orders become orders of the integration; every other entity is
//! `ignored`, and nothing documented is ever answered 4xx: Zid suspends an
//! endpoint after 30 failures in an hour, and the app's own events with it.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Reply, TestApp, fixture, fixture_json};
use serde_json::{Value, json};

const SECRET: &str = "zid-merchant-password-0123";
/// The documented order's id and its one product.
const ORDER: &str = "25304285";
const PRODUCT_ID: &str = "23edd6a6-3533-495d-8ffc-7f9e7c8c1f6a";
/// The product key the integration maps it to.
const PRODUCT: &str = "zid-course";
const BUYER: &str = "example.user@email.com";

on_both_databases!(
    every_documented_merchant_event_is_answered_by_token_and_by_basic_auth,
    a_merchant_orders_whole_life,
    a_merchant_order_out_of_order,
    orders_that_end_unpaid,
    an_order_without_an_email_is_unmatched_until_registered,
);

// ---------------------------------------------------------------- helpers

/// Integration `id` for Zid, mapping the order's product and the app.
async fn zid_integration(app: &TestApp, id: &str) {
    let reply = app
        .admin(
            Method::PUT,
            &format!("/v1/admin/integrations/{id}"),
            Some(json!({
                "provider": "zid",
                "secret": SECRET,
                "product_map": {PRODUCT_ID: PRODUCT, "1292": "zid-app"}
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// How a delivery is authenticated.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Token,
    Basic,
}

/// Posts a body to integration `id` as Zid does.
async fn post(app: &TestApp, id: &str, auth: Auth, body: impl Into<Vec<u8>>) -> Reply {
    match auth {
        Auth::Token => {
            app.webhook(
                &format!("/v1/webhooks/{id}?token={SECRET}"),
                &[("content-type", "application/json")],
                body,
            )
            .await
        }
        Auth::Basic => {
            let basic = format!("Basic {}", BASE64.encode(format!("user:{SECRET}")));
            app.webhook(
                &format!("/v1/webhooks/{id}"),
                &[
                    ("content-type", "application/json"),
                    ("authorization", &basic),
                ],
                body,
            )
            .await
        }
    }
}

/// A merchant fixture's bytes.
fn merchant(name: &str) -> Vec<u8> {
    fixture(&format!("zid/merchant/{name}.json"))
}

/// A merchant fixture with top-level fields replaced.
fn merchant_with(name: &str, fields: Value) -> Vec<u8> {
    let mut body = fixture_json(&format!("zid/merchant/{name}.json"));
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

/// Asserts a 200 with this outcome, and the subject's state when one is given.
fn assert_outcome(what: &str, reply: &Reply, outcome: &str, state: Option<&str>) {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    assert_eq!(reply.body["outcome"], outcome, "{what}: {:?}", reply.body);
    match state {
        Some(state) => {
            assert_eq!(reply.body["subject"]["kind"], "order", "{what}");
            assert_eq!(reply.body["subject"]["state"], state, "{what}");
        }
        None => assert_eq!(reply.body["subject"], Value::Null, "{what}"),
    }
}

/// The access answer for the buyer and the product.
async fn access(app: &TestApp) -> (Value, Value) {
    let reply = app.access(BUYER, PRODUCT, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    (reply.body["entitled"].clone(), reply.body["reason"].clone())
}

/// The one order of integration `zid`, with its history.
async fn the_order(app: &TestApp) -> Value {
    let list = app
        .admin(
            Method::GET,
            "/v1/admin/orders?email=example.user%40email.com",
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let id = items[0]["id"].as_str().unwrap();
    let detail = app
        .admin(Method::GET, &format!("/v1/admin/orders/{id}"), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{:?}", detail.body);
    detail.body
}

/// `(event, from_state, to_state, outcome)` of each history entry.
fn history(order: &Value) -> Vec<(String, Value, Value, String)> {
    order["history"]
        .as_array()
        .unwrap()
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

// ---------------------------------------------------------------- every event

/// The 16 merchant events as documented, each to an integration that takes it
/// by `?token=` and to one that takes it by Basic auth: the orders become
/// orders, every other entity is ignored naming it; no 4xx, no subscription,
/// and the integration still takes the app's own events after.
async fn every_documented_merchant_event_is_answered_by_token_and_by_basic_auth(app: TestApp) {
    let ignored = [
        ("product.create", "zid product event"),
        ("product.update", "zid product event"),
        ("product.publish", "zid product event"),
        ("product.delete", "zid product event"),
        ("customer.create", "zid customer event"),
        ("customer.update", "zid customer event"),
        ("customer.login", "zid customer event"),
        ("customer.merchant.update", "zid customer event"),
        ("abandoned_cart.created", "zid abandoned cart event"),
        ("abandoned_cart.completed", "zid abandoned cart event"),
        ("category.create", "zid category event"),
        ("category.update", "zid category event"),
        ("category.delete", "zid category event"),
    ];
    for (integration, auth) in [("zid-token", Auth::Token), ("zid-basic", Auth::Basic)] {
        zid_integration(&app, integration).await;
        // The three order events, in the order a store sends them.
        let create = post(&app, integration, auth, merchant("order.create")).await;
        assert_outcome("order.create", &create, "applied", Some("pending"));
        assert_eq!(create.body["reason"], Value::Null);
        let paid = post(
            &app,
            integration,
            auth,
            merchant("order.payment_status.update"),
        )
        .await;
        assert_outcome("payment", &paid, "applied", Some("paid"));
        let status = post(&app, integration, auth, merchant("order.status.update")).await;
        assert_outcome("status update", &status, "duplicate", Some("paid"));

        let mut sent = Vec::new();
        for (name, reason) in ignored {
            let body = merchant(name);
            let reply = post(&app, integration, auth, body.clone()).await;
            // A login sends the customer as an update did, a deletion the
            // category as its last update: the very same bytes again.
            if sent.contains(&body) {
                assert_outcome(name, &reply, "duplicate", None);
                continue;
            }
            sent.push(body);
            assert_outcome(name, &reply, "ignored", None);
            let said = reply.body["reason"].as_str().unwrap();
            assert!(said.contains(reason), "{name} by {auth:?}: {said:?}");
            // Stored, as every authenticated delivery, with its event named
            // and the Basic credentials redacted.
            let id = reply.body["delivery_id"].as_str().unwrap();
            let stored = app
                .admin(Method::GET, &format!("/v1/admin/deliveries/{id}"), None)
                .await;
            assert_eq!(stored.body["event"], reason, "{name}");
            assert_eq!(stored.body["outcome"], "ignored");
            if let Auth::Basic = auth {
                assert_eq!(stored.body["headers"]["authorization"], "[REDACTED]");
            }
        }

        // The app's own subscription events still work on that integration.
        let active = post(
            &app,
            integration,
            auth,
            fixture("zid/app.market.subscription.active.json"),
        )
        .await;
        assert_eq!(active.body["outcome"], "applied", "{:?}", active.body);
        assert_eq!(active.body["subject"]["kind"], "subscription");
    }

    // No merchant event made a subscription: one per integration, the app's.
    let subscriptions = app
        .admin(Method::GET, "/v1/admin/subscriptions", None)
        .await;
    let items = subscriptions.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|s| s["product"] == "zid-app"), "{items:?}");
    // The orders: one per integration, paid, for the buyer's product.
    let orders = app
        .admin(Method::GET, "/v1/admin/orders?state=paid", None)
        .await;
    let items = orders.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    for order in items {
        assert_eq!(order["provider"], "zid");
        assert_eq!(order["external_id"], ORDER);
        assert_eq!(order["email"], BUYER);
        assert_eq!(order["products"], json!([PRODUCT]));
    }
    // A shopper's login is no customer of ours.
    let reply = app
        .access("osama.customer@example.com", PRODUCT, None)
        .await;
    assert_eq!(reply.body["reason"], "no_entitlement", "{:?}", reply.body);
}

// ---------------------------------------------------------------- one order's life

/// Created pending, paid, fulfilment updates, reversals, refunded, then a
/// cancellation noted: the access answer and the history at each step.
async fn a_merchant_orders_whole_life(app: TestApp) {
    zid_integration(&app, "zid").await;
    let auth = Auth::Basic;

    let reply = post(&app, "zid", auth, merchant("order.create")).await;
    assert_outcome("created", &reply, "applied", Some("pending"));
    assert_eq!(access(&app).await, (json!(false), json!("pending")));

    let reply = post(&app, "zid", auth, merchant("order.payment_status.update")).await;
    assert_outcome("paid", &reply, "applied", Some("paid"));
    assert_eq!(access(&app).await, (json!(true), json!("purchase")));
    let order = the_order(&app).await;
    let paid_at = order["paid_at"].as_str().unwrap().to_owned();
    assert!(order["paid_at"].is_string(), "{order:?}");

    // Fulfilment: preparing, then delivered, both still paid.
    let reply = post(&app, "zid", auth, merchant("order.status.update")).await;
    assert_outcome("preparing", &reply, "duplicate", Some("paid"));
    let delivered = merchant_with(
        "order.status.update",
        json!({"order_status": {"name": "Delivered", "code": "delivered"}, "updated_at": "2026-01-31 10:00:00"}),
    );
    let reply = post(&app, "zid", auth, delivered).await;
    assert_outcome("delivered", &reply, "duplicate", Some("paid"));

    // A reversal under way: with the payment still `paid` the first matching
    // row is `paid` (nothing new); without a payment status it is noted.
    let reply = post(
        &app,
        "zid",
        auth,
        merchant("order-life.reverse_in_progress"),
    )
    .await;
    assert_outcome("reversal, paid", &reply, "duplicate", Some("paid"));
    let reversal = merchant_with(
        "order-life.reverse_in_progress",
        json!({"order_status": {"name": "x", "code": "canceledReversal"}, "payment_status": null}),
    );
    let reply = post(&app, "zid", auth, reversal).await;
    assert_outcome("reversal canceled", &reply, "noted", Some("paid"));
    assert_eq!(access(&app).await, (json!(true), json!("purchase")));

    let reply = post(&app, "zid", auth, merchant("order-life.refunded")).await;
    assert_outcome("refunded", &reply, "applied", Some("refunded"));
    assert_eq!(access(&app).await, (json!(false), json!("refunded")));

    let reply = post(&app, "zid", auth, merchant("order-life.cancelled")).await;
    assert_outcome(
        "cancelled after the refund",
        &reply,
        "noted",
        Some("refunded"),
    );

    let order = the_order(&app).await;
    assert_eq!(order["state"], "refunded");
    assert_eq!(order["paid_at"], paid_at.as_str(), "the payment time stays");
    assert_eq!(
        history(&order),
        vec![
            entry("progressed", Value::Null, json!("pending"), "applied"),
            entry("paid", json!("pending"), json!("paid"), "applied"),
            entry("paid", json!("paid"), json!("paid"), "duplicate"),
            entry("paid", json!("paid"), json!("paid"), "duplicate"),
            entry("paid", json!("paid"), json!("paid"), "duplicate"),
            entry("informational", json!("paid"), json!("paid"), "noted"),
            entry("refunded", json!("paid"), json!("refunded"), "applied"),
            entry("canceled", json!("refunded"), json!("refunded"), "noted"),
        ]
    );
}

/// The payment arrives before the creation: first sight creates the order
/// paid, and the late creation is stale.
async fn a_merchant_order_out_of_order(app: TestApp) {
    zid_integration(&app, "zid").await;
    let reply = post(&app, "zid", Auth::Token, merchant("order.status.update")).await;
    assert_outcome("paid first", &reply, "applied", Some("paid"));
    let reply = post(&app, "zid", Auth::Token, merchant("order.create")).await;
    assert_outcome("created late", &reply, "stale", Some("paid"));
    assert_eq!(access(&app).await, (json!(true), json!("purchase")));
    assert_eq!(
        history(&the_order(&app).await),
        vec![
            entry("paid", Value::Null, json!("paid"), "applied"),
            entry("progressed", json!("paid"), json!("paid"), "stale"),
        ]
    );
}

/// Canceled, voided, denied and failed orders end canceled; an expired one
/// expired; a payment after either is rejected.
async fn orders_that_end_unpaid(app: TestApp) {
    zid_integration(&app, "zid").await;
    let cases = [
        (
            "1001",
            json!({"name": "Canceled", "code": "canceled"}),
            "canceled",
        ),
        ("1002", json!("Voided"), "canceled"),
        ("1003", json!({"name": "x", "code": "DENIED"}), "canceled"),
        ("1004", json!({"name": "x", "code": "failed"}), "canceled"),
        ("1005", json!({"name": "x", "code": "expired"}), "expired"),
    ];
    for (id, status, state) in cases {
        let created = merchant_with("order.create", json!({"id": id.parse::<i64>().unwrap()}));
        let reply = post(&app, "zid", Auth::Token, created).await;
        assert_outcome(id, &reply, "applied", Some("pending"));
        let ended = merchant_with(
            "order.create",
            json!({"id": id, "order_status": status, "payment_status": "pending"}),
        );
        let reply = post(&app, "zid", Auth::Token, ended).await;
        assert_outcome(id, &reply, "applied", Some(state));
        let paid = merchant_with(
            "order.create",
            json!({"id": id, "order_status": {"name": "New", "code": "new"}, "payment_status": "paid"}),
        );
        let reply = post(&app, "zid", Auth::Token, paid).await;
        assert_outcome(id, &reply, "rejected", Some(state));
        let reason = reply.body["reason"].as_str().unwrap();
        assert!(reason.contains(state), "{id}: {reason}");
    }
    let reply = app.access(BUYER, PRODUCT, None).await;
    assert_eq!(reply.body["entitled"], false, "{:?}", reply.body);
    assert_eq!(reply.body["sources"].as_array().unwrap().len(), 5);
}

/// A marketplace order's masked customer has no email: `unmatched`, stored;
/// registering it (`POST /v1/orders`) applies what arrived, in order.
async fn an_order_without_an_email_is_unmatched_until_registered(app: TestApp) {
    zid_integration(&app, "zid").await;
    let created = post(&app, "zid", Auth::Basic, merchant("order-life.no-email")).await;
    assert_outcome("no email", &created, "unmatched", None);
    let reason = created.body["reason"].as_str().unwrap();
    assert!(reason.contains("POST /v1/orders"), "{reason}");
    let paid = merchant_with(
        "order-life.no-email",
        json!({"payment_status": "paid", "updated_at": "2026-02-04 15:00:00"}),
    );
    let paid = post(&app, "zid", Auth::Basic, paid).await;
    assert_outcome("no email, paid", &paid, "unmatched", None);
    assert_eq!(access(&app).await, (json!(false), json!("no_entitlement")));

    let registered = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(json!({"integration": "zid", "external_id": ORDER, "email": BUYER, "product": PRODUCT})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    assert_eq!(registered.body["state"], "paid");
    assert_eq!(registered.body["provider"], "zid");
    assert_eq!(registered.body["products"], json!([PRODUCT]));
    assert_eq!(access(&app).await, (json!(true), json!("purchase")));
    let order = the_order(&app).await;
    let deliveries: Vec<Value> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["delivery_id"].clone())
        .collect();
    assert_eq!(
        deliveries,
        vec![
            Value::Null,
            created.body["delivery_id"].clone(),
            paid.body["delivery_id"].clone()
        ]
    );
    assert_eq!(
        history(&order),
        vec![
            entry("registered", Value::Null, json!("pending"), "applied"),
            entry(
                "progressed",
                json!("pending"),
                json!("pending"),
                "duplicate"
            ),
            entry("paid", json!("pending"), json!("paid"), "applied"),
        ]
    );
}
