//! The cryptography the service lays out itself, over well-kept primitives
//! (`hmac`/`sha2`, `ring`): Standard Webhooks signatures, verified on
//! ingress (Zeno Bank) and made on egress (outbound webhooks), and the compact
//! JWS of entitlement tokens. Both are checked against their specifications'
//! known-answer vectors.

pub mod jws;
pub mod standard_webhooks;
