//! The delivery log: every authenticated delivery and each attempt at applying it.

use sqlx::any::AnyRow;

use super::{
    Filter, Result, Store, StoreError, instant, micros, opt_instant, opt_text, text, trusted,
};
use crate::domain::access::SourceKind;
use crate::domain::{Instant, Outcome};

/// One delivery, without its body.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub received_at: Instant,
    pub event: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<(SourceKind, String)>,
}

/// One attempt at applying a delivery: on receipt, on registration, on replay.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: Instant,
    pub trigger: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<(SourceKind, String)>,
}

/// A delivery as received: the raw body and the (redacted) headers.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub delivery: DeliveryRecord,
    /// `None` once dropped past `ENTITLED_DELIVERY_RETENTION_DAYS`.
    pub body: Option<Vec<u8>>,
    pub body_dropped_at: Option<Instant>,
    /// JSON object, secrets redacted when it was stored.
    pub headers: String,
    pub attempts: Vec<AttemptRecord>,
}

/// Filters for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter<'a> {
    pub integration: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub before: Option<&'a str>,
    pub limit: i64,
}

const COLUMNS: &str =
    "id, integration, provider, received_at, event, outcome, reason, subject_kind, subject_id";

fn outcome(row: &AnyRow) -> Result<Outcome> {
    let raw = text(row, "outcome")?;
    Outcome::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("outcome {raw:?}")))
}

fn subject(row: &AnyRow) -> Result<Option<(SourceKind, String)>> {
    match (opt_text(row, "subject_kind")?, opt_text(row, "subject_id")?) {
        (Some(kind), Some(id)) => Ok(Some((
            SourceKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("subject kind {kind:?}")))?,
            id,
        ))),
        _ => Ok(None),
    }
}

fn from_row(row: &AnyRow) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: text(row, "id")?,
        integration: text(row, "integration")?,
        provider: text(row, "provider")?,
        received_at: instant(row, "received_at")?,
        event: opt_text(row, "event")?,
        outcome: outcome(row)?,
        reason: opt_text(row, "reason")?,
        subject: subject(row)?,
    })
}

impl Store {
    /// The delivery log, newest first.
    pub async fn deliveries(&self, filter: &DeliveryFilter<'_>) -> Result<Vec<DeliveryRecord>> {
        let mut f = Filter::default();
        f.eq("integration", filter.integration);
        f.eq("outcome", filter.outcome);
        f.push("id", "<", filter.before);
        let sql = format!(
            "SELECT {COLUMNS} FROM deliveries {} ORDER BY id DESC LIMIT ${}",
            f.sql(),
            f.next()
        );
        f.query(sql)
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// One delivery with its body, headers and attempts.
    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryDetail>> {
        let row = sqlx::query(trusted(format!(
            "SELECT {COLUMNS}, body, body_dropped_at, headers FROM deliveries WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempts = sqlx::query(
            "SELECT at, trigger, outcome, reason, subject_kind, subject_id FROM delivery_attempts
             WHERE delivery_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRecord {
                at: instant(r, "at")?,
                trigger: text(r, "trigger")?,
                outcome: outcome(r)?,
                reason: opt_text(r, "reason")?,
                subject: subject(r)?,
            })
        })
        .collect::<Result<_>>()?;
        let body_dropped_at = opt_instant(&row, "body_dropped_at")?;
        Ok(Some(DeliveryDetail {
            delivery: from_row(&row)?,
            body: match body_dropped_at {
                Some(_) => None,
                None => Some(sqlx::Row::try_get(&row, "body")?),
            },
            body_dropped_at,
            headers: text(&row, "headers")?,
            attempts,
        }))
    }

    /// Drops the raw bodies of deliveries received before `before` (at most
    /// `limit` a call); the rows, outcomes and attempts stay. Returns how many.
    pub async fn drop_delivery_bodies_before(
        &self,
        before: Instant,
        now: Instant,
        limit: i64,
    ) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(sqlx::query(
            "UPDATE deliveries SET body = $1, body_dropped_at = $2
             WHERE id IN (SELECT id FROM deliveries
                          WHERE received_at < $3 AND body_dropped_at IS NULL LIMIT $4)",
        )
        .bind(Vec::<u8>::new())
        .bind(micros(now))
        .bind(micros(before))
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
