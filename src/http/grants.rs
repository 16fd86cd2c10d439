//! `/v1/admin/grants`: entitlements given by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params};
use super::pagination::Page;
use crate::domain::{Email, Instant, ProductKey};
use crate::store::Grant;
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/grants", get(list).post(create))
        .route("/v1/admin/grants/{id}", delete(revoke))
}

/// A grant to create. `valid_from` defaults to now; no `valid_until` is for ever.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    email: String,
    product: String,
    #[serde(default, with = "serde_rfc3339::option")]
    valid_from: Option<Instant>,
    #[serde(default, with = "serde_rfc3339::option")]
    valid_until: Option<Instant>,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    email: Option<String>,
}

/// A grant.
#[derive(Debug, Serialize)]
pub struct GrantView {
    pub id: String,
    pub email: Email,
    pub product: ProductKey,
    #[serde(with = "serde_rfc3339")]
    pub valid_from: Instant,
    #[serde(with = "serde_rfc3339::option")]
    pub valid_until: Option<Instant>,
    pub reason: String,
    #[serde(with = "serde_rfc3339")]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339::option")]
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

/// Grants a customer a product by hand (reason `grant` in access answers).
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Body(body): Body<NewGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", format!("`email`: {e}")))?;
    let product =
        ProductKey::parse(&body.product).map_err(|e| ApiError::invalid("product", format!("`product`: {e}")))?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "`reason` must say why (1 to 500 characters)",
        ));
    }
    let now = time_fmt::now();
    let valid_from = body.valid_from.unwrap_or(now);
    if body.valid_until.is_some_and(|until| until <= valid_from) {
        return Err(ApiError::invalid(
            "valid_until",
            "`valid_until` must be after `valid_from`",
        ));
    }
    let grant = state
        .store
        .create_grant(&email, &product, valid_from, body.valid_until, reason, now)
        .await?;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

/// Grants, newest first, revoked ones included; `email` narrows to one customer.
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<GrantView>>> {
    let email = query
        .email
        .as_deref()
        .map(|raw| Email::parse(raw).map_err(|e| ApiError::invalid("email", format!("`email`: {e}"))))
        .transpose()?;
    Ok(Json(Page {
        items: state
            .store
            .grants(email.as_ref())
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        next_cursor: None,
    }))
}

/// Revokes a grant. The row stays, with `revoked_at` set; access checks answer
/// `revoked` if nothing else grants the product.
async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantView>> {
    let grant = state
        .store
        .revoke_grant(&id, time_fmt::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no grant {id:?}")))?;
    Ok(Json(grant.into()))
}
