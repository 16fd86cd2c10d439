//! The pure centre: state machines, the access decision and the value types they
//! speak in. Nothing here reads a clock, touches a database or knows about HTTP:
//! time is passed in, so every rule can be tested exhaustively.

pub mod access;
pub mod order;
pub mod subscription;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a raw value could not become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// A customer's email, normalised once (surrounding whitespace trimmed, ASCII
/// letters lower-cased, nothing else folded) so that every comparison everywhere
/// else is a plain byte equality. Unicode case folding is deliberately absent: it
/// maps the Kelvin sign (U+212A) onto `k` and would hand one customer's access to
/// another address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// The longest email accepted, in bytes once trimmed.
pub const MAX_EMAIL_BYTES: usize = 320;

impl Email {
    /// The rule as a regular expression, for the OpenAPI document: surrounding
    /// ASCII whitespace, then one `@` between two non-empty runs of anything but
    /// `@`, a space or a control character (U+0000–U+001F, U+007F).
    pub const PATTERN: &'static str =
        "^[\\t\\n\\f\\r ]*[^\\x00-\\x20\\x7f@]+@[^\\x00-\\x20\\x7f@]+[\\t\\n\\f\\r ]*$";

    /// The limit of [`MAX_EMAIL_BYTES`] holds for the value as sent, surrounding
    /// whitespace included, so that it is the OpenAPI document's `maxLength`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.len() > MAX_EMAIL_BYTES {
            return Err(InvalidValue(format!(
                "an email address is at most {MAX_EMAIL_BYTES} bytes"
            )));
        }
        let normalised = raw
            .trim_matches(['\t', '\n', '\x0c', '\r', ' '])
            .to_ascii_lowercase();
        if normalised.chars().any(|c| c <= '\x1f' || c == '\x7f') {
            return Err(InvalidValue(
                "an email address may not contain a control character".to_owned(),
            ));
        }
        let valid = !normalised.contains(' ')
            && matches!(normalised.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(Self(normalised))
        } else {
            Err(InvalidValue(format!("{raw:?} is not an email address")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product key such as `pro`: what access checks ask about. URL-safe, since
/// it appears in paths (`/v1/admin/products/{key}`); provider product ids that
/// are not map to one through the integration's `product_map`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProductKey(String);

impl ProductKey {
    /// The rule as a regular expression, for the OpenAPI document.
    pub const PATTERN: &'static str = "^[A-Za-z0-9._:-]{1,200}$";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = !raw.is_empty()
            && raw.len() <= 200
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !ok {
            return Err(InvalidValue(format!(
                "{raw:?} is not a product key (1 to 200 of A-Z, a-z, 0-9, '-', '_', '.', ':')"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An integration id: the URL-safe slug in `POST /v1/webhooks/{integration}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IntegrationId(String);

impl IntegrationId {
    /// The rule as a regular expression, for the OpenAPI document.
    pub const PATTERN: &'static str = "^[a-z0-9_-]{1,64}$";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "{raw:?} is not an integration id (1 to 64 of a-z, 0-9, '-', '_')"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The payment providers `entitled` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Zenofy,
    Zid,
    Zenobank,
    Zaypay,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Self::Zenofy, Self::Zid, Self::Zenobank, Self::Zaypay];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zenofy => "zenofy",
            Self::Zid => "zid",
            Self::Zenobank => "zenobank",
            Self::Zaypay => "zaypay",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// What one delivery did. Every authenticated delivery gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Duplicate,
    Stale,
    Rejected,
    Noted,
    Ignored,
    Unmatched,
    Malformed,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Self::Applied,
        Self::Duplicate,
        Self::Stale,
        Self::Rejected,
        Self::Noted,
        Self::Ignored,
        Self::Unmatched,
        Self::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Rejected => "rejected",
            Self::Noted => "noted",
            Self::Ignored => "ignored",
            Self::Unmatched => "unmatched",
            Self::Malformed => "malformed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// A product's access policy. Products nobody configured use [`Policy::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub grace_period_seconds: i64,
    pub suspended_access: bool,
    pub canceled_access: CanceledAccess,
    /// How long a paid one-time purchase grants access; `None` is for ever.
    pub purchase_access_seconds: Option<i64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            grace_period_seconds: 259_200,
            suspended_access: false,
            canceled_access: CanceledAccess::Immediate,
            purchase_access_seconds: None,
        }
    }
}

/// Whether a canceled subscription keeps access until its paid period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanceledAccess {
    Immediate,
    PeriodEnd,
}

impl CanceledAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::PeriodEnd => "period_end",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "immediate" => Some(Self::Immediate),
            "period_end" => Some(Self::PeriodEnd),
            _ => None,
        }
    }
}

/// Instants, their range and their arithmetic live with their wire and
/// storage forms (`time_fmt`, a leaf the domain builds on).
pub use crate::time_fmt::{Instant, MAX_INSTANT, MIN_INSTANT, add_seconds};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn strings_without_an_at_sign_are_not_emails() {
        for raw in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn integration_ids_are_url_safe_slugs() {
        assert!(IntegrationId::parse("zenofy-main_2").is_ok());
        for raw in ["", "Zenofy", "a/b", "a b", "é"] {
            assert!(
                IntegrationId::parse(raw).is_err(),
                "{raw:?} should be rejected"
            );
        }
    }
}
