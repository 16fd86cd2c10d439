//! Standard Webhooks signatures (what Svix sends, and so what Zeno Bank sends).
//!
//! A delivery carries three headers, branded `svix-id`, `svix-timestamp`,
//! `svix-signature` or unbranded `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`. The signed content is `{id}.{timestamp}.{raw body}`,
//! the MAC is HMAC-SHA256 keyed with the base64 decoding of the secret after its
//! `whsec_` prefix, and the signature header is a space-separated list of
//! `v1,<standard base64>` entries (several during a key rotation). Any valid
//! `v1` entry passes; entries of another version are skipped. The timestamp must
//! be within five minutes of now, either way, so a captured delivery cannot be
//! replayed later.
//!
//! Pure: no I/O, the clock is a parameter. Hand-written over `hmac`/`sha2`
//! because Svix's own verifier reads the clock inside and refuses bodies that
//! are not UTF-8, which a provider may still sign.

use std::fmt;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::secret::{Secret, constant_time_eq};

/// How far a delivery's timestamp may be from now, in the past or the future.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The prefix Svix and Standard Webhooks put in front of a base64 secret.
const SECRET_PREFIX: &str = "whsec_";

/// The only signature version there is; entries of other versions are skipped.
const VERSION: &[u8] = b"v1";

/// The header names of one set: `(id, timestamp, signature)`.
type HeaderSet = (&'static str, &'static str, &'static str);

const SVIX_HEADERS: HeaderSet = ("svix-id", "svix-timestamp", "svix-signature");
const UNBRANDED_HEADERS: HeaderSet = ("webhook-id", "webhook-timestamp", "webhook-signature");

/// Secrets are decoded with or without their `=` padding (standard alphabet).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The `*-id` header of a verified delivery: the same for every retry of one
/// message, hence the key for recognising a repeated delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a delivery was not accepted. No message carries the secret or the
/// expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent, empty or not readable text.
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    /// The timestamp header is not unix seconds.
    #[error("the webhook timestamp is not a number of unix seconds")]
    InvalidTimestamp,
    /// The timestamp is more than five minutes from now, either way.
    #[error("the webhook timestamp is too far from the current time")]
    TimestampOutOfTolerance,
    /// No `v1` entry of the signature header matches.
    #[error("no webhook signature matches")]
    NoMatchingSignature,
    /// The configured secret is empty or not base64: nothing can be verified.
    #[error("the configured webhook secret is not a valid signing secret")]
    InvalidSecret,
}

/// Verifies a delivery against the endpoint's signing secret and returns its
/// message id. `body` must be the raw bytes as received.
pub fn verify(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<MessageId, VerifyError> {
    let key = decode_secret(secret.expose()).map_err(|_| VerifyError::InvalidSecret)?;

    let (id_name, timestamp_name, signature_name) = header_set(headers);
    let id = text_header(headers, id_name)?;
    let timestamp = text_header(headers, timestamp_name)?;
    let signatures = headers
        .get(signature_name)
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(signature_name))?;

    check_timestamp(timestamp, now)?;

    let expected = sign(&key, id, timestamp, body);
    // Every entry is compared (no early exit), each in constant time.
    let mut matched = false;
    for entry in signatures.split(|&b| b == b' ') {
        let Some(comma) = entry.iter().position(|&b| b == b',') else {
            continue;
        };
        let (version, signature) = (&entry[..comma], &entry[comma + 1..]);
        if version == VERSION {
            matched |= constant_time_eq(expected.as_bytes(), signature);
        }
    }
    if matched {
        Ok(MessageId(id.to_owned()))
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Whether a configured secret can verify anything: optionally `whsec_`, then
/// non-empty standard base64. The error never repeats the secret.
pub fn check_secret(secret: &str) -> Result<(), String> {
    decode_secret(secret).map(|_| ())
}

/// The HMAC key a secret stands for.
fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    if encoded.is_empty() {
        return Err("the signing secret must not be empty".into());
    }
    // The decoder's own error names the offending character: not repeated here.
    let key = SECRET_BASE64.decode(encoded).map_err(|_| {
        "the signing secret must be `whsec_` followed by base64, as the provider's dashboard shows it"
            .to_owned()
    })?;
    if key.is_empty() {
        return Err("the signing secret must not be empty".into());
    }
    Ok(key)
}

/// The branded set when any of its headers is present, else the unbranded one.
/// The three values always come from one set.
fn header_set(headers: &HeaderMap) -> HeaderSet {
    let (id, timestamp, signature) = UNBRANDED_HEADERS;
    let unbranded = headers.contains_key(id)
        || headers.contains_key(timestamp)
        || headers.contains_key(signature);
    let (id, timestamp, signature) = SVIX_HEADERS;
    let branded = headers.contains_key(id)
        || headers.contains_key(timestamp)
        || headers.contains_key(signature);
    if unbranded && !branded {
        UNBRANDED_HEADERS
    } else {
        SVIX_HEADERS
    }
}

fn text_header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

fn check_timestamp(timestamp: &str, now: OffsetDateTime) -> Result<(), VerifyError> {
    // Digits only: the header is signed exactly as sent, so `+5` or ` 5` would
    // not be the number the sender signed anyway.
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidTimestamp);
    }
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    let drift = (i128::from(now.unix_timestamp()) - i128::from(sent)).abs();
    if drift > i128::from(TOLERANCE_SECONDS) {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(())
}

/// The sending side, for outbound webhooks: the `webhook-signature` value for
/// a message, one `v1,` entry per secret (the new one first during a
/// rotation), space-separated. Every secret must be one [`generate_secret`]
/// made or [`check_secret`] accepts.
pub fn signature_header(
    secrets: &[&Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let timestamp = timestamp.to_string();
    let mut entries = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key = decode_secret(secret.expose())?;
        entries.push(format!("v1,{}", sign(&key, id, &timestamp, body)));
    }
    Ok(entries.join(" "))
}

/// A fresh signing secret: `whsec_` and the base64 of 24 random bytes.
pub fn generate_secret() -> Secret {
    let mut key = [0u8; 24];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// `v1` signature of a delivery, standard base64 with padding.
fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// An official known-answer vector (svix and standard-webhooks test suites).
    struct Vector {
        secret: &'static str,
        id: &'static str,
        timestamp: i64,
        payload: Vec<u8>,
        signature: &'static str,
    }

    fn row1() -> Vector {
        Vector {
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            timestamp: 1649367553,
            payload: br#"{"email":"test@example.com","username":"test_user"}"#.to_vec(),
            signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        }
    }

    fn row2() -> Vector {
        Vector {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1614265330,
            payload: br#"{"test": 2432232314}"#.to_vec(),
            signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        }
    }

    fn row3() -> Vector {
        Vector {
            payload: vec![b'a'; 262144],
            signature: "v1,Mw4Pe2WgApuT7NSqnSq0PQPV9gbLdggCl9B865x5Xh0=",
            ..row2()
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn header_map(set: HeaderSet, id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [(set.0, id), (set.1, timestamp), (set.2, signature)] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    impl Vector {
        fn headers(&self, set: HeaderSet) -> HeaderMap {
            header_map(set, self.id, &self.timestamp.to_string(), self.signature)
        }

        fn with_signature(&self, signature: &str) -> HeaderMap {
            header_map(
                SVIX_HEADERS,
                self.id,
                &self.timestamp.to_string(),
                signature,
            )
        }

        /// Verifies with the svix header set at the vector's own time.
        fn check(&self, headers: &HeaderMap) -> Result<MessageId, VerifyError> {
            self.check_at(headers, self.timestamp)
        }

        fn check_at(&self, headers: &HeaderMap, now: i64) -> Result<MessageId, VerifyError> {
            verify(&Secret::new(self.secret), headers, &self.payload, at(now))
        }

        fn secret_without_prefix(&self) -> &'static str {
            self.secret.strip_prefix("whsec_").unwrap()
        }
    }

    fn passes(vector: &Vector) {
        for set in [SVIX_HEADERS, UNBRANDED_HEADERS] {
            let id = vector.check(&vector.headers(set)).unwrap();
            assert_eq!(id.as_str(), vector.id);
        }
    }

    // ---- the signer, against the official vectors and this verifier ----

    #[test]
    fn the_signer_reproduces_every_official_vector() {
        for vector in [row1(), row2(), row3()] {
            let header = signature_header(
                &[&Secret::new(vector.secret)],
                vector.id,
                vector.timestamp,
                &vector.payload,
            )
            .unwrap();
            assert_eq!(header, vector.signature);
            let headers = header_map(
                UNBRANDED_HEADERS,
                vector.id,
                &vector.timestamp.to_string(),
                &header,
            );
            assert_eq!(vector.check(&headers).unwrap().as_str(), vector.id);
        }
    }

    #[test]
    fn during_a_rotation_each_secret_verifies_the_signature_list() {
        let (new, old) = (row1(), Secret::new(row2().secret));
        let header = signature_header(
            &[&Secret::new(new.secret), &old],
            new.id,
            new.timestamp,
            &new.payload,
        )
        .unwrap();
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], new.signature);
        let headers = header_map(
            UNBRANDED_HEADERS,
            new.id,
            &new.timestamp.to_string(),
            &header,
        );
        for secret in [Secret::new(new.secret), old] {
            verify(&secret, &headers, &new.payload, at(new.timestamp)).unwrap();
        }
        let stranger = generate_secret();
        assert_eq!(
            verify(&stranger, &headers, &new.payload, at(new.timestamp)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_generated_secret_is_whsec_and_24_random_bytes_and_signs() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        let encoded = a.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 24);
        check_secret(a.expose()).unwrap();
        let header = signature_header(&[&a], "msg_1", 1_700_000_000, b"{}").unwrap();
        let headers = header_map(UNBRANDED_HEADERS, "msg_1", "1700000000", &header);
        verify(&a, &headers, b"{}", at(1_700_000_000)).unwrap();
    }

    // ---- official vectors ----

    #[test]
    fn official_vector_row_1_passes() {
        passes(&row1());
    }

    #[test]
    fn official_vector_row_2_passes() {
        passes(&row2());
    }

    #[test]
    fn official_vector_row_3_large_payload_passes() {
        let v = row3();
        assert_eq!(v.payload.len(), 262144);
        passes(&v);
    }

    #[test]
    fn signer_reproduces_every_official_signature() {
        for v in [row1(), row2(), row3()] {
            let key = decode_secret(v.secret).unwrap();
            let sig = sign(&key, v.id, &v.timestamp.to_string(), &v.payload);
            assert_eq!(format!("v1,{sig}"), v.signature);
        }
    }

    #[test]
    fn official_must_fail_row_1() {
        let v = row1();
        let headers = v.with_signature("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=");
        assert_eq!(v.check(&headers), Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn official_must_fail_row_2_last_character_changed() {
        let v = row2();
        let headers = v.with_signature("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=");
        assert_eq!(v.check(&headers), Err(VerifyError::NoMatchingSignature));
    }

    // ---- headers ----

    #[test]
    fn missing_id_header_fails() {
        for set in [SVIX_HEADERS, UNBRANDED_HEADERS] {
            let v = row1();
            let mut headers = v.headers(set);
            headers.remove(set.0);
            assert_eq!(v.check(&headers), Err(VerifyError::MissingHeader(set.0)));
        }
    }

    #[test]
    fn missing_timestamp_header_fails() {
        for set in [SVIX_HEADERS, UNBRANDED_HEADERS] {
            let v = row1();
            let mut headers = v.headers(set);
            headers.remove(set.1);
            assert_eq!(v.check(&headers), Err(VerifyError::MissingHeader(set.1)));
        }
    }

    #[test]
    fn missing_signature_header_fails() {
        for set in [SVIX_HEADERS, UNBRANDED_HEADERS] {
            let v = row1();
            let mut headers = v.headers(set);
            headers.remove(set.2);
            assert_eq!(v.check(&headers), Err(VerifyError::MissingHeader(set.2)));
        }
    }

    #[test]
    fn no_headers_at_all_fails() {
        let v = row1();
        assert_eq!(
            v.check(&HeaderMap::new()),
            Err(VerifyError::MissingHeader("svix-id"))
        );
    }

    #[test]
    fn empty_header_values_count_as_missing() {
        let v = row1();
        let ts = v.timestamp.to_string();
        let headers = header_map(SVIX_HEADERS, "", &ts, v.signature);
        assert_eq!(
            v.check(&headers),
            Err(VerifyError::MissingHeader("svix-id"))
        );
        let headers = header_map(SVIX_HEADERS, v.id, "", v.signature);
        assert_eq!(
            v.check(&headers),
            Err(VerifyError::MissingHeader("svix-timestamp"))
        );
        let headers = header_map(SVIX_HEADERS, v.id, &ts, "");
        assert_eq!(
            v.check(&headers),
            Err(VerifyError::MissingHeader("svix-signature"))
        );
    }

    #[test]
    fn svix_and_unbranded_header_sets_are_both_accepted() {
        let v = row1();
        assert!(v.check(&v.headers(SVIX_HEADERS)).is_ok());
        assert!(v.check(&v.headers(UNBRANDED_HEADERS)).is_ok());
        // Both sets at once (the same values) also pass.
        let mut both = v.headers(SVIX_HEADERS);
        both.extend(v.headers(UNBRANDED_HEADERS));
        assert!(v.check(&both).is_ok());
    }

    #[test]
    fn header_sets_are_not_mixed() {
        let v = row1();
        let mut headers = v.headers(SVIX_HEADERS);
        headers.remove("svix-signature");
        headers.insert("webhook-signature", HeaderValue::from_static(v.signature));
        assert_eq!(
            v.check(&headers),
            Err(VerifyError::MissingHeader("svix-signature"))
        );
    }

    // ---- timestamp ----

    #[test]
    fn timestamp_301_seconds_old_fails() {
        let v = row1();
        assert_eq!(
            v.check_at(&v.headers(SVIX_HEADERS), v.timestamp + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn timestamp_301_seconds_ahead_fails() {
        let v = row1();
        assert_eq!(
            v.check_at(&v.headers(SVIX_HEADERS), v.timestamp - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn timestamp_exactly_300_seconds_either_way_passes() {
        let v = row1();
        let headers = v.headers(SVIX_HEADERS);
        assert!(v.check_at(&headers, v.timestamp + 300).is_ok());
        assert!(v.check_at(&headers, v.timestamp - 300).is_ok());
    }

    #[test]
    fn stale_timestamp_freshly_signed_still_fails() {
        // A correct signature over an old timestamp is a replay.
        let v = row1();
        let key = decode_secret(v.secret).unwrap();
        let old = (v.timestamp - 301).to_string();
        let sig = format!("v1,{}", sign(&key, v.id, &old, &v.payload));
        let headers = header_map(SVIX_HEADERS, v.id, &old, &sig);
        assert_eq!(v.check(&headers), Err(VerifyError::TimestampOutOfTolerance));
    }

    #[test]
    fn non_numeric_timestamp_fails() {
        let v = row1();
        for bad in [
            "abc",
            "1649367553a",
            "+1649367553",
            "-1649367553",
            "1649367553.0",
            "1e9",
        ] {
            let headers = header_map(SVIX_HEADERS, v.id, bad, v.signature);
            assert_eq!(
                v.check(&headers),
                Err(VerifyError::InvalidTimestamp),
                "{bad}"
            );
        }
    }

    #[test]
    fn huge_timestamp_fails_without_overflow() {
        let v = row1();
        for huge in ["9223372036854775807", "99999999999999999999999"] {
            let headers = header_map(SVIX_HEADERS, v.id, huge, v.signature);
            assert!(v.check(&headers).is_err(), "{huge}");
        }
    }

    // ---- signature list ----

    #[test]
    fn valid_entry_buried_among_invalid_entries_passes() {
        let v = row1();
        let invalid = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let list = format!("v1,{invalid} v2,{invalid} {} v1,{invalid}", v.signature);
        assert!(v.check(&v.with_signature(&list)).is_ok());
    }

    #[test]
    fn only_invalid_entries_fail() {
        let v = row1();
        let invalid = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let list = format!("v1,{invalid} v2,{invalid} v1,{invalid}");
        assert_eq!(
            v.check(&v.with_signature(&list)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn other_versions_are_skipped_even_with_the_right_value() {
        let v = row1();
        let sig = v.signature.strip_prefix("v1,").unwrap();
        for version in ["v1a", "v2", "V1", "v0", ""] {
            let headers = v.with_signature(&format!("{version},{sig}"));
            assert_eq!(
                v.check(&headers),
                Err(VerifyError::NoMatchingSignature),
                "{version}"
            );
        }
        // No version at all.
        assert_eq!(
            v.check(&v.with_signature(sig)),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn truncated_signature_fails() {
        let v = row1();
        for truncated in [
            "v1,",
            "v1",
            "v1, ",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw",
        ] {
            assert_eq!(
                v.check(&v.with_signature(truncated)),
                Err(VerifyError::NoMatchingSignature),
                "{truncated}"
            );
        }
    }

    #[test]
    fn extra_spaces_between_entries_are_tolerated() {
        let v = row1();
        let list = format!("  v2,xyz   {}  ", v.signature);
        assert!(v.check(&v.with_signature(&list)).is_ok());
    }

    // ---- body ----

    #[test]
    fn body_modified_by_one_byte_fails() {
        for v in [row1(), row2(), row3()] {
            let headers = v.headers(SVIX_HEADERS);
            for index in [0, v.payload.len() / 2, v.payload.len() - 1] {
                let mut body = v.payload.clone();
                body[index] ^= 0x01;
                assert_eq!(
                    verify(&Secret::new(v.secret), &headers, &body, at(v.timestamp)),
                    Err(VerifyError::NoMatchingSignature)
                );
            }
            let mut longer = v.payload.clone();
            longer.push(b'\n');
            assert_eq!(
                verify(&Secret::new(v.secret), &headers, &longer, at(v.timestamp)),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn modified_id_fails() {
        let v = row1();
        let headers = header_map(
            SVIX_HEADERS,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpK",
            &v.timestamp.to_string(),
            v.signature,
        );
        assert_eq!(v.check(&headers), Err(VerifyError::NoMatchingSignature));
    }

    // ---- secret ----

    #[test]
    fn secret_with_and_without_prefix_both_pass() {
        for v in [row1(), row2(), row3()] {
            let headers = v.headers(SVIX_HEADERS);
            let with = verify(
                &Secret::new(v.secret),
                &headers,
                &v.payload,
                at(v.timestamp),
            );
            let without = verify(
                &Secret::new(v.secret_without_prefix()),
                &headers,
                &v.payload,
                at(v.timestamp),
            );
            assert_eq!(with.unwrap().as_str(), v.id);
            assert_eq!(without.unwrap().as_str(), v.id);
        }
    }

    #[test]
    fn empty_secret_is_an_error_never_a_pass() {
        let v = row1();
        // A delivery signed with the empty key must not pass either.
        let ts = v.timestamp.to_string();
        let sig = format!("v1,{}", sign(b"", v.id, &ts, &v.payload));
        let headers = header_map(SVIX_HEADERS, v.id, &ts, &sig);
        for secret in ["", "whsec_"] {
            assert_eq!(
                verify(&Secret::new(secret), &headers, &v.payload, at(v.timestamp)),
                Err(VerifyError::InvalidSecret),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn non_base64_secret_is_an_error() {
        let v = row1();
        let headers = v.headers(SVIX_HEADERS);
        for secret in [
            "whsec_not base64!",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oDA",
            "%%%%",
        ] {
            assert_eq!(
                verify(&Secret::new(secret), &headers, &v.payload, at(v.timestamp)),
                Err(VerifyError::InvalidSecret),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn wrong_secret_fails() {
        let v = row1();
        let headers = v.headers(SVIX_HEADERS);
        assert_eq!(
            verify(
                &Secret::new(row2().secret),
                &headers,
                &v.payload,
                at(v.timestamp)
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn check_secret_accepts_usable_secrets() {
        for secret in [
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_AAAA",
            "whsec_AA==",
            "whsec_AA",
        ] {
            assert_eq!(check_secret(secret), Ok(()), "{secret}");
        }
    }

    #[test]
    fn check_secret_rejects_unusable_secrets_without_repeating_them() {
        for secret in [
            "",
            "whsec_",
            "whsec_not base64!",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oDA",
            " whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n",
            "whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD",
        ] {
            let message = check_secret(secret).expect_err(secret);
            let body = secret.trim().trim_start_matches("whsec_");
            assert!(body.is_empty() || !message.contains(body), "{message}");
            assert!(
                !message.contains('!') && !message.contains('-'),
                "{message}"
            );
        }
    }

    #[test]
    fn errors_never_carry_the_secret_or_the_expected_signature() {
        let v = row1();
        let expected = v.signature.strip_prefix("v1,").unwrap();
        let key = v.secret_without_prefix();
        let ts = v.timestamp.to_string();
        let cases = [
            v.check(&v.with_signature("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=")),
            v.check_at(&v.headers(SVIX_HEADERS), v.timestamp + 301),
            v.check(&header_map(SVIX_HEADERS, v.id, "abc", v.signature)),
            v.check(&HeaderMap::new()),
            verify(
                &Secret::new("whsec_not base64!"),
                &header_map(SVIX_HEADERS, v.id, &ts, v.signature),
                &v.payload,
                at(v.timestamp),
            ),
        ];
        for case in cases {
            let error = case.expect_err("must fail");
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.contains(key), "{text}");
                assert!(!text.contains(expected), "{text}");
                assert!(!text.contains("base64!"), "{text}");
            }
        }
    }

    #[test]
    fn message_id_is_the_id_header_as_sent() {
        let v = row2();
        let id = v.check(&v.headers(UNBRANDED_HEADERS)).unwrap();
        assert_eq!(id.to_string(), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(id.as_ref(), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(id.into_string(), "msg_p5jXN8AQM9LWM0D4loKWxJek");
    }
}
