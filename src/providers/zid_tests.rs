//! Zid adapter: fixtures from the provider docs and derived from them (see
//! `fixtures/zid/README.md`), and variants built by editing the JSON.

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::domain::{Email, Instant};

const AUTHORIZED: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.application.authorized.json");
const LEGACY: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.subscription.active.legacy.json");
const INSTALL: &[u8] = include_bytes!("../../fixtures/zid/app.market.application.install.json");
const ACTIVE: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.active.json");
const WARNING: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.warning.json");
const UPGRADE: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.upgrade.json");
const RENEW: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.renew.json");
const SUSPENDED: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.subscription.suspended.json");
const EXPIRED: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.expired.json");
const RESUBSCRIBE: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.subscription.active.resubscribe.json");
const REFUNDED: &[u8] = include_bytes!("../../fixtures/zid/app.market.subscription.refunded.json");
const UNINSTALL: &[u8] = include_bytes!("../../fixtures/zid/app.market.application.uninstall.json");
const RATED: &[u8] = include_bytes!("../../fixtures/zid/app.market.application.rated.json");
const PLAN_REQUEST: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.private.plan.request.json");
const USAGE_SUCCESS: &[u8] =
    include_bytes!("../../fixtures/zid/app.market.subscription.usage_based.payment_success.json");

/// Merchant events, the bare entity (`fixtures/zid/merchant/README.md`).
macro_rules! merchant {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../fixtures/zid/merchant/", $name, ".json")) as &[u8],
        )
    };
}
const ORDER_EVENTS: [(&str, &[u8]); 3] = [
    merchant!("order.create"),
    merchant!("order.status.update"),
    merchant!("order.payment_status.update"),
];
const OTHER_MERCHANT_EVENTS: [(&str, &[u8]); 13] = [
    merchant!("product.create"),
    merchant!("product.update"),
    merchant!("product.publish"),
    merchant!("product.delete"),
    merchant!("customer.create"),
    merchant!("customer.update"),
    merchant!("customer.login"),
    merchant!("customer.merchant.update"),
    merchant!("abandoned_cart.created"),
    merchant!("abandoned_cart.completed"),
    merchant!("category.create"),
    merchant!("category.update"),
    merchant!("category.delete"),
];
const ORDER_CREATE: &[u8] = ORDER_EVENTS[0].1;
const ORDER_ID: &str = "25304285";
const ORDER_PRODUCT: &str = "23edd6a6-3533-495d-8ffc-7f9e7c8c1f6a";

const EXTERNAL_ID: &str = "507530:1292";
const APP_ID: &str = "1292";
const EMAIL: &str = "info@ehmp.com.sa";
/// النمو ("growth"), the sample's plan, sent as `\u` escapes.
const GROWTH: &str = "\u{0627}\u{0644}\u{0646}\u{0645}\u{0648}";
/// الاحترافي ("professional"), the plan the derived upgrade moves to.
const PRO: &str = "\u{0627}\u{0644}\u{0627}\u{062d}\u{062a}\u{0631}\u{0627}\u{0641}\u{064a}";

/// The first month: install, active, warning (and the ignored app events).
const FIRST: (Instant, Instant) = (
    datetime!(2025-02-21 08:05:29 UTC),
    datetime!(2025-03-22 08:05:29 UTC),
);
/// The upgraded period, with microseconds.
const UPGRADED: (Instant, Instant) = (
    datetime!(2025-03-20 11:42:10.123456 UTC),
    datetime!(2025-04-19 11:42:10.123456 UTC),
);
/// The renewed period: renew, suspended, expired.
const RENEWED: (Instant, Instant) = (
    datetime!(2025-04-19 11:42:10.123456 UTC),
    datetime!(2025-05-19 11:42:10.123456 UTC),
);
/// The later subscription: resubscribe, refunded, uninstall.
const LATER: (Instant, Instant) = (
    datetime!(2025-06-02 09:15:00 UTC),
    datetime!(2025-07-02 09:15:00 UTC),
);

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

/// Parses to `ignored`, keeping the event name for the delivery log.
fn assert_ignored(body: &[u8], name: &str) {
    assert_eq!(
        parse(body).unwrap(),
        Parsed {
            event_name: Some(name.to_owned()),
            meaning: Meaning::Ignored,
        },
        "{name}"
    );
}

/// What the store-507530 fixtures share.
fn expected(
    event: Event,
    plan: &str,
    previous_plan: Option<&str>,
    (start, end): (Instant, Instant),
) -> SubscriptionEvent {
    SubscriptionEvent {
        external_id: EXTERNAL_ID.to_owned(),
        event,
        email: email(EMAIL),
        external_product: APP_ID.to_owned(),
        plan: Some(plan.to_owned()),
        previous_plan: previous_plan.map(str::to_owned),
        period_start: Some(start),
        period_end: Some(end),
    }
}

// ---------------------------------------------------------------- lifecycle events

#[test]
fn every_lifecycle_event_maps_to_its_canonical_event() {
    let cases: [(&[u8], &str, SubscriptionEvent); 10] = [
        (
            INSTALL,
            "app.market.application.install",
            expected(Event::Installed, GROWTH, None, FIRST),
        ),
        (
            ACTIVE,
            "app.market.subscription.active",
            expected(Event::Activated, GROWTH, None, FIRST),
        ),
        (
            WARNING,
            "app.market.subscription.warning",
            expected(Event::Warned, GROWTH, None, FIRST),
        ),
        (
            UPGRADE,
            "app.market.subscription.upgrade",
            expected(Event::Upgraded, PRO, Some(GROWTH), UPGRADED),
        ),
        (
            RENEW,
            "app.market.subscription.renew",
            expected(Event::Renewed, PRO, None, RENEWED),
        ),
        (
            SUSPENDED,
            "app.market.subscription.suspended",
            expected(Event::Suspended, PRO, None, RENEWED),
        ),
        (
            EXPIRED,
            "app.market.subscription.expired",
            expected(Event::Expired, PRO, None, RENEWED),
        ),
        (
            RESUBSCRIBE,
            "app.market.subscription.active",
            expected(Event::Activated, GROWTH, None, LATER),
        ),
        (
            REFUNDED,
            "app.market.subscription.refunded",
            expected(Event::Refunded, GROWTH, None, LATER),
        ),
        (
            UNINSTALL,
            "app.market.application.uninstall",
            expected(Event::Uninstalled, GROWTH, None, LATER),
        ),
    ];
    for (body, name, want) in cases {
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.event_name.as_deref(), Some(name));
        assert_eq!(parsed.meaning, Meaning::Subscription(want), "{name}");
    }
}

#[test]
fn install_is_installed_for_store_and_app() {
    let event = subscription(INSTALL);
    assert_eq!(event.event, Event::Installed);
    assert_eq!(event.external_id, "507530:1292");
    assert_eq!(event.external_product, "1292");
    assert_eq!(event.email.as_str(), "info@ehmp.com.sa");
}

#[test]
fn upgrade_names_the_new_plan_and_the_old_one() {
    let event = subscription(UPGRADE);
    assert_eq!(event.event, Event::Upgraded);
    assert_eq!(event.plan.as_deref(), Some("الاحترافي"));
    assert_eq!(event.previous_plan.as_deref(), Some("النمو"));
}

#[test]
fn microsecond_timestamps_are_kept_to_the_microsecond() {
    let event = subscription(UPGRADE);
    assert_eq!(
        event.period_start,
        Some(datetime!(2025-03-20 11:42:10.123456 UTC))
    );
    assert_eq!(
        event.period_end,
        Some(datetime!(2025-04-19 11:42:10.123456 UTC))
    );
    // `.000000Z`, as in the docs' samples, is a whole second.
    assert_eq!(
        subscription(ACTIVE).period_end,
        Some(datetime!(2025-03-22 08:05:29 UTC))
    );
}

#[test]
fn other_date_shapes_are_accepted() {
    for (raw, want) in [
        ("2025-03-22T08:05:29Z", datetime!(2025-03-22 08:05:29 UTC)),
        (
            "2025-03-22T08:05:29.5Z",
            datetime!(2025-03-22 08:05:29.5 UTC),
        ),
        (
            "2025-03-22T11:05:29+03:00",
            datetime!(2025-03-22 08:05:29 UTC),
        ),
        (
            "2025-03-22T11:05:29.000000+03:00",
            datetime!(2025-03-22 08:05:29 UTC),
        ),
        // Laravel's default serialisation, no zone: UTC.
        ("2025-03-22 08:05:29", datetime!(2025-03-22 08:05:29 UTC)),
    ] {
        let event = subscription(&with(ACTIVE, "end_date", json!(raw)));
        assert_eq!(event.period_end, Some(want), "{raw}");
    }
}

#[test]
fn null_or_absent_dates_are_absent() {
    let event = subscription(&edited(ACTIVE, |o| {
        o.insert("start_date".into(), Value::Null);
        o.insert("end_date".into(), json!(""));
    }));
    assert_eq!((event.period_start, event.period_end), (None, None));
    let event = subscription(&edited(ACTIVE, |o| {
        o.remove("start_date");
        o.remove("end_date");
    }));
    assert_eq!((event.period_start, event.period_end), (None, None));
}

#[test]
fn old_plan_name_is_read_on_any_lifecycle_event() {
    // Null in the samples; when Zid fills it on another event it is kept too.
    assert_eq!(subscription(RENEW).previous_plan, None);
    let event = subscription(&with(RENEW, "old_plan_name", json!("Basic")));
    assert_eq!(event.previous_plan.as_deref(), Some("Basic"));
}

#[test]
fn empty_plan_names_are_absent() {
    for value in [Value::Null, json!(""), json!("   ")] {
        let event = subscription(&edited(UPGRADE, |o| {
            o.insert("plan_name".into(), value.clone());
            o.insert("old_plan_name".into(), value.clone());
        }));
        assert_eq!((event.plan, event.previous_plan), (None, None), "{value}");
    }
    let event = subscription(&without(ACTIVE, "plan_name"));
    assert_eq!(event.plan, None);
}

#[test]
fn plan_names_are_trimmed() {
    let event = subscription(&with(ACTIVE, "plan_name", json!("  Super 30 ")));
    assert_eq!(event.plan.as_deref(), Some("Super 30"));
}

// ---------------------------------------------------------------- ignored events

#[test]
fn other_app_events_are_ignored_with_their_name() {
    assert_ignored(AUTHORIZED, "app.market.application.authorized");
    assert_ignored(RATED, "app.market.application.rated");
    assert_ignored(PLAN_REQUEST, "app.market.private.plan.request");
    assert_ignored(
        USAGE_SUCCESS,
        "app.market.subscription.usage_based.payment_success",
    );
    let failure = "app.market.subscription.usage_based.payment_failure";
    assert_ignored(&with(USAGE_SUCCESS, "event_name", json!(failure)), failure);
}

#[test]
fn unknown_app_events_are_ignored() {
    for name in [
        "app.market.subscription.paused",
        "app.market.application.reinstalled",
        "app.something.new",
    ] {
        assert_ignored(&with(ACTIVE, "event_name", json!(name)), name);
    }
}

#[test]
fn event_names_are_matched_exactly() {
    // Not a lifecycle event by a near miss: ignored, never applied.
    for name in [
        "APP.MARKET.SUBSCRIPTION.ACTIVE",
        "app.market.subscription.active ",
        "app.market.subscription.activated",
    ] {
        let parsed = parse(&with(ACTIVE, "event_name", json!(name))).unwrap();
        assert_eq!(parsed.meaning, Meaning::Ignored, "{name:?}");
    }
}

/// The order a merchant order body means, or a panic.
fn merchant_order(body: &[u8]) -> (String, OrderEvent) {
    match parse(body) {
        Ok(Parsed {
            event_name: Some(name),
            meaning: Meaning::Order(event),
        }) => (name, event),
        other => panic!("expected an order, got {other:?}"),
    }
}

fn order_buyer() -> Option<OrderBuyer> {
    Some(OrderBuyer {
        email: email("example.user@email.com"),
        external_products: vec![ORDER_PRODUCT.to_owned()],
    })
}

#[test]
fn every_documented_order_event_is_an_order_of_the_integration() {
    let expected = [
        (
            "order status new, payment pending",
            order::Event::Progressed,
        ),
        ("order status preparing, payment paid", order::Event::Paid),
        ("order status new, payment paid", order::Event::Paid),
    ];
    for ((name, body), (event_name, event)) in ORDER_EVENTS.into_iter().zip(expected) {
        let (got_name, got) = merchant_order(body);
        assert_eq!(got_name, event_name, "{name}");
        assert_eq!(
            got,
            OrderEvent {
                external_id: ORDER_ID.to_owned(),
                event,
                paid_at: None,
                buyer: order_buyer(),
            },
            "{name}"
        );
    }
}

#[test]
fn every_other_merchant_entity_is_ignored_with_a_reason_naming_it() {
    for (name, body) in OTHER_MERCHANT_EVENTS {
        let entity = match name.split('.').next().unwrap() {
            "abandoned_cart" => "abandoned cart",
            "customer" if name == "customer.merchant.update" => "customer",
            entity => entity,
        };
        assert_ignored(body, &format!("zid {entity} event"));
    }
}

#[test]
fn a_body_without_an_order_status_is_no_order() {
    assert_ignored(
        json!({"id": 1, "store_id": 2}).to_string().as_bytes(),
        "zid merchant event",
    );
    assert_ignored(b"{}", "zid merchant event");
}

/// DESIGN.md's order table, the Zid merchant column: the first matching row
/// decides, status codes and payment statuses case-insensitively, both
/// documented spellings.
#[test]
fn the_order_event_is_read_from_the_current_state() {
    use order::Event as E;
    let cases: &[(&str, Option<&str>, E)] = &[
        ("refunded", Some("paid"), E::Refunded),
        ("reversed", Some("paid"), E::Refunded),
        ("chargeback", Some("paid"), E::Refunded),
        ("Refunded", None, E::Refunded),
        ("new", Some("refunded"), E::Refunded),
        ("canceled", Some("pending"), E::Canceled),
        ("cancelled", Some("pending"), E::Canceled),
        ("CANCELLED", None, E::Canceled),
        ("voided", Some("paid"), E::Canceled),
        ("denied", None, E::Canceled),
        ("failed", Some("pending"), E::Canceled),
        ("new", Some("voided"), E::Canceled),
        ("expired", Some("pending"), E::Expired),
        ("new", Some("paid"), E::Paid),
        ("delivered", Some("PAID"), E::Paid),
        ("processingReverse", Some("paid"), E::Paid),
        ("reverse_in_progress", Some("pending"), E::Informational),
        ("processingReverse", None, E::Informational),
        ("canceledReversal", Some("pending"), E::Informational),
        ("new", Some("pending"), E::Progressed),
        ("preparing", None, E::Progressed),
        ("inDelivery", Some("pending"), E::Progressed),
        ("indelivery", Some("pending"), E::Progressed),
        ("a custom status", Some("unpaid"), E::Progressed),
    ];
    for &(code, payment, expected) in cases {
        for status in [json!({"name": "x", "code": code}), json!(code)] {
            let body = edited(ORDER_CREATE, |o| {
                o.insert("order_status".into(), status.clone());
                match payment {
                    Some(p) => o.insert("payment_status".into(), json!(p)),
                    None => o.remove("payment_status"),
                };
            });
            assert_eq!(
                merchant_order(&body).1.event,
                expected,
                "{status} / {payment:?}"
            );
        }
    }
}

#[test]
fn payment_status_change_is_read_when_payment_status_is_absent() {
    let body = edited(ORDER_CREATE, |o| {
        o.remove("payment_status");
        o.insert(
            "payment_status_change".into(),
            json!({"old": "unpaid", "new": "paid"}),
        );
    });
    assert_eq!(merchant_order(&body).1.event, order::Event::Paid);
}

#[test]
fn an_unreadable_status_is_an_unknown_one() {
    for status in [
        json!({"name": "Delivered"}),
        json!({"name": "x", "code": 13}),
        json!(7),
        json!({"code": "bad\u{0}code"}),
        json!("جاهز"),
    ] {
        let body = with(ORDER_CREATE, "order_status", status.clone());
        let (name, event) = merchant_order(&body);
        assert_eq!(event.event, order::Event::Progressed, "{status}");
        assert!(!name.contains('\0'), "{name:?}");
    }
}

#[test]
fn an_order_without_a_usable_customer_or_products_has_no_buyer() {
    let no_email = include_bytes!("../../fixtures/zid/merchant/order-life.no-email.json");
    assert_eq!(merchant_order(no_email).1.buyer, None);
    let variants = [
        without(ORDER_CREATE, "customer"),
        with(ORDER_CREATE, "customer", json!("Osama")),
        with(ORDER_CREATE, "customer", json!({"id": "1", "email": ""})),
        with(ORDER_CREATE, "customer", json!({"email": "not an email"})),
        with(ORDER_CREATE, "customer", json!({"email": 42})),
        without(ORDER_CREATE, "products"),
        with(ORDER_CREATE, "products", json!([])),
        with(ORDER_CREATE, "products", json!([{"sku": "no id"}])),
        with(ORDER_CREATE, "products", json!("23edd6a6")),
    ];
    for body in variants {
        let (_, event) = merchant_order(&body);
        assert_eq!(event.buyer, None, "{}", String::from_utf8_lossy(&body));
        assert_eq!(event.external_id, ORDER_ID);
    }
}

#[test]
fn the_customer_email_is_normalised_and_every_product_kept() {
    let body = edited(ORDER_CREATE, |o| {
        o.insert(
            "customer".into(),
            json!({"email": "  Example.User@EMAIL.com "}),
        );
        o.insert(
            "products".into(),
            json!([{"id": "a"}, {"id": 7}, {"id": "a"}]),
        );
    });
    assert_eq!(
        merchant_order(&body).1.buyer,
        Some(OrderBuyer {
            email: email("example.user@email.com"),
            external_products: vec!["a".into(), "7".into(), "a".into()],
        })
    );
}

#[test]
fn an_order_without_its_id_is_malformed() {
    assert_malformed(&without(ORDER_CREATE, "id"), "id");
    assert_malformed(&with(ORDER_CREATE, "id", json!({"n": 1})), "id");
}

/// A merchant event name in the app-event shape is not documented, but means
/// nothing for the app either.
#[test]
fn merchant_event_names_in_the_app_shape_are_ignored() {
    for name in ["order.create", "customer.login", "product.update"] {
        assert_ignored(&with(ACTIVE, "event_name", json!(name)), name);
    }
}

#[test]
fn rated_without_merchant_email_is_ignored() {
    assert_ignored(
        &without(RATED, "merchant_email"),
        "app.market.application.rated",
    );
    assert_ignored(
        &with(RATED, "merchant_email", json!("not an email")),
        "app.market.application.rated",
    );
}

#[test]
fn rated_without_store_or_app_is_malformed() {
    assert_malformed(&without(RATED, "store_id"), "store_id");
    assert_malformed(&without(RATED, "app_id"), "app_id");
    assert_malformed(&with(RATED, "store_id", json!({"id": 507530})), "store_id");
}

// ---------------------------------------------------------------- leniency

#[test]
fn ids_may_be_strings() {
    let body = edited(ACTIVE, |o| {
        o.insert("store_id".into(), json!("507530"));
        o.insert("app_id".into(), json!(" 1292 "));
    });
    assert_eq!(subscription(&body), subscription(ACTIVE));
}

#[test]
fn amount_paid_may_be_decimal_integer_string_or_absent() {
    for value in [
        json!(79.01),
        json!(79),
        json!(1150),
        json!("79.01"),
        Value::Null,
    ] {
        let body = with(ACTIVE, "amount_paid", value.clone());
        assert_eq!(subscription(&body), subscription(ACTIVE), "{value}");
    }
    assert_eq!(
        subscription(&without(ACTIVE, "amount_paid")),
        subscription(ACTIVE)
    );
}

#[test]
fn arabic_plan_names_are_decoded_escaped_or_not() {
    // The fixture sends `\u0627\u0644\u0646\u0645\u0648`.
    assert!(
        std::str::from_utf8(ACTIVE)
            .unwrap()
            .contains(r#""plan_name":"\u0627\u0644\u0646\u0645\u0648""#)
    );
    assert_eq!(subscription(ACTIVE).plan.as_deref(), Some("النمو"));
    // The same name as raw UTF-8.
    let raw = std::str::from_utf8(ACTIVE)
        .unwrap()
        .replace(r"\u0627\u0644\u0646\u0645\u0648", "النمو");
    assert_eq!(subscription(raw.as_bytes()), subscription(ACTIVE));
}

#[test]
fn escaped_slashes_are_decoded() {
    assert!(std::str::from_utf8(ACTIVE).unwrap().contains(r"https:\/\/"));
    let body = std::str::from_utf8(ACTIVE)
        .unwrap()
        .replace(r"info@ehmp.com.sa", r"info\/x@ehmp.com.sa")
        .replace(
            r#""plan_name":"\u0627\u0644\u0646\u0645\u0648""#,
            r#""plan_name":"Pro\/Annual""#,
        );
    let event = subscription(body.as_bytes());
    assert_eq!(event.plan.as_deref(), Some("Pro/Annual"));
    assert_eq!(event.email.as_str(), "info/x@ehmp.com.sa");
}

#[test]
fn the_current_sample_parses_as_the_docs_show_it() {
    // The verbatim sample is an ignored event, but its shape is the one every
    // lifecycle event shares: as `active`, it reads in full.
    let body = std::str::from_utf8(AUTHORIZED).unwrap().replace(
        "app.market.application.authorized",
        "app.market.subscription.active",
    );
    assert_eq!(
        subscription(body.as_bytes()),
        expected(Event::Activated, GROWTH, None, FIRST)
    );
}

#[test]
fn the_older_shape_is_accepted() {
    let parsed = parse(LEGACY).unwrap();
    assert_eq!(
        parsed.event_name.as_deref(),
        Some("app.market.subscription.active")
    );
    assert_eq!(
        parsed.meaning,
        Meaning::Subscription(SubscriptionEvent {
            external_id: "12594:65".into(),
            event: Event::Activated,
            email: email("merchant@example.com"),
            external_product: "65".into(),
            plan: Some("Super 30".into()),
            previous_plan: None,
            period_start: Some(datetime!(2021-10-13 19:36:36 UTC)),
            period_end: Some(datetime!(2021-11-11 19:36:36 UTC)),
        })
    );
}

#[test]
fn the_current_shape_without_the_newer_fields_is_the_same_event() {
    let body = edited(ACTIVE, |o| {
        o.remove("store_uuid");
        o.remove("plan_id");
        o.remove("payment_date");
    });
    assert_eq!(subscription(&body), subscription(ACTIVE));
}

#[test]
fn unknown_fields_are_ignored() {
    let body = edited(ACTIVE, |o| {
        o.insert("brand_new".into(), json!({"nested": [1, 2, 3]}));
        o.insert("store_uuid".into(), json!(42));
        o.insert("plan_id".into(), json!("904"));
        o.insert("payment_date".into(), json!("not a date: not read"));
        o.insert("status".into(), json!(null));
    });
    assert_eq!(subscription(&body), subscription(ACTIVE));
}

#[test]
fn email_is_normalised() {
    let body = with(ACTIVE, "merchant_email", json!("  Info@EHMP.com.SA \t"));
    let event = subscription(&body);
    assert_eq!(event.email.as_str(), "info@ehmp.com.sa");
    assert_eq!(event.email, email(EMAIL));
}

#[test]
fn the_subscription_is_one_per_store_and_app() {
    let other_store = subscription(&with(ACTIVE, "store_id", json!(507531)));
    assert_eq!(other_store.external_id, "507531:1292");
    let other_app = subscription(&with(ACTIVE, "app_id", json!(1293)));
    assert_eq!(other_app.external_id, "507530:1293");
    assert_eq!(other_app.external_product, "1293");
    assert_eq!(external_id("507530", "1292"), EXTERNAL_ID);
}

// ---------------------------------------------------------------- malformed

#[test]
fn not_json_is_malformed_as_a_whole() {
    for body in [&b"not json"[..], b"", b"{\"event_name\": ", b"\xff\xfe"] {
        let err = parse(body).expect_err("not JSON");
        assert_eq!(err.field, None);
        assert!(err.detail.contains("JSON"), "{}", err.detail);
    }
}

#[test]
fn a_body_that_is_not_an_object_is_malformed() {
    for body in [&b"[]"[..], b"\"x\"", b"null", b"42"] {
        let err = parse(body).expect_err("not an object");
        assert_eq!(err.field, None);
        assert!(err.detail.contains("object"), "{}", err.detail);
    }
}

#[test]
fn without_event_name_a_body_is_a_merchant_event() {
    // Zid's merchant events carry no event name: an app event's fields
    // without one are no store entity it knows.
    assert_ignored(&without(ACTIVE, "event_name"), "zid merchant event");
    assert_ignored(
        &with(ACTIVE, "event_name", Value::Null),
        "zid merchant event",
    );
}

#[test]
fn a_blank_event_name_is_malformed() {
    assert_malformed(&with(ACTIVE, "event_name", json!("  ")), "event_name");
}

#[test]
fn event_name_of_the_wrong_type() {
    assert_malformed(&with(ACTIVE, "event_name", json!(7)), "event_name");
}

#[test]
fn missing_store_id() {
    assert_malformed(&without(ACTIVE, "store_id"), "store_id");
    assert_malformed(&with(ACTIVE, "store_id", Value::Null), "store_id");
    assert_malformed(&with(ACTIVE, "store_id", json!("")), "store_id");
}

#[test]
fn missing_app_id() {
    assert_malformed(&without(ACTIVE, "app_id"), "app_id");
    assert_malformed(&with(ACTIVE, "app_id", Value::Null), "app_id");
    assert_malformed(&with(ACTIVE, "app_id", json!(" ")), "app_id");
}

#[test]
fn ids_of_the_wrong_type() {
    for value in [
        json!({"id": 507530}),
        json!(true),
        json!([507530]),
        json!(5075.3),
    ] {
        assert_malformed(&with(ACTIVE, "store_id", value.clone()), "store_id");
        assert_malformed(&with(ACTIVE, "app_id", value), "app_id");
    }
}

#[test]
fn store_id_as_an_object() {
    let err = assert_malformed(&with(ACTIVE, "store_id", json!({"id": 507530})), "store_id");
    assert!(
        err.detail.contains("string or an integer"),
        "{}",
        err.detail
    );
}

#[test]
fn missing_merchant_email_on_every_lifecycle_event() {
    for body in [
        INSTALL, ACTIVE, WARNING, UPGRADE, RENEW, SUSPENDED, EXPIRED, REFUNDED, UNINSTALL,
    ] {
        assert_malformed(&without(body, "merchant_email"), "merchant_email");
        assert_malformed(&with(body, "merchant_email", Value::Null), "merchant_email");
        assert_malformed(&with(body, "merchant_email", json!("")), "merchant_email");
    }
}

#[test]
fn merchant_email_that_is_not_an_email() {
    for raw in ["not-an-email", "@ehmp.com.sa", "info@", "a b@ehmp.com.sa"] {
        assert_malformed(
            &with(ACTIVE, "merchant_email", json!(raw)),
            "merchant_email",
        );
    }
    assert_malformed(&with(ACTIVE, "merchant_email", json!(5)), "merchant_email");
}

#[test]
fn bad_end_date() {
    let err = assert_malformed(&with(ACTIVE, "end_date", json!("not a date")), "end_date");
    assert!(err.detail.contains("not a date"), "{}", err.detail);
    assert_malformed(
        &with(ACTIVE, "end_date", json!("2025-13-22T08:05:29.000000Z")),
        "end_date",
    );
    assert_malformed(&with(ACTIVE, "end_date", json!(1_742_630_729)), "end_date");
}

#[test]
fn bad_start_date() {
    assert_malformed(
        &with(ACTIVE, "start_date", json!("yesterday")),
        "start_date",
    );
}

#[test]
fn the_first_missing_key_field_is_named() {
    // Without anything but the event name, the store comes first.
    assert_malformed(
        br#"{"event_name": "app.market.subscription.active"}"#,
        "store_id",
    );
    assert_malformed(
        br#"{"event_name": "app.market.subscription.active", "store_id": 1}"#,
        "app_id",
    );
    assert_malformed(
        br#"{"event_name": "app.market.subscription.active", "store_id": 1, "app_id": 2}"#,
        "merchant_email",
    );
    let minimal = br#"{"event_name": "app.market.subscription.active", "store_id": 1,
        "app_id": 2, "merchant_email": "a@b.sa"}"#;
    assert_eq!(
        subscription(minimal),
        SubscriptionEvent {
            external_id: "1:2".into(),
            event: Event::Activated,
            email: email("a@b.sa"),
            external_product: "2".into(),
            plan: None,
            previous_plan: None,
            period_start: None,
            period_end: None,
        }
    );
}

// ---------------------------------------------------------------- authenticate

const SECRET: &str = "zid_s3cret-Value:42";

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

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

fn auth(secret: &str, headers: &HeaderMap, query: Option<&str>) -> Result<(), Unauthenticated> {
    authenticate(
        &Secret::new(secret),
        &Request {
            headers,
            query,
            body: ACTIVE,
        },
    )
}

#[test]
fn correct_token_is_accepted() {
    let h = HeaderMap::new();
    let secret = "zid-token-0123456789";
    assert_eq!(auth(secret, &h, Some(&format!("token={secret}"))), Ok(()));
    assert_eq!(
        auth(secret, &h, Some(&format!("a=1&token={secret}&b"))),
        Ok(())
    );
    // Percent-encoded, as a query string carries `:` and other reserved bytes.
    assert_eq!(
        auth(SECRET, &h, Some("token=zid_s3cret-Value%3A42")),
        Ok(())
    );
}

#[test]
fn wrong_or_missing_token_is_rejected() {
    let h = HeaderMap::new();
    assert_eq!(
        auth(SECRET, &h, Some("token=zid_s3cret-Value:43")),
        Err(Unauthenticated)
    );
    assert_eq!(auth(SECRET, &h, Some("token=")), Err(Unauthenticated));
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    assert_eq!(auth(SECRET, &h, Some("")), Err(Unauthenticated));
    // The secret under another parameter name is not a token.
    assert_eq!(
        auth(SECRET, &h, Some(&format!("secret={SECRET}"))),
        Err(Unauthenticated)
    );
}

#[test]
fn basic_with_the_secret_as_password_is_accepted_whatever_the_username() {
    for user in ["zid", "", "my-app", "merchant 507530"] {
        let h = headers(&[("Authorization", &basic(user, SECRET))]);
        assert_eq!(auth(SECRET, &h, None), Ok(()), "{user:?}");
    }
    // The scheme is case-insensitive.
    let lower = basic("zid", SECRET).replacen("Basic", "basic", 1);
    let h = headers(&[("authorization", &lower)]);
    assert_eq!(auth(SECRET, &h, None), Ok(()));
}

#[test]
fn basic_password_is_everything_after_the_first_colon() {
    // SECRET itself contains a colon.
    assert!(SECRET.contains(':'));
    let h = headers(&[("Authorization", &basic("zid", SECRET))]);
    assert_eq!(auth(SECRET, &h, None), Ok(()));
    // The whole `user:password` being the secret is not enough: the part
    // before the first colon is the username.
    let (head, tail) = SECRET.split_once(':').unwrap();
    let h = headers(&[("Authorization", &basic(head, tail))]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    // A username with colons cannot be sent (RFC 7617): `a:b:<secret>` has
    // the password `b:<secret>`.
    let h = headers(&[("Authorization", &basic("a:b", SECRET))]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
}

#[test]
fn basic_with_a_wrong_password_is_rejected() {
    for (user, password) in [
        ("zid", "zid_s3cret-Value:43"),
        ("zid", ""),
        (SECRET, "wrong"),
        (SECRET, ""),
        ("zid", &format!("{SECRET}x")),
        ("zid", &SECRET[..SECRET.len() - 1]),
    ] {
        let h = headers(&[("Authorization", &basic(user, password))]);
        assert_eq!(
            auth(SECRET, &h, None),
            Err(Unauthenticated),
            "{user}:{password}"
        );
    }
}

#[test]
fn bearer_with_the_secret_is_rejected() {
    let h = headers(&[("Authorization", &format!("Bearer {SECRET}"))]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    // Nor a Bearer carrying what a Basic header would.
    let encoded = BASE64.encode(format!("zid:{SECRET}"));
    let h = headers(&[("Authorization", &format!("Bearer {encoded}"))]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
}

#[test]
fn x_webhook_secret_is_not_a_zid_mechanism() {
    let h = headers(&[("X-Webhook-Secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
    let h = headers(&[("Authorization", SECRET), ("X-Secret", SECRET)]);
    assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated));
}

#[test]
fn malformed_basic_is_rejected() {
    for value in [
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {SECRET}"),
        // Valid base64, but no colon: no password at all.
        format!("Basic {}", BASE64.encode(SECRET)),
        "Basic".to_owned(),
        "Basic ".to_owned(),
        // Padding mangled.
        format!("Basic {}=", BASE64.encode(format!("zid:{SECRET}"))),
    ] {
        let h = headers(&[("Authorization", &value)]);
        assert_eq!(auth(SECRET, &h, None), Err(Unauthenticated), "{value:?}");
    }
}

#[test]
fn one_correct_credential_is_enough() {
    let h = headers(&[("Authorization", &basic("zid", "wrong"))]);
    assert_eq!(
        auth(SECRET, &h, Some("token=zid_s3cret-Value%3A42")),
        Ok(())
    );
    let h = headers(&[("Authorization", &basic("zid", SECRET))]);
    assert_eq!(auth(SECRET, &h, Some("token=wrong")), Ok(()));
}
