//! Zenofy order webhooks through HTTP on both databases: first sight of an
//! order creates it, every item's product is granted, a refund or a
//! cancellation revokes, and a later payment of a cancelled order is rejected;
//! the product's `purchase_access_seconds` bounds a purchase.
//! Fixtures: `fixtures/zenofy/order_*.json`.

mod common;

use axum::http::{Method, StatusCode};
use common::orders::{
    ADA, BUMP_PRODUCT_ID, BUYER, ZENOFY_PRODUCT_ID, assert_access, assert_delivery, entry, history,
    order, order_ids, orders, zenofy_integration,
};
use common::{TestApp, fixture, variant};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    zenofy_order_paid_entitles_every_item_and_refund_revokes,
    zenofy_order_cancelled_revokes_and_a_later_payment_is_rejected,
    purchase_access_seconds_bounds_a_purchase_and_recomputes_rows,
);

/// Zenofy's sample order (`order_paid.json`, `order_refunded.json`).
const ZENOFY_ORDER: &str = "673f92b2c3d94a0012abcd01";

/// The sample's `paidAt` (2026-05-01T10:42:18+02:00) in UTC.
const ZENOFY_PAID_AT: &str = "2026-05-01T08:42:18Z";

// ---------------------------------------------------------------- helpers

/// A Zenofy order fixture with some fields changed, as bytes.
fn zenofy_variant(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    variant(&format!("zenofy/{name}.json"), edit)
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

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

// ---------------------------------------------------------------- Zenofy orders

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

// ---------------------------------------------------------------- the purchase access policy

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
        reply.assert_invalid(&format!("{bad}"), "purchase_access_seconds");
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
