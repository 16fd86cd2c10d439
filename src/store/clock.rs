//! The clock: providers deliver at best once, so an active subscription whose
//! period plus grace has passed is recorded as `expired` (source `clock`), and
//! the history shows when access ended even when the provider never said so.
//! And time alone changes answers (a period, a grace, a grant or purchase
//! window ends or begins): each pair's timer (`timers`) comes due, and the
//! change it brings is appended (cause `clock`).

use super::changes::{Answer, Cause, CauseKind, Compared};
use super::entitlements::{self, EntitlementRow};
use super::history::Via;
use super::subscriptions::{load_by_id, write};
use super::timers::{self, Timer};
use super::tx::{Attempt, retrying};
use super::{Result, Store, effects, micros, text};
use crate::domain::access::{self, Reason};
use crate::domain::subscription::{self, Event, Incoming, State};
use crate::domain::{Email, Instant, Outcome, ProductKey};

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
        // Still lapsed as this transaction reads it: a renewal that committed
        // since the lapsed rows were listed moved the period on (its row and
        // its version together: a renewal committing after this read makes
        // the compare-and-set below fail, and the retry reads it).
        let lapsed = sqlx::query(
            "SELECT 1 AS lapsed FROM entitlements
             WHERE source_kind = 'subscription' AND source_id = $1 AND state = 'active'
                 AND access_until < $2",
        )
        .bind(id)
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?;
        if lapsed.is_none() {
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
            appended += effects::append(&mut tx, &cause, source, &compared).await?;
            timers.push(Timer::after(email, product, rows, now));
        }
        timers::set(&mut tx, &timers).await?;
        self.commit(tx).await?;
        Ok(appended)
    }
}
