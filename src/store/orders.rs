//! One-time orders, their products and the registration that matches stored
//! deliveries to them.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::changes::Cause;
use super::effects::replace_for_source;
use super::entitlements::EntitlementRow;
use super::history::{HistoryEntry, insert_transition};
use super::tx::Attempt;
use super::{
    Filter, Integration, Result, Store, StoreError, instant, micros, new_id, opt_instant,
    opt_micros, text, trusted,
};
use crate::domain::access::{Facts, SourceKind, SourceState};
use crate::domain::order::{self, Snapshot, State};
use crate::domain::{Email, Instant, ProductKey};

/// An order as stored.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub external_id: String,
    pub email: Email,
    pub products: Vec<ProductKey>,
    pub snapshot: Snapshot,
    pub registered_at: Option<Instant>,
    pub version: i64,
    pub created_at: Instant,
    pub updated_at: Instant,
}

/// Who bought what, when a payload says it (Zenofy) or a registration does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub email: Email,
    pub products: Vec<ProductKey>,
}

/// Filters for listing orders.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter<'a> {
    pub email: Option<&'a str>,
    pub state: Option<&'a str>,
    pub integration: Option<&'a str>,
    pub before: Option<&'a str>,
    pub limit: i64,
}

pub(super) const COLUMNS: &str = "id, integration, provider, external_id, email, state, paid_at, registered_at, \
                       version, created_at, updated_at";

async fn from_row(conn: &mut AnyConnection, row: &AnyRow) -> Result<OrderRecord> {
    let id = text(row, "id")?;
    let mut products = products_of(conn, std::slice::from_ref(&id)).await?;
    record(row, products.remove(&id).unwrap_or_default())
}

/// The products of several orders, in one query.
pub(super) async fn products_of(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<ProductKey>>> {
    let mut products: std::collections::HashMap<String, Vec<ProductKey>> =
        std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(products);
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT order_id, product FROM order_products WHERE order_id IN ({})
         ORDER BY order_id, product",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(trusted(sql));
    for id in ids {
        query = query.bind(id.as_str());
    }
    for row in query.fetch_all(&mut *conn).await? {
        products
            .entry(text(&row, "order_id")?)
            .or_default()
            .push(ProductKey::parse(&text(&row, "product")?)?);
    }
    Ok(products)
}

/// An order row with its products.
pub(super) fn record(row: &AnyRow, products: Vec<ProductKey>) -> Result<OrderRecord> {
    let id = text(row, "id")?;
    let state = text(row, "state")?;
    Ok(OrderRecord {
        integration: text(row, "integration")?,
        provider: text(row, "provider")?,
        external_id: text(row, "external_id")?,
        email: Email::parse(&text(row, "email")?)?,
        products,
        snapshot: Snapshot {
            state: State::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("order state {state:?}")))?,
            paid_at: opt_instant(row, "paid_at")?,
        },
        registered_at: opt_instant(row, "registered_at")?,
        version: sqlx::Row::try_get(row, "version")?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
        id,
    })
}

pub(super) async fn load(
    conn: &mut AnyConnection,
    integration: &str,
    external_id: &str,
) -> Result<Option<OrderRecord>> {
    let row = sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM orders WHERE integration = $1 AND external_id = $2"
    )))
    .bind(integration)
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

pub(super) async fn load_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<OrderRecord>> {
    let row = sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

/// Writes the order's ref row: see `order_refs` in the migration.
pub(super) async fn touch_ref(
    tx: &mut AnyConnection,
    integration: &str,
    external_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_refs (integration, external_id, touches) VALUES ($1, $2, 1)
         ON CONFLICT (integration, external_id) DO UPDATE SET touches = order_refs.touches + 1",
    )
    .bind(integration)
    .bind(external_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Inserts a new order with its products; a concurrent insert of the same
/// order makes this attempt run again.
pub(super) async fn insert(
    tx: &mut AnyConnection,
    integration: &Integration,
    external_id: &str,
    buyer: &Buyer,
    snapshot: &Snapshot,
    registered_at: Option<Instant>,
    now: Instant,
) -> std::result::Result<OrderRecord, Attempt> {
    let record = OrderRecord {
        id: new_id(),
        integration: integration.id.to_string(),
        provider: integration.provider.as_str().to_owned(),
        external_id: external_id.to_owned(),
        email: buyer.email.clone(),
        products: buyer.products.clone(),
        snapshot: *snapshot,
        registered_at,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if !insert_row(tx, &record).await? {
        return Err(Attempt::Retry);
    }
    Ok(record)
}

/// The one INSERT of an order row, with its products; `false` when one with
/// its (integration, external id) exists already.
pub(super) async fn insert_row(tx: &mut AnyConnection, record: &OrderRecord) -> Result<bool> {
    let inserted = sqlx::query(trusted(format!(
        "INSERT INTO orders ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (integration, external_id) DO NOTHING"
    )))
    .bind(record.id.as_str())
    .bind(record.integration.as_str())
    .bind(record.provider.as_str())
    .bind(record.external_id.as_str())
    .bind(record.email.as_str())
    .bind(record.snapshot.state.as_str())
    .bind(opt_micros(record.snapshot.paid_at))
    .bind(opt_micros(record.registered_at))
    .bind(record.version)
    .bind(micros(record.created_at))
    .bind(micros(record.updated_at))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    set_products(tx, &record.id, &record.products).await?;
    Ok(true)
}

/// An order's products: exactly `products`.
async fn set_products(tx: &mut AnyConnection, id: &str, products: &[ProductKey]) -> Result<()> {
    sqlx::query("DELETE FROM order_products WHERE order_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for product in products {
        sqlx::query(
            "INSERT INTO order_products (order_id, product) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(product.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// What the one UPDATE of an order row writes.
pub(super) struct OrderWrite<'a> {
    pub email: &'a Email,
    /// `None`: the products stay as they are.
    pub products: Option<&'a [ProductKey]>,
    pub snapshot: &'a Snapshot,
    /// The number of its history entries after this write.
    pub version: i64,
    pub updated_at: Instant,
}

/// The one UPDATE of an order row: a compare-and-set on its version; `false`
/// when it is no longer at `version`.
pub(super) async fn update_row(
    tx: &mut AnyConnection,
    (id, version): (&str, i64),
    write: &OrderWrite<'_>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET email = $1, state = $2, paid_at = $3, version = $4, updated_at = $5
         WHERE id = $6 AND version = $7",
    )
    .bind(write.email.as_str())
    .bind(write.snapshot.state.as_str())
    .bind(opt_micros(write.snapshot.paid_at))
    .bind(write.version)
    .bind(micros(write.updated_at))
    .bind(id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    if let Some(products) = write.products {
        set_products(tx, id, products).await?;
    }
    Ok(true)
}

/// The one DELETE of an order row and its products (a rebuild removing a
/// source the stored inputs do not make), at `version`; `false` when it
/// moved on.
pub(super) async fn delete_row(tx: &mut AnyConnection, id: &str, version: i64) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM orders WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 1 {
        sqlx::query("DELETE FROM order_products WHERE order_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(deleted == 1)
}

/// Compare-and-set of an order's state on its version: `current` becomes
/// `next` at `version` (the number of its history entries); `updated_at`
/// moves to `now` when `changed`.
pub(super) async fn update(
    tx: &mut AnyConnection,
    current: &OrderRecord,
    next: &Snapshot,
    (version, changed): (i64, bool),
    now: Instant,
) -> std::result::Result<i64, Attempt> {
    let write = OrderWrite {
        email: &current.email,
        products: None,
        snapshot: next,
        version,
        updated_at: if changed { now } else { current.updated_at },
    };
    if !update_row(tx, (&current.id, current.version), &write).await? {
        return Err(Attempt::Retry);
    }
    Ok(version)
}

/// Rewrites an order's entitlement rows: one per product.
pub(super) async fn write_entitlements(
    tx: &mut AnyConnection,
    order: &OrderRecord,
    snapshot: &Snapshot,
    cause: &Cause<'_>,
) -> Result<()> {
    let changed_at = cause.at;
    let mut rows = Vec::with_capacity(order.products.len());
    for product in &order.products {
        rows.push(EntitlementRow::new(
            &order.id,
            (&order.email, product),
            (Some(&order.integration), Some(&order.provider)),
            None,
            Facts {
                state: SourceState::Order(snapshot.state),
                start: snapshot.paid_at.unwrap_or(order.created_at),
                end: None,
            },
            changed_at,
        ));
    }
    replace_for_source(tx, SourceKind::Order, &order.id, rows, cause).await
}

/// A history entry for an order event.
pub(super) fn history_entry(
    event: &str,
    decision: &order::Decision,
    at: Instant,
    delivery_id: Option<&str>,
    source: &str,
) -> HistoryEntry {
    HistoryEntry {
        at,
        event: event.to_owned(),
        from_state: decision.from.map(|s| s.as_str().to_owned()),
        to_state: decision.to.map(|s| s.as_str().to_owned()),
        outcome: decision.outcome,
        reason: decision.reason.clone(),
        delivery_id: delivery_id.map(str::to_owned),
        source: source.to_owned(),
        plan: None,
        previous_plan: None,
    }
}

pub(super) async fn record_history(
    tx: &mut AnyConnection,
    order_id: &str,
    seq: i64,
    entry: &HistoryEntry,
) -> Result<()> {
    insert_transition(tx, SourceKind::Order, order_id, seq, entry).await
}

impl Store {
    /// Orders matching the filters, newest first.
    pub async fn orders(&self, filter: &OrderFilter<'_>) -> Result<Vec<OrderRecord>> {
        let mut f = Filter::default();
        f.eq("email", filter.email);
        f.eq("state", filter.state);
        f.eq("integration", filter.integration);
        f.push("id", "<", filter.before);
        let sql = format!(
            "SELECT {COLUMNS} FROM orders {} ORDER BY id DESC LIMIT ${}",
            f.sql(),
            f.next()
        );
        let mut conn = self.pool.acquire().await?;
        let rows = f
            .query(sql)
            .bind(filter.limit)
            .fetch_all(&mut *conn)
            .await?;
        let ids = rows
            .iter()
            .map(|row| text(row, "id"))
            .collect::<Result<Vec<_>>>()?;
        let mut products = products_of(&mut conn, &ids).await?;
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| record(row, products.remove(id).unwrap_or_default()))
            .collect()
    }

    pub async fn order(&self, id: &str) -> Result<Option<OrderRecord>> {
        let mut conn = self.pool.acquire().await?;
        load_by_id(&mut conn, id).await
    }
}
