//! One-time orders: `POST /v1/orders` (the SaaS backend registers who bought
//! what) and `/v1/admin/orders`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Admin, App};
use super::error::{ApiError, ApiResult, Problem, field, one_of, opt_field};
use super::extract::{Body, Params};
use super::pagination::{self, Page};
use super::subscriptions::HistoryView;
use crate::domain::access::SourceKind;
use crate::domain::order::State as OrderState;
use crate::domain::{Email, Instant, IntegrationId, ProductKey};
use crate::store::{OrderFilter, OrderRecord};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(register))
        .route("/v1/admin/orders", get(list))
        .route("/v1/admin/orders/{id}", get(show))
}

/// Who bought what, registered before the buyer is sent to checkout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    /// The integration the payment will arrive through: the id of an
    /// existing Zeno Bank or ZayPay integration (else 400).
    integration: String,
    /// The provider's order id (1 to 200 characters).
    external_id: String,
    #[schema(format = Email)]
    email: String,
    /// The product key.
    product: String,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub integration: String,
    pub provider: String,
    pub external_id: String,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = Vec<String>)]
    pub products: Vec<ProductKey>,
    pub state: OrderState,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub paid_at: Option<Instant>,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Instant,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        Self {
            id: o.id,
            integration: o.integration,
            provider: o.provider,
            external_id: o.external_id,
            email: o.email,
            products: o.products,
            state: o.snapshot.state,
            paid_at: o.snapshot.paid_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// An order with its history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderView,
    pub history: Vec<HistoryView>,
}

/// Filters and paging for the order list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's orders.
    #[param(format = Email)]
    email: Option<String>,
    /// Only orders in this state.
    #[param(value_type = Option<OrderState>)]
    state: Option<String>,
    /// Only this integration's orders.
    integration: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Register a one-time order.
///
/// Registers a one-time order for a provider whose payloads carry no email
/// (Zeno Bank, ZayPay, a Zid marketplace order's masked customer; Zenofy
/// orders name their buyer and take none). Deliveries that arrived for it first (`unmatched`) are
/// applied now, in arrival order, so a payment that raced the registration
/// grants access in this very request. 201 when registered; 200 when the same
/// registration was already made.
#[utoipa::path(
    post,
    path = "/v1/orders",
    operation_id = "register_order",
    tag = "orders",
    request_body = Registration,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The same registration was already made", body = OrderView),
        (status = 201, description = "Registered (state `pending`, or further when stored deliveries applied)", body = OrderView),
        (status = 400, description = "A field is missing or invalid, or the integration is unknown or takes no registrations", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is already registered with another email or product", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    _caller: App,
    Body(body): Body<Registration>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let integration = field("integration", &body.integration, IntegrationId::parse)?;
    let email = field("email", &body.email, Email::parse)?;
    let product = field("product", &body.product, ProductKey::parse)?;
    let external_id = super::rules::text(
        "external_id",
        &body.external_id,
        super::rules::MAX_EXTERNAL_ID,
    )?;
    let (order, created) = crate::app::orders::register(
        &state.store,
        &integration,
        external_id,
        &email,
        &product,
        crate::time_fmt::now(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(order.into())))
}

/// List orders.
///
/// Orders, newest first, filtered by email, state and integration.
#[utoipa::path(
    get,
    path = "/v1/admin/orders",
    operation_id = "list_orders",
    tag = "orders",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders", body = Page<OrderView>),
        (status = 400, description = "`email`, `state`, `integration`, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<OrderView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    let email = opt_field("email", query.email.as_deref(), Email::parse)?;
    one_of(
        "state",
        query.state.as_deref(),
        &OrderState::ALL,
        OrderState::as_str,
    )?;
    let integration = opt_field(
        "integration",
        query.integration.as_deref(),
        IntegrationId::parse,
    )?;
    let rows = state
        .store
        .orders(&OrderFilter {
            email: email.as_ref().map(Email::as_str),
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

/// Show one order.
///
/// An order with its products and history, oldest first.
#[utoipa::path(
    get,
    path = "/v1/admin/orders/{id}",
    operation_id = "get_order",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderDetail),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderDetail>> {
    let order = state
        .store
        .order(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id:?}")))?;
    let history = state.store.history(SourceKind::Order, &id).await?;
    Ok(Json(OrderDetail {
        order: order.into(),
        history: history.into_iter().map(Into::into).collect(),
    }))
}
