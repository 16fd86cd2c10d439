//! Products and their access policies.

use sqlx::any::AnyRow;

use super::changes::Answer;
use super::policies::{POLICY_COLUMNS, policy_from_row};
use super::tx::{Attempt, retrying};
use super::{Result, Store, instant, micros, text, trusted};
use crate::domain::access;
use crate::domain::{Email, Instant, Policy, ProductKey};

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

fn from_row(row: &AnyRow) -> Result<Product> {
    Ok(Product {
        key: ProductKey::parse(&text(row, "key")?)?,
        policy: policy_from_row(row)?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

/// One customer whose answer a candidate policy would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flip {
    pub email: Email,
    pub before: Answer,
    pub after: Answer,
}

/// How many customers a candidate policy would change, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreviewCounts {
    pub gained: u64,
    pub lost: u64,
    pub moved: u64,
    pub unchanged: u64,
}

/// What a candidate policy would change now: customers who would gain
/// access, lose it, or keep it with another `valid_until`, each list in email
/// order and cut at [`PREVIEW_LISTED`]; the counts are always whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPreview {
    pub gained: Vec<Flip>,
    pub lost: Vec<Flip>,
    pub moved: Vec<Flip>,
    pub counts: PreviewCounts,
}

/// The most customers a preview lists of each kind.
pub const PREVIEW_LISTED: usize = 1000;

/// Customers read per page of a preview.
const PREVIEW_PAGE: i64 = 2000;

impl PolicyPreview {
    /// Adds one customer's answers, now and under the candidate.
    fn add(&mut self, email: &Email, before: Answer, after: Answer) {
        let (list, count) = match (before.entitled, after.entitled) {
            (false, true) => (&mut self.gained, &mut self.counts.gained),
            (true, false) => (&mut self.lost, &mut self.counts.lost),
            (true, true) if before.valid_until != after.valid_until => {
                (&mut self.moved, &mut self.counts.moved)
            }
            _ => {
                self.counts.unchanged += 1;
                return;
            }
        };
        *count += 1;
        if list.len() < PREVIEW_LISTED {
            list.push(Flip {
                email: email.clone(),
                before,
                after,
            });
        }
    }
}

impl Store {
    /// What `candidate` would change for `product`'s customers at `now`, if
    /// it replaced the product's policy: each customer's answer from the
    /// stored rows, against the same rows with their windows recomputed under
    /// the candidate (the computation a policy change makes). Writes nothing;
    /// reads a page of customers at a time.
    pub async fn preview_policy(
        &self,
        product: &ProductKey,
        candidate: &Policy,
        now: Instant,
    ) -> Result<PolicyPreview> {
        let mut preview = PolicyPreview::default();
        let mut after = String::new();
        loop {
            let rows = super::entitlements::product_page(&self.pool, product, &after, PREVIEW_PAGE)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.email.as_str().to_owned();
            for customer in rows.chunk_by(|a, b| a.email == b.email) {
                let recomputed: Vec<_> = customer
                    .iter()
                    .map(|row| super::EntitlementRow {
                        window: access::window(&row.facts, candidate),
                        ..row.clone()
                    })
                    .collect();
                preview.add(
                    &customer[0].email,
                    Answer::of(customer, now),
                    Answer::of(&recomputed, now),
                );
            }
        }
        Ok(preview)
    }

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
        sqlx::query(
            "INSERT INTO policy_changes (product, at, grace_period_seconds, suspended_access,
                 canceled_access, purchase_access_seconds)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (product, at) DO UPDATE SET grace_period_seconds = $3,
                 suspended_access = $4, canceled_access = $5, purchase_access_seconds = $6",
        )
        .bind(key.as_str())
        .bind(micros(now))
        .bind(policy.grace_period_seconds)
        .bind(i64::from(policy.suspended_access))
        .bind(policy.canceled_access.as_str())
        .bind(policy.purchase_access_seconds)
        .execute(&mut *tx)
        .await?;
        let cause = super::changes::Cause {
            kind: super::changes::CauseKind::Policy,
            delivery_id: None,
            event: Some("policy_changed"),
            at: now,
        };
        super::effects::recompute_product(&mut tx, key, policy, &cause).await?;
        super::inputs::record(&mut tx, super::InputKind::Policy, key.as_str(), now).await?;
        self.commit(tx).await?;
        let created = product.created_at == now && product.updated_at == now;
        Ok((product, created))
    }

    /// Every policy each product has had, oldest first: (from when, product,
    /// policy).
    pub async fn recorded_policies(&self) -> Result<Vec<(Instant, ProductKey, Policy)>> {
        sqlx::query(trusted(format!(
            "SELECT product, at, {POLICY_COLUMNS} FROM policy_changes ORDER BY at, product"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                instant(row, "at")?,
                ProductKey::parse(&text(row, "product")?)?,
                policy_from_row(row)?,
            ))
        })
        .collect()
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
