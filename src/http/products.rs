//! `/v1/admin/products`: access policies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::changes::AnswerView;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Body, Params};
use super::pagination::{Page, Paging, page_loaded};
use crate::app;
use crate::domain::{CanceledAccess, Email, Instant, Policy, ProductKey};
use crate::store::{Flip, PolicyPreview, Product};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/products", get(list))
        .route("/v1/admin/products/{key}", get(show).put(put))
        .route("/v1/admin/products/{key}/preview", post(preview))
}

/// A product's policy; omitted fields take the defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyBody {
    /// How long access outlasts a missed renewal (0 to 100 years; default 259200, three days).
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    #[schema(minimum = 0, maximum = 3_153_600_000_i64)]
    pub(super) grace_period_seconds: Option<i64>,
    /// Whether a suspended subscription keeps access (default false).
    pub(super) suspended_access: Option<bool>,
    /// Whether a canceled subscription keeps access until its period ends (default `immediate`).
    pub(super) canceled_access: Option<CanceledAccess>,
    /// How long a paid one-time purchase grants access (1 second to 1000 years);
    /// `null` or omitted: for ever.
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    #[schema(minimum = 1, maximum = 31_536_000_000_i64)]
    pub(super) purchase_access_seconds: Option<i64>,
}

/// A product and its policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    #[schema(value_type = String)]
    pub key: ProductKey,
    pub grace_period_seconds: i64,
    pub suspended_access: bool,
    pub canceled_access: CanceledAccess,
    /// `null`: purchases grant access for ever.
    #[schema(required = true)]
    pub purchase_access_seconds: Option<i64>,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Instant,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            key: p.key,
            grace_period_seconds: p.policy.grace_period_seconds,
            suspended_access: p.policy.suspended_access,
            canceled_access: p.policy.canceled_access,
            purchase_access_seconds: p.policy.purchase_access_seconds,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Set a product's policy.
///
/// Sets a product's policy and recomputes its entitlement rows. 201 when created.
#[utoipa::path(
    put,
    path = "/v1/admin/products/{key}",
    operation_id = "put_product",
    tag = "products",
    params(("key" = String, Path, description = "The product key, e.g. `pro`")),
    request_body = PolicyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = ProductView),
        (status = 201, description = "Created", body = ProductView),
        (status = 400, description = "The key or a field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    let (product, created) = app::products::set_policy(
        &state.store,
        &product_key(&key)?,
        &policy(&body)?,
        crate::time_fmt::now(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(product.into())))
}

/// A product key from the path.
pub(super) fn product_key(raw: &str) -> ApiResult<ProductKey> {
    ProductKey::parse(raw).map_err(|e| ApiError::invalid("key", format!("`key`: {}", e.0)))
}

/// The policy a body asks for, the defaults filling what it omits.
pub(super) fn policy(body: &PolicyBody) -> ApiResult<Policy> {
    let defaults = Policy::default();
    let policy = Policy {
        grace_period_seconds: body
            .grace_period_seconds
            .unwrap_or(defaults.grace_period_seconds),
        suspended_access: body.suspended_access.unwrap_or(defaults.suspended_access),
        canceled_access: body.canceled_access.unwrap_or(defaults.canceled_access),
        purchase_access_seconds: body.purchase_access_seconds,
    };
    if !(0..=100 * 365 * 86_400).contains(&policy.grace_period_seconds) {
        return Err(ApiError::invalid(
            "grace_period_seconds",
            "`grace_period_seconds` must be from 0 to 100 years",
        ));
    }
    if policy
        .purchase_access_seconds
        .is_some_and(|s| !(1..=1000 * 365 * 86_400).contains(&s))
    {
        return Err(ApiError::invalid(
            "purchase_access_seconds",
            "`purchase_access_seconds` must be from 1 second to 1000 years (or null for lifetime access)",
        ));
    }
    Ok(policy)
}

/// One customer whose answer the candidate policy would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlipView {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    /// The answer now.
    pub before: AnswerView,
    /// The answer now, had the candidate policy been in force.
    pub after: AnswerView,
}

impl From<Flip> for FlipView {
    fn from(f: Flip) -> Self {
        Self {
            email: f.email,
            before: f.before.into(),
            after: f.after.into(),
        }
    }
}

/// How many customers the candidate would change; always whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewCountsView {
    pub gained: u64,
    pub lost: u64,
    pub moved: u64,
    /// Customers with rows for the product whose answer would stay as it is.
    pub unchanged: u64,
}

/// What a candidate policy would change now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    /// Not entitled now, entitled under the candidate (email order; at most 1000 listed).
    pub gained: Vec<FlipView>,
    /// Entitled now, not under the candidate (email order; at most 1000 listed).
    pub lost: Vec<FlipView>,
    /// Entitled either way, with another `valid_until` (email order; at most 1000 listed).
    pub moved: Vec<FlipView>,
    pub counts: PreviewCountsView,
}

impl From<PolicyPreview> for PreviewView {
    fn from(p: PolicyPreview) -> Self {
        Self {
            gained: p.gained.into_iter().map(Into::into).collect(),
            lost: p.lost.into_iter().map(Into::into).collect(),
            moved: p.moved.into_iter().map(Into::into).collect(),
            counts: PreviewCountsView {
                gained: p.counts.gained,
                lost: p.counts.lost,
                moved: p.counts.moved,
                unchanged: p.counts.unchanged,
            },
        }
    }
}

/// Preview a policy change.
///
/// Which customers would gain access, lose it, or keep it with another
/// `valid_until` now if the candidate policy replaced the product's, with
/// counts. Nothing is changed. Each list is in email order and lists at most
/// 1000 customers; the counts are always whole.
#[utoipa::path(
    post,
    path = "/v1/admin/products/{key}/preview",
    operation_id = "preview_product_policy",
    tag = "products",
    params(("key" = String, Path, description = "The product key, e.g. `pro`")),
    request_body = PolicyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the candidate would change", body = PreviewView),
        (status = 400, description = "The key or a field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn preview(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<Json<PreviewView>> {
    let preview = app::products::preview(
        &state.store,
        &product_key(&key)?,
        &policy(&body)?,
        crate::time_fmt::now(),
    )
    .await?;
    Ok(Json(preview.into()))
}

/// List products.
///
/// Every configured product, by key. (Products nobody configured use the
/// defaults.)
#[utoipa::path(
    get,
    path = "/v1/admin/products",
    operation_id = "list_products",
    tag = "products",
    params(Paging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of configured products", body = Page<ProductView>),
        (status = 400, description = "`limit` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(paging): Params<Paging>,
) -> ApiResult<Json<Page<ProductView>>> {
    Ok(Json(page_loaded(
        state.store.products().await?,
        paging.limit.as_deref(),
        paging.cursor.as_deref(),
        false,
        |p| p.key.to_string(),
        Into::into,
    )?))
}

/// Show one product.
///
/// A configured product and its policy.
#[utoipa::path(
    get,
    path = "/v1/admin/products/{key}",
    operation_id = "get_product",
    tag = "products",
    params(("key" = String, Path, description = "The product key, e.g. `pro`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product with this key is configured", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<String>,
) -> ApiResult<Json<ProductView>> {
    let product = state
        .store
        .product(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no product {key:?} is configured")))?;
    Ok(Json(product.into()))
}
