//! The inputs journal (DESIGN.md "Rebuild and previews"): the order in which
//! inputs took effect, as they commit. Each writer of an input appends its row
//! as the last statement of its transaction, after every lock it takes, so two
//! inputs that touch the same thing are journaled in the order they committed
//! (the later one's row is written after the earlier one's commit, and ids
//! grow with time on both engines). A rebuild replays the journal by id.

use sqlx::AnyConnection;

use super::{Result, Store, StoreError, instant, micros, text};
use crate::domain::Instant;

/// What kind of input took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A delivery recorded (any outcome); subject: the delivery id.
    Delivery,
    /// An order registered; subject: the order id.
    Registration,
    /// An operator's replay; subject: the delivery id.
    Replay,
    /// The clock expired a subscription; subject: the subscription id.
    Expiry,
    /// A product's policy set; subject: the product key.
    Policy,
}

impl InputKind {
    const ALL: [Self; 5] = [
        Self::Delivery,
        Self::Registration,
        Self::Replay,
        Self::Expiry,
        Self::Policy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::Registration => "registration",
            Self::Replay => "replay",
            Self::Expiry => "expiry",
            Self::Policy => "policy",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// One journaled input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub id: i64,
    pub kind: InputKind,
    pub subject: String,
    pub at: Instant,
}

/// Appends an input: the last statement of the transaction that applies it.
pub(super) async fn record(
    tx: &mut AnyConnection,
    kind: InputKind,
    subject: &str,
    at: Instant,
) -> Result<()> {
    sqlx::query("INSERT INTO inputs (kind, subject, at) VALUES ($1, $2, $3)")
        .bind(kind.as_str())
        .bind(subject)
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// Up to `limit` inputs after id `after` and up to id `until`, in the
    /// order they took effect.
    pub async fn inputs_after(&self, after: i64, until: i64, limit: i64) -> Result<Vec<Input>> {
        sqlx::query(
            "SELECT id, kind, subject, at FROM inputs WHERE id > $1 AND id <= $2
             ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let kind = text(row, "kind")?;
            Ok(Input {
                id: sqlx::Row::try_get(row, "id")?,
                kind: InputKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("input kind {kind:?}")))?,
                subject: text(row, "subject")?,
                at: instant(row, "at")?,
            })
        })
        .collect()
    }

    /// The last input journaled so far (0: none).
    pub async fn last_input(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM inputs")
            .fetch_one(&self.pool)
            .await?;
        Ok(sqlx::Row::try_get(&row, "last")?)
    }
}
