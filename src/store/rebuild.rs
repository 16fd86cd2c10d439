//! What a rebuild needs of a store (DESIGN.md "Rebuild and previews"): the
//! recorded inputs, read a page at a time; a scratch store to derive them
//! again in; each source's image (its facts and entitlement rows) to compare;
//! and writing the difference back, in one transaction, through the one
//! writer of entitlement rows. `crate::rebuild` puts these together.

use std::path::Path;

use sqlx::AnyConnection;

use super::changes::{Cause, CauseKind};
use super::effects::replace_for_source;
use super::entitlements::{self, EntitlementRow};
use super::grants::{self, Grant};
use super::history::{HistoryEntry, insert_transition};
use super::ingest::{Apply, Inbound, Recorded, attempt_in};
use super::tx::Attempt;
use super::{
    Integration, Result, Store, StoreError, instant, micros, opt_instant, opt_micros, opt_text,
    text, trusted,
};
use crate::domain::access::{SourceKind, SourceState, Window};
use crate::domain::{Email, Instant, Outcome, ProductKey};

/// A delivery as stored, to be applied again.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub id: String,
    pub integration: String,
    pub received_at: Instant,
    pub dedup_key: String,
    pub event: Option<String>,
    /// `None`: dropped after `ENTITLED_DELIVERY_RETENTION_DAYS`.
    pub body: Option<Vec<u8>>,
    pub headers: String,
    pub external_ref: Option<String>,
}

/// An order registration (`POST /v1/orders`) as recorded on the order.
#[derive(Debug, Clone)]
pub struct Registration {
    pub order_id: String,
    pub integration: String,
    pub external_id: String,
    pub email: Email,
    pub products: Vec<ProductKey>,
    pub at: Instant,
}

/// A source as a rebuild compares it: what its state machine decided and the
/// entitlement rows it has. Ids are not compared (a derived source has its
/// own); `key` is what a source is matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub kind: SourceKind,
    /// This store's id of the source.
    pub id: String,
    /// Subscriptions and orders: (integration, external id); grants: ("", id).
    pub key: (String, String),
    pub version: i64,
    /// When the source was last written (a grant: given or revoked).
    pub touched: Instant,
    pub facts: Facts,
}

/// The compared part of an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub state: SourceState,
    pub email: Email,
    pub products: Vec<ProductKey>,
    pub plan: Option<String>,
    pub period_start: Option<Instant>,
    pub period_end: Option<Instant>,
    /// Subscription: `access_from`; order: `paid_at`; grant: `valid_from`.
    pub since: Option<Instant>,
    pub rows: Vec<RowFacts>,
}

/// One entitlement row, without its source id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFacts {
    pub product: ProductKey,
    pub email: Email,
    pub state: SourceState,
    pub plan: Option<String>,
    pub start: Instant,
    pub end: Option<Instant>,
    pub window: Option<Window>,
    pub changed_at: Instant,
}

impl From<&EntitlementRow> for RowFacts {
    fn from(r: &EntitlementRow) -> Self {
        Self {
            product: r.product.clone(),
            email: r.email.clone(),
            state: r.state,
            plan: r.plan.clone(),
            start: r.facts.start,
            end: r.facts.end,
            window: r.window,
            changed_at: r.changed_at,
        }
    }
}

/// One source whose image differs: what the live store has and what was
/// derived (either may be missing).
#[derive(Debug, Clone)]
pub struct Divergence {
    pub kind: SourceKind,
    /// The live source as compared: id, version and when it was written.
    pub live: Option<(String, i64, Instant)>,
    pub derived: Option<String>,
}

/// Sources of one kind read per page.
pub const IMAGE_PAGE: i64 = 500;

impl Store {
    /// A scratch store in a new SQLite file at `path`: migrated, not flushed
    /// to disk on commit, with no read model (nothing reads it but the
    /// rebuild).
    pub async fn scratch(path: &Path) -> Result<(Self, super::Background)> {
        let url = format!("sqlite://{}", path.display());
        let (store, background) = Self::open(&url, false).await?;
        store.migrate_logged(false).await?;
        Ok((store, background))
    }

    /// This store's turn to rebuild: `None` while another rebuild runs on
    /// it.
    pub fn rebuild_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.rebuilding.clone().try_lock_owned().ok()
    }

    /// How many subscriptions, orders and grants are stored.
    pub async fn count_sources(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM subscriptions) + (SELECT COUNT(*) FROM orders)
                  + (SELECT COUNT(*) FROM grants) AS n",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(sqlx::Row::try_get(&row, "n")?)
    }

    /// How many deliveries are stored.
    pub async fn count_deliveries(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(sqlx::Row::try_get(&row, "n")?)
    }

    /// The stored deliveries among `ids` (a page of the inputs journal).
    pub async fn stored_deliveries(&self, ids: &[&str]) -> Result<Vec<StoredDelivery>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, integration, received_at, dedup_key, event, body, body_dropped_at, headers,
                 external_ref
             FROM deliveries WHERE id IN (VALUES {})",
            super::values_list(ids.len(), 1, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for id in ids {
            query = query.bind(*id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let dropped = opt_instant(row, "body_dropped_at")?.is_some();
                Ok(StoredDelivery {
                    id: text(row, "id")?,
                    integration: text(row, "integration")?,
                    received_at: instant(row, "received_at")?,
                    dedup_key: text(row, "dedup_key")?,
                    event: opt_text(row, "event")?,
                    body: if dropped {
                        None
                    } else {
                        Some(sqlx::Row::try_get(row, "body")?)
                    },
                    headers: text(row, "headers")?,
                    external_ref: opt_text(row, "external_ref")?,
                })
            })
            .collect()
    }

    /// The registrations of the orders among `ids` (a page of the inputs
    /// journal).
    pub async fn registrations(&self, ids: &[&str]) -> Result<Vec<Registration>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let sql = format!(
            "SELECT id, integration, external_id, email, registered_at FROM orders
             WHERE registered_at IS NOT NULL AND id IN (VALUES {})",
            super::values_list(ids.len(), 1, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let found: Vec<String> = rows
            .iter()
            .map(|row| text(row, "id"))
            .collect::<Result<_>>()?;
        let mut products = super::orders::products_of(&mut conn, &found).await?;
        rows.iter()
            .map(|row| {
                let order_id = text(row, "id")?;
                Ok(Registration {
                    products: products.remove(&order_id).unwrap_or_default(),
                    order_id,
                    integration: text(row, "integration")?,
                    external_id: text(row, "external_id")?,
                    email: Email::parse(&text(row, "email")?)?,
                    at: instant(row, "registered_at")?,
                })
            })
            .collect()
    }

    /// (integration, external id) of the subscriptions among `ids`, by id:
    /// what a clock expiry in the journal names, as another store knows it.
    pub async fn subscription_keys(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, (String, String)>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT id, integration, external_id FROM subscriptions WHERE id IN (VALUES {})",
            super::values_list(ids.len(), 1, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for id in ids {
            query = query.bind(*id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    text(row, "id")?,
                    (text(row, "integration")?, text(row, "external_id")?),
                ))
            })
            .collect()
    }

    /// The clock's rule for one subscription at `at`, as a tick applies it
    /// (`expire_subscription` checks the lapse in its transaction): `true`
    /// when it was expired.
    pub async fn expire_if_lapsed(
        &self,
        (integration, external_id): (&str, &str),
        at: Instant,
    ) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let found =
            super::subscriptions::load_for_update(&mut conn, integration, external_id).await?;
        drop(conn);
        match found {
            Some(subscription) => self.expire_subscription(&subscription.id, at).await,
            None => Ok(false),
        }
    }

    /// Up to `limit` grants after `after`, by id.
    pub async fn grants_after(&self, after: &str, limit: i64) -> Result<Vec<Grant>> {
        sqlx::query(trusted(format!(
            "SELECT {} FROM grants WHERE id > $1 ORDER BY id LIMIT $2",
            grants::COLUMNS
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grants::from_row)
        .collect()
    }

    /// Records stored deliveries again, in order, in one transaction, each
    /// under its own id, through the same code as on receipt: `Err` is a body
    /// the current adapter cannot read (recorded `malformed`, applied to
    /// nothing).
    pub async fn record_again(
        &self,
        deliveries: &[(
            &StoredDelivery,
            &Integration,
            std::result::Result<Apply<'_>, String>,
        )],
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for (stored, integration, apply) in deliveries {
            let body = stored.body.as_deref().unwrap_or_default();
            let inbound = Inbound {
                integration,
                received_at: stored.received_at,
                dedup_key: stored.dedup_key.clone(),
                event_name: stored.event.as_deref(),
                body,
                headers: &stored.headers,
                external_ref: stored.external_ref.as_deref(),
                delivery_id: Some(&stored.id),
            };
            match apply {
                Ok(apply) => match attempt_in(&mut tx, &inbound, apply).await {
                    Ok(_) => {}
                    Err(Attempt::Failed(e)) => return Err(e),
                    // One writer, nothing else writes: a retry cannot happen.
                    Err(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "delivery {} could not be applied again",
                            stored.id
                        )));
                    }
                },
                Err(reason) => {
                    let recorded = Recorded {
                        delivery_id: stored.id.clone(),
                        outcome: Outcome::Malformed,
                        reason: Some(reason.clone()),
                        subject: None,
                    };
                    super::ingest::insert_delivery(&mut tx, &inbound, &recorded).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Copies a grant as it is recorded (given, and revoked if it was), with
    /// the entitlement row those give it.
    pub async fn copy_grant(&self, grant: &Grant) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO grants (id, email, product, valid_from, valid_until, reason, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(grant.id.as_str())
        .bind(grant.email.as_str())
        .bind(grant.product.as_str())
        .bind(micros(grant.valid_from))
        .bind(opt_micros(grant.valid_until))
        .bind(grant.reason.as_str())
        .bind(micros(grant.created_at))
        .bind(opt_micros(grant.revoked_at))
        .execute(&mut *tx)
        .await?;
        let changed_at = grant.revoked_at.unwrap_or(grant.created_at);
        let cause = Cause {
            kind: CauseKind::Grant,
            delivery_id: None,
            event: Some("granted"),
            at: changed_at,
        };
        let row = grants::entitlement(grant, changed_at);
        replace_for_source(&mut tx, SourceKind::Grant, &grant.id, vec![row], &cause).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` sources of `kind` after `after` in this store's key
    /// order, with their rows.
    pub async fn images_after(
        &self,
        kind: SourceKind,
        after: &(String, String),
        limit: i64,
    ) -> Result<Vec<Image>> {
        let mut conn = self.pool.acquire().await?;
        let sql = match kind {
            SourceKind::Subscription => format!(
                "SELECT {} FROM subscriptions WHERE (integration, external_id) > ($1, $2)
                 ORDER BY integration, external_id LIMIT $3",
                super::subscriptions::COLUMNS
            ),
            SourceKind::Order => format!(
                "SELECT {} FROM orders WHERE (integration, external_id) > ($1, $2)
                 ORDER BY integration, external_id LIMIT $3",
                super::orders::COLUMNS
            ),
            SourceKind::Grant => format!(
                "SELECT {} FROM grants WHERE $1 = $1 AND id > $2 ORDER BY id LIMIT $3",
                grants::COLUMNS
            ),
        };
        let rows = sqlx::query(trusted(sql))
            .bind(after.0.as_str())
            .bind(after.1.as_str())
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        images(&mut conn, kind, &rows).await
    }

    /// The sources of `kind` with these keys (those that exist).
    pub async fn images_of(
        &self,
        kind: SourceKind,
        keys: &[(String, String)],
    ) -> Result<Vec<Image>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let rows = match kind {
            SourceKind::Grant => {
                let list: Vec<String> = (1..=keys.len()).map(|n| format!("${n}")).collect();
                let sql = format!(
                    "SELECT {} FROM grants WHERE id IN ({})",
                    grants::COLUMNS,
                    list.join(", ")
                );
                let mut query = sqlx::query(trusted(sql));
                for (_, id) in keys {
                    query = query.bind(id.as_str());
                }
                query.fetch_all(&mut *conn).await?
            }
            _ => {
                let (table, columns) = if kind == SourceKind::Subscription {
                    ("subscriptions", super::subscriptions::COLUMNS)
                } else {
                    ("orders", super::orders::COLUMNS)
                };
                let list: Vec<String> = (0..keys.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect();
                let sql = format!(
                    "SELECT {columns} FROM {table} WHERE (integration, external_id) IN ({})",
                    list.join(", ")
                );
                let mut query = sqlx::query(trusted(sql));
                for (integration, external_id) in keys {
                    query = query.bind(integration.as_str()).bind(external_id.as_str());
                }
                query.fetch_all(&mut *conn).await?
            }
        };
        images(&mut conn, kind, &rows).await
    }

    /// The rows of each of `pairs`, in answer order.
    pub async fn rows_of_pairs(
        &self,
        pairs: &[(Email, ProductKey)],
    ) -> Result<Vec<Vec<EntitlementRow>>> {
        let mut all = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(IMAGE_PAGE as usize) {
            all.extend(entitlements::of_pairs(&self.pool, chunk).await?);
        }
        Ok(all)
    }

    /// Writes what `scratch` derived over every divergent source, in one
    /// transaction: each source's state, its history (an entry `rebuild`),
    /// and its entitlement rows through the one writer, so every access
    /// change is appended to the change log with cause `rebuild`. Fails,
    /// writing nothing, if a source changed since it was compared.
    pub async fn apply_rebuild(
        &self,
        scratch: &Store,
        divergences: &[Divergence],
        started: Instant,
        now: Instant,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // The derivation ran under the policies recorded when it began.
        let changed = sqlx::query("SELECT product FROM policy_changes WHERE at > $1 LIMIT 1")
            .bind(micros(started))
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = changed {
            return Err(StoreError::Changed(format!(
                "the policy of {} changed while the rebuild ran; run it again",
                text(&row, "product")?
            )));
        }
        let mut from = scratch.pool.acquire().await?;
        let cause = Cause {
            kind: CauseKind::Rebuild,
            delivery_id: None,
            event: Some("rebuild"),
            at: now,
        };
        for d in divergences {
            let derived = match &d.derived {
                Some(id) => image_by_id(&mut from, d.kind, id).await?,
                None => None,
            };
            let live = match &d.live {
                Some((id, version, touched)) => {
                    let live = image_by_id(&mut tx, d.kind, id).await?;
                    if live.as_ref().map(|l| (l.version, l.touched)) != Some((*version, *touched)) {
                        return Err(StoreError::Changed(format!(
                            "{} {id} changed while the rebuild compared it; run it again",
                            d.kind.as_str()
                        )));
                    }
                    live
                }
                None => None,
            };
            write_source(&mut tx, &mut from, live.as_ref(), derived.as_ref(), &cause).await?;
        }
        drop(from);
        self.commit(tx).await
    }
}

/// Images of the source rows `rows` of `kind`, with their entitlement rows.
async fn images(
    conn: &mut AnyConnection,
    kind: SourceKind,
    rows: &[sqlx::any::AnyRow],
) -> Result<Vec<Image>> {
    let ids: Vec<String> = rows
        .iter()
        .map(|row| text(row, "id"))
        .collect::<Result<_>>()?;
    let mut entitlements = std::collections::HashMap::<String, Vec<RowFacts>>::new();
    for chunk in ids.chunks(IMAGE_PAGE as usize) {
        for row in entitlements::of_sources(conn, kind, chunk).await? {
            entitlements
                .entry(row.source_id.clone())
                .or_default()
                .push(RowFacts::from(&row));
        }
    }
    let mut rows_of = |id: &str| entitlements.remove(id).unwrap_or_default();
    match kind {
        SourceKind::Subscription => rows
            .iter()
            .map(|row| {
                let s = super::subscriptions::from_row(row)?;
                Ok(Image {
                    kind,
                    key: (s.integration, s.external_id),
                    version: s.version,
                    touched: s.updated_at,
                    facts: Facts {
                        state: SourceState::Subscription(s.snapshot.state),
                        email: s.snapshot.email,
                        products: vec![s.snapshot.product],
                        plan: s.snapshot.plan,
                        period_start: s.snapshot.current_period_start,
                        period_end: s.snapshot.current_period_end,
                        since: Some(s.snapshot.access_from),
                        rows: rows_of(&s.id),
                    },
                    id: s.id,
                })
            })
            .collect(),
        SourceKind::Order => {
            let mut products = super::orders::products_of(conn, &ids).await?;
            rows.iter()
                .map(|row| {
                    let id = text(row, "id")?;
                    let o = super::orders::record(row, products.remove(&id).unwrap_or_default())?;
                    Ok(Image {
                        kind,
                        key: (o.integration, o.external_id),
                        version: o.version,
                        touched: o.updated_at,
                        facts: Facts {
                            state: SourceState::Order(o.snapshot.state),
                            email: o.email,
                            products: o.products,
                            plan: None,
                            period_start: None,
                            period_end: None,
                            since: o.snapshot.paid_at,
                            rows: rows_of(&o.id),
                        },
                        id: o.id,
                    })
                })
                .collect()
        }
        SourceKind::Grant => rows
            .iter()
            .map(|row| {
                let g = grants::from_row(row)?;
                Ok(Image {
                    kind,
                    key: (String::new(), g.id.clone()),
                    version: 0,
                    touched: g.revoked_at.unwrap_or(g.created_at),
                    facts: Facts {
                        state: SourceState::Grant {
                            revoked: g.revoked_at.is_some(),
                        },
                        email: g.email,
                        products: vec![g.product],
                        plan: None,
                        period_start: None,
                        period_end: g.valid_until,
                        since: Some(g.valid_from),
                        rows: rows_of(&g.id),
                    },
                    id: g.id,
                })
            })
            .collect(),
    }
}

async fn image_by_id(
    conn: &mut AnyConnection,
    kind: SourceKind,
    id: &str,
) -> Result<Option<Image>> {
    let sql = match kind {
        SourceKind::Subscription => format!(
            "SELECT {} FROM subscriptions WHERE id = $1",
            super::subscriptions::COLUMNS
        ),
        SourceKind::Order => format!(
            "SELECT {} FROM orders WHERE id = $1",
            super::orders::COLUMNS
        ),
        SourceKind::Grant => format!("SELECT {} FROM grants WHERE id = $1", grants::COLUMNS),
    };
    let rows = sqlx::query(trusted(sql))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(images(conn, kind, &rows).await?.pop())
}

/// Makes the live source `live` what was derived (`derived`; `None`: the
/// source should not exist), inside the rebuild's transaction, through the
/// same statements as every other write of a source (`subscriptions` and
/// `orders`), its entitlement rows through the one writer of rows.
async fn write_source(
    tx: &mut AnyConnection,
    scratch: &mut AnyConnection,
    live: Option<&Image>,
    derived: Option<&Image>,
    cause: &Cause<'_>,
) -> Result<()> {
    let Some(any) = derived.or(live) else {
        return Ok(());
    };
    let kind = any.kind;
    // The live source keeps its id; one that is only derived takes the
    // scratch store's.
    let id = live.map_or(any.id.as_str(), |l| l.id.as_str());
    let live_at = live.map(|l| (l.id.as_str(), l.version));
    let derived_id = derived.map(|d| d.id.as_str());
    let written = match kind {
        SourceKind::Subscription => {
            write_subscription(tx, scratch, live_at, derived_id, cause.at).await?
        }
        SourceKind::Order => write_order(tx, scratch, live_at, derived_id, cause.at).await?,
        // A grant is its own record: only its rows can need writing.
        SourceKind::Grant => Written::Updated,
    };
    match written {
        Written::Lost => {
            return Err(StoreError::Changed(format!(
                "{} {id} changed while the rebuild wrote it; run it again",
                kind.as_str()
            )));
        }
        // A source only derived comes with the history its derivation gave it.
        Written::Inserted => {
            let history = super::history::history_of(&mut *scratch, kind, id).await?;
            for (seq, entry) in (1..).zip(&history) {
                insert_transition(tx, kind, id, seq, entry).await?;
            }
        }
        Written::Updated if kind != SourceKind::Grant => {
            let entry = HistoryEntry {
                at: cause.at,
                event: "rebuild".to_owned(),
                from_state: live.map(|l| l.facts.state.as_str().to_owned()),
                to_state: derived.map(|d| d.facts.state.as_str().to_owned()),
                outcome: Outcome::Applied,
                reason: Some("re-derived from the stored deliveries".to_owned()),
                delivery_id: None,
                source: CauseKind::Rebuild.as_str().to_owned(),
                plan: derived.and_then(|d| d.facts.plan.clone()),
                previous_plan: None,
            };
            super::history::append(tx, kind, id, &entry).await?;
        }
        Written::Updated => {}
    }
    // The derived rows, under the live id; none when the source goes.
    let rows = match derived {
        Some(d) => entitlements::of_sources(scratch, kind, std::slice::from_ref(&d.id))
            .await?
            .into_iter()
            .map(|row| EntitlementRow {
                source_id: id.to_owned(),
                ..row
            })
            .collect(),
        None => Vec::new(),
    };
    replace_for_source(tx, kind, id, rows, cause).await
}

/// What writing one source came to.
enum Written {
    /// Only derived: inserted as derived.
    Inserted,
    /// Updated to what was derived, or deleted.
    Updated,
    /// A writer came between (the live source moved on, or the derived one
    /// was made live meanwhile).
    Lost,
}

/// An insert that finds the source there already lost a race.
fn inserted(result: Result<bool>) -> Result<Written> {
    match result {
        Ok(true) => Ok(Written::Inserted),
        Ok(false) => Ok(Written::Lost),
        Err(StoreError::Database(e)) if super::tx::is_unique_violation(&e) => Ok(Written::Lost),
        Err(e) => Err(e),
    }
}

fn updated(done: bool) -> Written {
    if done {
        Written::Updated
    } else {
        Written::Lost
    }
}

async fn write_subscription(
    tx: &mut AnyConnection,
    scratch: &mut AnyConnection,
    live: Option<(&str, i64)>,
    derived: Option<&str>,
    now: Instant,
) -> Result<Written> {
    use super::subscriptions as s;
    let derived = match derived {
        Some(id) => s::load_by_id(scratch, id).await?,
        None => None,
    };
    Ok(match (live, derived) {
        (Some(at), Some(d)) => updated(s::update_row(tx, at, &d.snapshot, now).await?),
        (None, Some(d)) => inserted(s::insert_row(tx, &d).await)?,
        (Some((id, version)), None) => updated(s::delete_row(tx, id, version).await?),
        (None, None) => Written::Updated,
    })
}

async fn write_order(
    tx: &mut AnyConnection,
    scratch: &mut AnyConnection,
    live: Option<(&str, i64)>,
    derived: Option<&str>,
    now: Instant,
) -> Result<Written> {
    use super::orders as o;
    let derived = match derived {
        Some(id) => o::load_by_id(scratch, id).await?,
        None => None,
    };
    Ok(match (live, derived) {
        (Some(at), Some(d)) => {
            let write = o::OrderWrite {
                email: &d.email,
                products: Some(&d.products),
                snapshot: &d.snapshot,
                version: at.1 + 1,
                updated_at: now,
            };
            updated(o::update_row(tx, at, &write).await?)
        }
        (None, Some(d)) => inserted(o::insert_row(tx, &d).await)?,
        (Some((id, version)), None) => updated(o::delete_row(tx, id, version).await?),
        (None, None) => Written::Updated,
    })
}
