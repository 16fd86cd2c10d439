//! `/v1/admin/tokens`: API tokens, shown once, stored hashed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::pagination::Page;
use crate::domain::Instant;
use crate::secret::Secret;
use crate::store::{Scope, Token};
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tokens", get(list).post(create))
        .route("/v1/admin/tokens/{id}", delete(remove))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: Scope,
}

/// A token, without its value.
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    #[serde(with = "serde_rfc3339")]
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
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Present it as `Authorization: Bearer <token>`. Not retrievable later.
    pub token: String,
    #[serde(with = "serde_rfc3339")]
    pub created_at: Instant,
}

/// Creates a token with scope `app` (access checks, customer entitlements,
/// order registration) or `admin` (everything).
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Body(body): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "`name` must be 1 to 200 characters"));
    }
    let value = Secret::generate("ent_");
    let token = state
        .store
        .create_token(name, body.scope, &value, time_fmt::now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: token.id,
            name: token.name,
            scope: token.scope,
            token: value.expose().to_owned(),
            created_at: token.created_at,
        }),
    ))
}

/// Every token, without values.
async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Page<TokenView>>> {
    Ok(Json(Page {
        items: state.store.tokens().await?.into_iter().map(Into::into).collect(),
        next_cursor: None,
    }))
}

/// Deletes a token; it stops working at once.
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_token(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token {id:?}")))
    }
}
