//! Entitlement tokens: compact JWS (RFC 7515) signed with Ed25519 (RFC 8037,
//! `alg` `EdDSA`), and the public keys as JWKs. Signing and verification are
//! ring's; this module only lays out the bytes the RFCs define.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// An Ed25519 signing key. `Debug` shows its `kid` only: the private half
/// never reaches a log line or an error message.
pub struct SigningKey {
    kid: String,
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source failed");
        Self::from_seed(seed)
    }

    /// The key whose private half (RFC 8032's seed, JWK `d`) is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are a seed");
        let kid = thumbprint(pair.public_key().as_ref());
        Self { kid, pair, seed }
    }

    /// The key stored as `seed` (base64url, as JWK `d`); `None` when it is
    /// not 32 bytes.
    pub fn from_stored(seed: &str) -> Option<Self> {
        let bytes: [u8; 32] = B64.decode(seed).ok()?.try_into().ok()?;
        Some(Self::from_seed(bytes))
    }

    /// What is stored: the seed, base64url. Only the store calls this.
    pub fn stored_seed(&self) -> String {
        B64.encode(self.seed)
    }

    /// The key's id: its RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, base64url (JWK `x`).
    pub fn public_x(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// The compact JWS of `claims` under the header `{"alg":"EdDSA","typ":"JWT","kid":…}`.
    pub fn sign_jwt(&self, claims: &impl Serialize) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        self.sign_compact(header.to_string().as_bytes(), &payload)
    }

    /// RFC 7515's compact serialisation: the base64url of the protected
    /// header and of the payload, joined by `.`, signed, and the signature
    /// appended.
    pub fn sign_compact(&self, header: &[u8], payload: &[u8]) -> String {
        let mut out = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = self.pair.sign(out.as_bytes());
        out.push('.');
        out.push_str(&B64.encode(signature.as_ref()));
        out
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638's thumbprint of the Ed25519 public key `x`: the SHA-256 of its
/// required members in lexicographic order, base64url.
pub fn thumbprint(x: &[u8]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(x));
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// One published key (RFC 8037 section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// The key's RFC 7638 thumbprint: tokens name it in their header.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `EdDSA`.
    pub alg: &'static str,
}

impl Jwk {
    /// The JWK of the public key `x` (base64url).
    pub fn ed25519(x: String) -> Option<Self> {
        let bytes = B64.decode(&x).ok()?;
        (bytes.len() == 32).then(|| Self {
            kty: "OKP",
            crv: "Ed25519",
            kid: thumbprint(&bytes),
            x,
            use_: "sig",
            alg: "EdDSA",
        })
    }
}

/// Why a token did not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS of three base64url parts")]
    Malformed,
    #[error("the header is not `EdDSA` with a `kid`")]
    Header,
    #[error("no published key has this `kid`")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
}

/// Verifies a compact JWS against `keys`; answers the payload's bytes. The
/// service does not need this (its backends verify); its tests and the
/// console's token check do.
pub fn verify(token: &str, keys: &[Jwk]) -> Result<Vec<u8>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let decode = |part: &str| B64.decode(part).map_err(|_| VerifyError::Malformed);
    let parsed: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| VerifyError::Header)?;
    if parsed["alg"] != "EdDSA" {
        return Err(VerifyError::Header);
    }
    let kid = parsed["kid"].as_str().ok_or(VerifyError::Header)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(VerifyError::UnknownKey)?;
    let x = B64.decode(&key.x).map_err(|_| VerifyError::UnknownKey)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    UnparsedPublicKey::new(&ED25519, x)
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| VerifyError::Signature)?;
    decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037, appendix A.1: the private and public key.
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    // A.3: the JWK thumbprint of the public key.
    const THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
    // A.4: `{"alg":"EdDSA"}` over "Example of Ed25519 signing".
    const JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
        hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn rfc_key() -> SigningKey {
        SigningKey::from_stored(D).expect("A.1's d is 32 bytes")
    }

    fn rfc_jwk() -> Jwk {
        // A.4's JWS has no `kid`: verify it against a key named by one.
        Jwk::ed25519(X.to_owned()).unwrap()
    }

    #[test]
    fn the_rfc_8037_private_key_has_its_public_key_and_thumbprint() {
        let key = rfc_key();
        assert_eq!(key.public_x(), X);
        assert_eq!(key.kid(), THUMBPRINT);
        assert_eq!(thumbprint(&B64.decode(X).unwrap()), THUMBPRINT);
        assert_eq!(rfc_jwk().kid, THUMBPRINT);
        assert_eq!(key.stored_seed(), D);
    }

    #[test]
    fn signing_the_rfc_8037_example_gives_its_signature() {
        let signed = rfc_key().sign_compact(br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing");
        assert_eq!(signed, JWS);
    }

    #[test]
    fn the_rfc_8037_example_verifies_and_a_changed_one_does_not() {
        // With a `kid` in the header, as our tokens have.
        let key = rfc_key();
        let token = key.sign_jwt(&serde_json::json!({"sub": "ada@example.com"}));
        assert_eq!(
            verify(&token, &[rfc_jwk()]).unwrap(),
            br#"{"sub":"ada@example.com"}"#
        );
        // The RFC's own signature, checked by ring directly.
        let (signed, signature) = JWS.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ED25519, B64.decode(X).unwrap())
            .verify(signed.as_bytes(), &B64.decode(signature).unwrap())
            .expect("A.4 verifies");

        let mut tampered = token.clone().into_bytes();
        let at = token.find('.').unwrap() + 3;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(verify(&tampered, &[rfc_jwk()]), Err(VerifyError::Signature));
        let other = SigningKey::generate();
        let foreign = other.sign_jwt(&serde_json::json!({"sub": "ada@example.com"}));
        assert_eq!(verify(&foreign, &[rfc_jwk()]), Err(VerifyError::UnknownKey));
        // Another key's signature under this key's `kid`.
        let (head, _) = token.rsplit_once('.').unwrap();
        let (_, foreign_signature) = foreign.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{head}.{foreign_signature}"), &[rfc_jwk()]),
            Err(VerifyError::Signature)
        );
        for malformed in ["", "a.b", "a.b.c.d", "!!.e30.AA"] {
            assert_eq!(verify(malformed, &[rfc_jwk()]), Err(VerifyError::Malformed));
        }
    }

    #[test]
    fn debug_shows_the_kid_and_never_the_private_key() {
        let key = rfc_key();
        let shown = format!("{key:?}");
        assert!(shown.contains(THUMBPRINT), "{shown}");
        assert!(!shown.contains(D), "{shown}");
        let seed_hex = hex::encode(B64.decode(D).unwrap());
        assert!(
            !shown.contains(&seed_hex) && !shown.contains("seed"),
            "{shown}"
        );
    }

    #[test]
    fn a_stored_seed_of_the_wrong_length_is_refused() {
        assert!(SigningKey::from_stored("AAAA").is_none());
        assert!(SigningKey::from_stored("not base64!").is_none());
        let key = SigningKey::generate();
        let again = SigningKey::from_stored(&key.stored_seed()).unwrap();
        assert_eq!(again.kid(), key.kid());
    }
}
