//! Entitlement rows: one per (source, product), kept in the same transaction as
//! the source's state. Access checks read only these.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::changes::{self, Answer};
use super::{
    Result, Store, StoreError, flag, instant, micros, opt_instant, opt_micros, opt_text, text,
    trusted,
};
use crate::domain::access::{self, Facts, SourceKind, SourceState, Window};
use crate::domain::{Email, Instant, Policy, ProductKey};

/// One entitlement row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRow {
    pub source_id: String,
    pub product: ProductKey,
    pub email: Email,
    pub integration: Option<String>,
    pub provider: Option<String>,
    pub state: SourceState,
    pub plan: Option<String>,
    pub facts: Facts,
    pub window: Option<Window>,
    pub changed_at: Instant,
}

impl EntitlementRow {
    /// A row for a source, to be written by [`replace_for_source`], which
    /// computes its window under the product's policy.
    pub(super) fn new(
        source_id: &str,
        (email, product): (&Email, &ProductKey),
        (integration, provider): (Option<&str>, Option<&str>),
        plan: Option<&str>,
        facts: Facts,
        changed_at: Instant,
    ) -> Self {
        Self {
            source_id: source_id.to_owned(),
            product: product.clone(),
            email: email.clone(),
            integration: integration.map(str::to_owned),
            provider: provider.map(str::to_owned),
            state: facts.state,
            plan: plan.map(str::to_owned),
            window: None,
            facts,
            changed_at,
        }
    }

    /// The row as the access decision reads it.
    pub fn source(&self) -> access::Source<'_> {
        access::Source {
            state: self.state,
            window: self.window,
            changed_at: self.changed_at,
            integration: self.integration.as_deref(),
        }
    }
}

const COLUMNS: &str = "source_kind, source_id, product, email, integration, provider, state, plan, \
                       basis_start, basis_end, grants, access_from, access_until, grace_from, changed_at";

fn from_row(row: &AnyRow) -> Result<EntitlementRow> {
    let kind = text(row, "source_kind")?;
    let kind = SourceKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?;
    let state = text(row, "state")?;
    let state = SourceState::parse(kind, &state)
        .ok_or_else(|| StoreError::Corrupt(format!("{} state {state:?}", kind.as_str())))?;
    let window = if flag(row, "grants")? {
        Some(Window {
            from: instant(row, "access_from")?,
            until: opt_instant(row, "access_until")?,
            grace_from: opt_instant(row, "grace_from")?,
        })
    } else {
        None
    };
    Ok(EntitlementRow {
        source_id: text(row, "source_id")?,
        product: ProductKey::parse(&text(row, "product")?)?,
        email: Email::parse(&text(row, "email")?)?,
        integration: opt_text(row, "integration")?,
        provider: opt_text(row, "provider")?,
        state,
        plan: opt_text(row, "plan")?,
        facts: Facts {
            state,
            start: instant(row, "basis_start")?,
            end: opt_instant(row, "basis_end")?,
        },
        window,
        changed_at: instant(row, "changed_at")?,
    })
}

/// The change log compares answers; the rows that make one live here.
impl Answer {
    /// The answer that one pair's rows give at `at`.
    pub fn of(rows: &[EntitlementRow], at: Instant) -> Self {
        let sources: Vec<_> = rows.iter().map(EntitlementRow::source).collect();
        let decision = access::decide(&sources, at);
        let plan = decision
            .source
            .filter(|_| decision.entitled)
            .and_then(|i| rows[i].plan.clone());
        Self {
            entitled: decision.entitled,
            reason: decision.reason,
            valid_until: decision.valid_until,
            plan,
        }
    }
}

/// PostgreSQL only (SQLite has one writer at a time): locks `pairs` for the
/// rest of the transaction, and their products in shared mode, which a policy
/// change takes exclusively (see [`lock_product`]). Advisory locks on hashed
/// keys: a collision costs a wait, never a wrong answer.
pub(super) async fn lock(tx: &mut AnyConnection, pairs: &[(Email, ProductKey)]) -> Result<()> {
    if tx.backend_name() != "PostgreSQL" || pairs.is_empty() {
        return Ok(());
    }
    let mut products: Vec<&ProductKey> = pairs.iter().map(|(_, p)| p).collect();
    products.sort();
    products.dedup();
    let mut calls = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for _ in &products {
        calls.push(format!(
            "pg_advisory_xact_lock_shared(1, hashtext(${}))",
            next()
        ));
    }
    for _ in pairs {
        calls.push(format!(
            "pg_advisory_xact_lock(2, hashtext(${} || chr(10) || ${}))",
            next(),
            next()
        ));
    }
    let sql = format!("SELECT {}", calls.join(", "));
    let mut query = sqlx::query(trusted(sql));
    for product in &products {
        query = query.bind(product.as_str());
    }
    for (email, product) in pairs {
        query = query.bind(email.as_str()).bind(product.as_str());
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// PostgreSQL only: locks a product against every writer of its rows, for a
/// policy change (see [`lock`]).
pub(super) async fn lock_product(tx: &mut AnyConnection, product: &ProductKey) -> Result<()> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(1, hashtext($1))")
            .bind(product.as_str())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// What [`read_pairs`] found: each pair's rows (in `pairs` order), the policy
/// of each product configured, and how many rows the source has anywhere.
pub(super) struct Seen {
    pub rows: Vec<Vec<EntitlementRow>>,
    /// Each pair's last change in the log, in `pairs` order.
    pub last: Vec<Option<Answer>>,
    pub policies: std::collections::BTreeMap<ProductKey, Policy>,
    /// How many rows the source named has (0 when none is named).
    pub own_rows: i64,
}

/// One statement: every row of `pairs`, their last changes, their products'
/// policies, and the number of rows the source `own` has.
pub(super) async fn read_pairs(
    tx: &mut AnyConnection,
    pairs: &[(Email, ProductKey)],
    own: Option<(SourceKind, &str)>,
) -> Result<Seen> {
    let mut seen = Seen {
        rows: vec![Vec::new(); pairs.len()],
        last: vec![None; pairs.len()],
        policies: Default::default(),
        own_rows: 0,
    };
    if pairs.is_empty() {
        return Ok(seen);
    }
    let keys: Vec<String> = (0..pairs.len())
        .map(|i| format!("(${}, ${}, {i})", 3 + 2 * i, 4 + 2 * i))
        .collect();
    let columns: Vec<String> = COLUMNS
        .split(", ")
        .map(|c| format!("e.{c} AS {c}"))
        .collect();
    let sql = format!(
        "SELECT k.column3 AS pair, p.key AS policy_key, {policy},
             (SELECT COUNT(*) FROM entitlements WHERE source_kind = $1 AND source_id = $2) AS own_rows,
             {last}, {columns}
         FROM (VALUES {keys}) AS k
         LEFT JOIN products p ON p.key = k.column2
         LEFT JOIN changes l ON l.id = (SELECT MAX(id) FROM changes
             WHERE product = k.column2 AND email = k.column1)
         LEFT JOIN entitlements e ON e.email = k.column1 AND e.product = k.column2
         ORDER BY k.column3, e.changed_at, e.source_id",
        policy = super::policies::POLICY_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c} AS {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        last = changes::LAST_COLUMNS,
        columns = columns.join(", "),
        keys = keys.join(", "),
    );
    let mut query = sqlx::query(trusted(sql))
        .bind(own.map_or("", |(kind, _)| kind.as_str()))
        .bind(own.map_or("", |(_, id)| id));
    for (email, product) in pairs {
        query = query.bind(email.as_str()).bind(product.as_str());
    }
    for row in query.fetch_all(&mut *tx).await? {
        let pair: i64 = sqlx::Row::try_get(&row, "pair")?;
        let pair = usize::try_from(pair).map_err(|_| StoreError::Corrupt("pair index".into()))?;
        seen.own_rows = sqlx::Row::try_get(&row, "own_rows")?;
        seen.last[pair] = changes::answer_in(&row, "last_")?;
        if opt_text(&row, "policy_key")?.is_some() {
            let policy = super::policies::policy_from_row(&row)?;
            seen.policies.insert(pairs[pair].1.clone(), policy);
        }
        if opt_text(&row, "source_kind")?.is_some() {
            seen.rows[pair].push(from_row(&row)?);
        }
    }
    Ok(seen)
}

/// The pairs a source has rows for.
pub(super) async fn source_pairs(
    tx: &mut AnyConnection,
    kind: SourceKind,
    source_id: &str,
) -> Result<Vec<(Email, ProductKey)>> {
    sqlx::query("SELECT email, product FROM entitlements WHERE source_kind = $1 AND source_id = $2")
        .bind(kind.as_str())
        .bind(source_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok((
                Email::parse(&text(row, "email")?)?,
                ProductKey::parse(&text(row, "product")?)?,
            ))
        })
        .collect()
}

/// Writes one row, over the source's row for the same product if there is one.
pub(super) async fn upsert(tx: &mut AnyConnection, row: &EntitlementRow) -> Result<()> {
    let window = row.window;
    sqlx::query(trusted(format!(
        "INSERT INTO entitlements ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (source_kind, source_id, product) DO UPDATE SET
             email = $4, integration = $5, provider = $6, state = $7, plan = $8,
             basis_start = $9, basis_end = $10, grants = $11, access_from = $12,
             access_until = $13, grace_from = $14, changed_at = $15"
    )))
    .bind(row.state.kind().as_str())
    .bind(row.source_id.as_str())
    .bind(row.product.as_str())
    .bind(row.email.as_str())
    .bind(row.integration.as_deref())
    .bind(row.provider.as_deref())
    .bind(row.state.as_str())
    .bind(row.plan.as_deref())
    .bind(micros(row.facts.start))
    .bind(opt_micros(row.facts.end))
    .bind(i64::from(window.is_some()))
    .bind(window.map(|w| micros(w.from)))
    .bind(window.and_then(|w| opt_micros(w.until)))
    .bind(window.and_then(|w| opt_micros(w.grace_from)))
    .bind(micros(row.changed_at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every row of `product`, by customer.
pub(super) async fn of_product(
    tx: &mut AnyConnection,
    product: &ProductKey,
) -> Result<Vec<EntitlementRow>> {
    sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM entitlements WHERE product = $1 ORDER BY email, changed_at, source_id"
    )))
    .bind(product.as_str())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Deletes every row of one source.
pub(super) async fn delete_of_source(
    tx: &mut AnyConnection,
    kind: SourceKind,
    source_id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM entitlements WHERE source_kind = $1 AND source_id = $2")
        .bind(kind.as_str())
        .bind(source_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Rows per statement when windows are rewritten (6 parameters each, well
/// under both engines' limits).
pub(super) const UPDATE_CHUNK: usize = 500;

/// Rewrites the windows of `rows` (all of `product`) in one statement.
pub(super) async fn update_windows(
    tx: &mut AnyConnection,
    product: &ProductKey,
    rows: &[&EntitlementRow],
) -> Result<()> {
    let sql = format!(
        "UPDATE entitlements SET grants = v.column3, access_from = v.column4,
             access_until = v.column5, grace_from = v.column6
         FROM (VALUES {}) AS v
         WHERE entitlements.product = $1 AND entitlements.source_kind = v.column1
             AND entitlements.source_id = v.column2",
        super::values_list(rows.len(), 6, 2)
    );
    let mut query = sqlx::query(trusted(sql)).bind(product.as_str());
    for row in rows {
        let window = row.window;
        query = query
            .bind(row.state.kind().as_str())
            .bind(row.source_id.as_str())
            .bind(i64::from(window.is_some()))
            .bind(window.map(|w| micros(w.from)))
            .bind(window.and_then(|w| opt_micros(w.until)))
            .bind(window.and_then(|w| opt_micros(w.grace_from)));
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// The order answers list rows in: by product, then change time, then source
/// id, each compared as bytes (so the database's collation does not matter).
pub(super) fn in_answer_order(rows: &mut [EntitlementRow]) {
    rows.sort_by(|a, b| {
        (a.product.as_str(), a.changed_at, a.source_id.as_str()).cmp(&(
            b.product.as_str(),
            b.changed_at,
            b.source_id.as_str(),
        ))
    });
}

/// Up to `limit` rows after `after` in key order, as one JSON array of arrays
/// (source kind, source id, product, email, integration, provider, state,
/// plan, basis start, basis end, changed at), in that order: one value
/// crosses from the database instead of thousands of rows (in sqlx's SQLite
/// driver, each row is a hand-off between threads).
pub(super) async fn json_page(
    conn: &mut AnyConnection,
    after: Option<&(String, String, String)>,
    limit: i64,
) -> Result<String> {
    const ROW: &str = "source_kind, source_id, product, email, integration, provider, state, \
                       plan, basis_start, basis_end, changed_at";
    const ORDER: &str = "ORDER BY source_kind, source_id, product";
    let aggregate = if conn.backend_name() == "SQLite" {
        format!("json_group_array(json_array({ROW}) {ORDER})")
    } else {
        format!("COALESCE(json_agg(json_build_array({ROW}) {ORDER})::text, '[]')")
    };
    let (kind, id, product) = after
        .map(|(k, i, p)| (k.as_str(), i.as_str(), p.as_str()))
        .unwrap_or(("", "", ""));
    let row = sqlx::query(trusted(format!(
        "SELECT {aggregate} AS page
         FROM (SELECT {ROW} FROM entitlements WHERE (source_kind, source_id, product) > ($1, $2, $3)
               {ORDER} LIMIT $4) AS p"
    )))
    .bind(kind)
    .bind(id)
    .bind(product)
    .bind(limit)
    .fetch_one(&mut *conn)
    .await?;
    text(&row, "page")
}

/// The rows of the next `customers` customers of `product` after `after` in
/// email order (all of each one's rows, in the order answers read them):
/// one page of a walk over a product that never holds more than a page.
pub(super) async fn product_page(
    pool: &sqlx::AnyPool,
    product: &ProductKey,
    after: &str,
    customers: i64,
) -> Result<Vec<EntitlementRow>> {
    sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM entitlements
         WHERE product = $1 AND email IN (
             SELECT DISTINCT email FROM entitlements WHERE product = $1 AND email > $2
             ORDER BY email LIMIT $3)
         ORDER BY email, changed_at, source_id"
    )))
    .bind(product.as_str())
    .bind(after)
    .bind(customers)
    .fetch_all(pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Every row of the sources `ids` of one kind, by source, then product.
pub(super) async fn of_sources(
    conn: &mut AnyConnection,
    kind: SourceKind,
    ids: &[String],
) -> Result<Vec<EntitlementRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM entitlements WHERE source_kind = $1 AND source_id IN ({})
         ORDER BY source_id, product",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(trusted(sql)).bind(kind.as_str());
    for id in ids {
        query = query.bind(id.as_str());
    }
    query.fetch_all(conn).await?.iter().map(from_row).collect()
}

/// Every row of each of `pairs`, in answer order.
pub(super) async fn of_pairs(
    pool: &sqlx::AnyPool,
    pairs: &[(Email, ProductKey)],
) -> Result<Vec<Vec<EntitlementRow>>> {
    let mut found = vec![Vec::new(); pairs.len()];
    if pairs.is_empty() {
        return Ok(found);
    }
    let keys: Vec<String> = (0..pairs.len())
        .map(|i| format!("(${}, ${})", 1 + 2 * i, 2 + 2 * i))
        .collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM entitlements WHERE (email, product) IN ({})",
        keys.join(", ")
    );
    let mut query = sqlx::query(trusted(sql));
    for (email, product) in pairs {
        query = query.bind(email.as_str()).bind(product.as_str());
    }
    for row in query.fetch_all(pool).await?.iter().map(from_row) {
        let row = row?;
        if let Some(i) = pairs
            .iter()
            .position(|(e, p)| *e == row.email && *p == row.product)
        {
            found[i].push(row);
        }
    }
    for rows in &mut found {
        in_answer_order(rows);
    }
    Ok(found)
}

/// Every row of the customers `emails`.
pub(super) async fn of_customers(
    pool: &sqlx::AnyPool,
    emails: &[String],
) -> Result<Vec<EntitlementRow>> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=emails.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM entitlements WHERE email IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(trusted(sql));
    for email in emails {
        query = query.bind(email.as_str());
    }
    query.fetch_all(pool).await?.iter().map(from_row).collect()
}

impl Store {
    /// A customer's rows, for one product or all of them, in answer order,
    /// from this replica's read model (see `reads`): no database round trip.
    pub async fn entitlement_rows(
        &self,
        email: &Email,
        product: Option<&ProductKey>,
    ) -> Result<Vec<EntitlementRow>> {
        self.reads.rows(email, product).await
    }

    /// Told of every change to this replica's read model (for checks that
    /// wait for access).
    pub fn read_model_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reads.changes()
    }

    /// The same rows read from the database (the read model's reference).
    pub async fn stored_entitlement_rows(
        &self,
        email: &Email,
        product: Option<&ProductKey>,
    ) -> Result<Vec<EntitlementRow>> {
        let rows = match product {
            Some(product) => {
                sqlx::query(trusted(format!(
                    "SELECT {COLUMNS} FROM entitlements WHERE email = $1 AND product = $2"
                )))
                .bind(email.as_str())
                .bind(product.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(trusted(format!(
                    "SELECT {COLUMNS} FROM entitlements WHERE email = $1"
                )))
                .bind(email.as_str())
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut rows = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        in_answer_order(&mut rows);
        Ok(rows)
    }
}
