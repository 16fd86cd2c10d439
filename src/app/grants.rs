//! Grants: entitlements given and revoked by hand.

use super::{Error, Result};
use crate::domain::{Email, Instant, ProductKey};
use crate::store::{Grant, Store};

/// A grant to give.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub email: Email,
    pub product: ProductKey,
    /// `None`: from now.
    pub valid_from: Option<Instant>,
    /// `None`: for ever.
    pub valid_until: Option<Instant>,
    pub reason: String,
}

/// Gives a grant; it must end after it begins.
pub async fn give(store: &Store, grant: &NewGrant, now: Instant) -> Result<Grant> {
    let valid_from = grant.valid_from.unwrap_or(now);
    if grant.valid_until.is_some_and(|until| until <= valid_from) {
        return Err(Error::Invalid {
            field: "valid_until",
            detail: "`valid_until` must be after `valid_from`".into(),
        });
    }
    Ok(store
        .create_grant(
            &grant.email,
            &grant.product,
            valid_from,
            grant.valid_until,
            &grant.reason,
            now,
        )
        .await?)
}

/// Revokes a grant (the row stays, `revoked_at` set).
pub async fn revoke(store: &Store, id: &str, now: Instant) -> Result<Grant> {
    store
        .revoke_grant(id, now)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no grant {id:?}")))
}
