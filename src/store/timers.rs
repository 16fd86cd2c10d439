//! Time-driven changes: an answer changes when a period ends, when grace
//! ends, when a grant or purchase window begins or ends, with no event at
//! all. Each (customer, product) with rows has a timer at the next such
//! instant ([`access::next_boundary`]), set by the writer of its rows in the
//! same transaction; the clock takes the timers that are due through an
//! index, appends the change each brings (cause `clock`) and sets the next.
//!
//! Every replica runs the clock. Two that take the same timer take turns on
//! the pair (the writers' lock), and the second compares with the change the
//! first appended: equal, so it appends nothing. No double entries.

use sqlx::AnyConnection;

use super::changes::{self, Answer, Cause, CauseKind, Compared};
use super::entitlements::{self, EntitlementRow};
use super::tx::{Attempt, retrying};
use super::{Result, Store, micros, text, trusted};
use crate::domain::access::{self, Reason};
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

/// Timers taken per transaction.
const BATCH: i64 = 200;

impl Store {
    /// Appends every change that time alone made by `now` (cause `clock`), and
    /// sets each settled pair's next timer. Returns how many changes.
    pub async fn settle_due_timers(&self, now: Instant) -> Result<usize> {
        let mut appended = 0;
        loop {
            let due: Vec<(String, String)> = sqlx::query(
                "SELECT email, product FROM answer_timers WHERE due_at <= $1
                 ORDER BY due_at LIMIT $2",
            )
            .bind(micros(now))
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((text(row, "email")?, text(row, "product")?)))
            .collect::<Result<_>>()?;
            let mut pairs = Vec::with_capacity(due.len());
            for (email, product) in &due {
                // A pair that does not parse cannot be answered either: its
                // timer is dropped rather than taken again every tick.
                match (Email::parse(email), ProductKey::parse(product)) {
                    (Ok(email), Ok(product)) => pairs.push((email, product)),
                    _ => {
                        tracing::warn!("clock: dropping the timer of a pair that does not parse");
                        sqlx::query("DELETE FROM answer_timers WHERE email = $1 AND product = $2")
                            .bind(email.as_str())
                            .bind(product.as_str())
                            .execute(&self.pool)
                            .await?;
                    }
                }
            }
            pairs.sort();
            pairs.dedup();
            appended += retrying!(self, self.settle_attempt(&pairs, now))?;
            if (due.len() as i64) < BATCH {
                return Ok(appended);
            }
        }
    }

    async fn settle_attempt(
        &self,
        pairs: &[(Email, ProductKey)],
        now: Instant,
    ) -> std::result::Result<usize, Attempt> {
        let mut tx = self.pool.begin().await?;
        entitlements::lock(&mut tx, pairs).await?;
        let seen = entitlements::read_pairs(&mut tx, pairs, None).await?;
        let mut appended = 0;
        let mut timers = Vec::with_capacity(pairs.len());
        for (((email, product), rows), last) in pairs.iter().zip(&seen.rows).zip(&seen.last) {
            let sources: Vec<_> = rows.iter().map(EntitlementRow::source).collect();
            // The edge just crossed names the source and the event. What was
            // shown before it is the pair's last change; before the clock's
            // first look at a pair (or past the log's retention), the answer
            // a microsecond before that edge.
            let crossed = access::last_boundary(&sources, Instant::UNIX_EPOCH, now);
            // (`no_entitlement` there is nothing shown: `previous` is null.)
            let before = match (last, crossed) {
                (Some(last), _) => Some(last.clone()),
                (None, Some((edge, _, _))) => {
                    Some(Answer::of(rows, edge - time::Duration::microseconds(1)))
                        .filter(|a| a.reason != Reason::NoEntitlement)
                }
                (None, None) => Some(Answer::of(rows, now)),
            };
            let compared = [Compared {
                email,
                product,
                before,
                after: Answer::of(rows, now),
            }];
            let event = crossed.map(|(_, _, boundary)| boundary.as_str());
            let source =
                crossed.map(|(_, i, _)| (rows[i].state.kind(), rows[i].source_id.as_str()));
            let cause = Cause {
                kind: CauseKind::Clock,
                delivery_id: None,
                event,
                at: now,
            };
            appended += changes::append(&mut tx, &cause, source, &compared).await?;
            timers.push(Timer::after(email, product, rows, now));
        }
        set(&mut tx, &timers).await?;
        self.commit(tx).await?;
        Ok(appended)
    }
}
