//! Zenofy adapter: fixtures from the provider docs (see `fixtures/zenofy/README.md`)
//! and variants of them built by editing the JSON.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::domain::{Email, Instant};

const CREATED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.created.json");
const ACTIVATED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.activated.json");
const RENEWED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.renewed.json");
const SUSPENDED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.suspended.json");
const CANCELED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.canceled.json");
const EXPIRED: &[u8] = include_bytes!("../../fixtures/zenofy/subscription.expired.json");
const ORDER_PAID: &[u8] = include_bytes!("../../fixtures/zenofy/order_paid.json");
const ORDER_REFUNDED: &[u8] = include_bytes!("../../fixtures/zenofy/order_refunded.json");
const ORDER_CANCELLED: &[u8] = include_bytes!("../../fixtures/zenofy/order_cancelled.json");

const SUBSCRIPTION_ID: &str = "683a1b2c3d4e5f6789012345";
const PRODUCT_ID: &str = "507f1f77bcf86cd799439011";
const EMAIL: &str = "buyer@example.com";

// ---------------------------------------------------------------- helpers

/// A fixture with `edit` applied to its top-level object, serialised again.
fn edited(fixture: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(fixture).expect("fixture is JSON");
    edit(value.as_object_mut().expect("fixture is an object"));
    serde_json::to_vec(&value).unwrap()
}

/// A fixture with one field set (or added).
fn with(fixture: &[u8], field: &str, value: Value) -> Vec<u8> {
    edited(fixture, |o| {
        o.insert(field.to_owned(), value);
    })
}

/// A fixture with one field removed.
fn without(fixture: &[u8], field: &str) -> Vec<u8> {
    edited(fixture, |o| {
        o.remove(field).expect("field present in fixture");
    })
}

fn subscription(body: &[u8]) -> SubscriptionEvent {
    match parse(body) {
        Ok(Parsed {
            meaning: Meaning::Subscription(event),
            ..
        }) => event,
        other => panic!("expected a subscription event, got {other:?}"),
    }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
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

/// What the six fixtures share.
fn expected(
    event: Event,
    period_start: Option<Instant>,
    period_end: Option<Instant>,
) -> SubscriptionEvent {
    SubscriptionEvent {
        external_id: SUBSCRIPTION_ID.to_owned(),
        event,
        email: email(EMAIL),
        external_product: PRODUCT_ID.to_owned(),
        plan: None,
        previous_plan: None,
        period_start,
        period_end,
    }
}

// ---------------------------------------------------------------- the six events

#[test]
fn created_is_pending_without_a_period() {
    let parsed = parse(CREATED).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("subscription.created"));
    assert_eq!(
        parsed.meaning,
        Meaning::Subscription(expected(Event::Created, None, None))
    );
}

#[test]
fn activated_carries_the_first_period() {
    let parsed = parse(ACTIVATED).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("subscription.activated"));
    assert_eq!(
        parsed.meaning,
        Meaning::Subscription(expected(
            Event::Activated,
            Some(datetime!(2026-05-01 08:00:00 UTC)),
            Some(datetime!(2026-06-01 08:00:00 UTC)),
        ))
    );
}

#[test]
fn renewed_takes_the_new_period_end() {
    let parsed = parse(RENEWED).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("subscription.renewed"));
    assert_eq!(
        parsed.meaning,
        Meaning::Subscription(expected(
            Event::Renewed,
            Some(datetime!(2026-05-01 08:00:00 UTC)),
            Some(datetime!(2026-07-01 08:00:00 UTC)),
        ))
    );
}

#[test]
fn renewed_prefers_renewal_new_period_end_over_current_period_end() {
    // In the doc sample both are equal; make them differ to see which is used.
    let body = edited(RENEWED, |o| {
        o["renewal"]["newPeriodEnd"] = json!("2026-07-02T10:00:00+02:00");
    });
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(2026-07-02 08:00:00 UTC))
    );
}

#[test]
fn suspended_canceled_expired_keep_the_period() {
    for (body, name, event) in [
        (SUSPENDED, "subscription.suspended", Event::Suspended),
        (CANCELED, "subscription.canceled", Event::Canceled),
        (EXPIRED, "subscription.expired", Event::Expired),
    ] {
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.event_name.as_deref(), Some(name));
        assert_eq!(
            parsed.meaning,
            Meaning::Subscription(expected(
                event,
                Some(datetime!(2026-05-01 08:00:00 UTC)),
                Some(datetime!(2026-07-01 10:00:00 +02:00)),
            )),
            "{name}"
        );
    }
}

#[test]
fn offsets_are_the_same_instant() {
    // Guard for the literals above: `+02:00` and UTC compare as instants.
    assert_eq!(
        datetime!(2026-07-01 10:00:00 +02:00),
        datetime!(2026-07-01 08:00:00 UTC)
    );
}

// ---------------------------------------------------------------- leniency

#[test]
fn unknown_fields_are_ignored() {
    let body = edited(ACTIVATED, |o| {
        o.insert("brandNewField".into(), json!({"nested": [1, 2, 3]}));
        o.insert("anotherOne".into(), json!(42));
        o["order"]["extra"] = json!("x");
    });
    assert_eq!(subscription(&body), subscription(ACTIVATED));
}

#[test]
fn order_may_be_null_or_absent() {
    assert_eq!(
        subscription(&with(ACTIVATED, "order", Value::Null)),
        subscription(ACTIVATED)
    );
    assert_eq!(
        subscription(&without(ACTIVATED, "order")),
        subscription(ACTIVATED)
    );
}

#[test]
fn dates_in_any_offset_with_or_without_fraction() {
    for (raw, want) in [
        ("2026-06-01T08:00:00Z", datetime!(2026-06-01 08:00:00 UTC)),
        (
            "2026-06-01T10:00:00+02:00",
            datetime!(2026-06-01 08:00:00 UTC),
        ),
        (
            "2026-06-01T03:00:00-05:00",
            datetime!(2026-06-01 08:00:00 UTC),
        ),
        (
            "2026-06-01T08:00:00.123Z",
            datetime!(2026-06-01 08:00:00.123 UTC),
        ),
        (
            "2026-06-01T08:00:00.123456Z",
            datetime!(2026-06-01 08:00:00.123456 UTC),
        ),
        (
            "2026-06-01T10:00:00.5+02:00",
            datetime!(2026-06-01 08:00:00.5 UTC),
        ),
    ] {
        let body = edited(ACTIVATED, |o| {
            o.insert("currentPeriodStart".into(), json!(raw));
            o.insert("currentPeriodEnd".into(), json!(raw));
        });
        let event = subscription(&body);
        assert_eq!(event.period_start, Some(want), "{raw}");
        assert_eq!(event.period_end, Some(want), "{raw}");
    }
}

#[test]
fn renewal_dates_are_lenient_too() {
    let body = edited(RENEWED, |o| {
        o["renewal"]["newPeriodEnd"] = json!("2026-07-01T08:00:00.250Z");
    });
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(2026-07-01 08:00:00.25 UTC))
    );
}

#[test]
fn null_or_empty_periods_are_absent() {
    let body = edited(ACTIVATED, |o| {
        o.insert("currentPeriodStart".into(), Value::Null);
        o.insert("currentPeriodEnd".into(), json!(""));
    });
    let event = subscription(&body);
    assert_eq!((event.period_start, event.period_end), (None, None));
    let body = edited(ACTIVATED, |o| {
        o.remove("currentPeriodStart");
        o.remove("currentPeriodEnd");
    });
    let event = subscription(&body);
    assert_eq!((event.period_start, event.period_end), (None, None));
}

#[test]
fn ids_may_be_numbers() {
    let body = edited(ACTIVATED, |o| {
        o.insert("subscriptionId".into(), json!(12345));
        o.insert("productId".into(), json!(678));
    });
    let event = subscription(&body);
    assert_eq!(event.external_id, "12345");
    assert_eq!(event.external_product, "678");
}

#[test]
fn id_strings_are_trimmed() {
    let body = with(ACTIVATED, "subscriptionId", json!("  abc123 "));
    assert_eq!(subscription(&body).external_id, "abc123");
}

#[test]
fn email_is_normalised() {
    let body = with(ACTIVATED, "customerEmail", json!("  Buyer@Example.COM \t"));
    let event = subscription(&body);
    assert_eq!(event.email.as_str(), "buyer@example.com");
    assert_eq!(event.email, email(EMAIL));
}

#[test]
fn renewed_without_renewal_falls_back_to_current_period_end() {
    let body = edited(RENEWED, |o| {
        o.insert("renewal".into(), Value::Null);
        o.insert(
            "currentPeriodEnd".into(),
            json!("2026-06-15T10:00:00+02:00"),
        );
    });
    let event = subscription(&body);
    assert_eq!(event.event, Event::Renewed);
    assert_eq!(event.period_end, Some(datetime!(2026-06-15 08:00:00 UTC)));

    // The same when `renewal` is there but has no `newPeriodEnd`.
    let body = edited(RENEWED, |o| {
        o["renewal"]["newPeriodEnd"] = Value::Null;
        o.insert(
            "currentPeriodEnd".into(),
            json!("2026-06-15T10:00:00+02:00"),
        );
    });
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(2026-06-15 08:00:00 UTC))
    );
}

#[test]
fn renewal_is_only_read_for_renewed_events() {
    // A stray renewal object on another event does not move its period end.
    let body = edited(ACTIVATED, |o| {
        o.insert(
            "renewal".into(),
            json!({"newPeriodEnd": "2027-01-01T00:00:00Z"}),
        );
    });
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(2026-06-01 08:00:00 UTC))
    );
}

// ---------------------------------------------------------------- malformed

#[test]
fn not_json_is_malformed_as_a_whole() {
    for body in [&b"not json"[..], b"", b"{\"event\": ", b"\xff\xfe"] {
        let err = parse(body).expect_err("not JSON");
        assert_eq!(err.field, None);
        assert!(err.detail.contains("JSON"), "{}", err.detail);
    }
}

#[test]
fn a_body_that_is_not_an_object_is_malformed() {
    for body in [
        &b"[]"[..],
        b"[{\"event\": \"subscription.activated\"}]",
        b"\"x\"",
        b"null",
        b"42",
    ] {
        let err = parse(body).expect_err("not an object");
        assert_eq!(err.field, None);
        assert!(err.detail.contains("object"), "{}", err.detail);
    }
}

#[test]
fn missing_event() {
    assert_malformed(&without(ACTIVATED, "event"), "event");
    assert_malformed(&with(ACTIVATED, "event", Value::Null), "event");
    assert_malformed(&with(ACTIVATED, "event", json!("  ")), "event");
}

#[test]
fn event_of_the_wrong_type() {
    assert_malformed(&with(ACTIVATED, "event", json!(7)), "event");
}

#[test]
fn missing_subscription_id() {
    assert_malformed(&without(ACTIVATED, "subscriptionId"), "subscriptionId");
    assert_malformed(
        &with(ACTIVATED, "subscriptionId", Value::Null),
        "subscriptionId",
    );
    assert_malformed(
        &with(ACTIVATED, "subscriptionId", json!("")),
        "subscriptionId",
    );
}

#[test]
fn subscription_id_of_the_wrong_type() {
    for value in [json!({"id": "x"}), json!(true), json!([1]), json!(1.5)] {
        assert_malformed(&with(ACTIVATED, "subscriptionId", value), "subscriptionId");
    }
}

#[test]
fn missing_customer_email() {
    assert_malformed(&without(ACTIVATED, "customerEmail"), "customerEmail");
    assert_malformed(
        &with(ACTIVATED, "customerEmail", Value::Null),
        "customerEmail",
    );
}

#[test]
fn customer_email_that_is_not_an_email() {
    for raw in [
        "not-an-email",
        "@example.com",
        "buyer@",
        "a b@example.com",
        "a@b@c",
    ] {
        assert_malformed(
            &with(ACTIVATED, "customerEmail", json!(raw)),
            "customerEmail",
        );
    }
    assert_malformed(&with(ACTIVATED, "customerEmail", json!(5)), "customerEmail");
}

#[test]
fn missing_product_id() {
    assert_malformed(&without(ACTIVATED, "productId"), "productId");
}

#[test]
fn current_period_end_that_is_not_a_date() {
    let err = assert_malformed(
        &with(ACTIVATED, "currentPeriodEnd", json!("not a date")),
        "currentPeriodEnd",
    );
    assert!(err.detail.contains("not a date"), "{}", err.detail);
}

/// Zenofy: dates "may vary with serialization". Unix seconds, or
/// milliseconds above 10^11, in every date field.
#[test]
fn dates_may_be_unix_seconds_or_milliseconds() {
    let at = datetime!(2026-05-28 20:26:40 UTC);
    for raw in [
        json!(1_780_000_000),
        json!(1_780_000_000_000_i64),
        json!(1_780_000_000.0),
        json!(1.78e12),
    ] {
        let body = edited(RENEWED, |o| {
            o.insert("currentPeriodStart".into(), raw.clone());
            o.insert("currentPeriodEnd".into(), raw.clone());
            o["renewal"]["newPeriodEnd"] = raw.clone();
        });
        let event = subscription(&body);
        assert_eq!(
            (event.period_start, event.period_end),
            (Some(at), Some(at)),
            "{raw}"
        );
        let paid = with(ORDER_PAID, "paidAt", raw.clone());
        match parse(&paid).unwrap().meaning {
            Meaning::Order(order) => assert_eq!(order.paid_at, Some(at), "{raw}"),
            other => panic!("{other:?}"),
        }
    }
    // Fractions are kept to the microsecond; 10^11 itself is seconds.
    let body = with(ACTIVATED, "currentPeriodEnd", json!(1_780_000_000.25));
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(2026-05-28 20:26:40.25 UTC))
    );
    let body = with(ACTIVATED, "currentPeriodEnd", json!(100_000_000_000_i64));
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(5138-11-16 09:46:40 UTC))
    );
    let body = with(ACTIVATED, "currentPeriodEnd", json!(0));
    assert_eq!(
        subscription(&body).period_end,
        Some(datetime!(1970-01-01 0:00 UTC))
    );
}

#[test]
fn a_number_that_is_no_date_is_malformed_naming_the_field() {
    for raw in [
        json!(-1),
        json!(-1.5),
        json!(253_402_300_800_000_i64),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e300),
    ] {
        let err = assert_malformed(
            &with(ACTIVATED, "currentPeriodEnd", raw.clone()),
            "currentPeriodEnd",
        );
        assert!(err.detail.contains("Unix time"), "{raw}: {}", err.detail);
    }
    assert_malformed(
        &with(ACTIVATED, "currentPeriodEnd", json!(true)),
        "currentPeriodEnd",
    );
}

#[test]
fn current_period_start_that_is_not_a_date() {
    assert_malformed(
        &with(
            ACTIVATED,
            "currentPeriodStart",
            json!("2026-13-01T00:00:00Z"),
        ),
        "currentPeriodStart",
    );
}

#[test]
fn bad_renewal_fields_are_named_by_path() {
    assert_malformed(
        &edited(RENEWED, |o| {
            o["renewal"]["newPeriodEnd"] = json!("soon");
        }),
        "renewal.newPeriodEnd",
    );
    assert_malformed(&with(RENEWED, "renewal", json!("yes")), "renewal");
}

// ---------------------------------------------------------------- ignored

#[test]
fn unknown_event_is_ignored_with_its_name() {
    let parsed = parse(&with(ACTIVATED, "event", json!("subscription.paused"))).unwrap();
    assert_eq!(
        parsed,
        Parsed {
            event_name: Some("subscription.paused".into()),
            meaning: Meaning::Ignored,
        }
    );
}

#[test]
fn unknown_event_needs_no_subscription_fields() {
    let parsed = parse(br#"{"event": "merchant.something", "whatever": 1}"#).unwrap();
    assert_eq!(parsed.event_name.as_deref(), Some("merchant.something"));
    assert_eq!(parsed.meaning, Meaning::Ignored);
}

#[test]
fn order_events_carry_the_buyer_and_every_items_product() {
    use crate::domain::order;
    use crate::providers::{OrderBuyer, OrderEvent};
    let expected = |event, paid_at, id: &str, email: &str, product: &str| OrderEvent {
        external_id: id.into(),
        event,
        paid_at,
        buyer: Some(OrderBuyer {
            email: Email::parse(email).unwrap(),
            external_products: vec![product.into()],
        }),
    };
    let paid_at = Some(datetime!(2026-05-01 08:42:18 UTC));
    for (body, name, event) in [
        (
            ORDER_PAID,
            "order_paid",
            expected(
                order::Event::Paid,
                paid_at,
                "673f92b2c3d94a0012abcd01",
                "ada@example.com",
                "507f1f77bcf86cd799439011",
            ),
        ),
        (
            ORDER_REFUNDED,
            "order_refunded",
            expected(
                order::Event::Refunded,
                paid_at,
                "673f92b2c3d94a0012abcd01",
                "ada@example.com",
                "507f1f77bcf86cd799439011",
            ),
        ),
        (
            ORDER_CANCELLED,
            "order_cancelled",
            expected(
                order::Event::Canceled,
                None,
                "673f92b2c3d94a0012abcd02",
                "buyer@example.org",
                "507f191e810c19729de860ea",
            ),
        ),
    ] {
        assert_eq!(
            parse(body).unwrap(),
            Parsed {
                event_name: Some(name.into()),
                meaning: Meaning::Order(event),
            },
            "{name}"
        );
    }
}

#[test]
fn bump_products_are_products_of_the_order_too() {
    let mut body: Value = serde_json::from_slice(ORDER_PAID).unwrap();
    body["items"].as_array_mut().unwrap().push(json!({
        "productId": 42, "productName": "Bump", "quantity": 1, "isBumpProduct": true
    }));
    let Meaning::Order(event) = parse(body.to_string().as_bytes()).unwrap().meaning else {
        panic!("an order");
    };
    assert_eq!(
        event.buyer.unwrap().external_products,
        vec!["507f1f77bcf86cd799439011".to_owned(), "42".to_owned()]
    );
}

#[test]
fn an_order_without_customer_email_or_items_is_malformed() {
    for (field, mutate) in [
        (
            "orderId",
            Box::new(|b: &mut Value| {
                b.as_object_mut().unwrap().remove("orderId");
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "customer",
            Box::new(|b: &mut Value| {
                b["customer"] = Value::Null;
            }),
        ),
        (
            "customer.email",
            Box::new(|b: &mut Value| {
                b["customer"]["email"] = json!("nope");
            }),
        ),
        (
            "items",
            Box::new(|b: &mut Value| {
                b["items"] = json!([]);
            }),
        ),
        (
            "items[0].productId",
            Box::new(|b: &mut Value| {
                b["items"][0].as_object_mut().unwrap().remove("productId");
            }),
        ),
    ] {
        let mut body: Value = serde_json::from_slice(ORDER_PAID).unwrap();
        mutate(&mut body);
        let err = parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{err:?}");
        assert!(err.detail.contains(field), "{err:?}");
    }
}

// ---------------------------------------------------------------- authenticate

const SECRET: &str = "zen_s3cret-Value_42";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn auth(secret: &str, headers: &HeaderMap, query: Option<&str>) -> Result<(), Unauthenticated> {
    authenticate(
        &Secret::new(secret),
        &Request {
            headers,
            query,
            body: ACTIVATED,
        },
    )
}

#[test]
fn correct_header_is_accepted() {
    let h = headers(&[("X-Webhook-Secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, None), Ok(()));
    // Header names are case-insensitive.
    let h = headers(&[("x-webhook-secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, None), Ok(()));
}

#[test]
fn correct_token_is_accepted() {
    let h = HeaderMap::new();
    assert_eq!(auth(SECRET, &h, Some(&format!("token={SECRET}"))), Ok(()));
}

#[test]
fn percent_encoded_token_is_decoded() {
    let h = HeaderMap::new();
    assert_eq!(auth("a+b/c=", &h, Some("token=a%2Bb%2Fc%3D")), Ok(()));
    // Lower-case hex digits as well.
    assert_eq!(auth("a+b/c=", &h, Some("token=a%2bb%2fc%3d")), Ok(()));
    // Decoded once only: a doubly encoded secret is not the secret.
    assert_eq!(
        auth("a+b/c=", &h, Some("token=a%252Bb%252Fc%253D")),
        Err(Unauthenticated)
    );
}

#[test]
fn token_among_other_query_params_is_accepted() {
    let h = HeaderMap::new();
    assert_eq!(
        auth(SECRET, &h, Some(&format!("x=1&token={SECRET}"))),
        Ok(())
    );
    assert_eq!(
        auth(SECRET, &h, Some(&format!("x=1&token={SECRET}&y=&z"))),
        Ok(())
    );
}

#[test]
fn wrong_header_is_rejected() {
    let h = headers(&[("X-Webhook-Secret", "zen_s3cret-Value_43")]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
}

#[test]
fn wrong_token_is_rejected() {
    let h = HeaderMap::new();
    assert_eq!(
        auth(SECRET, &h, Some("token=zen_s3cret-Value_43")),
        Err(Unauthenticated)
    );
    // The secret under another parameter name is not a token.
    assert_eq!(
        auth(SECRET, &h, Some(&format!("secret={SECRET}"))),
        Err(Unauthenticated)
    );
}

#[test]
fn missing_both_is_rejected() {
    let h = HeaderMap::new();
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    assert_eq!(auth(SECRET, &h, Some("")), Err(Unauthenticated));
    assert_eq!(auth(SECRET, &h, Some("x=1")), Err(Unauthenticated));
    // Other headers carrying the secret do not count.
    let h = headers(&[("Authorization", SECRET), ("X-Secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
}

#[test]
fn empty_header_or_token_is_rejected() {
    let h = headers(&[("X-Webhook-Secret", "")]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    let h = HeaderMap::new();
    assert_eq!(auth(SECRET, &h, Some("token=")), Err(Unauthenticated));
    assert_eq!(auth(SECRET, &h, Some("token")), Err(Unauthenticated));
}

#[test]
fn secret_prefix_or_extension_is_rejected() {
    let prefix = &SECRET[..SECRET.len() - 1];
    let longer = format!("{SECRET}x");
    for presented in [prefix, "zen_", &longer] {
        let h = headers(&[("X-Webhook-Secret", presented)]);
        assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated), "{presented}");
        let q = format!("token={presented}");
        assert_eq!(
            auth(SECRET, &HeaderMap::new(), Some(&q)),
            Err(Unauthenticated),
            "{presented}"
        );
    }
}

#[test]
fn one_correct_credential_is_enough() {
    // A wrong header does not spoil a correct token, nor the other way round.
    let h = headers(&[("X-Webhook-Secret", "wrong")]);
    assert_eq!(auth(SECRET, &h, Some(&format!("token={SECRET}"))), Ok(()));
    let h = headers(&[("X-Webhook-Secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, Some("token=wrong")), Ok(()));
}
