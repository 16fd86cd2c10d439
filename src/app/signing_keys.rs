//! The keys that sign entitlement tokens.

use super::Result;
use crate::domain::Instant;
use crate::store::{Rotation, Store};

/// Adds a signing key and retires the others (they sign until the new one
/// takes over, then are published until their tokens have expired).
pub async fn rotate(store: &Store, now: Instant) -> Result<Rotation> {
    Ok(store.rotate_signing_key(now).await?)
}
