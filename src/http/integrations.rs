//! `/v1/admin/integrations`: configured webhook sources.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Body, Params};
use super::pagination::{Page, Paging, page_loaded};
use crate::domain::{Instant, IntegrationId, ProductKey, Provider};
use crate::secret::Secret;
use crate::store::{Integration, IntegrationPut, MAX_KEEP_PREVIOUS_SECRET_SECONDS};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/integrations", get(list))
        .route(
            "/v1/admin/integrations/{id}",
            get(show).put(put).delete(delete),
        )
}

/// Create or replace an integration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IntegrationBody {
    #[schema(value_type = Provider)]
    provider: String,
    /// The provider's webhook secret (Zeno Bank: the `whsec_` signing secret).
    /// Stored; never returned.
    #[schema(write_only)]
    secret: String,
    /// The provider's product or plan ids mapped to product keys.
    #[serde(default)]
    product_map: BTreeMap<String, String>,
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    enabled: bool,
    /// When `secret` replaces another, accept the replaced one too for this
    /// many seconds (a provider's key rotation, a changed Basic password),
    /// replacing any previous secret held. 0 or absent: hold none.
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    #[schema(minimum = 0, maximum = 2592000, example = 86400)]
    keep_previous_secret_seconds: Option<i64>,
}

fn enabled_by_default() -> bool {
    true
}

/// An integration as shown: never with its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    pub id: String,
    pub provider: Provider,
    pub product_map: BTreeMap<String, String>,
    pub enabled: bool,
    /// Until when the replaced secret is still accepted; null when none is
    /// held. The secret itself is never shown.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub previous_secret_until: Option<Instant>,
    /// Where the provider should POST: relative to this service's base URL.
    pub webhook_path: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Instant,
}

impl From<Integration> for IntegrationView {
    fn from(i: Integration) -> Self {
        Self {
            previous_secret_until: i.previous_secret_until(crate::time_fmt::now()),
            webhook_path: format!("/v1/webhooks/{}", i.id),
            id: i.id.to_string(),
            provider: i.provider,
            product_map: i
                .product_map
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect(),
            enabled: i.enabled,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// Create or replace an integration.
///
/// Creates the integration, or replaces it (secret included). 201 when created.
/// With `keep_previous_secret_seconds`, a replaced secret is still accepted for
/// that long. No secret is ever returned.
#[utoipa::path(
    put,
    path = "/v1/admin/integrations/{id}",
    operation_id = "put_integration",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id, also the last segment of its webhook URL")),
    request_body = IntegrationBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = IntegrationView),
        (status = 201, description = "Created", body = IntegrationView),
        (status = 400, description = "The id or a field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Body(body): Body<IntegrationBody>,
) -> ApiResult<(StatusCode, Json<IntegrationView>)> {
    let id =
        IntegrationId::parse(&id).map_err(|e| ApiError::invalid("id", format!("`id`: {}", e.0)))?;
    let provider = Provider::parse(&body.provider).ok_or_else(|| {
        ApiError::invalid(
            "provider",
            format!(
                "`provider` must be one of zenofy, zid, zenobank, zaypay, not {:?}",
                body.provider
            ),
        )
    })?;
    crate::providers::check_secret(provider, &body.secret)
        .map_err(|detail| ApiError::invalid("secret", detail))?;
    let keep_previous_secret_seconds = match body.keep_previous_secret_seconds {
        None => 0,
        Some(n @ 0..=MAX_KEEP_PREVIOUS_SECRET_SECONDS) => n,
        Some(n) => {
            return Err(ApiError::invalid(
                "keep_previous_secret_seconds",
                format!(
                    "`keep_previous_secret_seconds` must be from 0 to {MAX_KEEP_PREVIOUS_SECRET_SECONDS} (30 days), not {n}"
                ),
            ));
        }
    };
    let product_map = body
        .product_map
        .iter()
        .map(|(external, key)| {
            ProductKey::parse(key)
                .map(|key| (external.clone(), key))
                .map_err(|e| {
                    let field = format!("product_map.{external}");
                    ApiError::invalid(&field, format!("`{field}`: {}", e.0))
                })
        })
        .collect::<Result<_, _>>()?;
    let (integration, created) = crate::app::integrations::put(
        &state.store,
        &id,
        &IntegrationPut {
            provider,
            secret: &Secret::new(body.secret),
            product_map: &product_map,
            enabled: body.enabled,
            keep_previous_secret_seconds,
        },
        crate::time_fmt::now(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(integration.into())))
}

/// List integrations.
///
/// All integrations, by id.
#[utoipa::path(
    get,
    path = "/v1/admin/integrations",
    operation_id = "list_integrations",
    tag = "integrations",
    params(Paging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of integrations", body = Page<IntegrationView>),
        (status = 400, description = "`limit` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(paging): Params<Paging>,
) -> ApiResult<Json<Page<IntegrationView>>> {
    Ok(Json(page_loaded(
        state.store.integrations().await?,
        paging.limit.as_deref(),
        paging.cursor.as_deref(),
        false,
        |i| i.id.to_string(),
        Into::into,
    )?))
}

/// Show one integration.
///
/// The integration without its secret.
#[utoipa::path(
    get,
    path = "/v1/admin/integrations/{id}",
    operation_id = "get_integration",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id, also the last segment of its webhook URL")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The integration", body = IntegrationView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such integration", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationView>> {
    let integration = state
        .store
        .integration(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration {id:?}")))?;
    Ok(Json(integration.into()))
}

/// Delete an integration.
///
/// Deletes the integration: its URL stops accepting deliveries (404). What it
/// delivered (deliveries, subscriptions, history, entitlements) stays.
#[utoipa::path(
    delete,
    path = "/v1/admin/integrations/{id}",
    operation_id = "delete_integration",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id, also the last segment of its webhook URL")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such integration", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    crate::app::integrations::delete(&state.store, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
