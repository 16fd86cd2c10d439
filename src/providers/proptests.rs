//! Property tests of every adapter at its edges: arbitrary bytes, arbitrary JSON
//! values, realistic payloads with one field replaced, dates at and beyond the
//! range the `time` crate can hold, and arbitrary headers and query strings for
//! authentication. Whatever arrives, the answer is a value or a typed error
//! (`Malformed`, `Unauthenticated`, `VerifyError`), never a panic.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Number, Value};
use sha2::Sha256;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::*;
use crate::crypto::standard_webhooks::{self, VerifyError};
use crate::domain::{Instant, Provider};
use crate::secret::Secret;
use crate::time_fmt;

// ---------------------------------------------------------------- fixtures

struct Fixture {
    provider: Provider,
    name: &'static str,
    body: &'static [u8],
}

/// A failure names the fixture, not its bytes.
impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider.as_str(), self.name)
    }
}

macro_rules! fixture {
    ($provider:ident, $dir:literal, $name:literal) => {
        Fixture {
            provider: Provider::$provider,
            name: $name,
            body: include_bytes!(concat!("../../fixtures/", $dir, "/", $name, ".json")),
        }
    };
}

/// Every fixture of every provider.
const FIXTURES: &[Fixture] = &[
    fixture!(Zenofy, "zenofy", "subscription.created"),
    fixture!(Zenofy, "zenofy", "subscription.activated"),
    fixture!(Zenofy, "zenofy", "subscription.renewed"),
    fixture!(Zenofy, "zenofy", "subscription.suspended"),
    fixture!(Zenofy, "zenofy", "subscription.canceled"),
    fixture!(Zenofy, "zenofy", "subscription.expired"),
    fixture!(Zenofy, "zenofy", "order_paid"),
    fixture!(Zenofy, "zenofy", "order_refunded"),
    fixture!(Zenofy, "zenofy", "order_cancelled"),
    fixture!(Zid, "zid", "app.market.application.install"),
    fixture!(Zid, "zid", "app.market.application.authorized"),
    fixture!(Zid, "zid", "app.market.application.rated"),
    fixture!(Zid, "zid", "app.market.application.uninstall"),
    fixture!(Zid, "zid", "app.market.private.plan.request"),
    fixture!(Zid, "zid", "app.market.subscription.active"),
    fixture!(Zid, "zid", "app.market.subscription.active.legacy"),
    fixture!(Zid, "zid", "app.market.subscription.active.resubscribe"),
    fixture!(Zid, "zid", "app.market.subscription.expired"),
    fixture!(Zid, "zid", "app.market.subscription.refunded"),
    fixture!(Zid, "zid", "app.market.subscription.renew"),
    fixture!(Zid, "zid", "app.market.subscription.suspended"),
    fixture!(Zid, "zid", "app.market.subscription.upgrade"),
    fixture!(
        Zid,
        "zid",
        "app.market.subscription.usage_based.payment_success"
    ),
    fixture!(Zid, "zid", "app.market.subscription.warning"),
    fixture!(Zid, "zid/merchant", "order.create"),
    fixture!(Zid, "zid/merchant", "order.payment_status.update"),
    fixture!(Zid, "zid/merchant", "order-life.cancelled"),
    fixture!(Zid, "zid/merchant", "order-life.no-email"),
    fixture!(Zid, "zid/merchant", "customer.login"),
    fixture!(Zid, "zid/merchant", "abandoned_cart.completed"),
    fixture!(Zenobank, "zenobank", "checkout.completed"),
    fixture!(Zenobank, "zenobank", "checkout.expired"),
    fixture!(Zenobank, "zenobank", "checkout.partially_paid"),
    fixture!(Zaypay, "zaypay", "completed"),
    fixture!(Zaypay, "zaypay", "cancelled"),
    fixture!(Zaypay, "zaypay", "creation_blocked"),
    fixture!(Zaypay, "zaypay", "deposit_received"),
    fixture!(Zaypay, "zaypay", "refund_completed"),
    fixture!(Zaypay, "zaypay", "refund_failed"),
    fixture!(Zaypay, "zaypay", "refund_initiated"),
    fixture!(Zaypay, "zaypay", "transfer_pending"),
];

fn fixture_json(fixture: &Fixture) -> Value {
    serde_json::from_slice(fixture.body).expect("fixtures are JSON")
}

fn fixture_by_name(name: &str) -> &'static Fixture {
    FIXTURES
        .iter()
        .find(|f| f.name == name)
        .expect("a known fixture")
}

/// The JSON pointers of every value below the root (objects' members and
/// arrays' elements, at any depth), in document order.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                    out.push(pointer.clone());
                    walk(member, &pointer, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let pointer = format!("{at}/{i}");
                    out.push(pointer.clone());
                    walk(item, &pointer, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// A fixture with the value at `pointer` replaced.
fn replaced(fixture: &Fixture, pointer: &str, with: Value) -> Vec<u8> {
    let mut json = fixture_json(fixture);
    *json.pointer_mut(pointer).expect("the pointer exists") = with;
    serde_json::to_vec(&json).unwrap()
}

/// A fixture with the value at `pointer` removed (a member or an element).
fn removed(fixture: &Fixture, pointer: &str) -> Vec<u8> {
    let mut json = fixture_json(fixture);
    let (parent, last) = pointer.rsplit_once('/').expect("not the root");
    let last = last.replace("~1", "/").replace("~0", "~");
    match json.pointer_mut(parent).expect("the parent exists") {
        Value::Object(members) => {
            members.remove(&last);
        }
        Value::Array(items) => {
            items.remove(last.parse::<usize>().unwrap());
        }
        _ => unreachable!("a pointer's parent is a container"),
    }
    serde_json::to_vec(&json).unwrap()
}

/// A fixture with the value at `pointer` replaced by raw JSON text, valid or not.
fn spliced(fixture: &Fixture, pointer: &str, raw: &str) -> Vec<u8> {
    const MARK: &str = "\u{1}proptest-splice\u{1}";
    let text = String::from_utf8(replaced(fixture, pointer, Value::String(MARK.into()))).unwrap();
    let quoted = serde_json::to_string(MARK).unwrap();
    text.replacen(&quoted, raw, 1).into_bytes()
}

/// A fixture and one of its values, drawn uniformly over all the values of all
/// fixtures' trees.
fn fixture_and_pointer() -> impl Strategy<Value = (&'static Fixture, String)> {
    (0..FIXTURES.len(), any::<Index>()).prop_map(|(i, at)| {
        let fixture = &FIXTURES[i];
        let all = pointers(&fixture_json(fixture));
        (fixture, all[at.index(all.len())].clone())
    })
}

// ---------------------------------------------------------------- strategies

fn fixtures() -> impl Strategy<Value = &'static Fixture> {
    prop::sample::select(FIXTURES.iter().collect::<Vec<_>>())
}

fn provider() -> impl Strategy<Value = Provider> {
    prop::sample::select(Provider::ALL.to_vec())
}

/// Every key an adapter reads, so that arbitrary objects reach past the first check.
const KEYS: &[&str] = &[
    "event",
    "subscriptionId",
    "productId",
    "customerEmail",
    "currentPeriodStart",
    "currentPeriodEnd",
    "renewal",
    "newPeriodEnd",
    "orderId",
    "customer",
    "email",
    "items",
    "paidAt",
    "event_name",
    "store_id",
    "app_id",
    "merchant_email",
    "plan_name",
    "old_plan_name",
    "start_date",
    "end_date",
    "type",
    "data",
    "event_type",
    "subject_id",
    "payload",
    "order",
    "status",
    "created_at",
];

/// Every value an adapter switches on.
const NAMES: &[&str] = &[
    "subscription.created",
    "subscription.activated",
    "subscription.renewed",
    "subscription.suspended",
    "subscription.canceled",
    "subscription.expired",
    "order_paid",
    "order_refunded",
    "order_cancelled",
    "app.market.application.install",
    "app.market.subscription.active",
    "app.market.subscription.renew",
    "app.market.subscription.upgrade",
    "app.market.subscription.warning",
    "app.market.subscription.suspended",
    "app.market.subscription.expired",
    "app.market.subscription.refunded",
    "app.market.application.uninstall",
    "app.market.application.rated",
    "order.create",
    "checkout.completed",
    "checkout.expired",
    "checkout.partially_paid",
    "order_status_changed",
    "completed",
    "cancelled",
    "refund_completed",
    "refund_initiated",
    "transfer_pending",
];

/// Unicode text: any scalar values (controls and U+0000 included), with the
/// awkward ones made likely.
fn text() -> impl Strategy<Value = String> {
    let awkward = prop::sample::select(vec![
        '\u{0}',
        '\u{1}',
        '\t',
        '\n',
        '\r',
        ' ',
        '"',
        '\\',
        '/',
        '%',
        '+',
        '&',
        '=',
        ':',
        '@',
        '\u{7f}',
        '\u{85}',
        '\u{a0}',
        '\u{200b}',
        '\u{2028}',
        '\u{feff}',
        '\u{212a}',
        '\u{fffd}',
        '\u{10ffff}',
        'é',
        'ß',
        '\u{627}',
    ]);
    let one = prop_oneof![any::<char>(), awkward, prop::char::range('a', 'z')];
    prop_oneof![
        prop::collection::vec(one, 0..24).prop_map(String::from_iter),
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("   ".to_owned()),
        "[a-z]{1,8}@[a-z]{1,8}\\.com",
        "[a-z]{1,8}@[a-z]{1,8}\\.com".prop_map(|email| format!("{email}\u{0}")),
        prop::sample::select(NAMES).prop_map(str::to_owned),
    ]
}

/// Numbers at the edges of what serde_json holds without arbitrary precision.
fn json_number() -> impl Strategy<Value = Number> {
    use prop::num::f64 as float;
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX])
            .prop_map(Number::from),
        Just(Number::from(u64::MAX)),
        (float::POSITIVE | float::NEGATIVE | float::NORMAL | float::SUBNORMAL | float::ZERO)
            .prop_filter_map("finite", Number::from_f64),
        prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            -0.0,
            1e300,
            -1e300,
            9.223372036854776e18,
            1.8446744073709552e19,
            0.5,
        ])
        .prop_filter_map("finite", Number::from_f64),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number().prop_map(Value::Number),
        text().prop_map(Value::String),
        extreme_date().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => text(),
    ]
}

/// Any JSON value, nested up to 8 deep.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(8, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..10)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Any JSON object, with the keys the adapters read made likely.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((json_key(), json_value()), 0..12)
        .prop_map(|members| Value::Object(members.into_iter().collect()))
}

/// A value nested `depth` deep in arrays or objects: beyond serde_json's
/// recursion limit (128) as text, within it as a `Value`.
fn nested(depth: usize, objects: bool, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| {
        if objects {
            Value::Object(Map::from_iter([("data".to_owned(), inner)]))
        } else {
            Value::Array(vec![inner])
        }
    })
}

/// Raw JSON text that a `Value` cannot carry: numbers beyond `f64`, lone
/// surrogates, nesting past the recursion limit, and near-JSON.
fn raw_json() -> impl Strategy<Value = String> {
    let literal = prop::sample::select(vec![
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890123456789012345678901234567890",
        "1.7976931348623157e309",
        "-0",
        "-0.0",
        "0e0",
        "1E+2",
        "\"\\u0000\"",
        "\"a\\u0000@b.com\"",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\uDBFF\\uDFFF\"",
        "\"2026-05-01T08:00:00\\u0000Z\"",
        "NaN",
        "Infinity",
        "-Infinity",
        "01",
        "+1",
        ".5",
        "1.",
        "truex",
        "nul",
        "",
        "\"",
        "[",
        "{",
        "{\"a\":1,\"a\":2}",
        "{\"event\":\"order_paid\",\"event\":\"subscription.renewed\"}",
        "\"\u{feff}\"",
    ])
    .prop_map(str::to_owned);
    let deep = (100usize..300, any::<bool>()).prop_map(|(depth, objects)| {
        if objects {
            format!("{}1{}", "{\"data\":".repeat(depth), "}".repeat(depth))
        } else {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
    });
    prop_oneof![
        3 => literal,
        1 => deep,
        1 => "[0-9]{20,400}",
        1 => "-?[0-9]{1,3}\\.[0-9]{1,3}[eE][+-]?[0-9]{3,6}",
    ]
}

/// Date strings at and beyond the extremes of RFC 3339 and of `time`'s range.
fn extreme_date() -> impl Strategy<Value = String> {
    let named = prop::sample::select(vec![
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59.9999999999999Z",
        "9999-12-31T23:59:60Z",
        "9999-12-31T23:59:60-01:00",
        "9999-12-31T23:59:59",
        "9999-12-31 23:59:59",
        "0000-01-01T00:00:00+01:00",
        "0000-01-01T00:00:00+23:59",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00",
        "-0001-01-01T00:00:00Z",
        "-0001-12-31T23:59:59+01:00",
        "-0001-12-31T23:59:59",
        "-9999-01-01T00:00:00",
        "-9999-01-01T00:00:00Z",
        "-9999-01-01T00:00:00+01:00",
        "+10000-01-01T00:00:00Z",
        "+10000-01-01T00:00:00",
        "10000-01-01T00:00:00Z",
        "+9999-12-31T23:59:59Z",
        "+2026-05-01T08:00:00",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60",
        "2015-06-30T23:59:60+00:00",
        "2026-05-01T23:59:60+02:00",
        "2026-05-01T10:00:60Z",
        "2026-05-01T08:00:00.Z",
        "2026-05-01T08:00:00.",
        "2026-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-05-01T24:00:00Z",
        "2026-05-01T08:00:00+24:00",
        "2026-05-01T08:00:00-00:00",
        "2026-05-01T08:00:00+99:99",
        "2026-05-01T08:00:00+0100",
    ])
    .prop_map(str::to_owned);
    let year = prop_oneof![
        prop::sample::select(vec![
            "0000", "0001", "1969", "1970", "2026", "9998", "9999", "-0001", "-9999", "+0000",
            "+9999", "+10000", "-10000", "10000", "99999", "999",
        ])
        .prop_map(str::to_owned),
        (0u32..=9999).prop_map(|y| format!("{y:04}")),
    ];
    let two = |values: &'static [&'static str]| prop::sample::select(values);
    let fraction = prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        "\\.[0-9]{1,12}",
        (10usize..4000, prop::sample::select(vec!['0', '9'])).prop_map(|(n, digit)| {
            let mut fraction = String::from(".");
            fraction.extend(std::iter::repeat_n(digit, n));
            fraction
        }),
    ];
    let assembled = (
        year,
        two(&["01", "02", "12", "00", "13"]),
        two(&["01", "28", "29", "31", "00", "32"]),
        two(&["T", "t", " ", "_"]),
        two(&["00", "23", "24"]),
        two(&["00", "59", "60"]),
        two(&["00", "59", "60", "61"]),
        fraction,
        two(&[
            "Z", "z", "", "+00:00", "-00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+24:00",
            "+14:00", "+0100", "+01",
        ]),
    )
        .prop_map(|(y, mo, d, sep, h, mi, s, frac, offset)| {
            format!("{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{offset}")
        });
    let padded = (
        prop::sample::select(vec!["", " ", "\t", "\n", "\u{0}", "\u{a0}"]),
        prop::sample::select(vec![
            "9999-12-31T23:59:59-01:00",
            "0000-01-01T00:00:00+01:00",
        ]),
        prop::sample::select(vec!["", " ", "\t", "\n", "\u{0}", "\u{a0}"]),
    )
        .prop_map(|(before, date, after)| format!("{before}{date}{after}"));
    prop_oneof![2 => named, 3 => assembled, 1 => padded]
}

/// The secret of the integration under test. Nothing the strategies generate
/// equals it (the near misses differ from it by construction).
const SHARED: &str = "proptest-shared-secret-0123456789";
/// A Standard Webhooks signing secret (the official test vectors' first).
const SIGNING: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn secret_for(provider: Provider) -> Secret {
    Secret::new(match provider {
        Provider::Zenobank => SIGNING,
        _ => SHARED,
    })
}

/// Strings that come close to the secret without being it.
fn near_miss() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..SHARED.len()).prop_map(|n| SHARED[..n].to_owned()),
        // Never `&`: in a query it would end the value right after the secret.
        "[ -%'-~]{1,4}".prop_map(|suffix| format!("{SHARED}{suffix}")),
        (0..SHARED.len(), prop::char::range('A', 'Z')).prop_map(|(at, c)| {
            let mut s = SHARED.to_owned();
            s.replace_range(at..=at, &c.to_string());
            s
        }),
        Just(SHARED.to_uppercase()),
        Just(format!(" {SHARED}")),
        Just(SIGNING.to_owned()),
    ]
}

/// Header values as `http` admits them: any bytes but controls (tab allowed).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let timestamps = prop_oneof![
        prop::sample::select(vec![
            i64::MIN.to_string(),
            i64::MAX.to_string(),
            (i64::MAX - 1).to_string(),
            u64::MAX.to_string(),
            "99999999999999999999999".to_owned(),
            "0".to_owned(),
            "-1".to_owned(),
            "+5".to_owned(),
            " 5".to_owned(),
            "1e9".to_owned(),
        ]),
        any::<i64>().prop_map(|t| t.to_string()),
    ];
    let signatures = prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| format!("v1,{}", STANDARD.encode(b))),
            prop::sample::select(vec!["v1,", "v1", ",", "v2,abc", "v1,,", "v1,=", ""])
                .prop_map(str::to_owned),
        ],
        0..5,
    )
    .prop_map(|entries| entries.join(" "));
    let basic = (
        near_miss(),
        prop::collection::vec(any::<u8>(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(password, user, with_colon)| {
            let mut credentials = user;
            if with_colon {
                credentials.push(b':');
                credentials.extend_from_slice(password.as_bytes());
            }
            format!("Basic {}", STANDARD.encode(credentials))
        });
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        timestamps.prop_map(String::into_bytes),
        signatures.prop_map(String::into_bytes),
        basic.prop_map(String::into_bytes),
        prop::sample::select(vec!["Basic", "Basic ", "basic =", "Bearer x", "Basic %%%"])
            .prop_map(|s| s.as_bytes().to_vec()),
        near_miss().prop_map(String::into_bytes),
    ];
    bytes.prop_map(|bytes| {
        let admitted: Vec<u8> = bytes
            .into_iter()
            .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            .collect();
        HeaderValue::from_bytes(&admitted).expect("controls were filtered out")
    })
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        3 => prop::sample::select(vec![
            zenofy::SECRET_HEADER,
            "authorization",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
        ])
        .prop_map(HeaderName::from_static),
        1 => "[a-z][a-z0-9-]{0,15}".prop_map(|n| HeaderName::try_from(n).expect("a token")),
    ]
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((header_name(), header_value()), 0..10).prop_map(|pairs| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, value);
        }
        headers
    })
}

/// Query strings: arbitrary text, and `k=v` pairs with the key adapters look
/// for, broken percent-escapes and near misses of the secret.
fn query() -> impl Strategy<Value = Option<String>> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "token", "TOKEN", "token ", "tok%65n", "t", "", "token%"
        ])
        .prop_map(str::to_owned),
        text(),
    ];
    let value = prop_oneof![
        near_miss(),
        prop::sample::select(vec![
            "%", "%4", "%zz", "%00", "%ff%fe", "%e2%82", "+", "%%", "=", "%2"
        ])
        .prop_map(str::to_owned),
        text(),
    ];
    let pair =
        (key, value, any::<bool>()).prop_map(
            |(k, v, with_equals)| {
                if with_equals { format!("{k}={v}") } else { k }
            },
        );
    prop_oneof![
        Just(None),
        text().prop_map(Some),
        prop::collection::vec(pair, 0..6).prop_map(|pairs| Some(pairs.join("&"))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        fixtures().prop_map(|f| f.body.to_vec()),
    ]
}

/// An instant from anywhere in `time`'s range, in any offset.
fn any_instant() -> impl Strategy<Value = Instant> {
    let (min, max) = (
        PrimitiveDateTime::MIN.assume_utc(),
        PrimitiveDateTime::MAX.assume_utc(),
    );
    let (lo, hi) = (min.unix_timestamp_nanos(), max.unix_timestamp_nanos());
    let utc = prop_oneof![
        Just(min),
        Just(max),
        Just(OffsetDateTime::UNIX_EPOCH),
        (lo..=hi).prop_map(|n| OffsetDateTime::from_unix_timestamp_nanos(n).unwrap()),
        (1_600_000_000i64..2_000_000_000)
            .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap()),
    ];
    (utc, prop_oneof![3 => Just(0), 1 => -93_599i32..=93_599]).prop_map(|(at, offset)| {
        PrimitiveDateTime::new(at.date(), at.time())
            .assume_offset(UtcOffset::from_whole_seconds(offset).unwrap())
    })
}

fn assert_typed(error: &Malformed) -> Result<(), TestCaseError> {
    prop_assert!(!error.detail.is_empty(), "an error says what is wrong");
    Ok(())
}

/// Parses, and checks that a failure is a typed error naming a field or the body.
fn parse_checked(
    provider: Provider,
    body: &[u8],
) -> Result<Result<Parsed, Malformed>, TestCaseError> {
    let parsed = parse(provider, body);
    if let Err(error) = &parsed {
        assert_typed(error)?;
        // Adapters read fields by their fixed, non-empty names.
        prop_assert_ne!(error.field.as_deref(), Some(""));
    }
    Ok(parsed)
}

/// Parses, checking only that a failure is typed.
fn check_parse(provider: Provider, body: &[u8]) -> Result<(), TestCaseError> {
    parse_checked(provider, body).map(drop)
}

// ---------------------------------------------------------------- parsing

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes: a body that is not JSON is `Malformed` as a whole.
    #[test]
    fn any_bytes_parse_to_a_value_or_a_typed_error(
        provider in provider(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let parsed = parse_checked(provider, &body)?;
        if serde_json::from_slice::<Value>(&body).is_err() {
            let error = parsed.expect_err("not JSON");
            prop_assert_eq!(error.field, None);
        }
    }

    /// A fixture's bytes with a few bytes flipped, inserted or cut: nearly JSON.
    #[test]
    fn a_fixture_with_bytes_mangled_parses_or_fails_typed(
        fixture in fixtures(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut body = fixture.body.to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(body.len().max(1)).min(body.len());
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ => body.truncate(i),
            }
        }
        check_parse(fixture.provider, &body)?;
    }

    /// Any JSON value: anything but an object is `Malformed` as a whole.
    #[test]
    fn any_json_value_parses_to_a_value_or_a_typed_error(
        provider in provider(),
        value in json_value(),
    ) {
        let body = serde_json::to_vec(&value).unwrap();
        let parsed = parse_checked(provider, &body)?;
        if !value.is_object() {
            prop_assert_eq!(parsed.expect_err("not an object").field, None);
        }
    }

    /// Any JSON object, its keys mostly the ones adapters read.
    #[test]
    fn any_json_object_parses_to_a_value_or_a_typed_error(
        provider in provider(),
        value in json_object(),
    ) {
        check_parse(provider, &serde_json::to_vec(&value).unwrap())?;
    }

    /// A realistic payload with one value anywhere in it replaced by any JSON value.
    #[test]
    fn a_fixture_with_one_value_replaced_parses_or_fails_typed(
        (fixture, pointer) in fixture_and_pointer(),
        value in json_value(),
    ) {
        check_parse(fixture.provider, &replaced(fixture, &pointer, value))?;
    }

    /// A realistic payload with one value anywhere in it removed.
    #[test]
    fn a_fixture_with_one_value_removed_parses_or_fails_typed(
        (fixture, pointer) in fixture_and_pointer(),
    ) {
        check_parse(fixture.provider, &removed(fixture, &pointer))?;
    }

    /// A realistic payload with one value replaced by raw JSON text no `Value`
    /// carries: numbers past `f64`, lone surrogates, nesting past the limit.
    #[test]
    fn a_fixture_with_one_value_spliced_as_raw_text_parses_or_fails_typed(
        (fixture, pointer) in fixture_and_pointer(),
        raw in raw_json(),
    ) {
        check_parse(fixture.provider, &spliced(fixture, &pointer, &raw))?;
    }

    /// A realistic payload with one value replaced by a value nested 100 to 300
    /// deep: within serde_json's recursion limit as a `Value`, past it as text.
    #[test]
    fn a_fixture_with_one_value_nested_deep_parses_or_fails_typed(
        (fixture, pointer) in fixture_and_pointer(),
        depth in 100usize..300,
        objects in any::<bool>(),
        leaf in json_leaf(),
    ) {
        let body = replaced(fixture, &pointer, nested(depth, objects, leaf));
        let parsed = parse_checked(fixture.provider, &body)?;
        if depth > 128 {
            // Past the recursion limit the body cannot be read at all.
            prop_assert_eq!(parsed.expect_err("too deep").field, None);
        }
    }
}

// ---------------------------------------------------------------- dates

/// Where a date sits in a fixture, and what the adapter makes of it.
struct DateField {
    fixture: &'static str,
    pointer: &'static str,
    /// The field an error names.
    path: &'static str,
    /// The instant the adapter took from the field; `None`: it does not read it.
    read: Option<fn(&Meaning) -> Option<Instant>>,
}

/// A failure names the fixture and the field, not a function's address.
impl std::fmt::Debug for DateField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let read = if self.read.is_some() {
            "read"
        } else {
            "not read"
        };
        write!(f, "{} {} ({read})", self.fixture, self.pointer)
    }
}

fn period_start(meaning: &Meaning) -> Option<Instant> {
    match meaning {
        Meaning::Subscription(s) => s.period_start,
        other => panic!("not a subscription: {other:?}"),
    }
}

fn period_end(meaning: &Meaning) -> Option<Instant> {
    match meaning {
        Meaning::Subscription(s) => s.period_end,
        other => panic!("not a subscription: {other:?}"),
    }
}

fn paid_at(meaning: &Meaning) -> Option<Instant> {
    match meaning {
        Meaning::Order(o) => o.paid_at,
        other => panic!("not an order: {other:?}"),
    }
}

/// Every date field of every adapter (and some dates the adapters do not read).
const DATE_FIELDS: &[DateField] = &[
    DateField {
        fixture: "subscription.activated",
        pointer: "/currentPeriodStart",
        path: "currentPeriodStart",
        read: Some(period_start),
    },
    DateField {
        fixture: "subscription.activated",
        pointer: "/currentPeriodEnd",
        path: "currentPeriodEnd",
        read: Some(period_end),
    },
    DateField {
        fixture: "subscription.renewed",
        pointer: "/currentPeriodStart",
        path: "currentPeriodStart",
        read: Some(period_start),
    },
    DateField {
        fixture: "subscription.renewed",
        pointer: "/renewal/newPeriodEnd",
        path: "renewal.newPeriodEnd",
        read: Some(period_end),
    },
    DateField {
        fixture: "subscription.renewed",
        pointer: "/renewal/previousPeriodEnd",
        path: "renewal.previousPeriodEnd",
        read: None,
    },
    DateField {
        fixture: "subscription.renewed",
        pointer: "/order/paidAt",
        path: "order.paidAt",
        read: None,
    },
    DateField {
        fixture: "order_paid",
        pointer: "/paidAt",
        path: "paidAt",
        read: Some(paid_at),
    },
    DateField {
        fixture: "order_refunded",
        pointer: "/paidAt",
        path: "paidAt",
        read: Some(paid_at),
    },
    DateField {
        fixture: "order_paid",
        pointer: "/createdAt",
        path: "createdAt",
        read: None,
    },
    DateField {
        fixture: "app.market.subscription.active",
        pointer: "/start_date",
        path: "start_date",
        read: Some(period_start),
    },
    DateField {
        fixture: "app.market.subscription.active",
        pointer: "/end_date",
        path: "end_date",
        read: Some(period_end),
    },
    DateField {
        fixture: "app.market.subscription.renew",
        pointer: "/end_date",
        path: "end_date",
        read: Some(period_end),
    },
    DateField {
        fixture: "app.market.subscription.active",
        pointer: "/payment_date",
        path: "payment_date",
        read: None,
    },
    DateField {
        fixture: "completed",
        pointer: "/created_at",
        path: "created_at",
        read: Some(paid_at),
    },
    DateField {
        fixture: "cancelled",
        pointer: "/created_at",
        path: "created_at",
        read: None,
    },
    DateField {
        fixture: "checkout.completed",
        pointer: "/data/expiresAt",
        path: "data.expiresAt",
        read: None,
    },
    DateField {
        fixture: "checkout.completed",
        pointer: "/data/createdAt",
        path: "data.createdAt",
        read: None,
    },
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any extreme date in any date field: the adapter takes exactly what
    /// `parse_lenient` makes of it, or names the field; a date it does not read
    /// changes nothing.
    #[test]
    fn every_date_field_takes_extreme_dates_or_names_itself(
        field in prop::sample::select(DATE_FIELDS.iter().collect::<Vec<_>>()),
        raw in extreme_date(),
    ) {
        let fixture = fixture_by_name(field.fixture);
        let body = replaced(fixture, field.pointer, Value::String(raw.clone()));
        let parsed = parse_checked(fixture.provider, &body)?;
        match field.read {
            None => prop_assert_eq!(parsed, parse(fixture.provider, fixture.body)),
            Some(read) => match parsed {
                Ok(parsed) => {
                    let want = if raw.trim().is_empty() { None } else { time_fmt::parse_lenient(&raw) };
                    prop_assert!(want.is_some() || raw.trim().is_empty(), "{raw:?} was accepted");
                    prop_assert_eq!(read(&parsed.meaning), want);
                }
                Err(error) => prop_assert_eq!(error.field.as_deref(), Some(field.path)),
            },
        }
    }

    /// `parse_lenient` on extreme dates and on any text: a value or `None`.
    #[test]
    fn parse_lenient_never_panics(raw in prop_oneof![extreme_date(), text()]) {
        let _ = time_fmt::parse_lenient(&raw);
    }

    /// What `parse_lenient` accepts, `rfc3339` writes, and `parse_lenient`
    /// reads back as the same instant (what an API response promises).
    #[test]
    fn an_accepted_date_survives_formatting_and_parsing_again(raw in extreme_date()) {
        if let Some(at) = time_fmt::parse_lenient(&raw) {
            let written = time_fmt::rfc3339(at);
            prop_assert_eq!(time_fmt::parse_lenient(&written), Some(at), "{} written as {}", raw, written);
        }
    }

    /// Any instant `time` holds, in any offset, formats, truncates and converts
    /// to stored microseconds.
    #[test]
    fn any_instant_formats_and_converts_for_storage(at in any_instant()) {
        let _ = time_fmt::rfc3339(at);
        let _ = time_fmt::truncate(at);
        let _ = time_fmt::to_micros(at);
    }

    /// Any stored integer reads back as some instant.
    #[test]
    fn any_stored_micros_read_back(micros in any::<i64>()) {
        let _ = time_fmt::rfc3339(time_fmt::from_micros(micros));
    }
}

// ---------------------------------------------------------------- authentication

/// `v1` Standard Webhooks signature of `{id}.{timestamp}.{body}`.
fn sign(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(SIGNING.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Which Standard Webhooks header names carry id, timestamp and signature.
#[derive(Debug, Clone, Copy)]
enum HeaderNames {
    Svix,
    Unbranded,
    Both,
    /// The id and the timestamp from one set, the signature from the other.
    Mixed,
}

fn standard_headers(
    names: HeaderNames,
    id: &HeaderValue,
    ts: &HeaderValue,
    sig: &HeaderValue,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &HeaderValue| {
        headers.append(HeaderName::from_static(name), value.clone());
    };
    if matches!(
        names,
        HeaderNames::Svix | HeaderNames::Both | HeaderNames::Mixed
    ) {
        put("svix-id", id);
        put("svix-timestamp", ts);
    }
    if matches!(names, HeaderNames::Svix | HeaderNames::Both) {
        put("svix-signature", sig);
    }
    if matches!(names, HeaderNames::Unbranded | HeaderNames::Both) {
        put("webhook-id", id);
        put("webhook-timestamp", ts);
    }
    if matches!(
        names,
        HeaderNames::Unbranded | HeaderNames::Both | HeaderNames::Mixed
    ) {
        put("webhook-signature", sig);
    }
    headers
}

fn header_names() -> impl Strategy<Value = HeaderNames> {
    prop::sample::select(vec![
        HeaderNames::Svix,
        HeaderNames::Unbranded,
        HeaderNames::Both,
        HeaderNames::Mixed,
    ])
}

/// Configured secrets of any shape: usable, empty, not base64, unprefixed.
fn configured_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SIGNING.to_owned()),
        Just(SIGNING.trim_start_matches("whsec_").to_owned()),
        Just(String::new()),
        Just("whsec_".to_owned()),
        Just("whsec_=".to_owned()),
        Just("whsec_A".to_owned()),
        "whsec_[A-Za-z0-9+/=]{0,48}",
        text(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any headers, query and body without the secret: `Unauthenticated`.
    #[test]
    fn a_request_without_the_secret_is_unauthenticated(
        provider in provider(),
        headers in header_map(),
        query in query(),
        body in body(),
        now in any_instant(),
    ) {
        let request = Request { headers: &headers, query: query.as_deref(), body: &body };
        let result = authenticate(provider, &secret_for(provider), &request, now);
        prop_assert_eq!(result, Err(Unauthenticated));
    }

    /// Any configured secret (empty, not base64, …) against any request: an
    /// answer, never a panic.
    #[test]
    fn any_configured_secret_against_any_request_answers(
        provider in provider(),
        secret in configured_secret(),
        headers in header_map(),
        query in query(),
        body in body(),
        now in any_instant(),
    ) {
        let request = Request { headers: &headers, query: query.as_deref(), body: &body };
        let _ = authenticate(provider, &Secret::new(secret.clone()), &request, now);
        let _ = check_secret(provider, &secret);
    }

    /// The secret where the adapter looks for it passes, whatever else comes along.
    #[test]
    fn the_secret_in_its_place_passes_whatever_comes_with_it(
        provider in prop::sample::select(vec![Provider::Zenofy, Provider::Zid, Provider::Zaypay]),
        mut headers in header_map(),
        junk in query(),
        by_query in any::<bool>(),
        user in prop::collection::vec(any::<u8>().prop_filter("no colon", |&b| b != b':'), 0..16),
        body in body(),
        now in any_instant(),
    ) {
        let junk = junk.unwrap_or_default();
        let mut query = None;
        match (provider, by_query) {
            (Provider::Zenofy, false) => {
                headers.insert(zenofy::SECRET_HEADER, HeaderValue::from_static(SHARED));
            }
            (Provider::Zid, false) => {
                let mut credentials = user;
                credentials.push(b':');
                credentials.extend_from_slice(SHARED.as_bytes());
                let basic = format!("Basic {}", STANDARD.encode(credentials));
                headers.insert("authorization", HeaderValue::from_str(&basic).unwrap());
            }
            _ => query = Some(format!("token={SHARED}&{junk}")),
        }
        let request = Request { headers: &headers, query: query.as_deref(), body: &body };
        prop_assert_eq!(
            authenticate(provider, &secret_for(provider), &request, now),
            Ok(Authenticated { message_id: None })
        );
    }

    /// Standard Webhooks with any id, timestamp (i64 extremes and past them),
    /// signature list, body, secret and clock: a typed `VerifyError` or the id.
    #[test]
    fn standard_webhooks_verify_answers_anything_typed(
        secret in configured_secret(),
        names in header_names(),
        id in header_value(),
        ts in header_value(),
        sig in header_value(),
        body in body(),
        now in any_instant(),
    ) {
        let headers = standard_headers(names, &id, &ts, &sig);
        match standard_webhooks::verify(&Secret::new(secret), &headers, &body, now) {
            Ok(message_id) => prop_assert_eq!(message_id.as_str().as_bytes(), id.as_bytes()),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    /// A correct signature over a timestamp `drift` seconds from `now` (any
    /// instant from the epoch to the end of `time`'s range, and drifts up to
    /// i64 extremes) passes within five minutes and is refused, typed, beyond.
    #[test]
    fn a_correct_signature_passes_exactly_within_the_tolerance(
        now in any_instant(),
        drift in prop_oneof![
            -300i128..=300,
            Just(-301i128),
            Just(301i128),
            any::<i64>().prop_map(i128::from),
            Just(i128::from(i64::MAX) * 2),
        ],
        names in prop::sample::select(vec![HeaderNames::Svix, HeaderNames::Unbranded, HeaderNames::Both]),
        id in "[!-~]{1,40}",
        body in body(),
        others in prop::collection::vec("v[0-9],[A-Za-z0-9+/]{0,44}={0,2}", 0..4),
        at in any::<Index>(),
    ) {
        let sent = i128::from(now.unix_timestamp()) + drift;
        let ts = sent.to_string();
        let mut entries = others;
        entries.insert(at.index(entries.len() + 1), format!("v1,{}", sign(&id, &ts, &body)));
        let headers = standard_headers(
            names,
            &HeaderValue::from_str(&id).unwrap(),
            &HeaderValue::from_str(&ts).unwrap(),
            &HeaderValue::from_str(&entries.join(" ")).unwrap(),
        );
        // Digits only: a negative timestamp is not a number of unix seconds.
        let want = if sent < 0 || sent > i128::from(i64::MAX) {
            Err(VerifyError::InvalidTimestamp)
        } else if drift.abs() > 300 {
            Err(VerifyError::TimestampOutOfTolerance)
        } else {
            Ok(id.clone())
        };
        let got = standard_webhooks::verify(&Secret::new(SIGNING), &headers, &body, now);
        prop_assert_eq!(got.map(|id| id.into_string()), want.clone());
        let request = Request { headers: &headers, query: None, body: &body };
        prop_assert_eq!(
            authenticate(Provider::Zenobank, &Secret::new(SIGNING), &request, now),
            want.map(|id| Authenticated { message_id: Some(id) }).map_err(|_| Unauthenticated)
        );
    }

    /// Any query string and name: a value or `None`.
    #[test]
    fn query_param_never_panics(query in query(), name in text()) {
        let _ = query_param(query.as_deref(), &name);
        let _ = query_param(query.as_deref(), "token");
    }

    /// Whatever is percent-encoded byte by byte is decoded back, behind any
    /// other pairs.
    #[test]
    fn query_param_decodes_what_was_percent_encoded(
        value in text(),
        before in prop::collection::vec("[a-s]{1,5}=[a-z0-9%+=]{0,8}", 0..4),
    ) {
        let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
        let mut pairs = before;
        pairs.push(format!("token={encoded}"));
        prop_assert_eq!(query_param(Some(&pairs.join("&")), "token"), Some(value));
    }

    /// Every accessor of `Fields` on any JSON: a value or a typed error that
    /// names the field (under its parent's path).
    #[test]
    fn fields_accessors_answer_typed(value in json_object(), name in json_key(), inner in json_key()) {
        let root = Fields::root(&value).expect("an object");
        let named = |result: Result<(), Malformed>| -> Result<(), TestCaseError> {
            if let Err(error) = result {
                assert_typed(&error)?;
                let field = error.field.unwrap_or_default();
                prop_assert!(field.starts_with(name.as_str()), "{field:?} is not under {name:?}");
            }
            Ok(())
        };
        named(root.opt_str(&name).map(drop))?;
        named(root.str(&name).map(drop))?;
        named(root.opt_id(&name).map(drop))?;
        named(root.id(&name).map(drop))?;
        named(root.email(&name).map(drop))?;
        named(root.opt_instant(&name).map(drop))?;
        named(root.objects(&name).map(drop))?;
        if let Ok(Some(object)) = root.object(&name) {
            named(object.opt_str(&inner).map(drop))?;
            named(object.opt_instant(&inner).map(drop))?;
            named(object.id(&inner).map(drop))?;
        }
        if let Ok(Some(items)) = root.objects(&name) {
            for item in items {
                named(item.opt_instant(&inner).map(drop))?;
                named(item.email(&inner).map(drop))?;
            }
        }
    }
}
