//! Bearer-token authentication and scopes, as extractors: a handler that takes
//! `Admin` or `App` cannot run for a caller without that scope.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::store::{Scope, Token};

async fn caller(parts: &Parts, state: &AppState) -> Result<Token, ApiError> {
    let presented = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    state
        .store
        .authenticate_token(presented)
        .await?
        .ok_or(ApiError::Unauthorized)
}

async fn require(parts: &Parts, state: &AppState, scope: Scope) -> Result<Token, ApiError> {
    let token = caller(parts, state).await?;
    if token.scope.covers(scope) {
        Ok(token)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A caller with the `admin` scope.
pub struct Admin(#[allow(dead_code)] pub Token);

/// A caller with the `app` scope (or `admin`, which reaches everything).
pub struct App(#[allow(dead_code)] pub Token);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, Scope::Admin).await.map(Admin)
    }
}

impl FromRequestParts<AppState> for App {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, Scope::App).await.map(App)
    }
}
