//! `/v1/admin/deliveries`: the delivery log, and replay.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::pagination::{self, Page};
use super::webhooks::DeliveryAnswer;
use crate::domain::access::SourceKind;
use crate::domain::{Instant, Outcome};
use crate::ingest::{self, ReplayError};
use crate::store::{AttemptRecord, DeliveryFilter, DeliveryRecord};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/deliveries", get(list))
        .route("/v1/admin/deliveries/{id}", get(show))
        .route("/v1/admin/deliveries/{id}/replay", post(replay))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    integration: Option<String>,
    outcome: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// What a delivery reached.
#[derive(Debug, Serialize)]
pub struct SubjectRef {
    pub kind: &'static str,
    pub id: String,
}

fn subject(subject: Option<(SourceKind, String)>) -> Option<SubjectRef> {
    subject.map(|(kind, id)| SubjectRef {
        kind: kind.as_str(),
        id,
    })
}

/// One delivery in the log.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub integration: String,
    pub provider: String,
    #[serde(with = "serde_rfc3339")]
    pub received_at: Instant,
    /// The provider's event name, when the body could be read.
    pub event: Option<String>,
    /// The outcome of the latest attempt.
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<SubjectRef>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            integration: d.integration,
            provider: d.provider,
            received_at: d.received_at,
            event: d.event,
            outcome: d.outcome,
            reason: d.reason,
            subject: subject(d.subject),
        }
    }
}

/// One attempt at applying a delivery.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    #[serde(with = "serde_rfc3339")]
    pub at: Instant,
    /// `received`, `registration` (its order was registered) or `replay`.
    pub trigger: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<SubjectRef>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            at: a.at,
            trigger: a.trigger,
            outcome: a.outcome,
            reason: a.reason,
            subject: subject(a.subject),
        }
    }
}

/// A delivery as received, with every attempt at applying it.
#[derive(Debug, Serialize)]
pub struct DeliveryDetailView {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The raw body as received (UTF-8; invalid bytes replaced).
    pub body: String,
    /// The request headers; credentials replaced by `[REDACTED]`.
    pub headers: serde_json::Value,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
}

/// The delivery log, newest first, filtered by integration and outcome.
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    if let Some(raw) = query.outcome.as_deref()
        && Outcome::parse(raw).is_none()
    {
        return Err(ApiError::invalid(
            "outcome",
            format!(
                "`outcome` must be one of applied, duplicate, stale, rejected, noted, ignored, unmatched, malformed, not {raw:?}"
            ),
        ));
    }
    let rows = state
        .store
        .deliveries(&DeliveryFilter {
            integration: query.integration.as_deref(),
            outcome: query.outcome.as_deref(),
            before: query.cursor.as_deref(),
            limit: limit + 1,
        })
        .await?;
    Ok(Json(pagination::page(rows, limit, |d| d.id.clone(), Into::into)))
}

/// One delivery: the body as received, redacted headers, every attempt.
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetailView>> {
    let detail = state
        .store
        .delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
    Ok(Json(DeliveryDetailView {
        body: String::from_utf8_lossy(&detail.body).into_owned(),
        headers: serde_json::from_str(&detail.headers).unwrap_or(serde_json::Value::Null),
        attempts: detail.attempts.into_iter().map(Into::into).collect(),
        delivery: detail.delivery.into(),
    }))
}

/// Applies the stored body again to the current state (after fixing a product
/// map, registering an order, …). The new outcome is returned and kept beside
/// the earlier ones.
async fn replay(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryAnswer>> {
    match ingest::replay(&state.store, &id, crate::time_fmt::now()).await {
        Ok(recorded) => Ok(Json(recorded.into())),
        Err(ReplayError::UnknownDelivery(_)) => Err(ApiError::not_found(format!("no delivery {id:?}"))),
        Err(e @ ReplayError::IntegrationGone(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}
