//! The admin order views on both databases: orders from Zenofy, Zeno Bank and
//! ZayPay listed together, filtered by email, integration and state, walked
//! page by page, and one order's detail with its products and history.

mod common;

use axum::http::StatusCode;
use common::orders::{
    ADA, BUYER, ZB, ZB_ORDER, ZP, ZP_SUBJECT, assert_access, assert_delivery, assert_order, order,
    order_ids, orders, register, zaypay, zaypay_integration, zenobank_integration,
    zenofy_integration,
};
use common::{TestApp, fixture};
use serde_json::{Value, json};

on_both_databases!(admin_orders_list_filters_pagination_and_detail);

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
