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
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            // Whether the body is JSON at all decides whether a field is to
            // blame: serde may stop at a field before it reaches what makes
            // the body not JSON (`{"a": 1} and more`), and calls some wrong
            // types a syntax error (`1` where an enum's name belongs).
            match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Err(not_json) => body_problem(None, not_json),
                Ok(_) => body_problem(Some(&e.path().to_string()), e.into_inner()),
            }
        })?;
        // Nothing but whitespace may follow the object.
        de.end().map_err(|e| body_problem(None, e))?;
        Ok(Body(value))
    }
}

/// A body serde could not read: 400 naming the field to blame, if one is.
/// A body that is not JSON (`path` `None`) names none: serde's path there is
/// where the parser stood, `?` when it had not read a key yet.
fn body_problem(path: Option<&str>, inner: serde_json::Error) -> ApiError {
    let field = match path {
        None => None,
        Some(".") => missing_field(&inner.to_string()),
        Some(path) if path.split(['.', '[']).any(|segment| segment == "?") => None,
        Some(path) => Some(path.to_owned()),
    };
    ApiError::Invalid {
        detail: match &field {
            Some(field) => format!("`{field}`: {inner}"),
            None => format!("the body is not valid: {inner}"),
        },
        field,
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
        // The body itself is a string: no field to name.
        Some(path) if path.is_empty() => Err(ApiError::Invalid {
            detail: "the body may not contain U+0000".to_owned(),
            field: None,
        }),
        Some(field) => Err(ApiError::Invalid {
            detail: format!("`{field}` may not contain U+0000"),
            field: Some(field),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Grant {
        email: String,
        days: Option<i64>,
        scope: Option<Scope>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Scope {
        App,
    }

    /// The field a body's problem names, or `Ok` when the body was read.
    async fn named(body: &str) -> Result<(), Option<String>> {
        let request = Request::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        match Body::<Grant>::from_request(request, &()).await {
            Ok(_) => Ok(()),
            Err(ApiError::Invalid { field, detail }) => {
                assert!(!detail.is_empty());
                Err(field)
            }
            Err(other) => panic!("{body:?}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_names_no_field() {
        for body in [
            "not json",
            "{x}",
            "{\"email\": ",
            "{\"email\": \"a@b.c\", ",
            "{\"email\" \"a@b.c\"}",
            "",
            "[]",
            "\"\\u0000\"",
            "{\"email\": \"a@b.c\"} trailing",
            "{\"days\": 1} trailing",
            "{\"email\": 5, ",
        ] {
            assert_eq!(named(body).await, Err(None), "{body:?}");
        }
    }

    #[tokio::test]
    async fn a_json_body_with_a_bad_field_names_it() {
        for (body, field) in [
            ("{}", "email"),
            ("{\"email\": 5}", "email"),
            ("{\"email\": \"a@b.c\", \"days\": \"3\"}", "days"),
            ("{\"email\": \"a\\u0000@b.c\"}", "email"),
            // serde calls a number where an enum's name belongs a syntax error.
            ("{\"email\": \"a@b.c\", \"scope\": 1}", "scope"),
            ("{\"email\": \"a@b.c\", \"scope\": \"root\"}", "scope"),
        ] {
            assert_eq!(named(body).await, Err(Some(field.to_owned())), "{body:?}");
        }
        assert_eq!(named("{\"email\": \"a@b.c\"}").await, Ok(()));
    }
}
