//! The operator console at `/console`: server-rendered HTML (maud), no script,
//! every asset from the binary. DESIGN.md "Operator console".
//!
//! Sign-in takes an admin token and opens a session: a random cookie secret
//! (`HttpOnly`, `SameSite=Strict`, `Secure` when `ENTITLED_PUBLIC_URL` is
//! https, path `/console`), stored hashed, ending after 12 h, at sign-out or
//! when its token is deleted. Every form that changes something carries the
//! session's own token and must come from this service's origin (`Origin`,
//! else `Referer`). Every action calls the same function as the API.

mod pages;
mod settings;
mod sources;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use super::AppState;
use super::error::ApiError;
use crate::store::{ConsoleSession, Scope};
use crate::time_fmt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::overview))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", axum::routing::post(sign_out))
        .route("/console/console.css", get(stylesheet))
        .route("/console/icon.svg", get(icon))
        .merge(pages::router())
        .merge(sources::router())
        .merge(settings::router())
}

/// The session cookie's name.
const COOKIE: &str = "entitled_console";

/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

/// A signed-in operator: a live session from the cookie. A request without
/// one is sent to the sign-in page.
pub struct Operator(pub ConsoleSession);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(secret) = cookie(&parts.headers) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        match state.store.console_session(&secret, time_fmt::now()).await {
            Ok(Some(session)) => Ok(Self(session)),
            Ok(None) => Err(Redirect::to("/console/sign-in").into_response()),
            Err(e) => Err(Failure::from(ApiError::from(e)).into_response()),
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A form's fields, as sent (`application/x-www-form-urlencoded`).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// A field's value; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// The origin the console is served from: `ENTITLED_PUBLIC_URL`'s, else
/// `http://` and the request's `Host`.
fn own_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    match &state.settings.public_url {
        Some(url) => Some(origin_of(url)?.to_owned()),
        None => headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|host| format!("http://{host}")),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest_at = url.find("://")? + 3;
    let end = url[rest_at..].find('/').map_or(url.len(), |i| rest_at + i);
    Some(&url[..end])
}

/// Refuses a state-changing request that did not come from the console's own
/// pages: its `Origin` (else `Referer`) must be this service's origin.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Failure> {
    let sent = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(origin_of)
                .map(str::to_owned)
        });
    match (sent, own_origin(state, headers)) {
        (Some(sent), Some(own)) if sent.eq_ignore_ascii_case(&own) => Ok(()),
        _ => Err(Failure::forbidden(
            "This form was not sent from this console's own pages, so it was refused.",
        )),
    }
}

/// Checks a form's `csrf` field against the session, and its origin.
pub fn check_form(
    state: &AppState,
    headers: &HeaderMap,
    session: &ConsoleSession,
    form: &Form,
) -> Result<(), Failure> {
    same_origin(state, headers)?;
    let sent = form.get("csrf").unwrap_or_default();
    if session.csrf.matches(sent.as_bytes()) {
        Ok(())
    } else {
        Err(Failure::forbidden(
            "This form's session token is missing or stale; reload the page and try again.",
        ))
    }
}

/// An error shown as a console page.
pub struct Failure {
    status: StatusCode,
    detail: String,
}

impl Failure {
    fn forbidden(detail: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            detail: detail.to_owned(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let (status, detail) = e.shown();
        Self { status, detail }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::app::Error> for Failure {
    fn from(e: crate::app::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = bare(
            title,
            html! {
                h1 { (title) }
                p role="alert" { (self.detail) }
                p { a href="/console" { "Back to the overview" } }
            },
        );
        (self.status, body).into_response()
    }
}

pub type PageResult = Result<Response, Failure>;

/// The security headers of every console page: nothing from another host, no
/// script, no framing, no caching.
fn page(markup: Markup) -> Response {
    let mut response = markup.into_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page without the navigation (sign-in, errors).
fn bare(title: &str, content: Markup) -> Response {
    page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · entitled" }
                link rel="stylesheet" href="/console/console.css";
                link rel="icon" type="image/svg+xml" href="/console/icon.svg";
            }
            body {
                main id="main" { (content) }
            }
        }
    })
}

/// A signed-in page: navigation, sign-out, then `content`.
pub fn layout(session: &ConsoleSession, title: &str, content: Markup) -> Response {
    page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · entitled" }
                link rel="stylesheet" href="/console/console.css";
                link rel="icon" type="image/svg+xml" href="/console/icon.svg";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    nav aria-label="Console" {
                        a href="/console" { "Overview" }
                        a href="/console/customers" { "Customers" }
                        a href="/console/deliveries" { "Deliveries" }
                        a href="/console/subscriptions" { "Subscriptions" }
                        a href="/console/orders" { "Orders" }
                        a href="/console/integrations" { "Integrations" }
                        a href="/console/products" { "Products" }
                        a href="/console/endpoints" { "Endpoints" }
                        a href="/console/tokens" { "Tokens" }
                    }
                    form method="post" action="/console/sign-out" {
                        (csrf(session))
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    })
}

/// After an action: back to `path` (a console page), which says what was done.
pub fn back_to(path: &str, done: &str) -> Response {
    Redirect::to(&format!("{path}?done={}", pages::segment(done))).into_response()
}

/// The hidden field every state-changing form carries.
/// A filter's labelled `<select>`: "any" (empty), then `options`, the one
/// given `selected`.
pub fn any_of<'a>(
    id: &str,
    name: &str,
    label: &str,
    options: impl IntoIterator<Item = &'a str>,
    selected: Option<&str>,
) -> Markup {
    html! {
        label for=(id) { (label) }
        select id=(id) name=(name) {
            option value="" selected[selected.is_none()] { "any" }
            @for o in options {
                option value=(o) selected[selected == Some(o)] { (o) }
            }
        }
    }
}

pub fn csrf(session: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf.expose()); }
}

fn sign_in_form(error: Option<&str>) -> Response {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in to the entitled console" }
            @if let Some(error) = error {
                p role="alert" class="error" { (error) }
            }
            form method="post" action="/console/sign-in" {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p class="hint" {
                "Use an admin token: the bootstrap token, or one made with "
                code { "POST /v1/admin/tokens" } " and scope " code { "admin" } "."
            }
        },
    )
}

async fn sign_in_page() -> Response {
    sign_in_form(None)
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> PageResult {
    same_origin(&state, &headers)?;
    let form = Form::parse(&body);
    let presented = form.get("token").unwrap_or_default();
    let token = if presented.is_empty() {
        None
    } else {
        state.store.authenticate_token(presented).await?
    };
    let Some(token) = token else {
        let mut response = sign_in_form(Some("That token is not known. Check it and try again."));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    if token.scope != Scope::Admin {
        let mut response = sign_in_form(Some(
            "That is an app token; the console needs an admin token.",
        ));
        *response.status_mut() = StatusCode::FORBIDDEN;
        return Ok(response);
    }
    let now = time_fmt::now();
    let (secret, _) = state
        .store
        .open_console_session(&token.id, now, now + time::Duration::hours(SESSION_HOURS))
        .await?;
    let secure = state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        secret.expose(),
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn sign_out(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    state.store.close_console_session(&session.id).await?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "entitled_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(response)
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
         <rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0a58ca\"/>\
         <path d=\"M4 8l3 3 5-6\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>",
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_url_is_its_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://ops.example.com/console/x"),
            Some("https://ops.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("not a url"), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; entitled_console=abc; b=2"),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("entitled_console="),
        );
        assert_eq!(cookie(&headers), None);
        let long = format!("entitled_console={}", "x".repeat(129));
        headers.insert(header::COOKIE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn form_fields_are_decoded_and_blank_ones_are_absent() {
        let form = Form::parse(b"product=pro&reason=support+ticket%204711&valid_until=+");
        assert_eq!(form.get("product"), Some("pro"));
        assert_eq!(form.get("reason"), Some("support ticket 4711"));
        assert_eq!(form.get("valid_until"), None);
        assert_eq!(form.get("csrf"), None);
    }
}
