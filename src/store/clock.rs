//! The clock: providers deliver at best once, so an active subscription whose
//! period plus grace has passed is recorded as `expired` (source `clock`), and
//! the history shows when access ended even when the provider never said so.

use super::changes::{Cause, CauseKind};
use super::history::{HistoryEntry, insert_transition};
use super::subscriptions::{load_by_id, write_entitlement};
use super::{Result, Store, micros, text};
use crate::domain::access::SourceKind;
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
            match self.expire_one(&id, now).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(subscription = id, error = %e, "clock: could not expire"),
            }
        }
        Ok(expired)
    }

    async fn expire_one(&self, id: &str, now: Instant) -> Result<bool> {
        let _turn = self.write_turn().await;
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
        let decision = subscription::decide(Some(&current.snapshot), &incoming);
        let Some(next) = decision
            .next
            .filter(|_| decision.outcome == Outcome::Applied)
        else {
            return Ok(false);
        };
        let updated = sqlx::query(
            "UPDATE subscriptions SET state = $1, version = version + 1, updated_at = $2
             WHERE id = $3 AND version = $4",
        )
        .bind(next.state.as_str())
        .bind(micros(now))
        .bind(id)
        .bind(current.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // A delivery changed it meanwhile; the next tick looks again.
            return Ok(false);
        }
        insert_transition(
            &mut tx,
            SourceKind::Subscription,
            id,
            current.version + 1,
            &HistoryEntry {
                at: now,
                event: Event::Expired.as_str().to_owned(),
                from_state: Some(State::Active.as_str().to_owned()),
                to_state: Some(State::Expired.as_str().to_owned()),
                outcome: Outcome::Applied,
                reason: Some("the period and its grace ended without a renewal".into()),
                delivery_id: None,
                source: "clock".into(),
                plan: None,
                previous_plan: None,
            },
        )
        .await?;
        let cause = Cause {
            kind: CauseKind::Clock,
            delivery_id: None,
            event: Some(Event::Expired.as_str()),
            at: now,
        };
        write_entitlement(
            &mut tx,
            id,
            &current.integration,
            &current.provider,
            &next,
            &cause,
        )
        .await?;
        super::changes::seal(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
