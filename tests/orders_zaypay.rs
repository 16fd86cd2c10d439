//! ZayPay order status changes through HTTP on both databases: the `?token=`
//! authentication, a registered order's lifecycle, and deliveries for orders
//! not yet registered, applied in arrival order by the registration.
//! Fixtures: `fixtures/zaypay/`.

mod common;

use axum::http::StatusCode;
use common::lifecycle::zaypay_event;
use common::orders::{
    BUYER, ZP, ZP_SUBJECT, ZP_TOKEN, assert_access, assert_delivery, assert_order,
    assert_webhook_unauthorized, entry, history, order, order_ids, orders, register, zaypay,
    zaypay_integration,
};
use common::{TestApp, fixture, fixture_json};
use serde_json::{Value, json};

on_both_databases!(
    zaypay_order_lifecycle_with_token_auth,
    zaypay_unregistered_deliveries_apply_in_arrival_order,
);

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
            zaypay_event("completed", "0b5e7a9c-0000-4000-8000-000000000001"),
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
        &zaypay(&app, zaypay_event("completed", a)).await,
        "unmatched",
        None,
    );
    let a_initiated = assert_delivery(
        "A refund_initiated",
        &zaypay(&app, zaypay_event("refund_initiated", a)).await,
        "unmatched",
        None,
    );
    // B: paid and refunded before the registration.
    let b_paid = assert_delivery(
        "B completed",
        &zaypay(&app, zaypay_event("completed", b)).await,
        "unmatched",
        None,
    );
    let b_refunded = assert_delivery(
        "B refund_completed",
        &zaypay(&app, zaypay_event("refund_completed", b)).await,
        "unmatched",
        None,
    );
    // C: only waiting for the deposit.
    let c_pending = assert_delivery(
        "C transfer_pending",
        &zaypay(&app, zaypay_event("transfer_pending", c)).await,
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
        &zaypay(&app, zaypay_event("completed", c)).await,
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
        &zaypay(&app, zaypay_event("creation_blocked", d)).await,
        "applied",
        Some("canceled"),
    );
    assert_delivery(
        "D completed after the block",
        &zaypay(&app, zaypay_event("completed", d)).await,
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
