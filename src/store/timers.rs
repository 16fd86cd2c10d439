//! Time-driven changes: an answer changes when a period ends, when grace
//! ends, when a grant or purchase window begins or ends, with no event at
//! all. Each (customer, product) with rows has a timer at the next such
//! instant ([`access::next_boundary`]), set by the writer of its rows in the
//! same transaction (`effects`); the clock (`clock`) takes the timers that are
//! due through an index, appends the change each brings (cause `clock`) and
//! sets the next.
//!
//! Every replica runs the clock. Two that take the same timer take turns on
//! the pair (the writers' lock), and the second compares with the change the
//! first appended: equal, so it appends nothing. No double entries.

use sqlx::AnyConnection;

use super::entitlements::EntitlementRow;
use super::{Result, micros, trusted};
use crate::domain::access;
use crate::domain::{Email, Instant, ProductKey};

/// One pair's next timer: `None` when no edge lies ahead.
pub(super) struct Timer<'a> {
    pub email: &'a Email,
    pub product: &'a ProductKey,
    pub due: Option<Instant>,
}

impl<'a> Timer<'a> {
    /// The timer of a pair whose rows (all of them, windows computed) are
    /// `rows`, as of `at`.
    pub(super) fn after(
        email: &'a Email,
        product: &'a ProductKey,
        rows: &[EntitlementRow],
        at: Instant,
    ) -> Self {
        let sources: Vec<_> = rows.iter().map(EntitlementRow::source).collect();
        Self {
            email,
            product,
            due: access::next_boundary(&sources, at),
        }
    }
}

/// Timers per statement (3 parameters each).
const CHUNK: usize = 300;

/// Sets (or clears) the timers of the pairs a write changed.
pub(super) async fn set(tx: &mut AnyConnection, timers: &[Timer<'_>]) -> Result<()> {
    let due: Vec<&Timer<'_>> = timers.iter().filter(|t| t.due.is_some()).collect();
    for chunk in due.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO answer_timers (email, product, due_at) VALUES {}
             ON CONFLICT (email, product) DO UPDATE SET due_at = excluded.due_at",
            super::values_list(chunk.len(), 3, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for timer in chunk {
            query = query
                .bind(timer.email.as_str())
                .bind(timer.product.as_str())
                .bind(timer.due.map(micros));
        }
        query.execute(&mut *tx).await?;
    }
    let cleared: Vec<&Timer<'_>> = timers.iter().filter(|t| t.due.is_none()).collect();
    for chunk in cleared.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM answer_timers WHERE (email, product) IN (VALUES {})",
            super::values_list(chunk.len(), 2, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for timer in chunk {
            query = query
                .bind(timer.email.as_str())
                .bind(timer.product.as_str());
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}
