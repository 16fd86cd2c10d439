//! What a rebuild needs of a store (DESIGN.md "Rebuild and previews"): the
//! recorded inputs, read a page at a time; a scratch store to derive them
//! again in; each source's image (its facts and entitlement rows) to compare;
//! and writing the difference back, in one transaction, through the one
//! writer of entitlement rows. `crate::rebuild` puts these together.

use std::path::Path;

use sqlx::AnyConnection;

use super::changes::{Cause, CauseKind};
use super::entitlements::{self, EntitlementRow, replace_for_source};
use super::grants::{self, Grant};
use super::history::{HistoryEntry, insert_transition};
use super::ingest::{Apply, Inbound, Recorded, attempt_in};
use super::tx::Attempt;
use super::{
    Integration, Result, Store, StoreError, instant, micros, opt_instant, opt_micros, opt_text,
    text, trusted,
};
use crate::domain::access::{SourceKind, Window};
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
    pub state: String,
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
    pub state: String,
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
            state: r.state.as_str().to_owned(),
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
    pub async fn scratch(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}", path.display());
        let store = Self::open(&url, false).await?;
        store.migrate_logged(false).await?;
        Ok(store)
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

    /// The clock's rule for one subscription at `at`, as a tick applies it:
    /// expired when active and its window (period plus grace) closed before
    /// `at`. `true` when it was expired.
    pub async fn expire_if_lapsed(
        &self,
        (integration, external_id): (&str, &str),
        at: Instant,
    ) -> Result<bool> {
        let lapsed = sqlx::query(
            "SELECT s.id AS id FROM subscriptions s
             JOIN entitlements e ON e.source_kind = 'subscription' AND e.source_id = s.id
             WHERE s.integration = $1 AND s.external_id = $2
                 AND e.state = 'active' AND e.access_until < $3
             LIMIT 1",
        )
        .bind(integration)
        .bind(external_id)
        .bind(micros(at))
        .fetch_optional(&self.pool)
        .await?;
        match lapsed {
            Some(row) => self.expire_subscription(&text(&row, "id")?, at).await,
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
                        state: s.snapshot.state.as_str().to_owned(),
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
                            state: o.snapshot.state.as_str().to_owned(),
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
                        state: if g.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                        .to_owned(),
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
/// source should not exist), inside the rebuild's transaction.
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
    let written = match (live, derived) {
        (Some(l), Some(d)) => update_source(tx, id, l.version, d, cause.at).await?,
        (None, Some(d)) => match insert_source(tx, scratch, d).await {
            // The same source made live since it was compared.
            Err(StoreError::Database(e)) if super::tx::is_unique_violation(&e) => false,
            other => other.map(|()| true)?,
        },
        (Some(l), None) => delete_source(tx, kind, id, l.version).await?,
        (None, None) => true,
    };
    if !written {
        return Err(StoreError::Changed(format!(
            "{} {id} changed while the rebuild wrote it; run it again",
            kind.as_str()
        )));
    }
    if kind != SourceKind::Grant {
        let seq: i64 = sqlx::Row::try_get(
            &sqlx::query(
                "SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM transitions
                 WHERE subject_kind = $1 AND subject_id = $2",
            )
            .bind(kind.as_str())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?,
            "seq",
        )?;
        let entry = HistoryEntry {
            at: cause.at,
            event: "rebuild".to_owned(),
            from_state: live.map(|l| l.facts.state.clone()),
            to_state: derived.map(|d| d.facts.state.clone()),
            outcome: Outcome::Applied,
            reason: Some("re-derived from the stored deliveries".to_owned()),
            delivery_id: None,
            source: CauseKind::Rebuild.as_str().to_owned(),
            plan: derived.and_then(|d| d.facts.plan.clone()),
            previous_plan: None,
        };
        insert_transition(tx, kind, id, seq, &entry).await?;
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

/// Writes the derived facts over the live source at `version`; `false` when
/// it is no longer at that version (a writer came between).
async fn update_source(
    tx: &mut AnyConnection,
    id: &str,
    version: i64,
    d: &Image,
    now: Instant,
) -> Result<bool> {
    let f = &d.facts;
    let updated = match d.kind {
        SourceKind::Subscription => sqlx::query(
            "UPDATE subscriptions SET email = $1, product = $2, plan = $3, state = $4,
                     current_period_start = $5, current_period_end = $6, access_from = $7,
                     version = version + 1, updated_at = $8
                 WHERE id = $9 AND version = $10",
        )
        .bind(f.email.as_str())
        .bind(f.products.first().map(ProductKey::as_str))
        .bind(f.plan.as_deref())
        .bind(f.state.as_str())
        .bind(opt_micros(f.period_start))
        .bind(opt_micros(f.period_end))
        .bind(opt_micros(f.since))
        .bind(micros(now))
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        SourceKind::Order => {
            let updated = sqlx::query(
                "UPDATE orders SET email = $1, state = $2, paid_at = $3, version = version + 1,
                     updated_at = $4
                 WHERE id = $5 AND version = $6",
            )
            .bind(f.email.as_str())
            .bind(f.state.as_str())
            .bind(opt_micros(f.since))
            .bind(micros(now))
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 1 {
                set_order_products(tx, id, &f.products).await?;
            }
            updated
        }
        // A grant is its own record: only its row can need writing.
        SourceKind::Grant => 1,
    };
    Ok(updated == 1)
}

async fn set_order_products(
    tx: &mut AnyConnection,
    id: &str,
    products: &[ProductKey],
) -> Result<()> {
    sqlx::query("DELETE FROM order_products WHERE order_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for product in products {
        sqlx::query("INSERT INTO order_products (order_id, product) VALUES ($1, $2)")
            .bind(id)
            .bind(product.as_str())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A source only the derivation has: its row as derived, and the history
/// the derivation gave it.
async fn insert_source(
    tx: &mut AnyConnection,
    scratch: &mut AnyConnection,
    d: &Image,
) -> Result<()> {
    let f = &d.facts;
    match d.kind {
        SourceKind::Subscription => {
            let row = sqlx::query(trusted(format!(
                "SELECT {} FROM subscriptions WHERE id = $1",
                super::subscriptions::COLUMNS
            )))
            .bind(d.id.as_str())
            .fetch_one(&mut *scratch)
            .await?;
            let s = super::subscriptions::from_row(&row)?;
            sqlx::query(trusted(format!(
                "INSERT INTO subscriptions ({}) VALUES
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                super::subscriptions::COLUMNS
            )))
            .bind(s.id.as_str())
            .bind(s.integration.as_str())
            .bind(s.provider.as_str())
            .bind(s.external_id.as_str())
            .bind(f.email.as_str())
            .bind(s.snapshot.product.as_str())
            .bind(f.plan.as_deref())
            .bind(f.state.as_str())
            .bind(opt_micros(f.period_start))
            .bind(opt_micros(f.period_end))
            .bind(micros(s.snapshot.access_from))
            .bind(s.version)
            .bind(micros(s.created_at))
            .bind(micros(s.updated_at))
            .execute(&mut *tx)
            .await?;
        }
        SourceKind::Order => {
            let row = sqlx::query(trusted(format!(
                "SELECT {} FROM orders WHERE id = $1",
                super::orders::COLUMNS
            )))
            .bind(d.id.as_str())
            .fetch_one(&mut *scratch)
            .await?;
            let o = super::orders::record(&row, f.products.clone())?;
            sqlx::query(trusted(format!(
                "INSERT INTO orders ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                super::orders::COLUMNS
            )))
            .bind(o.id.as_str())
            .bind(o.integration.as_str())
            .bind(o.provider.as_str())
            .bind(o.external_id.as_str())
            .bind(o.email.as_str())
            .bind(o.snapshot.state.as_str())
            .bind(opt_micros(o.snapshot.paid_at))
            .bind(opt_micros(o.registered_at))
            .bind(o.version)
            .bind(micros(o.created_at))
            .bind(micros(o.updated_at))
            .execute(&mut *tx)
            .await?;
            set_order_products(tx, &o.id, &o.products).await?;
        }
        // Grants are copied from the live store: never only derived.
        SourceKind::Grant => return Ok(()),
    }
    let history = super::history::history_of(&mut *scratch, d.kind, &d.id).await?;
    for (seq, entry) in (1..).zip(&history) {
        insert_transition(tx, d.kind, &d.id, seq, entry).await?;
    }
    Ok(())
}

/// Deletes the live source at `version`; `false` when it is no longer at
/// that version.
async fn delete_source(
    tx: &mut AnyConnection,
    kind: SourceKind,
    id: &str,
    version: i64,
) -> Result<bool> {
    let deleted = match kind {
        SourceKind::Subscription => {
            sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }
        SourceKind::Order => {
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
            deleted
        }
        SourceKind::Grant => 1,
    };
    Ok(deleted == 1)
}
