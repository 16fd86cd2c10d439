//! Provider adapters: a wire request (headers, query, raw body) in, an
//! authenticated domain event out. Adapters know nothing of storage or HTTP
//! responses; they say what the payload means, or which field is wrong.

pub mod zaypay;
pub mod zenobank;
pub mod zenofy;
pub mod zid;

#[cfg(test)]
mod proptests;

use serde_json::{Map, Value};

use crate::domain::{Email, Instant, Provider, order, subscription};
use crate::secret::Secret;

/// The parts of an inbound request an adapter may look at.
pub struct Request<'a> {
    pub headers: &'a axum::http::HeaderMap,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// Authentication failed. Deliberately without detail: the caller learns nothing
/// about why, and nothing about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook authentication failed")]
pub struct Unauthenticated;

/// An authenticated payload that cannot be understood: not JSON, or a key field
/// missing or of the wrong type. `field` names it (a JSON path such as
/// `renewal.newPeriodEnd`), `None` when the body as a whole is the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Malformed {
    pub field: Option<String>,
    pub detail: String,
}

impl Malformed {
    pub fn field(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            detail: detail.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::field(field, format!("required field `{field}` is missing"))
    }
}

/// What a payload means for entitlements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    Subscription(SubscriptionEvent),
    Order(OrderEvent),
    /// An event type that means nothing for entitlements.
    Ignored,
}

/// A parsed, authenticated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The provider's own event name, as sent, for the delivery log (ZayPay's
    /// one event type is followed by the order status: `order_status_changed:completed`).
    pub event_name: Option<String>,
    pub meaning: Meaning,
}

/// A subscription event in domain terms, still carrying the provider's external
/// ids (the integration's `product_map` turns the product id into a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub external_id: String,
    pub event: subscription::Event,
    pub email: Email,
    pub external_product: String,
    pub plan: Option<String>,
    /// The plan the provider says this event changed from (kept in the history).
    pub previous_plan: Option<String>,
    pub period_start: Option<Instant>,
    pub period_end: Option<Instant>,
}

/// A one-time order event, still carrying the provider's external ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub external_id: String,
    pub event: order::Event,
    /// When the provider says it was paid, if it says.
    pub paid_at: Option<Instant>,
    /// Who bought what, when the payload says it (Zenofy); otherwise the SaaS
    /// backend registers the order.
    pub buyer: Option<OrderBuyer>,
}

/// The customer and the provider's product ids of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBuyer {
    pub email: Email,
    pub external_products: Vec<String>,
}

/// What authentication established about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The provider's message id (Standard Webhooks), the dedup key when present.
    pub message_id: Option<String>,
}

/// Checks a request against the integration's secret. `now` bounds signed
/// timestamps.
pub fn authenticate(
    provider: Provider,
    secret: &Secret,
    request: &Request<'_>,
    now: Instant,
) -> Result<Authenticated, Unauthenticated> {
    let without_id =
        |r: Result<(), Unauthenticated>| r.map(|()| Authenticated { message_id: None });
    match provider {
        Provider::Zenofy => without_id(zenofy::authenticate(secret, request)),
        Provider::Zid => without_id(zid::authenticate(secret, request)),
        Provider::Zenobank => zenobank::authenticate(secret, request, now),
        Provider::Zaypay => zaypay::authenticate(secret, request),
    }
}

/// Parses an authenticated body.
pub fn parse(provider: Provider, body: &[u8]) -> Result<Parsed, Malformed> {
    match provider {
        Provider::Zenofy => zenofy::parse(body),
        Provider::Zid => zid::parse(body),
        Provider::Zenobank => zenobank::parse(body),
        Provider::Zaypay => zaypay::parse(body),
    }
}

/// The value of query parameter `name`, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON object being read field by field, with errors that name the field.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// The top level of a body, which must be a JSON object.
    pub fn root(body: &'a Value) -> Result<Self, Malformed> {
        match body {
            Value::Object(object) => Ok(Self {
                object,
                prefix: String::new(),
            }),
            _ => Err(Malformed {
                field: None,
                detail: "the body is not a JSON object".into(),
            }),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    /// Whether the field is absent or null.
    pub fn is_absent(&self, name: &str) -> bool {
        self.get(name).is_none()
    }

    /// The field as sent, for shapes too loose for the typed readers; `None`
    /// when absent or null.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.get(name)
    }

    /// A nested object; `None` when absent or null.
    pub fn object(&self, name: &str) -> Result<Option<Fields<'a>>, Malformed> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(Fields {
                object,
                prefix: format!("{}.", self.path(name)),
            })),
            Some(_) => Err(self.wrong_type(name, "an object")),
        }
    }

    /// An array of objects; `None` when absent or null.
    pub fn objects(&self, name: &str) -> Result<Option<Vec<Fields<'a>>>, Malformed> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(object) => Ok(Fields {
                        object,
                        prefix: format!("{}[{i}].", self.path(name)),
                    }),
                    _ => Err(Malformed::field(
                        &format!("{}[{i}]", self.path(name)),
                        format!("`{}[{i}]` must be an object", self.path(name)),
                    )),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(self.wrong_type(name, "an array")),
        }
    }

    /// A string; `None` when absent or null.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Malformed> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(self.nul(name)),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.wrong_type(name, "a string")),
        }
    }

    pub fn str(&self, name: &str) -> Result<&'a str, Malformed> {
        self.opt_str(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Malformed::missing(&self.path(name)))
    }

    /// An identifier sent as a string or as an integer.
    pub fn opt_id(&self, name: &str) -> Result<Option<String>, Malformed> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(self.nul(name)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => Err(self.wrong_type(name, "a string or an integer id")),
        }
    }

    pub fn id(&self, name: &str) -> Result<String, Malformed> {
        self.opt_id(name)?
            .ok_or_else(|| Malformed::missing(&self.path(name)))
    }

    pub fn email(&self, name: &str) -> Result<Email, Malformed> {
        let raw = self.str(name)?;
        Email::parse(raw)
            .map_err(|e| Malformed::field(&self.path(name), format!("`{}`: {e}", self.path(name))))
    }

    /// A date-time in any of the shapes providers send; `None` when absent or null.
    pub fn opt_instant(&self, name: &str) -> Result<Option<Instant>, Malformed> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => crate::time_fmt::parse_lenient(s).map(Some).ok_or_else(|| {
                Malformed::field(
                    &self.path(name),
                    format!(
                        "`{}`: {}",
                        self.path(name),
                        crate::time_fmt::not_an_instant(s)
                    ),
                )
            }),
        }
    }

    /// A date-time as [`Fields::opt_instant`] reads it, or a number of Unix
    /// seconds (milliseconds when above 10^11): Zenofy's dates "may vary with
    /// serialization". `None` when absent or null.
    pub fn opt_instant_or_epoch(&self, name: &str) -> Result<Option<Instant>, Malformed> {
        let Some(Value::Number(n)) = self.get(name) else {
            return self.opt_instant(name);
        };
        epoch(n).map(Some).ok_or_else(|| {
            let path = self.path(name);
            Malformed::field(
                &path,
                format!(
                    "`{path}`: {n} is not a Unix time (seconds, or milliseconds above 10^11) from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
                ),
            )
        })
    }

    /// A U+0000 is refused in every field read, on both engines alike
    /// (PostgreSQL's text cannot hold it); the raw body is still stored as sent.
    fn nul(&self, name: &str) -> Malformed {
        let path = self.path(name);
        Malformed::field(&path, format!("`{path}` may not contain U+0000"))
    }

    fn wrong_type(&self, name: &str, expected: &str) -> Malformed {
        let path = self.path(name);
        Malformed::field(&path, format!("`{path}` must be {expected}"))
    }
}

/// The instant a Unix time names: seconds, or milliseconds when above 10^11
/// (no date before the year 5138 is that many seconds); `None` outside the
/// instants the service holds.
fn epoch(n: &serde_json::Number) -> Option<Instant> {
    const MILLIS_ABOVE: f64 = 1e11;
    let micros = match n.as_i64() {
        Some(i) if i as f64 > MILLIS_ABOVE => i128::from(i) * 1_000,
        Some(i) => i128::from(i) * 1_000_000,
        None => {
            let f = n.as_f64().filter(|f| f.is_finite())?;
            let scaled = if f > MILLIS_ABOVE { f * 1e3 } else { f * 1e6 };
            // Beyond i64 it is out of range anyway; `as` saturates.
            scaled.round() as i64 as i128
        }
    };
    let micros = i64::try_from(micros).ok()?;
    let (min, max) = (
        crate::time_fmt::to_micros(crate::domain::MIN_INSTANT),
        crate::time_fmt::to_micros(crate::domain::MAX_INSTANT),
    );
    (min..=max)
        .contains(&micros)
        .then(|| crate::time_fmt::from_micros(micros))
}

/// The body as JSON, or `malformed`.
pub fn json(body: &[u8]) -> Result<Value, Malformed> {
    serde_json::from_slice(body).map_err(|e| Malformed {
        field: None,
        detail: format!("the body is not valid JSON: {e}"),
    })
}

/// Checks a secret before an integration is saved with it; the error says
/// what is wrong without repeating the secret.
pub fn check_secret(provider: Provider, secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err("`secret` must not be empty: an empty secret would let anyone in".into());
    }
    if provider == Provider::Zenobank {
        return crate::crypto::standard_webhooks::check_secret(secret)
            .map_err(|e| format!("`secret` must be the endpoint's signing secret (whsec_…): {e}"));
    }
    let blank = |c: char| c <= ' ' || c == '\x7f';
    if secret.chars().any(|c| c <= '\x1f' || c == '\x7f') {
        return Err("`secret` may not contain a control character".into());
    }
    if secret.starts_with(blank) || secret.ends_with(blank) {
        return Err("`secret` must not start or end with whitespace".into());
    }
    if secret.chars().count() < 8 {
        return Err("`secret` must be at least 8 characters long".into());
    }
    Ok(())
}
