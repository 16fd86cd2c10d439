//! `/v1/admin/grants`: entitlements given by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiResult, Problem, field, opt_field};
use super::extract::{Body, Params};
use super::pagination::{Page, page_loaded};
use crate::app;
use crate::domain::{Email, Instant, ProductKey};
use crate::store::Grant;
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/grants", get(list).post(create))
        .route("/v1/admin/grants/{id}", delete(revoke))
}

/// A grant to create. `valid_from` defaults to now; no `valid_until` is for ever.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGrant {
    #[schema(format = Email)]
    pub email: String,
    /// The product key.
    pub product: String,
    #[serde(default, with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_from: Option<Instant>,
    /// When the grant ends; must be after `valid_from` (else 400). Omitted or
    /// `null`: for ever.
    #[serde(default, with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<Instant>,
    /// Why (1 to 500 characters).
    pub reason: String,
}

/// Which grants to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's grants.
    #[param(format = Email)]
    email: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub valid_from: Instant,
    /// `null`: for ever.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub valid_until: Option<Instant>,
    pub reason: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub revoked_at: Option<Instant>,
}

impl From<Grant> for GrantView {
    fn from(g: Grant) -> Self {
        Self {
            id: g.id,
            email: g.email,
            product: g.product,
            valid_from: g.valid_from,
            valid_until: g.valid_until,
            reason: g.reason,
            created_at: g.created_at,
            revoked_at: g.revoked_at,
        }
    }
}

/// Grant a product by hand.
///
/// Grants a customer a product by hand (reason `grant` in access answers).
#[utoipa::path(
    post,
    path = "/v1/admin/grants",
    operation_id = "create_grant",
    tag = "grants",
    request_body = NewGrant,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The grant", body = GrantView),
        (status = 400, description = "A field is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Body(body): Body<NewGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let grant = app::grants::give(&state.store, &parse_new(&body)?, time_fmt::now()).await?;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

/// The grant a body asks for, its fields checked: what the API and the
/// console hand to [`app::grants::give`].
pub(super) fn parse_new(body: &NewGrant) -> ApiResult<app::grants::NewGrant> {
    Ok(app::grants::NewGrant {
        email: field("email", &body.email, Email::parse)?,
        product: field("product", &body.product, ProductKey::parse)?,
        valid_from: body.valid_from,
        valid_until: body.valid_until,
        reason: super::rules::text("reason", &body.reason, super::rules::MAX_REASON)?.to_owned(),
    })
}

/// List grants.
///
/// Grants, newest first, revoked ones included; `email` narrows to one customer.
#[utoipa::path(
    get,
    path = "/v1/admin/grants",
    operation_id = "list_grants",
    tag = "grants",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of matching grants", body = Page<GrantView>),
        (status = 400, description = "`email` or `limit` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<GrantView>>> {
    let email = opt_field("email", query.email.as_deref(), Email::parse)?;
    Ok(Json(page_loaded(
        state.store.grants(email.as_ref()).await?,
        query.limit.as_deref(),
        query.cursor.as_deref(),
        true,
        |g| g.id.clone(),
        Into::into,
    )?))
}

/// Revoke a grant.
///
/// Revokes a grant. The row stays, with `revoked_at` set; access checks answer
/// `revoked` if nothing else grants the product.
#[utoipa::path(
    delete,
    path = "/v1/admin/grants/{id}",
    operation_id = "revoke_grant",
    tag = "grants",
    params(("id" = String, Path, description = "The grant's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The revoked grant", body = GrantView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such grant", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(
        app::grants::revoke(&state.store, &id, time_fmt::now())
            .await?
            .into(),
    ))
}
