//! `/v1/admin/tokens`: API tokens, shown once, stored hashed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiResult, Problem};
use super::extract::{Body, Params};
use super::pagination::{Page, Paging, page_loaded};
use crate::app;
use crate::domain::Instant;
use crate::secret::Secret;
use crate::store::{Scope, Token};
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tokens", get(list).post(create))
        .route("/v1/admin/tokens/{id}", delete(remove))
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// What the token is for (1 to 200 characters).
    name: String,
    scope: Scope,
}

/// A token, without its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_at: t.created_at,
        }
    }
}

/// A new token: the only time its value is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Present it as `Authorization: Bearer <token>`. Not retrievable later.
    pub token: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
}

/// Create an API token.
///
/// Creates a token with scope `app` (access checks, customer entitlements,
/// order registration) or `admin` (everything). Its value is shown in this
/// answer only; it is stored hashed.
#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = NewToken,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The token, with its value", body = CreatedToken),
        (status = 400, description = "`name` or `scope` is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Body(body): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            app::tokens::create(
                &state.store,
                token_name(&body.name)?,
                body.scope,
                time_fmt::now(),
            )
            .await?
            .into(),
        ),
    ))
}

/// A token's name, checked.
pub(super) fn token_name(raw: &str) -> ApiResult<&str> {
    super::rules::text("name", raw, super::rules::MAX_NAME)
}

/// A token just made, with its value: shown once.
impl From<(Token, Secret)> for CreatedToken {
    fn from((token, value): (Token, Secret)) -> Self {
        Self {
            id: token.id,
            name: token.name,
            scope: token.scope,
            token: value.expose().to_owned(),
            created_at: token.created_at,
        }
    }
}

/// List API tokens.
///
/// Every token, oldest first, without values.
#[utoipa::path(
    get,
    path = "/v1/admin/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    params(Paging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tokens", body = Page<TokenView>),
        (status = 400, description = "`limit` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(paging): Params<Paging>,
) -> ApiResult<Json<Page<TokenView>>> {
    Ok(Json(page_loaded(
        state.store.tokens().await?,
        paging.limit.as_deref(),
        paging.cursor.as_deref(),
        false,
        |t| t.id.clone(),
        Into::into,
    )?))
}

/// Delete an API token.
///
/// Deletes a token; it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/admin/tokens/{id}",
    operation_id = "delete_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::tokens::delete(&state.store, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
