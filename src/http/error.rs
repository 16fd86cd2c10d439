//! Every error the API answers, mapped to RFC 9457 problem details in exactly
//! one place. Internal errors are logged here and never shown to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::Outcome;
use crate::store::StoreError;

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:entitled:problem:not-found`.
    #[serde(rename = "type")]
    #[schema(example = "urn:entitled:problem:invalid-request")]
    pub kind: String,
    /// A short, fixed summary of the kind of problem.
    #[schema(example = "Invalid request")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request.
    #[schema(example = "`email` is required")]
    pub detail: String,
    /// The request field the problem is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, example = "email")]
    pub field: Option<String>,
    /// For a `malformed` webhook delivery: the stored delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub delivery_id: Option<String>,
    /// For a `malformed` webhook delivery: `malformed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Outcome)]
    pub outcome: Option<Outcome>,
}

/// An error a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Invalid {
        field: Option<String>,
        detail: String,
    },
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("webhook authentication failed")]
    WebhookUnauthorized,
    #[error("this token's scope does not reach this endpoint")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the request did not arrive within 30 seconds")]
    RequestTimeout,
    #[error("the body must be `application/json`")]
    UnsupportedMediaType,
    #[error("an internal error occurred; it has been logged")]
    Panicked,
    #[error("{detail}")]
    Malformed {
        field: Option<String>,
        detail: String,
        delivery_id: String,
    },
    #[error("storage is unavailable; try again")]
    Unavailable,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 about one request field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.to_owned()),
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    fn problem(&self) -> (StatusCode, Problem) {
        let (status, slug, title) = match self {
            Self::Invalid { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::WebhookUnauthorized => (
                StatusCode::UNAUTHORIZED,
                "webhook-unauthorized",
                "Webhook authentication failed",
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::Panicked => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            Self::Malformed { .. } => (
                StatusCode::BAD_REQUEST,
                "malformed",
                "Malformed webhook payload",
            ),
            Self::Unavailable
            | Self::Store(StoreError::NotReady)
            | Self::Store(StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
            | Self::Store(StoreError::Contention(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Storage unavailable",
            ),
            Self::Store(StoreError::Changed(_)) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        };
        let detail = match self {
            Self::Store(StoreError::NotReady) => {
                "this replica is still loading from storage; try again".to_owned()
            }
            Self::Store(StoreError::Changed(detail)) => detail.clone(),
            // Never show storage internals.
            Self::Store(_) if status == StatusCode::SERVICE_UNAVAILABLE => {
                "storage is unavailable; try again".to_owned()
            }
            Self::Store(_) => "an internal error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let (field, delivery_id, outcome) = match self {
            Self::Invalid { field, .. } => (field.clone(), None, None),
            Self::Malformed {
                field, delivery_id, ..
            } => (
                field.clone(),
                Some(delivery_id.clone()),
                Some(Outcome::Malformed),
            ),
            _ => (None, None, None),
        };
        (
            status,
            Problem {
                kind: format!("urn:entitled:problem:{slug}"),
                title: title.to_owned(),
                status: status.as_u16(),
                detail,
                field,
                delivery_id,
                outcome,
            },
        )
    }
}

impl Problem {
    /// A problem for a status the framework answered (405, 404 …), with no field.
    pub fn for_status(status: StatusCode, detail: String) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        Self {
            kind: format!("urn:entitled:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            field: None,
            delivery_id: None,
            outcome: None,
        }
    }
}

impl ApiError {
    /// The status and the detail a client is shown (the console shows them
    /// as a page); storage errors are logged here as for the API.
    pub fn shown(&self) -> (StatusCode, String) {
        self.log();
        let (status, problem) = self.problem();
        (status, problem.detail)
    }

    /// Logs what storage answered, as what it is: a write refused because
    /// what it rested on changed (a 409 by design) is a conflict, a replica
    /// still loading is a warning, and only a genuine storage fault is an
    /// error. Client errors are not logged.
    fn log(&self) {
        match self {
            Self::Store(StoreError::Changed(detail)) => {
                tracing::info!(detail = %detail, "conflict: what the request rested on changed");
            }
            Self::Store(e @ StoreError::NotReady) => {
                tracing::warn!(error = %e, "request refused: the read model is still loading");
            }
            Self::Store(e) => tracing::error!(error = %e, "request failed in storage"),
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem) = self.problem();
        self.log();
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Checks an optional filter against an enum's names; otherwise a 400 that
/// names the filter and lists them.
pub fn one_of<T: Copy>(
    name: &str,
    raw: Option<&str>,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<(), ApiError> {
    match raw {
        Some(raw) if !all.iter().any(|v| as_str(*v) == raw) => {
            let names: Vec<_> = all.iter().map(|v| as_str(*v)).collect();
            Err(ApiError::invalid(
                name,
                format!("`{name}` must be one of {}, not {raw:?}", names.join(", ")),
            ))
        }
        _ => Ok(()),
    }
}

/// [`field`] for an optional request field: `None` when absent.
pub fn opt_field<T>(
    name: &str,
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, crate::domain::InvalidValue>,
) -> Result<Option<T>, ApiError> {
    raw.map(|raw| field(name, raw, parse)).transpose()
}

/// Parses one request field into a domain value; otherwise a 400 naming it.
pub fn field<T>(
    name: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, crate::domain::InvalidValue>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|e| ApiError::invalid(name, format!("`{name}`: {e}")))
}

/// A use case's refusal, as the API answers it.
impl From<crate::app::Error> for ApiError {
    fn from(e: crate::app::Error) -> Self {
        use crate::app::Error;
        match e {
            Error::Invalid { field, detail } => Self::invalid(field, detail),
            Error::NotFound(what) => Self::NotFound(what),
            Error::Conflict(what) => Self::Conflict(what),
            Error::Store(e) => Self::Store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the logs said while `f` ran, one line per event.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_changed_precondition_is_logged_as_a_conflict_not_an_error() {
        let error = ApiError::Store(StoreError::Changed(
            "the policy of `pro` changed while the rebuild compared".into(),
        ));
        let said = logged(|| {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::CONFLICT);
        });
        assert!(said.contains("INFO") && said.contains("conflict"), "{said}");
        assert!(said.contains("the policy of `pro` changed"), "{said}");
        assert!(!said.contains("ERROR"), "{said}");
        assert!(!said.contains("request failed in storage"), "{said}");
    }

    #[test]
    fn a_storage_fault_is_logged_as_an_error() {
        let said = logged(|| {
            let response = ApiError::Store(StoreError::Corrupt("bad row".into())).into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        });
        assert!(said.contains("ERROR"), "{said}");
        assert!(said.contains("request failed in storage"), "{said}");
        assert!(said.contains("bad row"), "{said}");
    }

    #[test]
    fn the_console_logs_as_the_api_does() {
        let said = logged(|| {
            let (status, _) = ApiError::Store(StoreError::Changed("moved".into())).shown();
            assert_eq!(status, StatusCode::CONFLICT);
        });
        assert!(said.contains("INFO") && !said.contains("ERROR"), "{said}");
    }

    #[test]
    fn client_errors_are_not_logged() {
        let said = logged(|| {
            let _ = ApiError::invalid("email", "`email` is required").into_response();
            let _ = ApiError::Conflict("already registered".into()).into_response();
        });
        assert!(said.is_empty(), "{said}");
    }
}
