//! Zeno Bank checkouts through HTTP on both databases: the integration's
//! signing secret, registered checkouts paid at once, Standard Webhooks
//! signatures and timestamps (`svix-*` and `webhook-*` headers, key rotation),
//! message-id dedup, expired and partially paid checkouts.
//! Fixtures: `fixtures/zenobank/`.

mod common;

use axum::http::{Method, StatusCode};
use common::orders::{
    BUYER, ZB, ZB_ORDER, ZB_SECRET, assert_access, assert_delivery, assert_order,
    assert_webhook_unauthorized, deliveries, entry, history, now_unix, order, order_ids, parse,
    register, zb_body, zenobank, zenobank_integration, zenobank_raw, zenobank_svix,
};
use common::{TestApp, fixture, fixture_json, standard_webhooks_signature as sign};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

on_both_databases!(
    zenobank_secret_must_be_a_signing_secret,
    zenobank_registered_checkout_completed_entitles_at_once,
    zenobank_signatures_timestamps_and_replays,
    zenobank_expired_and_partially_paid,
);

/// Another valid signing secret: the key before a rotation.
const OLD_ZB_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

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
        reply.assert_invalid(bad, "secret");
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
        let signature = sign(ZB_SECRET, "msg_sig_2_ts", &timestamp, &body);
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
