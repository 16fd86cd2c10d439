//! Outbound webhooks: the endpoints that receive changes, the message each
//! change becomes for each of them (written in the change's transaction), and
//! every attempt at sending one. DESIGN.md "Outbound webhooks"; the sending
//! itself is `crate::outbound`.
//!
//! A sender leases the messages it tries (`lease_owner`, `lease_until`), so
//! each is tried by one replica at a time; a replica that dies mid-attempt
//! lets its lease run out and another takes the message. Per endpoint and
//! (customer, product), only the oldest pending message may be sent, and a
//! pending message with a newer one behind it is `superseded` instead.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::changes::{self, Change};
use super::{
    Result, Store, StoreError, instant, micros, opt_instant, opt_text, text, trusted, values_list,
};
use crate::domain::{Instant, ProductKey};
use crate::secret::Secret;

/// Whether an endpoint's last attempt worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Healthy,
    /// Its last attempt failed.
    Failing,
    Disabled,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Failing => "failing",
            Self::Disabled => "disabled",
        }
    }
}

/// An endpoint, as shown (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// `None`: every product.
    pub products: Option<Vec<ProductKey>>,
    pub enabled: bool,
    pub status: EndpointStatus,
    pub created_at: Instant,
    pub updated_at: Instant,
}

/// Where and how to send to an endpoint: its URL and the secrets that sign
/// (the current one first, then the previous one during a rotation).
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub url: String,
    pub secrets: Vec<Secret>,
}

/// A message's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Pending,
    Delivered,
    Failed,
    Superseded,
}

impl MessageStatus {
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Delivered,
        Self::Failed,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What a message announces.
pub const ACCESS_CHANGED: &str = "access.changed";
pub const ENDPOINT_TEST: &str = "endpoint.test";

/// One attempt at sending a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttempt {
    pub at: Instant,
    /// The receiver's status code; `None` when no response came.
    pub status_code: Option<u16>,
    /// Why it failed, when it did (a non-2xx status, a timeout, a refused
    /// connection).
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl MessageAttempt {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A message, with every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub endpoint: String,
    /// The change's sequence (`None` for a test, or for a change PostgreSQL
    /// has not numbered yet).
    pub sequence: Option<i64>,
    pub kind: String,
    pub status: MessageStatus,
    pub attempts: Vec<MessageAttempt>,
    pub next_attempt_at: Option<Instant>,
    pub created_at: Instant,
}

/// A message leased for an attempt: everything the sender needs.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: String,
    pub target: Target,
    /// The change it announces; `None` for a test, whose body is `body`.
    pub change: Option<Change>,
    pub body: Option<String>,
    pub status: MessageStatus,
    /// Attempts made before this one.
    pub attempts_made: u32,
}

/// What asking for one message's lease found.
#[derive(Debug)]
pub enum Lease {
    Leased(Box<Leased>),
    /// Another sender is trying it now.
    Busy,
    Missing,
}

/// How a finished attempt leaves its message.
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    pub status: MessageStatus,
    pub next_attempt_at: Option<Instant>,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, products, enabled, last_attempt_ok, created_at, updated_at";

fn products_from(raw: Option<String>) -> Result<Option<Vec<ProductKey>>> {
    raw.map(|raw| {
        let keys: Vec<String> = serde_json::from_str(&raw)
            .map_err(|e| StoreError::Corrupt(format!("endpoint products: {e}")))?;
        keys.iter()
            .map(|k| ProductKey::parse(k).map_err(Into::into))
            .collect()
    })
    .transpose()
}

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint> {
    let enabled = sqlx::Row::try_get::<i64, _>(row, "enabled")? != 0;
    let last_ok: Option<i64> = sqlx::Row::try_get(row, "last_attempt_ok")?;
    Ok(Endpoint {
        id: text(row, "id")?,
        url: text(row, "url")?,
        products: products_from(opt_text(row, "products")?)?,
        enabled,
        status: match (enabled, last_ok) {
            (false, _) => EndpointStatus::Disabled,
            (true, Some(0)) => EndpointStatus::Failing,
            (true, _) => EndpointStatus::Healthy,
        },
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

fn target_from_row(row: &AnyRow, now: Instant) -> Result<Target> {
    let mut secrets = vec![Secret::new(text(row, "secret")?)];
    if let (Some(previous), Some(until)) = (
        opt_text(row, "previous_secret")?,
        opt_instant(row, "previous_secret_until")?,
    ) && now < until
    {
        secrets.push(Secret::new(previous));
    }
    Ok(Target {
        endpoint: text(row, "endpoint_id")?,
        url: text(row, "url")?,
        secrets,
    })
}

/// A fresh message id: `msg_` and a UUIDv7, so ids sort by creation.
fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Messages per INSERT (9 parameters each).
const ENQUEUE_CHUNK: usize = 500;

/// Writes, in the changes' transaction, one message per change per enabled
/// endpoint whose products include the change's.
pub(super) async fn enqueue(
    tx: &mut AnyConnection,
    changes: &[(i64, String, String)],
    now: Instant,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let endpoints = sqlx::query("SELECT id, products FROM endpoints WHERE enabled = 1")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok((text(row, "id")?, products_from(opt_text(row, "products")?)?)))
        .collect::<Result<Vec<_>>>()?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut messages = Vec::new();
    for (change, email, product) in changes {
        for (endpoint, products) in &endpoints {
            let matches = products
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == product));
            if matches {
                messages.push((message_id(), endpoint, *change, email, product));
            }
        }
    }
    for chunk in messages.chunks(ENQUEUE_CHUNK) {
        let sql = format!(
            "INSERT INTO messages (id, endpoint, change_id, email, product, next_attempt_at,
                 created_at, type, status)
             VALUES {}",
            values_list(chunk.len(), 9, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for (id, endpoint, change, email, product) in chunk {
            query = query
                .bind(id.as_str())
                .bind(endpoint.as_str())
                .bind(*change)
                .bind(email.as_str())
                .bind(product.as_str())
                .bind(micros(now))
                .bind(micros(now))
                .bind(ACCESS_CHANGED)
                .bind(MessageStatus::Pending.as_str());
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// The columns a sender needs: the message, its endpoint's target and its
/// change (all NULL for a test).
fn leased_columns() -> String {
    format!(
        "m.id AS message_id, m.status AS message_status, m.attempts AS attempts_made,
         m.body AS message_body, m.endpoint AS endpoint_id, e.url AS url, e.secret AS secret,
         e.previous_secret AS previous_secret, e.previous_secret_until AS previous_secret_until,
         c.id AS change_row, {}",
        changes::columns_as("c")
    )
}

fn leased_from_row(row: &AnyRow, now: Instant) -> Result<Leased> {
    let status = text(row, "message_status")?;
    let change = match sqlx::Row::try_get::<Option<i64>, _>(row, "change_row")? {
        Some(_) => Some(changes::from_row(row)?),
        None => None,
    };
    Ok(Leased {
        id: text(row, "message_id")?,
        target: target_from_row(row, now)?,
        change,
        body: opt_text(row, "message_body")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {status:?}")))?,
        attempts_made: u32::try_from(sqlx::Row::try_get::<i64, _>(row, "attempts_made")?)
            .unwrap_or(u32::MAX),
    })
}

/// A message's columns, as listed.
const MESSAGE_COLUMNS: &str = "m.id AS id, m.endpoint AS endpoint, c.sequence AS sequence, \
     m.type AS type, m.status AS status, m.next_attempt_at AS next_attempt_at, \
     m.created_at AS created_at";

fn message_from_row(row: &AnyRow) -> Result<Message> {
    let status = text(row, "status")?;
    Ok(Message {
        id: text(row, "id")?,
        endpoint: text(row, "endpoint")?,
        sequence: sqlx::Row::try_get(row, "sequence")?,
        kind: text(row, "type")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {status:?}")))?,
        attempts: Vec::new(),
        next_attempt_at: opt_instant(row, "next_attempt_at")?,
        created_at: instant(row, "created_at")?,
    })
}

/// What messages to list: one endpoint's, optionally in one status, newest
/// first, after the cursor's message id.
#[derive(Debug, Default)]
pub struct MessageFilter<'a> {
    pub endpoint: &'a str,
    pub status: Option<MessageStatus>,
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// Counts for `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutboundStats {
    /// Messages in each status, in [`MessageStatus::ALL`] order.
    pub by_status: [i64; 4],
    /// When the oldest pending message was created.
    pub oldest_pending: Option<Instant>,
}

impl Store {
    /// Creates an endpoint with a fresh secret (returned, once), or updates
    /// its URL, products and enabled flag (secret unchanged, `None`).
    pub async fn put_endpoint(
        &self,
        id: &str,
        url: &str,
        products: Option<&[ProductKey]>,
        enabled: bool,
        now: Instant,
    ) -> Result<(Endpoint, Option<Secret>)> {
        let products = products
            .map(|keys| {
                serde_json::to_string(&keys.iter().map(ProductKey::as_str).collect::<Vec<_>>())
            })
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secret = crate::crypto::standard_webhooks::generate_secret();
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // The insert decides "created": two first PUTs at once cannot both
        // create (the loser updates what the winner created).
        let inserted = sqlx::query(trusted(format!(
            "INSERT INTO endpoints (id, url, products, enabled, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (id) DO NOTHING RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id)
        .bind(url)
        .bind(products.as_deref())
        .bind(i64::from(enabled))
        .bind(secret.expose())
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?;
        let (row, created) = match inserted {
            Some(row) => (row, Some(secret)),
            None => {
                let row = sqlx::query(trusted(format!(
                    "UPDATE endpoints SET url = $2, products = $3, enabled = $4, updated_at = $5
                     WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
                )))
                .bind(id)
                .bind(url)
                .bind(products.as_deref())
                .bind(i64::from(enabled))
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await?;
                (row, None)
            }
        };
        tx.commit().await?;
        Ok((endpoint_from_row(&row)?, created))
    }

    /// Every endpoint, by id.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        sqlx::query(trusted(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    pub async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        sqlx::query(trusted(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
    }

    /// Deletes an endpoint and its messages; `false` when there was none.
    pub async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM message_attempts WHERE message IN
                 (SELECT id FROM messages WHERE endpoint = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM messages WHERE endpoint = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Gives an endpoint a fresh secret (returned, once); the one it replaces
    /// keeps signing beside it until `now + overlap`.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &str,
        now: Instant,
        overlap: time::Duration,
    ) -> Result<Option<(Endpoint, Secret)>> {
        let secret = crate::crypto::standard_webhooks::generate_secret();
        let _turn = self.write_turn().await;
        let row = sqlx::query(trusted(format!(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_until = $3,
                 secret = $2, updated_at = $4
             WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id)
        .bind(secret.expose())
        .bind(micros(crate::domain::add_seconds(
            now,
            overlap.whole_seconds(),
        )))
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|row| Ok((endpoint_from_row(row)?, secret)))
            .transpose()
    }

    /// Where to send to an endpoint, with the secrets that sign now.
    pub async fn endpoint_target(&self, id: &str, now: Instant) -> Result<Option<Target>> {
        sqlx::query(
            "SELECT id AS endpoint_id, url, secret, previous_secret, previous_secret_until
             FROM endpoints WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|row| target_from_row(row, now))
        .transpose()
    }

    /// Keeps a test message that was sent once, with its attempt.
    pub async fn record_test_message(
        &self,
        endpoint: &str,
        id: &str,
        body: &str,
        attempt: &MessageAttempt,
    ) -> Result<()> {
        let status = if attempt.succeeded() {
            MessageStatus::Delivered
        } else {
            MessageStatus::Failed
        };
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO messages (id, endpoint, type, body, status, attempts, created_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6)",
        )
        .bind(id)
        .bind(endpoint)
        .bind(ENDPOINT_TEST)
        .bind(body)
        .bind(status.as_str())
        .bind(micros(attempt.at))
        .execute(&mut *tx)
        .await?;
        insert_attempt(&mut tx, id, 1, attempt).await?;
        set_endpoint_health(&mut tx, endpoint, attempt).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One endpoint's messages, newest first, with their attempts.
    pub async fn messages(&self, filter: &MessageFilter<'_>) -> Result<Vec<Message>> {
        let rows = sqlx::query(trusted(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN changes c ON c.id = m.change_id
             WHERE m.endpoint = $1 AND ($2 = '' OR m.status = $2) AND ($3 = '' OR m.id < $3)
             ORDER BY m.id DESC LIMIT $4"
        )))
        .bind(filter.endpoint)
        .bind(filter.status.map_or("", MessageStatus::as_str))
        .bind(filter.before.unwrap_or(""))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.with_attempts(&mut messages).await?;
        Ok(messages)
    }

    /// One message of an endpoint, with its attempts.
    pub async fn message(&self, endpoint: &str, id: &str) -> Result<Option<Message>> {
        let row = sqlx::query(trusted(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN changes c ON c.id = m.change_id
             WHERE m.endpoint = $1 AND m.id = $2"
        )))
        .bind(endpoint)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut messages = vec![message_from_row(&row)?];
        self.with_attempts(&mut messages).await?;
        Ok(messages.pop())
    }

    async fn with_attempts(&self, messages: &mut [Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=messages.len()).map(|n| format!("${n}")).collect();
        let mut query = sqlx::query(trusted(format!(
            "SELECT message, at, status_code, error, duration_ms FROM message_attempts
             WHERE message IN ({}) ORDER BY message, n",
            placeholders.join(", ")
        )));
        for message in messages.iter() {
            query = query.bind(message.id.as_str());
        }
        for row in query.fetch_all(&self.pool).await? {
            let id = text(&row, "message")?;
            let attempt = MessageAttempt {
                at: instant(&row, "at")?,
                status_code: sqlx::Row::try_get::<Option<i64>, _>(&row, "status_code")?
                    .and_then(|s| u16::try_from(s).ok()),
                error: opt_text(&row, "error")?,
                duration_ms: sqlx::Row::try_get(&row, "duration_ms")?,
            };
            if let Some(message) = messages.iter_mut().find(|m| m.id == id) {
                message.attempts.push(attempt);
            }
        }
        Ok(())
    }

    /// Marks `superseded` every pending message (not leased) with a newer
    /// one for the same endpoint and pair, then leases up to `limit` of the
    /// messages due by `now` that may go out (the oldest pending of their
    /// pair, their change numbered, their endpoint enabled and not in
    /// `busy`) to `owner` until `lease_until`.
    pub async fn lease_due_messages(
        &self,
        now: Instant,
        owner: &str,
        lease_until: Instant,
        limit: i64,
        busy: &[String],
    ) -> Result<Vec<Leased>> {
        // The common case, several times a second on every replica: nothing
        // is pending (one look at a partial index, no write).
        let pending = sqlx::query(
            "SELECT id FROM messages WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1",
        )
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        if pending.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE messages SET status = 'superseded', next_attempt_at = NULL
             WHERE status = 'pending' AND type = 'access.changed'
               AND (lease_until IS NULL OR lease_until < $1)
               AND EXISTS (SELECT 1 FROM messages n
                   WHERE n.endpoint = messages.endpoint AND n.email = messages.email
                     AND n.product = messages.product AND n.change_id > messages.change_id)",
        )
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        let skip: Vec<String> = (0..busy.len()).map(|i| format!("${}", 3 + i)).collect();
        let skip = if skip.is_empty() {
            String::new()
        } else {
            format!("AND m.endpoint NOT IN ({})", skip.join(", "))
        };
        let mut query = sqlx::query(trusted(format!(
            "SELECT m.id AS id FROM messages m
             JOIN changes c ON c.id = m.change_id
             JOIN endpoints e ON e.id = m.endpoint
             WHERE m.status = 'pending' AND m.next_attempt_at <= $1 AND c.sequence IS NOT NULL
               AND e.enabled = 1 AND (m.lease_until IS NULL OR m.lease_until < $1)
               AND NOT EXISTS (SELECT 1 FROM messages o
                   WHERE o.endpoint = m.endpoint AND o.email = m.email
                     AND o.product = m.product AND o.status = 'pending'
                     AND o.change_id < m.change_id)
               {skip}
             ORDER BY m.next_attempt_at, m.change_id LIMIT $2"
        )))
        .bind(micros(now))
        .bind(limit);
        for endpoint in busy {
            query = query.bind(endpoint.as_str());
        }
        let due: Vec<String> = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| text(row, "id"))
            .collect::<Result<_>>()?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let leased = lease(&self.pool, &due, owner, now, lease_until).await?;
        self.leased(&leased, now).await
    }

    /// Leases one message of an endpoint for an attempt now (a resend),
    /// whatever its status.
    pub async fn lease_message(
        &self,
        endpoint: &str,
        id: &str,
        owner: &str,
        now: Instant,
        lease_until: Instant,
    ) -> Result<Lease> {
        let _turn = self.write_turn().await;
        let exists = sqlx::query("SELECT id FROM messages WHERE endpoint = $1 AND id = $2")
            .bind(endpoint)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Ok(Lease::Missing);
        }
        let leased = sqlx::query(
            "UPDATE messages SET lease_owner = $2, lease_until = $3
             WHERE id = $1 AND (lease_until IS NULL OR lease_until < $4) RETURNING id",
        )
        .bind(id)
        .bind(owner)
        .bind(micros(lease_until))
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        if leased.is_none() {
            return Ok(Lease::Busy);
        }
        let mut found = self.leased(&[id.to_owned()], now).await?;
        found
            .pop()
            .map(|l| Lease::Leased(Box::new(l)))
            .ok_or_else(|| {
                StoreError::Corrupt("a leased message vanished before it was read".into())
            })
    }

    async fn leased(&self, ids: &[String], now: Instant) -> Result<Vec<Leased>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let mut query = sqlx::query(trusted(format!(
            "SELECT {} FROM messages m
             JOIN endpoints e ON e.id = m.endpoint
             LEFT JOIN changes c ON c.id = m.change_id
             WHERE m.id IN ({}) ORDER BY m.next_attempt_at, m.change_id",
            leased_columns(),
            placeholders.join(", ")
        )));
        for id in ids {
            query = query.bind(id.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| leased_from_row(row, now))
            .collect()
    }

    /// Gives back leases `owner` took and will not use.
    pub async fn release_leases(&self, ids: &[String], owner: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", 2 + i)).collect();
        let mut query = sqlx::query(trusted(format!(
            "UPDATE messages SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = $1 AND id IN ({})",
            placeholders.join(", ")
        )))
        .bind(owner);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let _turn = self.write_turn().await;
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Records an attempt at a message `owner` leased, leaves it as `settle`
    /// says and releases the lease; `false` when the lease was lost (it ran
    /// out and another sender took the message), and nothing is written.
    pub async fn finish_attempt(
        &self,
        id: &str,
        owner: &str,
        attempt: &MessageAttempt,
        settle: Settle,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE messages SET attempts = attempts + 1, status = $3, next_attempt_at = $4,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2 RETURNING attempts, endpoint",
        )
        .bind(id)
        .bind(owner)
        .bind(settle.status.as_str())
        .bind(settle.next_attempt_at.map(micros))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let n: i64 = sqlx::Row::try_get(&row, "attempts")?;
        insert_attempt(&mut tx, id, n, attempt).await?;
        set_endpoint_health(&mut tx, &text(&row, "endpoint")?, attempt).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Messages by status and the oldest pending one, for `/metrics`.
    pub async fn outbound_stats(&self) -> Result<OutboundStats> {
        let mut stats = OutboundStats::default();
        for row in sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status")
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(status) = MessageStatus::parse(&text(&row, "status")?) {
                let i = MessageStatus::ALL
                    .iter()
                    .position(|s| *s == status)
                    .unwrap_or_default();
                stats.by_status[i] = sqlx::Row::try_get(&row, "n")?;
            }
        }
        let row =
            sqlx::query("SELECT MIN(created_at) AS oldest FROM messages WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        stats.oldest_pending = opt_instant(&row, "oldest")?;
        Ok(stats)
    }
}

/// Leases `ids` (those still pending and free) to `owner`; returns those it got.
async fn lease(
    pool: &sqlx::AnyPool,
    ids: &[String],
    owner: &str,
    now: Instant,
    until: Instant,
) -> Result<Vec<String>> {
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", 4 + i)).collect();
    let mut query = sqlx::query(trusted(format!(
        "UPDATE messages SET lease_owner = $1, lease_until = $2
         WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < $3)
           AND id IN ({}) RETURNING id",
        placeholders.join(", ")
    )))
    .bind(owner)
    .bind(micros(until))
    .bind(micros(now));
    for id in ids {
        query = query.bind(id.as_str());
    }
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| text(row, "id"))
        .collect()
}

async fn insert_attempt(
    tx: &mut AnyConnection,
    message: &str,
    n: i64,
    attempt: &MessageAttempt,
) -> Result<()> {
    sqlx::query(trusted(format!(
        "INSERT INTO message_attempts (message, n, at, status_code, error, duration_ms)
         VALUES {}",
        values_list(1, 6, 1)
    )))
    .bind(message)
    .bind(n)
    .bind(micros(attempt.at))
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.error.as_deref())
    .bind(attempt.duration_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn set_endpoint_health(
    tx: &mut AnyConnection,
    endpoint: &str,
    attempt: &MessageAttempt,
) -> Result<()> {
    sqlx::query("UPDATE endpoints SET last_attempt_ok = $2 WHERE id = $1")
        .bind(endpoint)
        .bind(i64::from(attempt.succeeded()))
        .execute(&mut *tx)
        .await?;
    Ok(())
}
