//! The history every subscription and order keeps: one entry per event that
//! reached it, whatever the outcome (the audit trail), and who applied it.

use sqlx::AnyConnection;

use super::changes::{Cause, CauseKind};
use super::{Result, Store, StoreError, instant, micros, opt_text, text};
use crate::domain::access::SourceKind;
use crate::domain::{Instant, Outcome};

/// Who applies an event and when: the delivery, source and time its history
/// entry records. On receipt that is the arrival; on a replay, the replay (the
/// event itself keeps the time it was received).
#[derive(Debug, Clone, Copy)]
pub(super) struct Via<'a> {
    /// The delivery applied; `None` for the clock.
    pub delivery_id: Option<&'a str>,
    /// `Delivery`, `Replay` or `Clock`: the history entry's `source`, and the
    /// cause of the changes it makes.
    pub source: CauseKind,
    pub at: Instant,
}

impl<'a> Via<'a> {
    /// The change-log cause of applying `event` this way.
    pub(super) fn cause(&self, event: &'a str) -> Cause<'a> {
        Cause {
            kind: self.source,
            delivery_id: self.delivery_id,
            event: Some(event),
            at: self.at,
        }
    }
}

/// One entry of a subscription's (or order's) history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Instant,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub delivery_id: Option<String>,
    /// `delivery`, `clock` or `admin`.
    pub source: String,
    /// The plan the event named, and the one it says it changed from.
    pub plan: Option<String>,
    pub previous_plan: Option<String>,
}

/// [`Store::history`] through any connection (a rebuild reads its scratch
/// store's inside its transaction).
pub(super) async fn history_of<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    kind: SourceKind,
    id: &str,
) -> Result<Vec<HistoryEntry>> {
    sqlx::query(
        "SELECT at, event, from_state, to_state, outcome, reason, delivery_id, source, plan,
             previous_plan
         FROM transitions WHERE subject_kind = $1 AND subject_id = $2 ORDER BY seq",
    )
    .bind(kind.as_str())
    .bind(id)
    .fetch_all(executor)
    .await?
    .iter()
    .map(history_entry)
    .collect()
}

pub(super) async fn insert_transition(
    tx: &mut AnyConnection,
    kind: SourceKind,
    subject_id: &str,
    seq: i64,
    entry: &HistoryEntry,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO transitions (subject_kind, subject_id, seq, at, event, from_state, to_state,
             outcome, reason, delivery_id, source, plan, previous_plan)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(kind.as_str())
    .bind(subject_id)
    .bind(seq)
    .bind(micros(entry.at))
    .bind(entry.event.as_str())
    .bind(entry.from_state.as_deref())
    .bind(entry.to_state.as_deref())
    .bind(entry.outcome.as_str())
    .bind(entry.reason.as_deref())
    .bind(entry.delivery_id.as_deref())
    .bind(entry.source.as_str())
    .bind(entry.plan.as_deref())
    .bind(entry.previous_plan.as_deref())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends an entry after the source's last one (a write that is no event
/// of its state machine, as a rebuild's).
pub(super) async fn append(
    tx: &mut AnyConnection,
    kind: SourceKind,
    subject_id: &str,
    entry: &HistoryEntry,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM transitions
         WHERE subject_kind = $1 AND subject_id = $2",
    )
    .bind(kind.as_str())
    .bind(subject_id)
    .fetch_one(&mut *tx)
    .await?;
    let seq: i64 = sqlx::Row::try_get(&row, "seq")?;
    insert_transition(tx, kind, subject_id, seq, entry).await
}

impl Store {
    /// A subscription's or order's history, oldest first.
    pub async fn history(&self, kind: SourceKind, id: &str) -> Result<Vec<HistoryEntry>> {
        history_of(&self.pool, kind, id).await
    }

    /// The history of every subscription and order of one customer, in one
    /// query: each source's entries oldest first.
    pub async fn customer_history(
        &self,
        email: &str,
    ) -> Result<Vec<(SourceKind, String, HistoryEntry)>> {
        sqlx::query(
            "SELECT subject_kind, subject_id, at, event, from_state, to_state, outcome, reason,
                 delivery_id, source, plan, previous_plan
             FROM transitions
             WHERE (subject_kind = 'subscription'
                    AND subject_id IN (SELECT id FROM subscriptions WHERE email = $1))
                OR (subject_kind = 'order'
                    AND subject_id IN (SELECT id FROM orders WHERE email = $1))
             ORDER BY subject_kind DESC, subject_id, seq",
        )
        .bind(email)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let kind = text(row, "subject_kind")?;
            let kind = SourceKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("subject kind {kind:?}")))?;
            Ok((kind, text(row, "subject_id")?, history_entry(row)?))
        })
        .collect()
    }
}

fn history_entry(row: &sqlx::any::AnyRow) -> Result<HistoryEntry> {
    let outcome = text(row, "outcome")?;
    Ok(HistoryEntry {
        at: instant(row, "at")?,
        event: text(row, "event")?,
        from_state: opt_text(row, "from_state")?,
        to_state: opt_text(row, "to_state")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome {outcome:?}")))?,
        reason: opt_text(row, "reason")?,
        delivery_id: opt_text(row, "delivery_id")?,
        source: text(row, "source")?,
        plan: opt_text(row, "plan")?,
        previous_plan: opt_text(row, "previous_plan")?,
    })
}
