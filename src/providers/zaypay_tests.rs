//! ZayPay adapter: the fixture from the provider docs and the ones derived from
//! it (see `fixtures/zaypay/README.md`), variants built by editing the JSON.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::domain::Provider;

const TRANSFER_PENDING: &[u8] = include_bytes!("../../fixtures/zaypay/transfer_pending.json");
const DEPOSIT_RECEIVED: &[u8] = include_bytes!("../../fixtures/zaypay/deposit_received.json");
const COMPLETED: &[u8] = include_bytes!("../../fixtures/zaypay/completed.json");
const CANCELLED: &[u8] = include_bytes!("../../fixtures/zaypay/cancelled.json");
const CREATION_BLOCKED: &[u8] = include_bytes!("../../fixtures/zaypay/creation_blocked.json");
const REFUND_INITIATED: &[u8] = include_bytes!("../../fixtures/zaypay/refund_initiated.json");
const REFUND_FAILED: &[u8] = include_bytes!("../../fixtures/zaypay/refund_failed.json");
const REFUND_COMPLETED: &[u8] = include_bytes!("../../fixtures/zaypay/refund_completed.json");

const ORDER_ID: &str = "c9d5e882-5ea9-47de-8e49-08b4fe35056e";

// ---------------------------------------------------------------- helpers

/// A fixture with `edit` applied to its top-level object, serialised again.
fn edited(fixture: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(fixture).expect("fixture is JSON");
    edit(value.as_object_mut().expect("fixture is an object"));
    serde_json::to_vec(&value).unwrap()
}

/// The sample with `payload.order.status` set.
fn with_status(status: Value) -> Vec<u8> {
    edited(TRANSFER_PENDING, |o| {
        o["payload"]["order"]["status"] = status;
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

// ---------------------------------------------------------------- DESIGN.md's table

/// Every status DESIGN.md names, with its event.
const TABLE: [(&str, Event); 12] = [
    ("creating", Event::Progressed),
    ("transfer_pending", Event::Progressed),
    ("deposit_received", Event::Progressed),
    ("kyc_required", Event::Progressed),
    ("deposit_only", Event::Progressed),
    ("completed", Event::Paid),
    ("cancelled", Event::Canceled),
    ("creation_blocked", Event::Canceled),
    ("creation_rate_limited", Event::Canceled),
    ("refund_completed", Event::Refunded),
    ("refund_initiated", Event::Informational),
    ("refund_failed", Event::Informational),
];

#[test]
fn every_status_of_the_table_maps_to_its_event() {
    for (status, event) in TABLE {
        let parsed = parse(&with_status(json!(status))).unwrap();
        assert_eq!(
            parsed.event_name,
            Some(format!("order_status_changed:{status}")),
            "{status}"
        );
        let Meaning::Order(got) = parsed.meaning else {
            panic!(
                "{status}: expected an order event, got {:?}",
                parsed.meaning
            );
        };
        assert_eq!(got.external_id, ORDER_ID, "{status}");
        assert_eq!(got.event, event, "{status}");
        assert_eq!(got.buyer, None, "{status}");
    }
}

#[test]
fn the_fixtures_map_as_the_table_says() {
    for (body, status, event) in [
        (TRANSFER_PENDING, "transfer_pending", Event::Progressed),
        (DEPOSIT_RECEIVED, "deposit_received", Event::Progressed),
        (COMPLETED, "completed", Event::Paid),
        (CANCELLED, "cancelled", Event::Canceled),
        (CREATION_BLOCKED, "creation_blocked", Event::Canceled),
        (REFUND_COMPLETED, "refund_completed", Event::Refunded),
        (REFUND_INITIATED, "refund_initiated", Event::Informational),
        (REFUND_FAILED, "refund_failed", Event::Informational),
    ] {
        let parsed = parse(body).unwrap();
        assert_eq!(
            parsed.event_name,
            Some(format!("order_status_changed:{status}"))
        );
        let expected = OrderEvent {
            external_id: ORDER_ID.to_owned(),
            event,
            paid_at: (event == Event::Paid).then_some(datetime!(2025-09-24 07:23:45 UTC)),
            buyer: None,
        };
        assert_eq!(parsed.meaning, Meaning::Order(expected), "{status}");
    }
}

#[test]
fn completed_is_paid_at_the_envelope_created_at() {
    // Not `payload.order.created_at` (unix seconds, when the order was created).
    assert_eq!(
        order(COMPLETED).paid_at,
        Some(datetime!(2025-09-24 07:23:45 UTC))
    );
}

#[test]
fn only_completed_carries_a_paid_time() {
    for (status, _) in TABLE.iter().filter(|(s, _)| *s != "completed") {
        assert_eq!(order(&with_status(json!(status))).paid_at, None, "{status}");
    }
}

#[test]
fn the_dispatcher_routes_zaypay_here() {
    assert_eq!(
        crate::providers::parse(Provider::Zaypay, COMPLETED),
        parse(COMPLETED)
    );
}

// ---------------------------------------------------------------- leniency

#[test]
fn paid_at_accepts_any_offset_and_fractional_seconds() {
    for raw in [
        "2025-09-24T07:23:45Z",
        "2025-09-24T09:23:45+02:00",
        "2025-09-24T07:23:45.000Z",
        "2025-09-24T07:23:45.000000+00:00",
        "2025-09-24 07:23:45",
    ] {
        let body = edited(COMPLETED, |o| {
            o["created_at"] = json!(raw);
        });
        assert_eq!(
            order(&body).paid_at,
            Some(datetime!(2025-09-24 07:23:45 UTC)),
            "{raw}"
        );
    }
}

#[test]
fn completed_without_created_at_has_no_paid_time() {
    for body in [
        edited(COMPLETED, |o| {
            o.remove("created_at");
        }),
        edited(COMPLETED, |o| {
            o["created_at"] = Value::Null;
        }),
    ] {
        let event = order(&body);
        assert_eq!(event.event, Event::Paid);
        assert_eq!(event.paid_at, None);
    }
}

#[test]
fn created_at_is_only_read_for_completed() {
    // A broken envelope time does not spoil an event that does not use it.
    let body = edited(TRANSFER_PENDING, |o| {
        o["created_at"] = json!("yesterday");
    });
    assert_eq!(order(&body).event, Event::Progressed);
}

#[test]
fn subject_id_may_be_a_number() {
    let body = edited(COMPLETED, |o| {
        o["subject_id"] = json!(4711);
    });
    assert_eq!(order(&body).external_id, "4711");
}

#[test]
fn subject_id_is_trimmed() {
    let body = edited(COMPLETED, |o| {
        o["subject_id"] = json!(format!(" {ORDER_ID}\n"));
    });
    assert_eq!(order(&body).external_id, ORDER_ID);
}

#[test]
fn subject_id_is_the_key_not_the_order_id() {
    // Both are the same UUID in the sample; make them differ to see which is used.
    let body = edited(COMPLETED, |o| {
        o["payload"]["order"]["id"] = json!("00000000-0000-0000-0000-000000000000");
    });
    assert_eq!(order(&body).external_id, ORDER_ID);
}

#[test]
fn unknown_fields_are_ignored_and_subject_type_is_not_required() {
    let body = edited(COMPLETED, |o| {
        o.remove("subject_type");
        o.insert("delivery_attempt".into(), json!(3));
        o["payload"]["order"]["new_field"] = json!({"x": [1]});
    });
    assert_eq!(parse(&body).unwrap(), parse(COMPLETED).unwrap());
}

// ---------------------------------------------------------------- ignored

#[test]
fn unknown_status_is_ignored_with_its_name() {
    for status in ["refunded", "expired", "Completed", "COMPLETED", "paid"] {
        let parsed = parse(&with_status(json!(status))).unwrap();
        assert_eq!(
            parsed.event_name,
            Some(format!("order_status_changed:{status}"))
        );
        assert_eq!(parsed.meaning, Meaning::Ignored, "{status}");
    }
}

#[test]
fn other_event_types_are_ignored_with_their_name() {
    for kind in ["order_created", "swap_completed", "ORDER_STATUS_CHANGED"] {
        let body = edited(COMPLETED, |o| {
            o["event_type"] = json!(kind);
        });
        let parsed = parse(&body).unwrap();
        assert_eq!(parsed.event_name.as_deref(), Some(kind));
        assert_eq!(parsed.meaning, Meaning::Ignored);
    }
}

#[test]
fn other_event_types_need_no_order_fields() {
    let parsed = parse(br#"{"event_type":"ping"}"#).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("ping"));
    assert_eq!(parsed.meaning, Meaning::Ignored);
}

// ---------------------------------------------------------------- malformed

#[test]
fn not_json_is_malformed_as_a_whole() {
    for body in [&b"event_type=order_status_changed"[..], b"", b"{"] {
        assert_eq!(parse(body).unwrap_err().field, None);
    }
}

#[test]
fn a_body_that_is_not_an_object_is_malformed() {
    for body in [&b"[]"[..], b"\"order_status_changed\"", b"null", b"1"] {
        assert_eq!(parse(body).unwrap_err().field, None);
    }
}

#[test]
fn missing_event_type() {
    let body = edited(COMPLETED, |o| {
        o.remove("event_type");
    });
    assert_malformed(&body, "event_type");
    for value in [Value::Null, json!(""), json!(1), json!({})] {
        let body = edited(COMPLETED, |o| {
            o["event_type"] = value;
        });
        assert_malformed(&body, "event_type");
    }
}

#[test]
fn missing_subject_id() {
    let body = edited(COMPLETED, |o| {
        o.remove("subject_id");
    });
    assert_malformed(&body, "subject_id");
    for value in [Value::Null, json!(""), json!(" ")] {
        let body = edited(COMPLETED, |o| {
            o["subject_id"] = value;
        });
        assert_malformed(&body, "subject_id");
    }
}

#[test]
fn subject_id_of_the_wrong_type() {
    for value in [
        json!(1.5),
        json!(true),
        json!([ORDER_ID]),
        json!({"id": ORDER_ID}),
    ] {
        let body = edited(COMPLETED, |o| {
            o["subject_id"] = value;
        });
        assert_malformed(&body, "subject_id");
    }
}

#[test]
fn missing_payload() {
    let body = edited(COMPLETED, |o| {
        o.remove("payload");
    });
    assert_malformed(&body, "payload");
    for value in [Value::Null, json!("order"), json!([])] {
        let body = edited(COMPLETED, |o| {
            o["payload"] = value;
        });
        assert_malformed(&body, "payload");
    }
}

#[test]
fn missing_payload_order() {
    let body = edited(COMPLETED, |o| {
        o["payload"].as_object_mut().unwrap().remove("order");
    });
    assert_malformed(&body, "payload.order");
    for value in [Value::Null, json!("completed"), json!(1)] {
        let body = edited(COMPLETED, |o| {
            o["payload"]["order"] = value;
        });
        assert_malformed(&body, "payload.order");
    }
}

#[test]
fn missing_payload_order_status() {
    let body = edited(COMPLETED, |o| {
        o["payload"]["order"]
            .as_object_mut()
            .unwrap()
            .remove("status");
    });
    assert_malformed(&body, "payload.order.status");
    for value in [Value::Null, json!(""), json!(3), json!(["completed"])] {
        assert_malformed(&with_status(value), "payload.order.status");
    }
}

#[test]
fn a_top_level_status_does_not_stand_in_for_the_order_status() {
    let body = edited(COMPLETED, |o| {
        o["payload"]["order"]
            .as_object_mut()
            .unwrap()
            .remove("status");
        o.insert("status".into(), json!("completed"));
    });
    assert_malformed(&body, "payload.order.status");
}

#[test]
fn a_paid_time_that_is_not_a_date_is_malformed() {
    for value in [json!("yesterday"), json!(1758698625)] {
        let body = edited(COMPLETED, |o| {
            o["created_at"] = value;
        });
        assert_malformed(&body, "created_at");
    }
}

// ---------------------------------------------------------------- authenticate

const SECRET: &str = "zay_tok-3n9QxV7pLw2R";

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

fn auth(headers: &HeaderMap, query: Option<&str>) -> Result<Authenticated, Unauthenticated> {
    authenticate(
        &Secret::new(SECRET),
        &Request {
            headers,
            query,
            body: COMPLETED,
        },
    )
}

const OK: Result<Authenticated, Unauthenticated> = Ok(Authenticated { message_id: None });

#[test]
fn correct_token_is_accepted_without_a_message_id() {
    let h = HeaderMap::new();
    assert_eq!(auth(&h, Some(&format!("token={SECRET}"))), OK);
}

#[test]
fn the_dispatcher_accepts_the_token_too() {
    let (h, q) = (HeaderMap::new(), format!("token={SECRET}"));
    let request = Request {
        headers: &h,
        query: Some(&q),
        body: COMPLETED,
    };
    assert_eq!(
        crate::providers::authenticate(
            Provider::Zaypay,
            &Secret::new(SECRET),
            &request,
            datetime!(2025-09-24 07:23:46 UTC)
        ),
        OK
    );
}

#[test]
fn token_among_other_query_params_is_accepted() {
    let h = HeaderMap::new();
    assert_eq!(auth(&h, Some(&format!("a=1&token={SECRET}&b="))), OK);
}

#[test]
fn percent_encoded_token_is_decoded() {
    let h = HeaderMap::new();
    let request = |query| {
        authenticate(
            &Secret::new("a+b/c="),
            &Request {
                headers: &h,
                query: Some(query),
                body: COMPLETED,
            },
        )
    };
    assert_eq!(request("token=a%2Bb%2Fc%3D"), OK);
    assert_eq!(request("token=a%2bb%2fc%3d"), OK);
    assert_eq!(request("token=a%252Bb%252Fc%253D"), Err(Unauthenticated));
}

#[test]
fn wrong_token_is_rejected() {
    let h = HeaderMap::new();
    let prefix = &SECRET[..SECRET.len() - 1];
    let longer = format!("{SECRET}x");
    for presented in [
        "zay_tok-3n9QxV7pLw2S",
        prefix,
        &longer,
        "",
        "ZAY_TOK-3N9QXV7PLW2R",
    ] {
        assert_eq!(
            auth(&h, Some(&format!("token={presented}"))),
            Err(Unauthenticated),
            "{presented:?}"
        );
    }
    assert_eq!(auth(&h, Some("token")), Err(Unauthenticated));
    // The secret under another parameter name is not a token.
    assert_eq!(
        auth(&h, Some(&format!("secret={SECRET}"))),
        Err(Unauthenticated)
    );
    assert_eq!(
        auth(&h, Some(&format!("Token={SECRET}"))),
        Err(Unauthenticated)
    );
}

#[test]
fn no_query_is_rejected() {
    let h = HeaderMap::new();
    assert_eq!(auth(&h, None), Err(Unauthenticated));
    assert_eq!(auth(&h, Some("")), Err(Unauthenticated));
}

#[test]
fn the_secret_in_a_header_only_is_rejected() {
    // DESIGN.md: zaypay authenticates by query `token` alone.
    for (name, value) in [
        ("X-Webhook-Secret", SECRET.to_owned()),
        ("Authorization", SECRET.to_owned()),
        ("Authorization", format!("Bearer {SECRET}")),
        ("token", SECRET.to_owned()),
    ] {
        let h = headers(&[(name, &value)]);
        assert_eq!(auth(&h, None), Err(Unauthenticated), "{name}: {value}");
    }
}

#[test]
fn basic_auth_with_the_secret_as_password_is_rejected() {
    for credentials in [format!("zaypay:{SECRET}"), format!(":{SECRET}")] {
        let value = format!("Basic {}", STANDARD.encode(credentials));
        let h = headers(&[("Authorization", &value)]);
        assert_eq!(auth(&h, None), Err(Unauthenticated), "{value}");
        // Nor does it rescue a wrong token.
        assert_eq!(auth(&h, Some("token=wrong")), Err(Unauthenticated));
    }
}

#[test]
fn a_wrong_header_does_not_spoil_a_correct_token() {
    let h = headers(&[("Authorization", "Basic d3Jvbmc6d3Jvbmc=")]);
    assert_eq!(auth(&h, Some(&format!("token={SECRET}"))), OK);
}
