//! Subscriptions and their history.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::changes::Cause;
use super::effects::replace_for_source;
use super::entitlements::EntitlementRow;
use super::history::{HistoryEntry, Via, insert_transition};
use super::tx::Attempt;
use super::{
    Filter, Result, Store, StoreError, instant, micros, new_id, opt_instant, opt_micros, opt_text,
    text, trusted,
};
use crate::domain::access::{Facts, SourceKind, SourceState};
use crate::domain::subscription::{Decision, Incoming, Snapshot, State};
use crate::domain::{Email, Instant, ProductKey};

/// A subscription as the admin API shows it.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub external_id: String,
    pub snapshot: Snapshot,
    pub version: i64,
    pub created_at: Instant,
    pub updated_at: Instant,
}

/// Filters for listing subscriptions; every one optional.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter<'a> {
    pub email: Option<&'a str>,
    pub product: Option<&'a str>,
    pub state: Option<&'a str>,
    pub integration: Option<&'a str>,
    /// Only subscriptions with an id below this (the previous page's last id).
    pub before: Option<&'a str>,
    pub limit: i64,
}

pub(super) const COLUMNS: &str = "id, integration, provider, external_id, email, product, plan, state, \
                       current_period_start, current_period_end, access_from, version, created_at, updated_at";

pub(super) fn from_row(row: &AnyRow) -> Result<SubscriptionRecord> {
    let state = text(row, "state")?;
    Ok(SubscriptionRecord {
        id: text(row, "id")?,
        integration: text(row, "integration")?,
        provider: text(row, "provider")?,
        external_id: text(row, "external_id")?,
        snapshot: Snapshot {
            state: State::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("subscription state {state:?}")))?,
            email: Email::parse(&text(row, "email")?)?,
            product: ProductKey::parse(&text(row, "product")?)?,
            plan: opt_text(row, "plan")?,
            current_period_start: opt_instant(row, "current_period_start")?,
            current_period_end: opt_instant(row, "current_period_end")?,
            access_from: instant(row, "access_from")?,
        },
        version: sqlx::Row::try_get(row, "version")?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

/// Rewrites a subscription's entitlement row from its snapshot, under its
/// product's policy.
async fn write_entitlement(
    tx: &mut AnyConnection,
    id: &str,
    integration: &str,
    provider: &str,
    snapshot: &Snapshot,
    cause: &Cause<'_>,
) -> Result<()> {
    let changed_at = cause.at;
    let row = EntitlementRow::new(
        id,
        (&snapshot.email, &snapshot.product),
        (Some(integration), Some(provider)),
        snapshot.plan.as_deref(),
        snapshot_facts(snapshot),
        changed_at,
    );
    replace_for_source(tx, SourceKind::Subscription, id, vec![row], cause).await
}

/// The facts a subscription's entitlement window is computed from.
fn snapshot_facts(snapshot: &Snapshot) -> Facts {
    Facts {
        state: SourceState::Subscription(snapshot.state),
        start: snapshot.access_from,
        end: snapshot.current_period_end,
    }
}

pub(super) async fn load_for_update(
    tx: &mut AnyConnection,
    integration: &str,
    external_id: &str,
) -> Result<Option<SubscriptionRecord>> {
    sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE integration = $1 AND external_id = $2"
    )))
    .bind(integration)
    .bind(external_id)
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn load_by_id(
    tx: &mut AnyConnection,
    id: &str,
) -> Result<Option<SubscriptionRecord>> {
    sqlx::query(trusted(format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// The one writer of a subscription's state, for deliveries, replays and the
/// clock alike: what the pure domain decided (`decision`, about `incoming`
/// against `current`) is written with a compare-and-set on the version (a lost
/// race is [`Attempt::Retry`]), with its history entry and, when the state
/// changed, the entitlement row and the change log. Returns the subscription's
/// id, or `None` when nothing was stored (an event for no subscription that
/// creates none).
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    tx: &mut AnyConnection,
    (integration, provider): (&str, &str),
    external_id: &str,
    current: Option<&SubscriptionRecord>,
    incoming: &Incoming,
    decision: &Decision,
    previous_plan: Option<&str>,
    via: Via<'_>,
) -> std::result::Result<Option<String>, Attempt> {
    let recorded = record_decision(
        tx,
        (integration, provider),
        external_id,
        current,
        incoming,
        decision,
        previous_plan,
        via,
    )
    .await?;
    if let (Some(id), Some(next)) = (&recorded, &decision.next) {
        write_entitlement(
            tx,
            id,
            integration,
            provider,
            next,
            &via.cause(incoming.event.as_str()),
        )
        .await?;
    }
    Ok(recorded)
}

/// Writes a decision: the subscription (created, or compare-and-set on its
/// version) and its history entry. Returns the subscription id, or `None` when
/// the event created nothing (a warning for an unknown subscription).
#[allow(clippy::too_many_arguments)]
async fn record_decision(
    tx: &mut AnyConnection,
    (integration, provider): (&str, &str),
    external_id: &str,
    current: Option<&SubscriptionRecord>,
    incoming: &Incoming,
    decision: &Decision,
    previous_plan: Option<&str>,
    via: Via<'_>,
) -> std::result::Result<Option<String>, Attempt> {
    let (id, version) = match (current, &decision.next) {
        (None, None) => return Ok(None),
        (None, Some(next)) => {
            let record = SubscriptionRecord {
                id: new_id(),
                integration: integration.to_owned(),
                provider: provider.to_owned(),
                external_id: external_id.to_owned(),
                snapshot: next.clone(),
                version: 1,
                created_at: via.at,
                updated_at: via.at,
            };
            if !insert_row(tx, &record).await? {
                // Created concurrently: decide again against what won.
                return Err(Attempt::Retry);
            }
            (record.id, 1)
        }
        (Some(current), next) => {
            let snapshot = next.as_ref().unwrap_or(&current.snapshot);
            let updated_at = if next.is_some() {
                via.at
            } else {
                current.updated_at
            };
            if !update_row(tx, (&current.id, current.version), snapshot, updated_at).await? {
                // Another delivery changed it since we read it.
                return Err(Attempt::Retry);
            }
            (current.id.clone(), current.version + 1)
        }
    };
    insert_transition(
        tx,
        SourceKind::Subscription,
        &id,
        version,
        &HistoryEntry {
            at: via.at,
            event: incoming.event.as_str().to_owned(),
            from_state: decision.from.map(|s| s.as_str().to_owned()),
            to_state: decision.to.map(|s| s.as_str().to_owned()),
            outcome: decision.outcome,
            reason: decision.reason.clone(),
            delivery_id: via.delivery_id.map(str::to_owned),
            source: via.source.as_str().into(),
            plan: incoming.plan.clone(),
            previous_plan: previous_plan.map(str::to_owned),
        },
    )
    .await?;
    Ok(Some(id))
}

/// The one INSERT of a subscription row; `false` when one with its
/// (integration, external id) exists already.
pub(super) async fn insert_row(
    tx: &mut AnyConnection,
    record: &SubscriptionRecord,
) -> Result<bool> {
    let s = &record.snapshot;
    let inserted = sqlx::query(trusted(format!(
        "INSERT INTO subscriptions ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (integration, external_id) DO NOTHING"
    )))
    .bind(&record.id)
    .bind(&record.integration)
    .bind(&record.provider)
    .bind(&record.external_id)
    .bind(s.email.as_str())
    .bind(s.product.as_str())
    .bind(s.plan.as_deref())
    .bind(s.state.as_str())
    .bind(opt_micros(s.current_period_start))
    .bind(opt_micros(s.current_period_end))
    .bind(micros(s.access_from))
    .bind(record.version)
    .bind(micros(record.created_at))
    .bind(micros(record.updated_at))
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The one UPDATE of a subscription row: a compare-and-set on its version,
/// which it moves on by one; `false` when it is no longer at `version`.
pub(super) async fn update_row(
    tx: &mut AnyConnection,
    (id, version): (&str, i64),
    snapshot: &Snapshot,
    updated_at: Instant,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE subscriptions SET email = $1, product = $2, plan = $3, state = $4,
             current_period_start = $5, current_period_end = $6, access_from = $7,
             version = version + 1, updated_at = $8
         WHERE id = $9 AND version = $10",
    )
    .bind(snapshot.email.as_str())
    .bind(snapshot.product.as_str())
    .bind(snapshot.plan.as_deref())
    .bind(snapshot.state.as_str())
    .bind(opt_micros(snapshot.current_period_start))
    .bind(opt_micros(snapshot.current_period_end))
    .bind(micros(snapshot.access_from))
    .bind(micros(updated_at))
    .bind(id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The one DELETE of a subscription row (a rebuild removing a source the
/// stored deliveries do not make), at `version`; `false` when it moved on.
pub(super) async fn delete_row(tx: &mut AnyConnection, id: &str, version: i64) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// The current state of a subscription or order, by id.
pub(super) async fn current_state(
    tx: &mut AnyConnection,
    kind: SourceKind,
    id: &str,
) -> Result<Option<String>> {
    let sql = match kind {
        SourceKind::Subscription => "SELECT state FROM subscriptions WHERE id = $1",
        SourceKind::Order => "SELECT state FROM orders WHERE id = $1",
        SourceKind::Grant => return Ok(None),
    };
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| text(&row, "state"))
        .transpose()
}

impl Store {
    /// Subscriptions matching the filters, newest first.
    pub async fn subscriptions(
        &self,
        filter: &SubscriptionFilter<'_>,
    ) -> Result<Vec<SubscriptionRecord>> {
        let mut f = Filter::default();
        f.eq("email", filter.email);
        f.eq("product", filter.product);
        f.eq("state", filter.state);
        f.eq("integration", filter.integration);
        f.push("id", "<", filter.before);
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions {} ORDER BY id DESC LIMIT ${}",
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

    pub async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        sqlx::query(trusted(format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }
}
