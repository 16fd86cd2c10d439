//! The change log: what an access check answers for one (customer, product),
//! each time it changes, appended in the transaction that changes it, with its
//! cause. DESIGN.md "The change log, fast reads and notifications".

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{
    Filter, Result, Store, StoreError, instant, micros, opt_instant, opt_micros, opt_text, text,
    trusted,
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
    /// What consumers last saw: the pair's last change in the log, or, if the
    /// log holds none (never, or past retention), the answer of the rows
    /// before the write. `None`: neither (the customer's first source for the
    /// product). Comparing with the log, not with the rows read at this
    /// write's instant, keeps the chain whole: each change's `previous` is the
    /// answer of the change before it.
    pub before: Option<Answer>,
    pub after: Answer,
}

/// The columns of a pair's last change, as `last_entitled`, `last_reason`,
/// `last_valid_until` and `last_plan`, from a `changes` row joined as `l`.
pub(super) const LAST_COLUMNS: &str = "l.entitled AS last_entitled, l.reason AS last_reason, \
     l.valid_until AS last_valid_until, l.plan AS last_plan";

/// Changes per INSERT (17 parameters each, well under both engines' limits).
const APPEND_CHUNK: usize = 200;

/// A change appended: its row id, email and product.
pub(super) type Appended = (i64, String, String);

/// Appends the changes among `compared` (those whose answer differs),
/// numbered on SQLite, unnumbered on PostgreSQL (see [`Sequencer`]). Returns
/// what it appended.
pub(super) async fn append(
    tx: &mut AnyConnection,
    cause: &Cause<'_>,
    source: Option<(SourceKind, &str)>,
    compared: &[Compared<'_>],
) -> Result<Vec<Appended>> {
    let changed: Vec<&Compared<'_>> = compared
        .iter()
        .filter(|c| c.before.as_ref() != Some(&c.after))
        .filter(|c| c.before.is_some() || c.after.reason != Reason::NoEntitlement)
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    // SQLite has one writer at a time: its changes are numbered as they are
    // appended (a rolled-back savepoint takes its numbers back with it).
    // PostgreSQL's are numbered after commit, by the [`Sequencer`].
    let mut next = if tx.backend_name() == "SQLite" {
        let last: i64 = sqlx::Row::try_get(
            &sqlx::query("UPDATE change_counter SET last = last + $1 WHERE id = 1 RETURNING last")
                .bind(changed.len() as i64)
                .fetch_one(&mut *tx)
                .await?,
            "last",
        )?;
        Some(last - changed.len() as i64 + 1)
    } else {
        None
    };
    let mut inserted = Vec::with_capacity(changed.len());
    for chunk in changed.chunks(APPEND_CHUNK) {
        let sql = format!(
            "INSERT INTO changes (sequence, at, email, product, entitled, reason, valid_until, plan,
                 prev_entitled, prev_reason, prev_valid_until, prev_plan,
                 cause_kind, cause_delivery, cause_source_kind, cause_source_id, cause_event)
             VALUES {}",
            super::values_list(chunk.len(), 17, 1)
        );
        let sql = format!("{sql} RETURNING id, email, product");
        let mut query = sqlx::query(super::trusted(sql));
        for change in chunk {
            let before = change.before.as_ref();
            let sequence = next;
            next = next.map(|n| n + 1);
            query = query
                .bind(sequence)
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
                .bind(cause.event);
        }
        for row in query.fetch_all(&mut *tx).await? {
            inserted.push((
                sqlx::Row::try_get::<i64, _>(&row, "id")?,
                text(&row, "email")?,
                text(&row, "product")?,
            ));
        }
    }
    Ok(inserted)
}

/// The last change of each customer of `product` in the log, by email.
pub(super) async fn last_of_product(
    tx: &mut AnyConnection,
    product: &ProductKey,
) -> Result<std::collections::HashMap<String, Answer>> {
    let mut last = std::collections::HashMap::new();
    for row in sqlx::query(trusted(format!(
        "SELECT l.email AS email, {} FROM changes l
         WHERE l.id IN (SELECT MAX(id) FROM changes WHERE product = $1 GROUP BY email)",
        LAST_COLUMNS
    )))
    .bind(product.as_str())
    .fetch_all(&mut *tx)
    .await?
    {
        if let Some(answer) = answer_in(&row, "last_")? {
            last.insert(text(&row, "email")?, answer);
        }
    }
    Ok(last)
}

/// PostgreSQL: numbers up to `limit` committed unnumbered changes, and as
/// many entitlement touches (see `reads`), each in id order, continuing their
/// counters. Returns the larger count.
async fn number(tx: &mut AnyConnection, limit: i64) -> Result<i64> {
    // Takes the counter row (on PostgreSQL, until the commit).
    let counter =
        sqlx::query("UPDATE change_counter SET last = last WHERE id = 1 RETURNING last, touches")
            .fetch_one(&mut *tx)
            .await?;
    let mut counts = [0; 2];
    for (count, (table, column)) in counts
        .iter_mut()
        .zip([("changes", "last"), ("entitlement_touches", "touches")])
    {
        *count = sqlx::query(super::trusted(format!(
            "UPDATE {table} SET sequence = $1 + r.rn
             FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM {table}
                   WHERE sequence IS NULL ORDER BY id LIMIT $2) AS r
             WHERE {table}.id = r.id"
        )))
        .bind(sqlx::Row::try_get::<i64, _>(&counter, column)?)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
    }
    if counts != [0, 0] {
        sqlx::query(
            "UPDATE change_counter SET last = last + $1, touches = touches + $2 WHERE id = 1",
        )
        .bind(counts[0])
        .bind(counts[1])
        .execute(&mut *tx)
        .await?;
    }
    Ok(counts[0].max(counts[1]))
}

/// PostgreSQL: numbers changes after their writers commit, one numbering
/// transaction at a time across every replica (the counter row's lock).
///
/// Writers append unnumbered rows and commit concurrently. A numbering
/// transaction takes the counter row, sees every change committed by then and
/// numbers them in id order; it commits before the next one can start, so
/// when a consumer sees change N, every change below N is committed and
/// visible. Two writers of one (customer, product) take turns (a lock on the
/// pair), so the later one's id is the larger and their order in the log is
/// their commit order. Writers wait for the run that follows their commit
/// before answering, so a 2xx means the change is in the log; a tick numbers
/// whatever a crashed replica left.
#[derive(Debug, Default)]
pub(super) struct Sequencer {
    runs: super::runs::Runs,
}

/// The most changes one numbering transaction takes.
const NUMBER_BATCH: i64 = 10_000;

/// How often every replica numbers what nobody is waiting for.
const SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a writer waits for its changes to be numbered before answering
/// anyway: its write is committed; the sweep numbers them.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Sequencer {
    /// The sequencer, and its task for the caller to run (`super::Background`).
    pub(super) fn new(pool: sqlx::AnyPool) -> (std::sync::Arc<Self>, super::Task) {
        let sequencer = std::sync::Arc::new(Self::default());
        let task: super::Task = ("sequencer", Box::pin(sequencer.clone().run(pool)));
        (sequencer, task)
    }

    /// Waits until every change committed before this call is numbered.
    pub(super) async fn numbered(&self) {
        if !self.runs.wait(WAIT).await {
            tracing::warn!(
                "changes not yet numbered after 5 s; answering anyway (the write is committed)"
            );
        }
    }

    async fn run(self: std::sync::Arc<Self>, pool: sqlx::AnyPool) {
        let mut failures = 0;
        loop {
            let ticket = self.runs.next(SWEEP).await;
            if pool.is_closed() {
                return;
            }
            match Self::number_committed(&pool).await {
                Ok(()) => {
                    failures = 0;
                    self.runs.finished(ticket);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "numbering changes failed; trying again");
                    super::tx::backoff(failures).await;
                    self.runs.again();
                }
            }
        }
    }

    async fn number_committed(pool: &sqlx::AnyPool) -> Result<()> {
        loop {
            // Cheap when there is nothing to number (partial indexes).
            let pending = sqlx::query(
                "SELECT id FROM changes WHERE sequence IS NULL
                 UNION ALL SELECT id FROM entitlement_touches WHERE sequence IS NULL
                 LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            if pending.is_none() {
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            let numbered = number(&mut tx, NUMBER_BATCH).await?;
            tx.commit().await?;
            if numbered < NUMBER_BATCH {
                return Ok(());
            }
        }
    }
}

const COLUMNS: &str = "sequence, at, email, product, entitled, reason, valid_until, plan, \
                       prev_entitled, prev_reason, prev_valid_until, prev_plan, \
                       cause_kind, cause_delivery, cause_source_kind, cause_source_id, cause_event";

fn reason(raw: &str) -> Result<Reason> {
    Reason::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("reason {raw:?}")))
}

/// The answer in columns `{prefix}entitled`, `{prefix}reason`,
/// `{prefix}valid_until` and `{prefix}plan`; `None` when the reason is NULL.
pub(super) fn answer_in(row: &AnyRow, prefix: &str) -> Result<Option<Answer>> {
    let Some(raw) = opt_text(row, &format!("{prefix}reason"))? else {
        return Ok(None);
    };
    Ok(Some(Answer {
        entitled: sqlx::Row::try_get::<Option<i64>, _>(row, format!("{prefix}entitled").as_str())?
            .unwrap_or(0)
            != 0,
        reason: reason(&raw)?,
        valid_until: opt_instant(row, &format!("{prefix}valid_until"))?,
        plan: opt_text(row, &format!("{prefix}plan"))?,
    }))
}

/// [`COLUMNS`] read from the table aliased `alias`, under their own names
/// (for a join that [`from_row`] reads).
pub(super) fn columns_as(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn from_row(row: &AnyRow) -> Result<Change> {
    let previous = answer_in(row, "prev_")?;
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
        answer: answer_in(row, "")?
            .ok_or_else(|| StoreError::Corrupt("a change without an answer".into()))?,
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

    /// Drops changes older than `before` (`ENTITLED_CHANGE_RETENTION_DAYS`),
    /// with the messages that announced them and tests sent before then.
    pub async fn drop_changes_before(&self, before: Instant) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let old_messages = "SELECT m.id FROM messages m LEFT JOIN changes c ON c.id = m.change_id
             WHERE (c.id IS NOT NULL AND c.at < $1) OR (m.change_id IS NULL AND m.created_at < $1)";
        sqlx::query(super::trusted(format!(
            "DELETE FROM message_attempts WHERE message IN ({old_messages})"
        )))
        .bind(micros(before))
        .execute(&mut *tx)
        .await?;
        sqlx::query(super::trusted(format!(
            "DELETE FROM messages WHERE id IN ({old_messages})"
        )))
        .bind(micros(before))
        .execute(&mut *tx)
        .await?;
        let dropped = sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(micros(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(dropped)
    }
}
