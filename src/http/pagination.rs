//! `limit` and `cursor`, shared by every list.

use serde::Serialize;

use super::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A page of a list: `{"items": [...], "next_cursor": null | "..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Reads `limit` (default 50, 1 to 500).
pub fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("`limit` must be an integer from 1 to {MAX_LIMIT}, not {raw:?}"),
            )),
        },
    }
}

/// What every cursor starts with: a value without it was not issued by this
/// server (nor by an earlier version, whose cursors were bare keys).
const CURSOR_PREFIX: &str = "c1.";

/// The shape of every cursor, for the OpenAPI document: the prefix, then the
/// last row's key (ids and product keys share this alphabet).
pub const CURSOR_PATTERN: &str = "^c1\\.[A-Za-z0-9._:-]{1,200}$";

/// A row key as the `next_cursor` clients pass back.
pub fn encode_cursor(key: &str) -> String {
    format!("{CURSOR_PREFIX}{key}")
}

/// Reads `cursor`: a `next_cursor` this server issued (of [`CURSOR_PATTERN`]'s
/// shape), else a 400 naming `cursor`.
pub fn cursor(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    raw.strip_prefix(CURSOR_PREFIX)
        .filter(|key| {
            (1..=200).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                "`cursor` must be a `next_cursor` from a previous page of this list",
            )
        })
}

/// Builds a page from `limit + 1` fetched rows: the extra row says there is a
/// next page, and the last returned row's key is its cursor.
pub fn page<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> String,
    view: impl Fn(R) -> T,
) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|row| encode_cursor(&key(row)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

/// `limit` and `cursor` for a list with no other filters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Pages a short list held in memory, whose rows come sorted by `key`
/// (ascending, or descending when `newest_first`).
pub fn page_loaded<R, T>(
    rows: Vec<R>,
    limit: Option<&str>,
    cursor: Option<&str>,
    newest_first: bool,
    key: impl Fn(&R) -> String,
    view: impl Fn(R) -> T,
) -> Result<Page<T>, ApiError> {
    let limit = self::limit(limit)?;
    let cursor = self::cursor(cursor)?;
    let after = |row: &R| {
        cursor.as_deref().is_none_or(|c| {
            let k = key(row);
            if newest_first {
                k.as_str() < c
            } else {
                k.as_str() > c
            }
        })
    };
    let rows: Vec<R> = rows
        .into_iter()
        .filter(after)
        .take(limit as usize + 1)
        .collect();
    Ok(page(rows, limit, key, view))
}
