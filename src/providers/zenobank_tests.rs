//! Zeno Bank adapter: fixtures from the provider docs (see
//! `fixtures/zenobank/README.md`), variants built by editing the JSON, and
//! Standard Webhooks signatures computed here over the exact bytes.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::macros::datetime;

use super::*;
use crate::domain::Provider;

const COMPLETED: &[u8] = include_bytes!("../../fixtures/zenobank/checkout.completed.json");
const EXPIRED: &[u8] = include_bytes!("../../fixtures/zenobank/checkout.expired.json");
const PARTIALLY_PAID: &[u8] =
    include_bytes!("../../fixtures/zenobank/checkout.partially_paid.json");

// ---------------------------------------------------------------- helpers

/// A fixture with `edit` applied to its top-level object, serialised again.
fn edited(fixture: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(fixture).expect("fixture is JSON");
    edit(value.as_object_mut().expect("fixture is an object"));
    serde_json::to_vec(&value).unwrap()
}

/// A fixture with `data.<field>` set (or added).
fn with_data(fixture: &[u8], field: &str, value: Value) -> Vec<u8> {
    edited(fixture, |o| {
        o["data"][field] = value;
    })
}

fn order(body: &[u8]) -> OrderEvent {
    match parse(body) {
        Ok(Parsed {
            meaning: Meaning::Order(event),
            ..
        }) => event,
        other => panic!("expected an order event, got {other:?}"),
    }
}

fn expected(external_id: &str, event: Event) -> Meaning {
    Meaning::Order(OrderEvent {
        external_id: external_id.to_owned(),
        event,
        paid_at: None,
        buyer: None,
    })
}

/// Parsing fails, on `field`, with a detail that names it.
fn assert_malformed(body: &[u8], field: &str) -> Malformed {
    let err = parse(body).expect_err("should be malformed");
    assert_eq!(err.field.as_deref(), Some(field), "{err:?}");
    assert!(
        err.detail.contains(field),
        "detail {:?} should name `{field}`",
        err.detail
    );
    err
}

// ---------------------------------------------------------------- the three types

#[test]
fn completed_is_paid_keyed_by_order_id() {
    let parsed = parse(COMPLETED).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("checkout.completed"));
    assert_eq!(parsed.meaning, expected("order-12345", Event::Paid));
}

#[test]
fn expired_is_expired_keyed_by_order_id() {
    let parsed = parse(EXPIRED).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("checkout.expired"));
    assert_eq!(parsed.meaning, expected("order-67890", Event::Expired));
}

#[test]
fn partially_paid_is_informational() {
    let parsed = parse(PARTIALLY_PAID).unwrap();
    assert_eq!(
        parsed.event_name.as_deref(),
        Some("checkout.partially_paid")
    );
    assert_eq!(
        parsed.meaning,
        expected("order-12345", Event::Informational)
    );
}

#[test]
fn the_checkout_id_is_not_the_key() {
    // `data.id` is Zeno Bank's checkout id; the order is the merchant's `orderId`.
    for body in [COMPLETED, EXPIRED, PARTIALLY_PAID] {
        assert!(order(body).external_id.starts_with("order-"));
    }
}

#[test]
fn no_buyer_and_no_paid_time_are_claimed() {
    // The payload carries neither a customer nor a payment time (`createdAt` is
    // when the checkout was created, not when it was paid).
    for body in [COMPLETED, EXPIRED, PARTIALLY_PAID] {
        let event = order(body);
        assert_eq!(event.buyer, None);
        assert_eq!(event.paid_at, None);
    }
}

#[test]
fn the_dispatcher_routes_zenobank_here() {
    assert_eq!(
        crate::providers::parse(Provider::Zenobank, COMPLETED),
        parse(COMPLETED)
    );
}

// ---------------------------------------------------------------- leniency

#[test]
fn numeric_order_id_is_accepted() {
    let body = with_data(COMPLETED, "orderId", json!(12345));
    assert_eq!(order(&body).external_id, "12345");
    let body = with_data(EXPIRED, "orderId", json!(9_007_199_254_740_993_u64));
    assert_eq!(order(&body).external_id, "9007199254740993");
}

#[test]
fn order_id_is_trimmed() {
    let body = with_data(COMPLETED, "orderId", json!("  order-12345 "));
    assert_eq!(order(&body).external_id, "order-12345");
}

#[test]
fn unknown_fields_are_ignored() {
    let body = edited(COMPLETED, |o| {
        o.insert("livemode".into(), json!(true));
        o["data"]["metadata"] = json!({"cart": [1, 2, 3]});
    });
    assert_eq!(parse(&body).unwrap(), parse(COMPLETED).unwrap());
}

#[test]
fn null_optional_fields_are_fine() {
    // The expired sample already has `successRedirectUrl: null`; null the rest
    // of what the adapter does not need.
    let body = edited(COMPLETED, |o| {
        for field in ["id", "priceCurrency", "priceAmount", "status", "expiresAt"] {
            o["data"][field] = Value::Null;
        }
    });
    assert_eq!(order(&body), order(COMPLETED));
}

#[test]
fn the_data_status_does_not_override_the_type() {
    // `type` decides; a surprising `data.status` does not.
    let body = with_data(COMPLETED, "status", json!("EXPIRED"));
    assert_eq!(order(&body).event, Event::Paid);
}

// ---------------------------------------------------------------- unknown types

#[test]
fn unknown_type_is_ignored_with_its_name() {
    for kind in ["checkout.created", "checkout.refunded", "payout.completed"] {
        let body = edited(COMPLETED, |o| {
            o["type"] = json!(kind);
        });
        let parsed = parse(&body).unwrap();
        assert_eq!(parsed.event_name.as_deref(), Some(kind));
        assert_eq!(parsed.meaning, Meaning::Ignored);
    }
}

#[test]
fn unknown_type_needs_no_data() {
    let parsed = parse(br#"{"type":"endpoint.test"}"#).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("endpoint.test"));
    assert_eq!(parsed.meaning, Meaning::Ignored);
    let parsed = parse(br#"{"type":"endpoint.test","data":"x"}"#).unwrap();
    assert_eq!(parsed.meaning, Meaning::Ignored);
}

#[test]
fn types_are_matched_exactly() {
    for kind in [
        "Checkout.Completed",
        "checkout.completed ",
        "checkout_completed",
    ] {
        let body = edited(COMPLETED, |o| {
            o["type"] = json!(kind);
        });
        assert_eq!(parse(&body).unwrap().meaning, Meaning::Ignored, "{kind:?}");
    }
}

// ---------------------------------------------------------------- malformed

#[test]
fn not_json_is_malformed_as_a_whole() {
    let err = parse(b"type=checkout.completed").unwrap_err();
    assert_eq!(err.field, None);
    let err = parse(b"").unwrap_err();
    assert_eq!(err.field, None);
}

#[test]
fn a_body_that_is_not_an_object_is_malformed() {
    for body in [&b"[]"[..], b"\"checkout.completed\"", b"null", b"42"] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.field, None, "{err:?}");
    }
}

#[test]
fn missing_type() {
    let body = edited(COMPLETED, |o| {
        o.remove("type");
    });
    assert_malformed(&body, "type");
    for empty in [Value::Null, json!(""), json!("  ")] {
        let body = edited(COMPLETED, |o| {
            o["type"] = empty;
        });
        assert_malformed(&body, "type");
    }
}

#[test]
fn type_of_the_wrong_type() {
    let body = edited(COMPLETED, |o| {
        o["type"] = json!(1);
    });
    assert_malformed(&body, "type");
}

#[test]
fn missing_data() {
    for body in [COMPLETED, EXPIRED, PARTIALLY_PAID] {
        let without = edited(body, |o| {
            o.remove("data");
        });
        assert_malformed(&without, "data");
        let null = edited(body, |o| {
            o["data"] = Value::Null;
        });
        assert_malformed(&null, "data");
    }
}

#[test]
fn data_that_is_not_an_object() {
    for value in [json!("order-12345"), json!([]), json!(1)] {
        let body = edited(COMPLETED, |o| {
            o["data"] = value;
        });
        assert_malformed(&body, "data");
    }
}

#[test]
fn missing_order_id() {
    for body in [COMPLETED, EXPIRED, PARTIALLY_PAID] {
        let without = edited(body, |o| {
            o["data"].as_object_mut().unwrap().remove("orderId");
        });
        assert_malformed(&without, "data.orderId");
        for empty in [Value::Null, json!(""), json!(" ")] {
            assert_malformed(&with_data(body, "orderId", empty), "data.orderId");
        }
    }
}

#[test]
fn order_id_of_the_wrong_type() {
    for value in [
        json!(12.5),
        json!(true),
        json!({"id": 1}),
        json!(["order-1"]),
    ] {
        assert_malformed(&with_data(COMPLETED, "orderId", value), "data.orderId");
    }
}

#[test]
fn top_level_order_id_does_not_stand_in_for_data_order_id() {
    let body = edited(COMPLETED, |o| {
        let id = o["data"]
            .as_object_mut()
            .unwrap()
            .remove("orderId")
            .unwrap();
        o.insert("orderId".into(), id);
    });
    assert_malformed(&body, "data.orderId");
}

// ---------------------------------------------------------------- authenticate

/// The HMAC key of the endpoint under test, and of the one it rotated from.
const KEY: &[u8] = b"entitled zenobank test key #1...";
const OLD_KEY: &[u8] = b"entitled zenobank old key #0....";
const MSG_ID: &str = "msg_2mEEGfxXJhZ3dVv5QeG9ydcuYT1";
const NOW: Instant = datetime!(2025-10-04 10:00:05 UTC);

/// The secret as the dashboard shows it.
fn secret_of(key: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(key))
}

/// The Standard Webhooks signature of one delivery: HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the base64 decoding of the secret
/// after `whsec_`, in standard base64.
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The `svix-*` headers of a delivery with this signature list.
fn svix(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    headers(&[
        ("svix-id", id),
        ("svix-timestamp", &timestamp.to_string()),
        ("svix-signature", signature),
    ])
}

/// The headers of `body` signed now with `KEY`.
fn signed(body: &[u8]) -> HeaderMap {
    let ts = NOW.unix_timestamp();
    svix(
        MSG_ID,
        ts,
        &format!("v1,{}", sign(&secret_of(KEY), MSG_ID, ts, body)),
    )
}

fn auth(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: Instant,
) -> Result<Authenticated, Unauthenticated> {
    authenticate(
        &Secret::new(secret),
        &Request {
            headers,
            query: None,
            body,
        },
        now,
    )
}

fn message_id(id: &str) -> Result<Authenticated, Unauthenticated> {
    Ok(Authenticated {
        message_id: Some(id.to_owned()),
    })
}

#[test]
fn a_correctly_signed_delivery_is_accepted_with_its_message_id() {
    for body in [COMPLETED, EXPIRED, PARTIALLY_PAID] {
        assert_eq!(
            auth(&secret_of(KEY), &signed(body), body, NOW),
            message_id(MSG_ID)
        );
    }
}

#[test]
fn the_dispatcher_returns_the_message_id_too() {
    let headers = signed(COMPLETED);
    let request = Request {
        headers: &headers,
        query: None,
        body: COMPLETED,
    };
    assert_eq!(
        crate::providers::authenticate(
            Provider::Zenobank,
            &Secret::new(secret_of(KEY)),
            &request,
            NOW
        ),
        message_id(MSG_ID)
    );
}

#[test]
fn the_secret_without_its_prefix_works_too() {
    let bare = STANDARD.encode(KEY);
    assert_eq!(
        auth(&bare, &signed(COMPLETED), COMPLETED, NOW),
        message_id(MSG_ID)
    );
}

#[test]
fn the_official_known_answer_vector_passes() {
    // FACTS.md row 1, through the adapter.
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let headers = svix(
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    );
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    // And our signing helper agrees with it.
    assert_eq!(
        sign(secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
        "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
    let at = Instant::from_unix_timestamp(1649367553).unwrap();
    assert_eq!(
        auth(secret, &headers, body, at),
        message_id("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk")
    );
}

#[test]
fn a_wrong_signature_is_rejected() {
    let ts = NOW.unix_timestamp();
    let wrong = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
    assert_eq!(
        auth(&secret_of(KEY), &svix(MSG_ID, ts, wrong), COMPLETED, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn a_signature_by_another_key_is_rejected() {
    let headers = signed(COMPLETED);
    assert_eq!(
        auth(&secret_of(OLD_KEY), &headers, COMPLETED, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn a_modified_body_is_rejected() {
    let headers = signed(COMPLETED);
    // The same JSON re-serialised is not the signed bytes.
    let reserialised = edited(COMPLETED, |_| {});
    assert_eq!(
        auth(&secret_of(KEY), &headers, &reserialised, NOW),
        Err(Unauthenticated)
    );
    // Another order id.
    let tampered = String::from_utf8(COMPLETED.to_vec())
        .unwrap()
        .replace("order-12345", "order-12346");
    assert_eq!(
        auth(&secret_of(KEY), &headers, tampered.as_bytes(), NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn a_modified_message_id_is_rejected() {
    let ts = NOW.unix_timestamp();
    let sig = format!("v1,{}", sign(&secret_of(KEY), MSG_ID, ts, COMPLETED));
    let headers = svix("msg_2mEEGfxXJhZ3dVv5QeG9ydcuYT2", ts, &sig);
    assert_eq!(
        auth(&secret_of(KEY), &headers, COMPLETED, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn a_stale_timestamp_is_rejected_even_when_correctly_signed() {
    let secret = secret_of(KEY);
    let ts = NOW.unix_timestamp() - 301;
    let sig = format!("v1,{}", sign(&secret, MSG_ID, ts, COMPLETED));
    assert_eq!(
        auth(&secret, &svix(MSG_ID, ts, &sig), COMPLETED, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn a_future_timestamp_is_rejected_even_when_correctly_signed() {
    let secret = secret_of(KEY);
    let ts = NOW.unix_timestamp() + 301;
    let sig = format!("v1,{}", sign(&secret, MSG_ID, ts, COMPLETED));
    assert_eq!(
        auth(&secret, &svix(MSG_ID, ts, &sig), COMPLETED, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn timestamps_within_five_minutes_either_way_pass() {
    let secret = secret_of(KEY);
    for drift in [-300, -1, 0, 1, 300] {
        let ts = NOW.unix_timestamp() + drift;
        let sig = format!("v1,{}", sign(&secret, MSG_ID, ts, COMPLETED));
        assert_eq!(
            auth(&secret, &svix(MSG_ID, ts, &sig), COMPLETED, NOW),
            message_id(MSG_ID),
            "{drift}"
        );
    }
}

#[test]
fn a_rotated_key_list_passes_with_either_key() {
    let ts = NOW.unix_timestamp();
    let (old, new) = (secret_of(OLD_KEY), secret_of(KEY));
    let list = format!(
        "v1,{} v1,{}",
        sign(&old, MSG_ID, ts, COMPLETED),
        sign(&new, MSG_ID, ts, COMPLETED)
    );
    let headers = svix(MSG_ID, ts, &list);
    assert_eq!(auth(&new, &headers, COMPLETED, NOW), message_id(MSG_ID));
    // An endpoint still configured with the old key passes as well.
    assert_eq!(auth(&old, &headers, COMPLETED, NOW), message_id(MSG_ID));
    // A third key matches neither entry.
    let other = secret_of(b"some other key");
    assert_eq!(auth(&other, &headers, COMPLETED, NOW), Err(Unauthenticated));
}

#[test]
fn entries_of_other_versions_are_skipped() {
    let ts = NOW.unix_timestamp();
    let secret = secret_of(KEY);
    let sig = sign(&secret, MSG_ID, ts, COMPLETED);
    let only_v2 = svix(MSG_ID, ts, &format!("v2,{sig} v1a,{sig}"));
    assert_eq!(
        auth(&secret, &only_v2, COMPLETED, NOW),
        Err(Unauthenticated)
    );
    let mixed = svix(MSG_ID, ts, &format!("v2,{sig} v1,{sig}"));
    assert_eq!(auth(&secret, &mixed, COMPLETED, NOW), message_id(MSG_ID));
}

#[test]
fn unbranded_webhook_headers_are_accepted() {
    let ts = NOW.unix_timestamp();
    let secret = secret_of(KEY);
    let sig = format!("v1,{}", sign(&secret, MSG_ID, ts, EXPIRED));
    let headers = headers(&[
        ("webhook-id", MSG_ID),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &sig),
    ]);
    assert_eq!(auth(&secret, &headers, EXPIRED, NOW), message_id(MSG_ID));
}

#[test]
fn missing_headers_are_rejected() {
    let secret = secret_of(KEY);
    assert_eq!(
        auth(&secret, &HeaderMap::new(), COMPLETED, NOW),
        Err(Unauthenticated)
    );
    for name in ["svix-id", "svix-timestamp", "svix-signature"] {
        let mut headers = signed(COMPLETED);
        headers.remove(name);
        assert_eq!(
            auth(&secret, &headers, COMPLETED, NOW),
            Err(Unauthenticated),
            "{name}"
        );
    }
}

#[test]
fn a_bearer_secret_is_not_a_signature() {
    // Zeno Bank is signature-only: presenting the secret itself proves nothing.
    let secret = secret_of(KEY);
    let headers = headers(&[
        ("authorization", &format!("Bearer {secret}")),
        ("x-webhook-secret", &secret),
    ]);
    assert_eq!(
        auth(&secret, &headers, COMPLETED, NOW),
        Err(Unauthenticated)
    );
    let (no_headers, query) = (HeaderMap::new(), format!("token={secret}"));
    let request = Request {
        headers: &no_headers,
        query: Some(&query),
        body: COMPLETED,
    };
    assert_eq!(
        authenticate(&Secret::new(secret.clone()), &request, NOW),
        Err(Unauthenticated)
    );
}

#[test]
fn an_unusable_secret_never_passes() {
    let headers = signed(COMPLETED);
    for secret in ["", "whsec_", "whsec_not base64!"] {
        assert_eq!(
            auth(secret, &headers, COMPLETED, NOW),
            Err(Unauthenticated),
            "{secret:?}"
        );
    }
}
