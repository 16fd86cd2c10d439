//! A Zenofy subscription's life through HTTP: each delivery's answer, the
//! subscription's state and history, and the access answer that follows.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, fixture, fixture_json};
use serde_json::{Value, json};

on_both_databases!(full_lifecycle_drives_state_history_and_access,);

/// The deliveries of a subscription's life, in order, with what each must do.
async fn full_lifecycle_drives_state_history_and_access(app: TestApp) {
    app.zenofy_integration().await;
    let steps: [(&str, &str, &str); 5] = [
        ("zenofy/subscription.created.json", "applied", "pending"),
        ("zenofy/subscription.activated.json", "applied", "active"),
        ("zenofy/subscription.renewed.json", "applied", "active"),
        ("zenofy/subscription.suspended.json", "applied", "suspended"),
        ("zenofy/subscription.expired.json", "applied", "expired"),
    ];
    let mut subscription_id = Value::Null;
    for (path, outcome, state) in steps {
        let reply = app.zenofy(fixture(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
        assert_eq!(reply.body["outcome"], outcome, "{path}: {:?}", reply.body);
        assert_eq!(reply.body["subject"]["kind"], "subscription");
        assert_eq!(reply.body["subject"]["state"], state, "{path}");
        if subscription_id.is_null() {
            subscription_id = reply.body["subject"]["id"].clone();
        }
        assert_eq!(
            reply.body["subject"]["id"], subscription_id,
            "one subscription throughout"
        );
    }
    let detail = app.subscription(subscription_id.as_str().unwrap()).await;
    assert_eq!(detail["state"], "expired");
    assert_eq!(detail["email"], "buyer@example.com");
    assert_eq!(detail["product"], "pro");
    assert_eq!(detail["current_period_end"], "2026-07-01T08:00:00Z");
    let history: Vec<_> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap(),
                h["from_state"].clone(),
                h["to_state"].clone(),
                h["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("created", Value::Null, json!("pending"), "applied"),
            ("activated", json!("pending"), json!("active"), "applied"),
            ("renewed", json!("active"), json!("active"), "applied"),
            ("suspended", json!("active"), json!("suspended"), "applied"),
            ("expired", json!("suspended"), json!("expired"), "applied"),
        ]
    );

    // While it was active (before expiry), as far as we know now: expired, so no.
    let now = app.access("Buyer@Example.com", "pro", None).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(now.body["entitled"], false);
    assert_eq!(now.body["reason"], "expired");
    assert_eq!(now.body["sources"][0]["state"], "expired");
    let _ = Method::GET;
    let _ = fixture_json;
}
