//! The clock: providers deliver at best once, so an active subscription whose
//! period plus grace has passed is recorded as `expired` (source `clock`), and
//! the history shows when access ended even when the provider never said so.

use super::changes::CauseKind;
use super::history::Via;
use super::subscriptions::{load_by_id, write};
use super::tx::{Attempt, retrying};
use super::{Result, Store, micros, text};
use crate::domain::subscription::{self, Event, Incoming, State};
use crate::domain::{Instant, Outcome};

impl Store {
    /// Expires every active subscription whose period plus its product's grace
    /// ended before `now`; returns how many. Each is its own transaction, with
    /// the same compare-and-set as deliveries, so a renewal that lands at the
    /// same moment wins or is applied after.
    pub async fn expire_lapsed(&self, now: Instant) -> Result<usize> {
        // An active subscription's row grants until its period end plus its
        // product's grace: the rows whose window has closed, through an index.
        let lapsed = sqlx::query(
            "SELECT source_id AS id FROM entitlements
             WHERE source_kind = 'subscription' AND state = 'active' AND access_until < $1
             ORDER BY access_until LIMIT 1000",
        )
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for row in &lapsed {
            let id = text(row, "id")?;
            // One subscription that cannot be expired now (a lost race, a row
            // that does not read) must not hold up the others: it is logged and
            // looked at again on the next tick.
            match self.expire_subscription(&id, now).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(subscription = id, error = %e, "clock: could not expire"),
            }
        }
        Ok(expired)
    }

    /// Expires one subscription through the writer every delivery goes
    /// through, with the same retries; `false` when it is no longer active
    /// (a renewal came first).
    pub(super) async fn expire_subscription(&self, id: &str, now: Instant) -> Result<bool> {
        retrying!(self, self.expire_attempt(id, now))
    }

    async fn expire_attempt(&self, id: &str, now: Instant) -> std::result::Result<bool, Attempt> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = load_by_id(&mut tx, id).await? else {
            return Ok(false);
        };
        if current.snapshot.state != State::Active {
            return Ok(false);
        }
        let incoming = Incoming {
            event: Event::Expired,
            email: current.snapshot.email.clone(),
            product: current.snapshot.product.clone(),
            plan: None,
            period_start: None,
            period_end: current.snapshot.current_period_end,
            received_at: now,
        };
        let mut decision = subscription::decide(Some(&current.snapshot), &incoming);
        if decision.outcome != Outcome::Applied {
            return Ok(false);
        }
        decision
            .reason
            .get_or_insert_with(|| "the period and its grace ended without a renewal".into());
        let via = Via {
            delivery_id: None,
            source: CauseKind::Clock,
            at: now,
        };
        write(
            &mut tx,
            (&current.integration, &current.provider),
            &current.external_id,
            Some(&current),
            &incoming,
            &decision,
            None,
            via,
        )
        .await?;
        super::inputs::record(&mut tx, super::InputKind::Expiry, id, now).await?;
        self.commit(tx).await?;
        Ok(true)
    }
}
