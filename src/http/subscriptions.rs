//! `/v1/admin/subscriptions`: what the state machine made of the deliveries.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult, Problem, one_of, opt_field};
use super::extract::Params;
use super::pagination::{self, Page};
use crate::domain::access::SourceKind;
use crate::domain::subscription::State as SubscriptionState;
use crate::domain::{Email, Instant, IntegrationId, Outcome, ProductKey};
use crate::store::{HistoryEntry, SubscriptionFilter, SubscriptionRecord};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/subscriptions", get(list))
        .route("/v1/admin/subscriptions/{id}", get(show))
}

/// Filters and paging for the subscription list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's subscriptions.
    #[param(format = Email)]
    email: Option<String>,
    /// Only subscriptions to this product key.
    product: Option<String>,
    /// Only subscriptions in this state.
    #[param(value_type = Option<SubscriptionState>)]
    state: Option<String>,
    /// Only this integration's subscriptions.
    integration: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub external_id: String,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    #[schema(required = true)]
    pub plan: Option<String>,
    pub state: SubscriptionState,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub current_period_start: Option<Instant>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub current_period_end: Option<Instant>,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub access_from: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    pub event: String,
    #[schema(required = true)]
    pub from_state: Option<String>,
    #[schema(required = true)]
    pub to_state: Option<String>,
    pub outcome: Outcome,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub delivery_id: Option<String>,
    /// `delivery`, `clock` or `admin`.
    pub source: String,
    /// The plan the event named (Zid `plan_name`), if any.
    #[schema(required = true)]
    pub plan: Option<String>,
    /// The plan the event says it changed from (Zid `old_plan_name`), if any.
    #[schema(required = true)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDetail {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub history: Vec<HistoryView>,
}

/// List subscriptions.
///
/// Subscriptions, newest first, filtered by any of email, product, state and
/// integration.
#[utoipa::path(
    get,
    path = "/v1/admin/subscriptions",
    operation_id = "list_subscriptions",
    tag = "subscriptions",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of subscriptions", body = Page<SubscriptionView>),
        (status = 400, description = "`email`, `product`, `state`, `integration`, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    let email = opt_field("email", query.email.as_deref(), Email::parse)?;
    let product = opt_field("product", query.product.as_deref(), ProductKey::parse)?;
    one_of(
        "state",
        query.state.as_deref(),
        &SubscriptionState::ALL,
        SubscriptionState::as_str,
    )?;
    let integration = opt_field(
        "integration",
        query.integration.as_deref(),
        IntegrationId::parse,
    )?;
    let rows = state
        .store
        .subscriptions(&SubscriptionFilter {
            email: email.as_ref().map(Email::as_str),
            product: product.as_ref().map(ProductKey::as_str),
            state: query.state.as_deref(),
            integration: integration.as_ref().map(IntegrationId::as_str),
            before: pagination::cursor(query.cursor.as_deref())?.as_deref(),
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

/// Show one subscription.
///
/// A subscription with its whole history, oldest first: every delivery that
/// reached it, whatever its outcome, and every clock or admin change.
#[utoipa::path(
    get,
    path = "/v1/admin/subscriptions/{id}",
    operation_id = "get_subscription",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionDetail),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    )
)]
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
