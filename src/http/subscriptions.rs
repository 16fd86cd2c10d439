//! `/v1/admin/subscriptions`: what the state machine made of the deliveries.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::pagination::{self, Page};
use crate::domain::access::SourceKind;
use crate::domain::subscription::State as SubscriptionState;
use crate::domain::{Email, Instant, Outcome, ProductKey};
use crate::store::{HistoryEntry, SubscriptionFilter, SubscriptionRecord};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/subscriptions", get(list))
        .route("/v1/admin/subscriptions/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    email: Option<String>,
    product: Option<String>,
    state: Option<String>,
    integration: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A subscription.
#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub external_id: String,
    pub email: Email,
    pub product: ProductKey,
    pub plan: Option<String>,
    pub state: SubscriptionState,
    #[serde(with = "serde_rfc3339::option")]
    pub current_period_start: Option<Instant>,
    #[serde(with = "serde_rfc3339::option")]
    pub current_period_end: Option<Instant>,
    #[serde(with = "serde_rfc3339")]
    pub access_from: Instant,
    #[serde(with = "serde_rfc3339")]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    pub updated_at: Instant,
}

impl From<SubscriptionRecord> for SubscriptionView {
    fn from(r: SubscriptionRecord) -> Self {
        Self {
            id: r.id,
            integration: r.integration,
            provider: r.provider,
            external_id: r.external_id,
            email: r.snapshot.email,
            product: r.snapshot.product,
            plan: r.snapshot.plan,
            state: r.snapshot.state,
            current_period_start: r.snapshot.current_period_start,
            current_period_end: r.snapshot.current_period_end,
            access_from: r.snapshot.access_from,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One history entry.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    #[serde(with = "serde_rfc3339")]
    pub at: Instant,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub delivery_id: Option<String>,
    /// `delivery`, `clock` or `admin`.
    pub source: String,
    /// The plan the event named (Zid `plan_name`), if any.
    pub plan: Option<String>,
    /// The plan the event says it changed from (Zid `old_plan_name`), if any.
    pub previous_plan: Option<String>,
}

impl From<HistoryEntry> for HistoryView {
    fn from(h: HistoryEntry) -> Self {
        Self {
            at: h.at,
            event: h.event,
            from_state: h.from_state,
            to_state: h.to_state,
            outcome: h.outcome,
            reason: h.reason,
            delivery_id: h.delivery_id,
            source: h.source,
            plan: h.plan,
            previous_plan: h.previous_plan,
        }
    }
}

/// A subscription with its whole history, oldest first.
#[derive(Debug, Serialize)]
pub struct SubscriptionDetail {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub history: Vec<HistoryView>,
}

/// Subscriptions, newest first, filtered by any of email, product, state and
/// integration.
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    let email = query
        .email
        .as_deref()
        .map(|raw| {
            Email::parse(raw).map_err(|e| ApiError::invalid("email", format!("`email`: {e}")))
        })
        .transpose()?;
    if let Some(raw) = query.state.as_deref()
        && SubscriptionState::parse(raw).is_none()
    {
        return Err(ApiError::invalid(
            "state",
            format!(
                "`state` must be one of pending, active, suspended, canceled, expired, refunded, not {raw:?}"
            ),
        ));
    }
    let rows = state
        .store
        .subscriptions(&SubscriptionFilter {
            email: email.as_ref().map(Email::as_str),
            product: query.product.as_deref(),
            state: query.state.as_deref(),
            integration: query.integration.as_deref(),
            before: query.cursor.as_deref(),
            limit: limit + 1,
        })
        .await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |r| r.id.clone(),
        Into::into,
    )))
}

async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionDetail>> {
    let subscription = state
        .store
        .subscription(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id:?}")))?;
    let history = state.store.history(SourceKind::Subscription, &id).await?;
    Ok(Json(SubscriptionDetail {
        subscription: subscription.into(),
        history: history.into_iter().map(Into::into).collect(),
    }))
}
