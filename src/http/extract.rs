//! Extractors that answer bad input with problem details naming the field.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `Json<T>` whose rejection is a problem naming the field: 400, 413, or 415
/// when the body is not declared `application/json` (or `application/*+json`).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge {
                    limit: super::JSON_BODY_LIMIT,
                });
            }
            Err(e) => {
                return Err(ApiError::Invalid {
                    field: None,
                    detail: e.body_text(),
                });
            }
        };
        refuse_nul(&bytes)?;
        // Every body here is an object; serde would also read a struct of
        // optional fields from `[]`.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::Invalid {
                field: None,
                detail: "the body must be a JSON object".to_owned(),
            });
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = match (path.as_str(), inner.classify()) {
                (".", _) => missing_field(&inner.to_string()),
                (path, _) => Some(path.to_owned()),
            };
            ApiError::Invalid {
                detail: match &field {
                    Some(field) => format!("`{field}`: {inner}"),
                    None => format!("the body is not valid: {inner}"),
                },
                field,
            }
        })
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.is_char_boundary(subtype.len() - 5)
                && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// A U+0000 in any string or key of a JSON body is a 400 naming where it is:
/// both engines must refuse the same input, and PostgreSQL's text cannot hold it.
/// Only a body that spells `\u0000` somewhere is walked.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    let spelled = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !spelled {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // not JSON: the deserialiser says so, with its position
    };
    match nul_path(&value, String::new()) {
        Some(path) => {
            let field = if path.is_empty() {
                ".".to_owned()
            } else {
                path
            };
            Err(ApiError::Invalid {
                detail: format!("`{field}` may not contain U+0000"),
                field: Some(field),
            })
        }
        None => Ok(()),
    }
}

fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if at.is_empty() {
                k.replace('\0', "\u{FFFD}")
            } else {
                format!("{at}.{}", k.replace('\0', "\u{FFFD}"))
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(v, here)
            }
        }),
        _ => None,
    }
}

/// serde reports a missing field at the parent's path; pull its name out.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// `Query<T>` whose rejection is a 400 problem.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(e) => Err(query_problem(e)),
        }
    }
}

fn query_problem(e: QueryRejection) -> ApiError {
    ApiError::Invalid {
        field: None,
        detail: e.body_text(),
    }
}

/// `#[serde(default, deserialize_with = "whole_number")]` for an optional
/// integer field: JSON Schema counts `5.0` as an integer, so it is read as 5;
/// a fraction or a value beyond `i64` is refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number"))),
    }
}
