//! Entitlement rows: one per (source, product), kept in the same transaction as
//! the source's state. Access checks read only these.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::changes::{self, Answer, Cause, Compared};
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
    /// A row for a source, its window computed under `policy`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source_id: &str,
        product: &ProductKey,
        email: &Email,
        integration: Option<&str>,
        provider: Option<&str>,
        plan: Option<&str>,
        facts: Facts,
        policy: &Policy,
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
            window: access::window(&facts, policy),
            facts,
            changed_at,
        }
    }

    /// The row as the access decision reads it.
    pub fn source(&self) -> access::Source {
        access::Source {
            state: self.state,
            window: self.window,
            changed_at: self.changed_at,
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

/// Replaces every row of one source with `rows`, and appends to the change log
/// every answer this changes: for each (customer, product) the source had or now
/// has rows for, the answer at `cause.at` before and after.
pub(super) async fn replace_for_source(
    tx: &mut AnyConnection,
    kind: SourceKind,
    source_id: &str,
    rows: &[EntitlementRow],
    cause: &Cause<'_>,
) -> Result<()> {
    let mut pairs: Vec<(Email, ProductKey)> = Vec::new();
    for row in sqlx::query(
        "SELECT email, product FROM entitlements WHERE source_kind = $1 AND source_id = $2",
    )
    .bind(kind.as_str())
    .bind(source_id)
    .fetch_all(&mut *tx)
    .await?
    {
        pairs.push((
            Email::parse(&text(&row, "email")?)?,
            ProductKey::parse(&text(&row, "product")?)?,
        ));
    }
    pairs.extend(rows.iter().map(|r| (r.email.clone(), r.product.clone())));
    pairs.sort();
    pairs.dedup();
    let mut before = Vec::with_capacity(pairs.len());
    for (email, product) in &pairs {
        before.push(pair_rows(tx, email, product).await?);
    }

    sqlx::query("DELETE FROM entitlements WHERE source_kind = $1 AND source_id = $2")
        .bind(kind.as_str())
        .bind(source_id)
        .execute(&mut *tx)
        .await?;
    for row in rows {
        let window = row.window;
        sqlx::query(trusted(format!(
            "INSERT INTO entitlements ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
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
    }

    let this = |r: &EntitlementRow| r.state.kind() == kind && r.source_id == source_id;
    let compared: Vec<Compared<'_>> = pairs
        .iter()
        .zip(&before)
        .map(|((email, product), before)| {
            let mut after: Vec<EntitlementRow> =
                before.iter().filter(|r| !this(r)).cloned().collect();
            after.extend(
                rows.iter()
                    .filter(|r| &r.email == email && &r.product == product)
                    .cloned(),
            );
            after.sort_by(|a, b| (a.changed_at, &a.source_id).cmp(&(b.changed_at, &b.source_id)));
            Compared {
                email,
                product,
                before: (!before.is_empty()).then(|| Answer::of(before, cause.at)),
                after: Answer::of(&after, cause.at),
            }
        })
        .collect();
    changes::append(tx, cause, Some((kind, source_id)), &compared).await?;
    Ok(())
}

/// Every row of one customer and product, in the order access checks read them.
async fn pair_rows(
    tx: &mut AnyConnection,
    email: &Email,
    product: &ProductKey,
) -> Result<Vec<EntitlementRow>> {
    sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM entitlements WHERE email = $1 AND product = $2
         ORDER BY changed_at, source_id"
    )))
    .bind(email.as_str())
    .bind(product.as_str())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Recomputes the window of every row of a product under a new policy, and
/// appends the answers that changes (cause `policy`).
pub(super) async fn recompute_product(
    tx: &mut AnyConnection,
    product: &ProductKey,
    policy: &Policy,
    cause: &Cause<'_>,
) -> Result<()> {
    let rows = sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM entitlements WHERE product = $1 ORDER BY email, changed_at, source_id"
    )))
    .bind(product.as_str())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<Vec<_>>>()?;
    let recomputed: Vec<EntitlementRow> = rows
        .iter()
        .map(|row| EntitlementRow {
            window: access::window(&row.facts, policy),
            ..row.clone()
        })
        .collect();
    for (row, new) in rows.iter().zip(&recomputed) {
        if new.window == row.window {
            continue;
        }
        let window = new.window;
        sqlx::query(
            "UPDATE entitlements SET grants = $1, access_from = $2, access_until = $3, grace_from = $4
             WHERE source_kind = $5 AND source_id = $6 AND product = $7",
        )
        .bind(i64::from(window.is_some()))
        .bind(window.map(|w| micros(w.from)))
        .bind(window.and_then(|w| opt_micros(w.until)))
        .bind(window.and_then(|w| opt_micros(w.grace_from)))
        .bind(row.state.kind().as_str())
        .bind(row.source_id.as_str())
        .bind(product.as_str())
        .execute(&mut *tx)
        .await?;
    }
    // Rows come by customer: one comparison per customer, before and after.
    let mut compared = Vec::new();
    let mut start = 0;
    for customer in rows.chunk_by(|a, b| a.email == b.email) {
        let end = start + customer.len();
        compared.push(Compared {
            email: &customer[0].email,
            product,
            before: Some(Answer::of(customer, cause.at)),
            after: Answer::of(&recomputed[start..end], cause.at),
        });
        start = end;
    }
    changes::append(tx, cause, None, &compared).await?;
    Ok(())
}

impl Store {
    /// A customer's rows, for one product or all of them, oldest change first.
    pub async fn entitlement_rows(
        &self,
        email: &Email,
        product: Option<&ProductKey>,
    ) -> Result<Vec<EntitlementRow>> {
        let rows = match product {
            Some(product) => {
                sqlx::query(trusted(format!(
                    "SELECT {COLUMNS} FROM entitlements WHERE email = $1 AND product = $2
                     ORDER BY changed_at, source_id"
                )))
                .bind(email.as_str())
                .bind(product.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(trusted(format!(
                    "SELECT {COLUMNS} FROM entitlements WHERE email = $1
                     ORDER BY product, changed_at, source_id"
                )))
                .bind(email.as_str())
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}
