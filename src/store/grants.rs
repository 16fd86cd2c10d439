//! Grants: entitlements given by an operator, revocable.

use sqlx::any::AnyRow;

use super::changes::{Cause, CauseKind};
use super::effects::replace_for_source;
use super::entitlements::EntitlementRow;
use super::tx::{Attempt, retrying};
use super::{Result, Store, instant, micros, new_id, opt_instant, opt_micros, text};
use crate::domain::access::{Facts, SourceKind, SourceState};
use crate::domain::{Email, Instant, ProductKey};

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub email: Email,
    pub product: ProductKey,
    pub valid_from: Instant,
    /// `None`: for ever.
    pub valid_until: Option<Instant>,
    pub reason: String,
    pub created_at: Instant,
    pub revoked_at: Option<Instant>,
}

pub(super) const COLUMNS: &str =
    "id, email, product, valid_from, valid_until, reason, created_at, revoked_at";

pub(super) fn from_row(row: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: text(row, "id")?,
        email: Email::parse(&text(row, "email")?)?,
        product: ProductKey::parse(&text(row, "product")?)?,
        valid_from: instant(row, "valid_from")?,
        valid_until: opt_instant(row, "valid_until")?,
        reason: text(row, "reason")?,
        created_at: instant(row, "created_at")?,
        revoked_at: opt_instant(row, "revoked_at")?,
    })
}

pub(super) fn entitlement(grant: &Grant, changed_at: Instant) -> EntitlementRow {
    EntitlementRow::new(
        &grant.id,
        (&grant.email, &grant.product),
        (None, None),
        None,
        Facts {
            state: SourceState::Grant {
                revoked: grant.revoked_at.is_some(),
            },
            start: grant.valid_from,
            end: grant.valid_until,
        },
        changed_at,
    )
}

impl Store {
    /// Creates a grant and its entitlement row in one transaction.
    pub async fn create_grant(
        &self,
        email: &Email,
        product: &ProductKey,
        valid_from: Instant,
        valid_until: Option<Instant>,
        reason: &str,
        now: Instant,
    ) -> Result<Grant> {
        let grant = Grant {
            id: new_id(),
            email: email.clone(),
            product: product.clone(),
            valid_from,
            valid_until,
            reason: reason.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        retrying!(self, self.create_grant_attempt(&grant))?;
        Ok(grant)
    }

    async fn create_grant_attempt(&self, grant: &Grant) -> std::result::Result<(), Attempt> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO grants (id, email, product, valid_from, valid_until, reason, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(grant.id.as_str())
        .bind(grant.email.as_str())
        .bind(grant.product.as_str())
        .bind(micros(grant.valid_from))
        .bind(opt_micros(grant.valid_until))
        .bind(grant.reason.as_str())
        .bind(micros(grant.created_at))
        .execute(&mut *tx)
        .await?;
        let cause = Cause {
            kind: CauseKind::Grant,
            delivery_id: None,
            event: Some("granted"),
            at: grant.created_at,
        };
        replace_for_source(
            &mut tx,
            SourceKind::Grant,
            &grant.id,
            vec![entitlement(grant, grant.created_at)],
            &cause,
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Grants, newest first, optionally for one customer.
    pub async fn grants(&self, email: Option<&Email>) -> Result<Vec<Grant>> {
        let rows = match email {
            Some(email) => {
                sqlx::query(super::trusted(format!(
                    "SELECT {COLUMNS} FROM grants WHERE email = $1 ORDER BY id DESC"
                )))
                .bind(email.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(super::trusted(format!(
                    "SELECT {COLUMNS} FROM grants ORDER BY id DESC"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        sqlx::query(super::trusted(format!(
            "SELECT {COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Revokes a grant: the row stays with `revoked_at`, its entitlement stops.
    /// `None` when there is no such grant; a grant already revoked is returned
    /// as it is.
    pub async fn revoke_grant(&self, id: &str, now: Instant) -> Result<Option<Grant>> {
        retrying!(self, self.revoke_attempt(id, now))
    }

    async fn revoke_attempt(
        &self,
        id: &str,
        now: Instant,
    ) -> std::result::Result<Option<Grant>, Attempt> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(micros(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(super::trusted(format!(
            "SELECT {COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(grant) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        let changed_at = grant.revoked_at.unwrap_or(now);
        let cause = Cause {
            kind: CauseKind::Grant,
            delivery_id: None,
            event: Some("revoked"),
            at: now,
        };
        replace_for_source(
            &mut tx,
            SourceKind::Grant,
            &grant.id,
            vec![entitlement(&grant, changed_at)],
            &cause,
        )
        .await?;
        self.commit(tx).await?;
        Ok(Some(grant))
    }
}
