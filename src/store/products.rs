//! Products and their access policies.

use sqlx::any::AnyRow;

use super::tx::{Attempt, retrying};
use super::{Result, Store, StoreError, flag, instant, micros, text, trusted};
use crate::domain::{CanceledAccess, Instant, Policy, ProductKey};

/// A configured product.
#[derive(Debug, Clone)]
pub struct Product {
    pub key: ProductKey,
    pub policy: Policy,
    pub created_at: Instant,
    pub updated_at: Instant,
}

const COLUMNS: &str = "key, grace_period_seconds, suspended_access, canceled_access, \
                       purchase_access_seconds, created_at, updated_at";

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

fn from_row(row: &AnyRow) -> Result<Product> {
    Ok(Product {
        key: ProductKey::parse(&text(row, "key")?)?,
        policy: policy_from_row(row)?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

impl Store {
    /// Creates or replaces a product's policy and recomputes every entitlement
    /// row of that product, in one transaction. `true` when it was created.
    pub async fn put_product(
        &self,
        key: &ProductKey,
        policy: &Policy,
        now: Instant,
    ) -> Result<(Product, bool)> {
        retrying!(self, self.put_product_attempt(key, policy, now))
    }

    async fn put_product_attempt(
        &self,
        key: &ProductKey,
        policy: &Policy,
        now: Instant,
    ) -> std::result::Result<(Product, bool), Attempt> {
        let mut tx = self.pool.begin().await?;
        // Every writer of this product's rows waits until this commits, and
        // this waits for those under way: the recompute below sees them all,
        // and they all see the new policy.
        super::entitlements::lock_product(&mut tx, key).await?;
        let row = sqlx::query(trusted(format!(
            "INSERT INTO products ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (key) DO UPDATE SET grace_period_seconds = $2, suspended_access = $3,
                 canceled_access = $4, purchase_access_seconds = $5, updated_at = $6
             RETURNING {COLUMNS}"
        )))
        .bind(key.as_str())
        .bind(policy.grace_period_seconds)
        .bind(i64::from(policy.suspended_access))
        .bind(policy.canceled_access.as_str())
        .bind(policy.purchase_access_seconds)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let product = from_row(&row)?;
        let cause = super::changes::Cause {
            kind: super::changes::CauseKind::Policy,
            delivery_id: None,
            event: Some("policy_changed"),
            at: now,
        };
        super::entitlements::recompute_product(&mut tx, key, policy, &cause).await?;
        self.commit(tx).await?;
        let created = product.created_at == now && product.updated_at == now;
        Ok((product, created))
    }

    pub async fn product(&self, key: &str) -> Result<Option<Product>> {
        sqlx::query(trusted(format!(
            "SELECT {COLUMNS} FROM products WHERE key = $1"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    pub async fn products(&self) -> Result<Vec<Product>> {
        sqlx::query(trusted(format!(
            "SELECT {COLUMNS} FROM products ORDER BY key"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }
}
