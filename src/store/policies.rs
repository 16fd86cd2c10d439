//! Products' access policies as rows: the columns they are read from, read by
//! products, entitlement rows and the read model alike.

use sqlx::any::AnyRow;

use super::{Result, StoreError, flag, text, trusted};
use crate::domain::{CanceledAccess, Policy, ProductKey};

/// The columns a policy is read from.
pub(super) const POLICY_COLUMNS: &str =
    "grace_period_seconds, suspended_access, canceled_access, purchase_access_seconds";

/// A policy from a row that has [`POLICY_COLUMNS`].
pub(super) fn policy_from_row(row: &AnyRow) -> Result<Policy> {
    let canceled = text(row, "canceled_access")?;
    Ok(Policy {
        grace_period_seconds: sqlx::Row::try_get(row, "grace_period_seconds")?,
        suspended_access: flag(row, "suspended_access")?,
        canceled_access: CanceledAccess::parse(&canceled)
            .ok_or_else(|| StoreError::Corrupt(format!("canceled_access {canceled:?}")))?,
        purchase_access_seconds: sqlx::Row::try_get(row, "purchase_access_seconds")?,
    })
}

/// Every stored policy, by product.
pub(super) async fn stored_policies(pool: &sqlx::AnyPool) -> Result<Vec<(ProductKey, Policy)>> {
    sqlx::query(trusted(format!(
        "SELECT key, {POLICY_COLUMNS} FROM products"
    )))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok((
            ProductKey::parse(&text(row, "key")?)?,
            policy_from_row(row)?,
        ))
    })
    .collect()
}
