//! `/v1/admin/deliveries`: the delivery log, and replay.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult, Problem, one_of, opt_field};
use super::extract::Params;
use super::pagination::{self, Page};
use super::webhooks::DeliveryAnswer;
use crate::domain::access::SourceKind;
use crate::domain::{Instant, IntegrationId, Outcome};
use crate::store::{AttemptRecord, DeliveryFilter, DeliveryRecord};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/deliveries", get(list))
        .route("/v1/admin/deliveries/{id}", get(show))
        .route("/v1/admin/deliveries/{id}/replay", post(replay))
}

/// Filters and paging for the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this integration's deliveries.
    integration: Option<String>,
    /// Only deliveries whose latest attempt had this outcome.
    #[param(value_type = Option<Outcome>)]
    outcome: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// What a delivery reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectRef {
    #[schema(value_type = SourceKind)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub integration: String,
    pub provider: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Instant,
    /// The provider's event name, when the body could be read.
    #[schema(required = true)]
    pub event: Option<String>,
    /// The outcome of the latest attempt.
    pub outcome: Outcome,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    /// `received`, `registration` (its order was registered) or `replay`.
    pub trigger: String,
    pub outcome: Outcome,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailView {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The raw body as received (UTF-8; invalid bytes replaced); `null` once
    /// dropped past `ENTITLED_DELIVERY_RETENTION_DAYS` (see `body_dropped_at`).
    #[schema(required = true)]
    pub body: Option<String>,
    /// When the body was dropped; `null` while it is kept.
    #[serde(with = "crate::time_fmt::serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub body_dropped_at: Option<crate::domain::Instant>,
    /// The request headers; credentials replaced by `[REDACTED]`.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
}

/// List webhook deliveries.
///
/// The delivery log, newest first, filtered by integration and outcome.
#[utoipa::path(
    get,
    path = "/v1/admin/deliveries",
    operation_id = "list_deliveries",
    tag = "deliveries",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
        (status = 400, description = "`integration`, `outcome`, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    let integration = opt_field(
        "integration",
        query.integration.as_deref(),
        IntegrationId::parse,
    )?;
    one_of(
        "outcome",
        query.outcome.as_deref(),
        &Outcome::ALL,
        Outcome::as_str,
    )?;
    let rows = state
        .store
        .deliveries(&DeliveryFilter {
            integration: integration.as_ref().map(IntegrationId::as_str),
            outcome: query.outcome.as_deref(),
            before: pagination::cursor(query.cursor.as_deref())?.as_deref(),
            limit: limit + 1,
        })
        .await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |d| d.id.clone(),
        Into::into,
    )))
}

/// Show one webhook delivery.
///
/// One delivery: the body as received, redacted headers, every attempt.
#[utoipa::path(
    get,
    path = "/v1/admin/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetailView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    )
)]
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
        body: detail
            .body
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        body_dropped_at: detail.body_dropped_at,
        headers: serde_json::from_str(&detail.headers).unwrap_or(serde_json::Value::Null),
        attempts: detail.attempts.into_iter().map(Into::into).collect(),
        delivery: detail.delivery.into(),
    }))
}

/// Replay a webhook delivery.
///
/// Applies the stored body again to the current state (after fixing a product
/// map, registering an order, …). The new outcome is returned and kept beside
/// the earlier ones.
#[utoipa::path(
    post,
    path = "/v1/admin/deliveries/{id}/replay",
    operation_id = "replay_delivery",
    tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new attempt's outcome", body = DeliveryAnswer),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The delivery's integration no longer exists, or its body was dropped", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn replay(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryAnswer>> {
    Ok(Json(
        crate::app::deliveries::replay(&state.store, &id, crate::time_fmt::now())
            .await?
            .into(),
    ))
}
