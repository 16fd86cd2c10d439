//! `entitlement_touches`: every write of entitlement rows appends, in its
//! transaction, one touch per customer it wrote, or one per product whose
//! windows a policy change rewrote; the read model follows them (`reads`).

use std::time::Duration;

use sqlx::AnyConnection;

use super::{Result, Store, micros, time_fmt, trusted};
use crate::domain::{Email, Instant, ProductKey};

/// How long touches are kept.
pub(super) const TOUCH_RETENTION: Duration = Duration::from_secs(86_400);

/// Appends one touch per customer in `emails` (deduplicated by the caller).
pub(super) async fn touch_customers(tx: &mut AnyConnection, emails: &[&Email]) -> Result<()> {
    if emails.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO entitlement_touches (at, email) VALUES {}",
        super::values_list(emails.len(), 2, 1)
    );
    let now = micros(time_fmt::now());
    let mut query = sqlx::query(trusted(sql));
    for email in emails {
        query = query.bind(now).bind(email.as_str());
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Appends a touch for every row of `product`: its policy changed.
pub(super) async fn touch_product(tx: &mut AnyConnection, product: &ProductKey) -> Result<()> {
    sqlx::query("INSERT INTO entitlement_touches (at, product) VALUES ($1, $2)")
        .bind(micros(time_fmt::now()))
        .bind(product.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// Drops touches older than [`TOUCH_RETENTION`] before `now`: every
    /// replica has followed them long since (one that has not reloads).
    pub async fn drop_old_touches(&self, now: Instant) -> Result<u64> {
        let horizon = micros(now) - TOUCH_RETENTION.as_micros() as i64;
        let _turn = self.write_turn().await;
        Ok(sqlx::query("DELETE FROM entitlement_touches WHERE at < $1")
            .bind(horizon)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
