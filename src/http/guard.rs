//! What every request can rely on, enforced before any handler runs: a bounded
//! header block (431), a bounded body read within its deadline (413, 408), no
//! U+0000 in the query or the path (400 naming the parameter), every error a
//! problem document (405 with `Allow` included), and a panic answered with a 500.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::error::ApiError;

/// The largest header block accepted (names, values and their separators).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long a request may take to arrive, headers and body.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// When the first byte of a request arrived, set by the connection layer so the
/// body's deadline counts from the start of the request, not of the handler.
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub tokio::time::Instant);

/// The largest body a path takes: webhooks their configured limit, the rest of
/// the API [`super::JSON_BODY_LIMIT`].
fn body_limit(state: &AppState, path: &str) -> usize {
    if path.starts_with("/v1/webhooks/") {
        state.settings.max_body_bytes
    } else {
        super::JSON_BODY_LIMIT
    }
}

/// Runs before routing: headers, query, body; then makes any error a problem.
pub async fn limits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    as_problem(&method, response)
}

async fn check(state: &AppState, request: Request) -> Result<Request, ApiError> {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    if let Some(query) = request.uri().query() {
        refuse_nul_in_query(query)?;
    }
    let limit = body_limit(state, request.uri().path());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let (parts, body) = request.into_parts();
    if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        return Ok(Request::from_parts(parts, body));
    }
    let started = parts
        .extensions
        .get::<RequestStarted>()
        .map_or_else(tokio::time::Instant::now, |s| s.0);
    let bytes = read_body(body, limit, started + REQUEST_DEADLINE).await?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The whole body, at most `limit` bytes, by `deadline`.
async fn read_body(
    body: Body,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge { limit })
        }
        Ok(Err(_)) => Err(ApiError::Invalid {
            field: None,
            detail: "the request body could not be read".to_owned(),
        }),
    }
}

/// A U+0000 in any query parameter (name or value) is a 400 naming it.
fn refuse_nul_in_query(query: &str) -> Result<(), ApiError> {
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name.contains('\0') || value.contains('\0') {
            let name = name.replace('\0', "\u{FFFD}");
            return Err(ApiError::invalid(
                &name,
                format!("`{name}` may not contain U+0000"),
            ));
        }
    }
    Ok(())
}

/// Runs after routing: a U+0000 in a path segment is a 400 naming the path
/// parameter it fills (the route template says which).
pub async fn path_params(matched: MatchedPath, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.contains('%') {
        let template = matched.as_str().split('/');
        for (segment, pattern) in path.split('/').zip(template) {
            let decoded = percent_encoding::percent_decode_str(segment).collect::<Vec<u8>>();
            if decoded.contains(&0) {
                let name = pattern
                    .strip_prefix('{')
                    .and_then(|p| p.strip_suffix('}'))
                    .unwrap_or("path");
                return ApiError::invalid(name, format!("`{name}` may not contain U+0000"))
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// An error answered by the framework rather than a handler (405, a 400 from an
/// extractor) gets a problem body too; headers such as `Allow` are kept.
fn as_problem(method: &axum::http::Method, response: Response) -> Response {
    let status = response.status();
    // A problem already, or an error page of the console (which answers
    // people in a browser in HTML).
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{method} is not allowed here; allowed: {allow}")
        }
        other => other
            .canonical_reason()
            .unwrap_or("the request could not be answered")
            .to_owned(),
    };
    let problem = super::error::Problem::for_status(status, detail);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The answer to a panic in a handler: a 500 problem; the panic is logged
/// (its message only: it never carries a secret the service holds).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_owned());
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::Panicked.into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("a handler that panics")
    }

    #[tokio::test]
    async fn a_panic_is_answered_with_a_500_problem() {
        let router = Router::new().route("/boom", get(boom)).layer(
            tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        );
        let response = router
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 500);
        assert_eq!(problem["type"], "urn:entitled:problem:internal");
        assert!(
            !problem["detail"].as_str().unwrap().contains("panics"),
            "the panic message is logged, not shown: {problem}"
        );
    }

    #[test]
    fn nul_in_a_query_names_the_parameter() {
        let e = refuse_nul_in_query("a=1&b=x%00y").unwrap_err();
        assert!(matches!(e, ApiError::Invalid { field: Some(f), .. } if f == "b"));
        assert!(
            refuse_nul_in_query("a=1&b=%2500").is_ok(),
            "an escaped percent is not NUL"
        );
    }
}
