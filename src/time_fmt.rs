//! Instants: the type, the range the service accepts, saturating arithmetic,
//! and their forms on the wire and in storage. The API speaks RFC 3339 UTC
//! (`2026-05-01T08:30:00Z`); storage keeps unix microseconds, which both engines
//! carry as a plain integer; providers send whatever their serialiser produced.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// An instant, as the service holds it.
pub type Instant = OffsetDateTime;

/// The earliest instant the service accepts: `1970-01-01T00:00:00Z`.
pub const MIN_INSTANT: Instant = time::macros::datetime!(1970-01-01 00:00:00 UTC);

/// The latest instant the service accepts: `9999-12-31T23:59:59Z`. Arithmetic on
/// instants saturates here, so a period ending at the bound plus any grace is
/// still the bound, never an overflow.
pub const MAX_INSTANT: Instant = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// `at` plus `seconds` (which may be negative), clamped to
/// [`MIN_INSTANT`]..=[`MAX_INSTANT`].
pub fn add_seconds(at: Instant, seconds: i64) -> Instant {
    let sum = i128::from(at.unix_timestamp()) + i128::from(seconds);
    if sum >= i128::from(MAX_INSTANT.unix_timestamp()) {
        return MAX_INSTANT;
    }
    if sum < i128::from(MIN_INSTANT.unix_timestamp()) {
        return MIN_INSTANT;
    }
    at.checked_add(time::Duration::seconds(seconds))
        .map_or(MAX_INSTANT, |sum| sum.min(MAX_INSTANT))
}

/// Formats as RFC 3339 in UTC, with fractional seconds only when there are any.
/// Every instant the service holds is within [`MIN_INSTANT`]..=[`MAX_INSTANT`];
/// one outside is clamped rather than written in a form RFC 3339 has no room for.
pub fn rfc3339(at: Instant) -> String {
    let at = at
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or(MAX_INSTANT)
        .clamp(MIN_INSTANT, MAX_INSTANT);
    let (y, mo, d) = (at.year(), at.month() as u8, at.day());
    let (h, mi, s) = (at.hour(), at.minute(), at.second());
    let micros = at.microsecond();
    if micros == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
    }
}

/// Parses the dates providers send: RFC 3339 with any offset, with or without
/// fractional seconds (any number of digits), `T` or a space between date and
/// time; a date-time without an offset is taken as UTC. Precision is kept to the
/// microsecond, as stored. Only instants from [`MIN_INSTANT`] to [`MAX_INSTANT`]
/// (in UTC) are accepted: anything outside is `None`, like any other bad date.
pub fn parse_lenient(raw: &str) -> Option<Instant> {
    let raw = raw.trim();
    let normalised: String = raw
        .char_indices()
        .map(|(i, c)| match c {
            ' ' if i == 10 => 'T',
            't' => 'T',
            'z' => 'Z',
            c => c,
        })
        .collect();
    let parsed = OffsetDateTime::parse(&normalised, &Rfc3339)
        .ok()
        .or_else(|| {
            let format = time::macros::format_description!(
                version = 2,
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            PrimitiveDateTime::parse(&normalised, format)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })?;
    let utc = parsed.checked_to_offset(UtcOffset::UTC)?;
    (MIN_INSTANT..=MAX_INSTANT)
        .contains(&utc)
        .then(|| truncate(utc))
}

/// What a refused date says: why, and the range that is accepted.
pub fn not_an_instant(raw: &str) -> String {
    format!(
        "{raw:?} is not an RFC 3339 date-time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
    )
}

/// Drops precision below a microsecond, so a value survives storage unchanged.
pub fn truncate(at: Instant) -> Instant {
    from_micros(to_micros(at))
}

/// Unix microseconds, as stored. Every accepted instant fits an `i64` easily.
pub fn to_micros(at: Instant) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// The instant a stored value names, clamped to the accepted range.
pub fn from_micros(micros: i64) -> Instant {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_or(MAX_INSTANT, |at| at.clamp(MIN_INSTANT, MAX_INSTANT))
}

/// Now, at storage precision.
pub fn now() -> Instant {
    truncate(OffsetDateTime::now_utc())
}

/// `#[serde(with = "crate::time_fmt::serde_rfc3339")]` for instants in API bodies.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Instant, parse_lenient, rfc3339};

    pub fn serialize<S: Serializer>(at: &Instant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instant, D::Error> {
        let raw = String::deserialize(d)?;
        parse_lenient(&raw).ok_or_else(|| serde::de::Error::custom(super::not_an_instant(&raw)))
    }

    /// The same for `Option<Instant>` (`null` both ways).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::{Instant, parse_lenient, rfc3339};

        pub fn serialize<S: Serializer>(at: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => s.serialize_str(&rfc3339(*at)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Instant>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(raw) => parse_lenient(&raw)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(super::super::not_an_instant(&raw))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn provider_dates_parse_with_any_offset_and_fraction() {
        let want = datetime!(2026-05-01 08:00:00 UTC);
        for raw in [
            "2026-05-01T10:00:00+02:00",
            "2026-05-01T08:00:00Z",
            "2026-05-01T08:00:00.000000Z",
            "2026-05-01T08:00:00.000Z",
            "2026-05-01T03:00:00-05:00",
            "2026-05-01 08:00:00",
            "2026-05-01T08:00:00",
        ] {
            assert_eq!(parse_lenient(raw), Some(want), "{raw}");
        }
    }

    #[test]
    fn microseconds_survive_and_nanoseconds_are_dropped() {
        let at = parse_lenient("2025-02-21T08:05:29.123456789Z").unwrap();
        assert_eq!(rfc3339(at), "2025-02-21T08:05:29.123456Z");
        assert_eq!(from_micros(to_micros(at)), at);
    }

    #[test]
    fn garbage_is_not_a_date() {
        for raw in ["", "yesterday", "2026-13-01T00:00:00Z", "1714550400"] {
            assert_eq!(parse_lenient(raw), None, "{raw}");
        }
    }

    #[test]
    fn formatting_is_utc_with_a_z() {
        assert_eq!(
            rfc3339(datetime!(2026-05-01 10:30:00 +02:00)),
            "2026-05-01T08:30:00Z"
        );
    }
}
