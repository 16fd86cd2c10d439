//! Products' access policies.

use super::Result;
use crate::domain::{Instant, Policy, ProductKey};
use crate::store::{PolicyPreview, Product, Store};

/// Sets a product's policy, recomputing its customers' rows; whether the
/// product was created.
pub async fn set_policy(
    store: &Store,
    key: &ProductKey,
    policy: &Policy,
    now: Instant,
) -> Result<(Product, bool)> {
    Ok(store.put_product(key, policy, now).await?)
}

/// What a candidate policy would change for the product's customers now,
/// changing nothing.
pub async fn preview(
    store: &Store,
    key: &ProductKey,
    candidate: &Policy,
    now: Instant,
) -> Result<PolicyPreview> {
    Ok(store.preview_policy(key, candidate, now).await?)
}
