//! Entitlement tokens (DESIGN.md "Entitlement tokens"): `POST
//! /v1/access/tokens` signs what a customer is entitled to now into a
//! short-lived Ed25519 JWT; `GET /.well-known/jwks.json` publishes the keys
//! that verify it, offline.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::App;
use super::error::{ApiError, ApiResult, Problem, field};
use super::extract::Body;
use crate::crypto::jws::Jwk;
use crate::domain::access::Reason;
use crate::domain::{Email, Instant, ProductKey};
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/access/tokens", post(mint))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The longest a token may live, and the default.
pub const MAX_TTL_SECONDS: i64 = 3600;
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// The most products one request may name.
pub(super) const MAX_PRODUCTS: usize = 100;

/// Whom to sign for, which products, for how long.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(format = Email, example = "ada@example.com")]
    pub email: String,
    /// Only these products (up to 100); `null` or omitted: every product the
    /// customer is entitled to.
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// Seconds until the token expires, 1 to 3600 (default 300).
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3600, example = 300)]
    pub ttl_seconds: Option<i64>,
}

/// A signed token and when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// A JWT (compact JWS) signed with Ed25519: header `alg` `EdDSA`, `typ`
    /// `JWT`, `kid`; claims `iss`, `sub` (the email), `iat`, `exp` and
    /// `entitlements`.
    pub token: String,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Instant,
}

/// The claims of an entitlement token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenClaims {
    /// `ENTITLED_PUBLIC_URL`.
    pub iss: String,
    /// The customer's email.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The products the customer is entitled to at `iat`.
    pub entitlements: Vec<TokenEntitlement>,
}

/// One product the customer is entitled to, as `GET /v1/access` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEntitlement {
    #[schema(value_type = String)]
    pub product: ProductKey,
    pub reason: Reason,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub valid_until: Option<Instant>,
    #[schema(required = true)]
    pub plan: Option<String>,
}

/// The published keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

fn ttl(raw: Option<i64>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_TTL_SECONDS),
        Some(n) if (1..=MAX_TTL_SECONDS).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "ttl_seconds",
            format!("`ttl_seconds` must be from 1 to {MAX_TTL_SECONDS}, not {n}"),
        )),
    }
}

fn products(raw: Option<&[String]>) -> Result<Option<Vec<ProductKey>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.len() > MAX_PRODUCTS {
        return Err(ApiError::invalid(
            "products",
            format!("`products` may name at most {MAX_PRODUCTS} products"),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, p)| field(&format!("products[{i}]"), p, ProductKey::parse))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Sign a customer's entitlements into a token.
///
/// A JWT signed with Ed25519 that a backend verifies offline against `GET
/// /.well-known/jwks.json`, listing the products the customer is entitled to
/// now (all of them, or those of `products`), each with its reason,
/// `valid_until` and plan. A customer with no source gets a token with no
/// entitlements.
#[utoipa::path(
    post,
    path = "/v1/access/tokens",
    operation_id = "create_entitlement_token",
    tag = "access",
    request_body = TokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token and when it expires", body = TokenAnswer),
        (status = 400, description = "`email`, `products` or `ttl_seconds` is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This replica is still loading its read model (see `/readyz`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn mint(
    State(state): State<AppState>,
    _caller: App,
    Body(body): Body<TokenRequest>,
) -> ApiResult<Json<TokenAnswer>> {
    let email = field("email", &body.email, Email::parse)?;
    let only = products(body.products.as_deref())?;
    let ttl = ttl(body.ttl_seconds)?;
    // `iat` is a NumericDate, whole seconds: the answers are for the exact
    // instant (a grant given this second counts), `exp` is `ttl` after `iat`.
    let now = time_fmt::now();
    let iat = now - time::Duration::nanoseconds(i64::from(now.nanosecond()));
    let exp = iat + time::Duration::seconds(ttl);
    let rows = state.store.entitlement_rows(&email, None).await?;
    let entitlements = super::access::by_product(&rows)
        .into_iter()
        .filter(|(product, _)| only.as_ref().is_none_or(|only| only.contains(product)))
        .filter_map(|(product, rows)| {
            let answer = crate::store::Answer::of(rows, now);
            answer.entitled.then(|| TokenEntitlement {
                product: product.clone(),
                reason: answer.reason,
                valid_until: answer.valid_until,
                plan: answer.plan,
            })
        })
        .collect();
    let claims = TokenClaims {
        iss: state.settings.issuer.clone(),
        sub: email.as_str().to_owned(),
        iat: iat.unix_timestamp(),
        exp: exp.unix_timestamp(),
        entitlements,
    };
    let key = state.store.signing_key(now).await?;
    Ok(Json(TokenAnswer {
        token: key.sign_jwt(&claims),
        expires_at: exp,
    }))
}

/// The keys that verify entitlement tokens.
///
/// A JWK Set (RFC 7517) of Ed25519 public keys (`kty` `OKP`, `crv`
/// `Ed25519`), each named by the `kid` its tokens carry: the current key,
/// and retired keys until every token they signed has expired. No
/// authentication.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "access",
    responses(
        (status = 200, description = "The published keys", body = JwkSet),
    )
)]
async fn jwks(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let keys = state.store.published_keys(time_fmt::now()).await?;
    Ok((
        // Verifiers fetch again when a token names a `kid` they lack.
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(JwkSet { keys }),
    ))
}
