//! `/v1/admin/products`: access policies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::pagination::Page;
use crate::domain::{CanceledAccess, Instant, Policy, ProductKey};
use crate::store::Product;
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/products", get(list))
        .route("/v1/admin/products/{key}", get(show).put(put))
}

/// A product's policy; omitted fields take the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    grace_period_seconds: Option<i64>,
    suspended_access: Option<bool>,
    canceled_access: Option<CanceledAccess>,
    #[serde(default)]
    purchase_access_seconds: Option<i64>,
}

/// A product and its policy.
#[derive(Debug, Serialize)]
pub struct ProductView {
    pub key: ProductKey,
    pub grace_period_seconds: i64,
    pub suspended_access: bool,
    pub canceled_access: CanceledAccess,
    pub purchase_access_seconds: Option<i64>,
    #[serde(with = "serde_rfc3339")]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
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

/// Sets a product's policy and recomputes its entitlement rows. 201 when created.
async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<String>,
    Body(body): Body<PolicyBody>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    let key =
        ProductKey::parse(&key).map_err(|e| ApiError::invalid("key", format!("`key`: {}", e.0)))?;
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
            "`purchase_access_seconds` must be positive (or null for lifetime access)",
        ));
    }
    let (product, created) = state
        .store
        .put_product(&key, &policy, crate::time_fmt::now())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(product.into())))
}

/// Every configured product. (Products nobody configured use the defaults.)
async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Page<ProductView>>> {
    Ok(Json(Page {
        items: state
            .store
            .products()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        next_cursor: None,
    }))
}

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
