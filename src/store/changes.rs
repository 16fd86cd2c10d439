//! The change log: what an access check answers for one (customer, product),
//! each time it changes, appended in the transaction that changes it, with its
//! cause. DESIGN.md "The change log, fast reads and notifications".

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{
    Filter, Result, Store, StoreError, flag, instant, micros, opt_instant, opt_micros, opt_text,
    text,
};
use crate::domain::access::{Reason, SourceKind};
use crate::domain::{Email, Instant, ProductKey};

/// What an access check answers for one pair, as far as the log compares:
/// a change of any of these is a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub entitled: bool,
    pub reason: Reason,
    pub valid_until: Option<Instant>,
    pub plan: Option<String>,
}

/// What made an answer change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    Delivery,
    Replay,
    Registration,
    Grant,
    Policy,
    Rebuild,
    Clock,
}

impl CauseKind {
    pub const ALL: [Self; 7] = [
        Self::Delivery,
        Self::Replay,
        Self::Registration,
        Self::Grant,
        Self::Policy,
        Self::Rebuild,
        Self::Clock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::Replay => "replay",
            Self::Registration => "registration",
            Self::Grant => "grant",
            Self::Policy => "policy",
            Self::Rebuild => "rebuild",
            Self::Clock => "clock",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The write a change is appended for: handed down to every writer of
/// entitlement rows, which adds the source it writes.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub kind: CauseKind,
    pub delivery_id: Option<&'a str>,
    /// The event applied (`activated`, `paid`, `granted`, `policy_changed` …).
    pub event: Option<&'a str>,
    /// When: the answers before and after are compared at this instant.
    pub at: Instant,
}

/// One change, as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub sequence: i64,
    pub at: Instant,
    pub email: Email,
    pub product: ProductKey,
    pub answer: Answer,
    pub previous: Option<Answer>,
    pub cause_kind: CauseKind,
    pub cause_delivery: Option<String>,
    pub cause_source: Option<(SourceKind, String)>,
    pub cause_event: Option<String>,
}

/// One pair's answer before and after a write, appended when they differ.
pub(super) struct Compared<'a> {
    pub email: &'a Email,
    pub product: &'a ProductKey,
    /// `None`: the customer had no source for the product before.
    pub before: Option<Answer>,
    pub after: Answer,
}

/// Appends the changes among `compared` (those whose answer differs),
/// unnumbered: [`seal`] numbers them as the transaction's last step. Returns
/// how many.
pub(super) async fn append(
    tx: &mut AnyConnection,
    cause: &Cause<'_>,
    source: Option<(SourceKind, &str)>,
    compared: &[Compared<'_>],
) -> Result<usize> {
    let changed: Vec<&Compared<'_>> = compared
        .iter()
        .filter(|c| c.before.as_ref() != Some(&c.after))
        .filter(|c| c.before.is_some() || c.after.reason != Reason::NoEntitlement)
        .collect();
    for change in &changed {
        let before = change.before.as_ref();
        sqlx::query(
            "INSERT INTO changes (at, email, product, entitled, reason, valid_until, plan,
                 prev_entitled, prev_reason, prev_valid_until, prev_plan,
                 cause_kind, cause_delivery, cause_source_kind, cause_source_id, cause_event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(micros(cause.at))
        .bind(change.email.as_str())
        .bind(change.product.as_str())
        .bind(i64::from(change.after.entitled))
        .bind(change.after.reason.as_str())
        .bind(opt_micros(change.after.valid_until))
        .bind(change.after.plan.as_deref())
        .bind(before.map(|b| i64::from(b.entitled)))
        .bind(before.map(|b| b.reason.as_str()))
        .bind(before.and_then(|b| opt_micros(b.valid_until)))
        .bind(before.and_then(|b| b.plan.as_deref()))
        .bind(cause.kind.as_str())
        .bind(cause.delivery_id)
        .bind(source.map(|(kind, _)| kind.as_str()))
        .bind(source.map(|(_, id)| id))
        .bind(cause.event)
        .execute(&mut *tx)
        .await?;
    }
    Ok(changed.len())
}

/// Numbers the transaction's unnumbered changes from the counter, in the
/// order they were appended: the last step before every commit of a writer of
/// entitlement rows. The counter row stays locked until the commit, so
/// sequences are handed out in commit order; holding it only for this step
/// keeps concurrent writers concurrent until then. (Unnumbered rows of other
/// transactions are invisible here: each numbers its own before committing.)
pub(super) async fn seal(tx: &mut AnyConnection) -> Result<()> {
    let pending: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM changes WHERE sequence IS NULL")
            .fetch_one(&mut *tx)
            .await?,
        "n",
    )?;
    if pending == 0 {
        return Ok(());
    }
    let last: i64 = sqlx::Row::try_get(
        &sqlx::query("UPDATE change_counter SET last = last + $1 WHERE id = 1 RETURNING last")
            .bind(pending)
            .fetch_one(&mut *tx)
            .await?,
        "last",
    )?;
    sqlx::query(
        "UPDATE changes SET sequence = $1 + r.rn
         FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM changes
               WHERE sequence IS NULL) AS r
         WHERE changes.id = r.id",
    )
    .bind(last - pending)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

const COLUMNS: &str = "sequence, at, email, product, entitled, reason, valid_until, plan, \
                       prev_entitled, prev_reason, prev_valid_until, prev_plan, \
                       cause_kind, cause_delivery, cause_source_kind, cause_source_id, cause_event";

fn reason(raw: &str) -> Result<Reason> {
    Reason::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("reason {raw:?}")))
}

fn from_row(row: &AnyRow) -> Result<Change> {
    let previous = match opt_text(row, "prev_reason")? {
        Some(prev_reason) => Some(Answer {
            entitled: sqlx::Row::try_get::<Option<i64>, _>(row, "prev_entitled")?.unwrap_or(0) != 0,
            reason: reason(&prev_reason)?,
            valid_until: opt_instant(row, "prev_valid_until")?,
            plan: opt_text(row, "prev_plan")?,
        }),
        None => None,
    };
    let kind = text(row, "cause_kind")?;
    let cause_source = match (
        opt_text(row, "cause_source_kind")?,
        opt_text(row, "cause_source_id")?,
    ) {
        (Some(kind), Some(id)) => Some((
            SourceKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?,
            id,
        )),
        _ => None,
    };
    Ok(Change {
        sequence: sqlx::Row::try_get(row, "sequence")?,
        at: instant(row, "at")?,
        email: Email::parse(&text(row, "email")?)?,
        product: ProductKey::parse(&text(row, "product")?)?,
        answer: Answer {
            entitled: flag(row, "entitled")?,
            reason: reason(&text(row, "reason")?)?,
            valid_until: opt_instant(row, "valid_until")?,
            plan: opt_text(row, "plan")?,
        },
        previous,
        cause_kind: CauseKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("cause kind {kind:?}")))?,
        cause_delivery: opt_text(row, "cause_delivery")?,
        cause_source,
        cause_event: opt_text(row, "cause_event")?,
    })
}

/// Which changes to list: after `since`, optionally for one customer and/or
/// product, oldest first.
#[derive(Debug, Default)]
pub struct ChangeFilter<'a> {
    pub email: Option<&'a str>,
    pub product: Option<&'a str>,
    pub since: i64,
    pub limit: i64,
}

impl Store {
    /// Changes after `filter.since`, in sequence order.
    pub async fn changes(&self, filter: &ChangeFilter<'_>) -> Result<Vec<Change>> {
        let mut f = Filter::default();
        f.eq("email", filter.email);
        f.eq("product", filter.product);
        let since = f.next();
        let sql = format!(
            "SELECT {COLUMNS} FROM changes {} {} sequence > ${since}
             ORDER BY sequence LIMIT ${}",
            f.sql(),
            if f.is_empty() { "WHERE" } else { "AND" },
            since + 1
        );
        let rows = f
            .query(sql)
            .bind(filter.since)
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Drops changes older than `before` (`ENTITLED_CHANGE_RETENTION_DAYS`).
    pub async fn drop_changes_before(&self, before: Instant) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(micros(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
