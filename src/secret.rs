//! Secrets in a wrapper that never prints them and only compares in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret or token. `Debug` and `Display` print `[REDACTED]`, so a
/// secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must use it (verification).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with what a request presented.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }

    /// A fresh random token: 32 bytes from the OS, hex-encoded, with a prefix
    /// that makes a leaked token easy to recognise.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(format!("{prefix}{}", hex::encode(bytes)))
    }

    /// The SHA-256 of the secret, hex-encoded: what is stored for API tokens.
    pub fn hash(&self) -> String {
        hash_token(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Equality whose running time does not depend on where the inputs differ.
/// (A length difference is not hidden: lengths of secrets are not secret.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The stored form of an API token.
pub fn hash_token(token: &[u8]) -> String {
    hex::encode(Sha256::digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
    }

    #[test]
    fn matching_is_exact() {
        let s = Secret::new("hunter2");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b"hunter"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn generated_tokens_are_distinct_and_prefixed() {
        let (a, b) = (Secret::generate("ent_"), Secret::generate("ent_"));
        assert_ne!(a, b);
        assert!(a.expose().starts_with("ent_") && a.expose().len() == 68);
    }
}
