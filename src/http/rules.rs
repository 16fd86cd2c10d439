//! Every rule the server enforces on a request, written into the OpenAPI
//! document, so that a request valid under the document is never refused for
//! its shape. The derive macros describe types; the rules that live in the
//! domain's parsers (an email, a product key, an integration id, a signing
//! secret), in the extractors (no U+0000 anywhere, instants in range) and in
//! the handlers (text lengths) are stated here, once, from the same constants.

use serde_json::{Map, Value, json};

use crate::domain::{Email, IntegrationId, MAX_EMAIL_BYTES, ProductKey};

use super::pagination::CURSOR_PATTERN;

/// Any string without U+0000: what every free-text input must be.
pub const NO_NUL: &str = "^[^\\x00]*$";

/// Free text a person types (a token's name, a grant's reason, an order id):
/// no control character, and something besides spaces. The handler drops
/// surrounding spaces.
pub const TEXT: &str = "^[^\\x00-\\x1f\\x7f]*[^\\x00-\\x20\\x7f][^\\x00-\\x1f\\x7f]*$";

/// An RFC 3339 date-time the server accepts. The server takes 1970-01-01 to
/// 9999-12-31T23:59:59Z in UTC, with any offset; the pattern states a range
/// that is valid whatever the offset (1971 to 9998) and only days every such
/// month has (29 February is left out), so everything it admits is accepted.
pub const DATE_TIME: &str = "^(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// A Zeno Bank signing secret: `whsec_` (which may be left out) and base64
/// of at least one byte, padded or not.
pub const SIGNING_SECRET: &str = "^(whsec_)?(([A-Za-z0-9+/]{4})+([A-Za-z0-9+/]{2}(==)?|[A-Za-z0-9+/]{3}=?)?|[A-Za-z0-9+/]{2}(==)?|[A-Za-z0-9+/]{3}=?)$";

/// Any other provider's shared secret: at least 8 characters, no control
/// character, no space or control character at either end.
pub const SHARED_SECRET: &str = "^[^\\x00-\\x20\\x7f][^\\x00-\\x1f\\x7f]{6,}[^\\x00-\\x20\\x7f]$";

/// The change log's cursors name a sequence number.
pub const CHANGES_CURSOR_PATTERN: &str = "^c1\\.[0-9]{1,18}$";

/// The longest integration id, in characters, as [`IntegrationId::PATTERN`]
/// spells it (a test holds the pattern and the parser to it).
pub const MAX_INTEGRATION_ID: usize = 64;

/// An integration id wherever one is taken (a body field, a path or query
/// parameter): the domain's pattern and its lengths.
fn integration_id() -> Value {
    json!({"pattern": IntegrationId::PATTERN, "minLength": 1, "maxLength": MAX_INTEGRATION_ID})
}

/// The longest token name, grant reason and external order id, in characters.
pub const MAX_NAME: usize = 200;
pub const MAX_REASON: usize = 500;
pub const MAX_EXTERNAL_ID: usize = 200;

/// Reads a free-text field under [`TEXT`] and `max` characters; the value
/// without its surrounding spaces, else a 400 naming the field.
pub fn text<'a>(field: &str, raw: &'a str, max: usize) -> Result<&'a str, super::ApiError> {
    let control = |c: char| c <= '\x1f' || c == '\x7f';
    if raw.chars().any(control) {
        return Err(super::ApiError::invalid(
            field,
            format!("`{field}` may not contain a control character"),
        ));
    }
    let trimmed = raw.trim_matches(' ');
    if trimmed.is_empty() || raw.chars().count() > max {
        return Err(super::ApiError::invalid(
            field,
            format!("`{field}` must be 1 to {max} characters, not only spaces"),
        ));
    }
    Ok(trimmed)
}

/// Writes the rules into a generated document.
pub fn state(doc: &mut Value) {
    unsupported_media_type(doc);
    named_formats(doc);
    body_fields(doc);
    parameters(doc);
    let inputs: Vec<String> = input_components(doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().flat_map(operations) {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(schema) = parameter.get_mut("schema") {
                    inputs_only(schema);
                }
            }
            if let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            {
                for media in content.values_mut() {
                    if let Some(schema) = media.get_mut("schema") {
                        inputs_only(schema);
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in inputs {
            if let Some(schema) = schemas.get_mut(&name) {
                inputs_only(schema);
            }
        }
    }
}

/// Every operation with a JSON body (the webhook aside, which takes any) may
/// answer 415.
fn unsupported_media_type(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if path.starts_with("/v1/webhooks/") {
            continue;
        }
        for operation in operations(item) {
            let takes_json = operation
                .pointer("/requestBody/content/application~1json")
                .is_some();
            if let (true, Some(Value::Object(responses))) =
                (takes_json, operation.get_mut("responses"))
            {
                responses.insert(
                    "415".into(),
                    json!({
                        "description": "The body is not `application/json` (or `application/*+json`)",
                        "content": {"application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }}
                    }),
                );
            }
        }
    }
}

fn operations(path_item: &mut Value) -> impl Iterator<Item = &mut Value> {
    path_item
        .as_object_mut()
        .into_iter()
        .flat_map(|item| item.iter_mut())
        .filter(|(method, _)| {
            matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
            )
        })
        .map(|(_, operation)| operation)
}

/// `format: email` (requests and answers alike) is the domain's email rule,
/// not RFC 5321's.
fn named_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("email") {
                map.remove("format");
                map.insert("pattern".into(), json!(Email::PATTERN));
                map.insert("maxLength".into(), json!(MAX_EMAIL_BYTES));
            }
            map.values_mut().for_each(named_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(named_formats),
        _ => {}
    }
}

fn set(schema: &mut Value, rules: Value) {
    if let (Some(schema), Value::Object(rules)) = (schema.as_object_mut(), rules) {
        schema.extend(rules);
    }
}

/// The request bodies' own rules, field by field.
fn body_fields(doc: &mut Value) {
    let schemas = "/components/schemas";
    let product_key = json!({"pattern": ProductKey::PATTERN});
    let text = |max: usize| json!({"pattern": TEXT, "minLength": 1, "maxLength": max});
    for (pointer, rules) in [
        ("/NewGrant/properties/product", product_key.clone()),
        ("/NewGrant/properties/reason", text(MAX_REASON)),
        ("/Registration/properties/integration", integration_id()),
        ("/Registration/properties/product", product_key.clone()),
        (
            "/Registration/properties/external_id",
            text(MAX_EXTERNAL_ID),
        ),
        ("/NewToken/properties/name", text(MAX_NAME)),
        (
            "/IntegrationBody/properties/product_map/additionalProperties",
            product_key.clone(),
        ),
        (
            "/EndpointBody/properties/url",
            json!({"pattern": super::endpoints::URL_PATTERN, "maxLength": super::endpoints::MAX_URL}),
        ),
        (
            "/EndpointBody/properties/products/items",
            product_key.clone(),
        ),
        ("/TokenRequest/properties/products/items", product_key),
        (
            "/TokenRequest/properties/products",
            json!({"maxItems": super::entitlement_tokens::MAX_PRODUCTS}),
        ),
    ] {
        if let Some(schema) = doc.pointer_mut(&format!("{schemas}{pointer}")) {
            set(schema, rules);
        }
    }
    // The secret's form depends on the provider: a JSON Schema conditional.
    if let Some(Value::Object(body)) = doc.pointer_mut(&format!("{schemas}/IntegrationBody")) {
        body.insert(
            "if".into(),
            json!({"properties": {"provider": {"const": "zenobank"}}, "required": ["provider"]}),
        );
        body.insert(
            "then".into(),
            json!({"properties": {"secret": {"pattern": SIGNING_SECRET}}}),
        );
        body.insert(
            "else".into(),
            json!({"properties": {"secret": {"pattern": SHARED_SECRET}}}),
        );
        if let Some(Value::Object(secret)) =
            body.get_mut("properties").and_then(|p| p.get_mut("secret"))
        {
            secret.insert("minLength".into(), json!(1));
            secret.insert("pattern".into(), json!(NO_NUL));
        }
    }
}

/// Parameters whose values the server parses: product keys, integration ids
/// (and endpoint ids, the same slugs), cursors.
fn parameters(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let path = path.clone();
        for operation in operations(item) {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                let place = parameter["in"].as_str().unwrap_or_default().to_owned();
                let rules = match (place.as_str(), name.as_str()) {
                    ("query", "cursor") if path == "/v1/admin/changes" => {
                        Some(json!({"pattern": CHANGES_CURSOR_PATTERN}))
                    }
                    ("query", "cursor") => Some(json!({"pattern": CURSOR_PATTERN})),
                    ("query", "product") => Some(json!({"pattern": ProductKey::PATTERN})),
                    ("path", "key") if path.starts_with("/v1/admin/products/") => {
                        Some(json!({"pattern": ProductKey::PATTERN}))
                    }
                    // Integration ids, and endpoint ids (the same slugs).
                    ("query" | "path", "integration") => Some(integration_id()),
                    ("path", "id")
                        if path.starts_with("/v1/admin/integrations/")
                            || path.starts_with("/v1/admin/endpoints/") =>
                    {
                        Some(integration_id())
                    }
                    _ => None,
                };
                if let (Some(rules), Some(schema)) = (rules, parameter.get_mut("schema")) {
                    set(schema, rules);
                }
                // An absent header is how a header is optional: its value is
                // an integer, never `null`.
                if (place.as_str(), name.as_str()) == ("header", "Last-Event-ID")
                    && let Some(schema) = parameter.get_mut("schema")
                {
                    set(schema, json!({"type": "integer"}));
                }
            }
        }
    }
}

/// The components request bodies name.
fn input_components(doc: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return names;
    };
    for item in paths.values().filter_map(Value::as_object) {
        for operation in item.values() {
            if let Some(content) = operation
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
            {
                for media in content.values() {
                    if let Some(name) = media
                        .pointer("/schema/$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        names.push(name.to_owned());
                    }
                }
            }
        }
    }
    names
}

/// In an input: a free string refuses U+0000, a date-time is in range.
fn inputs_only(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if is_string(map) && !map.contains_key("enum") && !map.contains_key("const") {
        match map.get("format").and_then(Value::as_str) {
            Some("date-time") => {
                map.insert("pattern".into(), json!(DATE_TIME));
            }
            _ if !map.contains_key("pattern") => {
                map.insert("pattern".into(), json!(NO_NUL));
            }
            _ => {}
        }
    }
    for key in ["properties"] {
        if let Some(Value::Object(properties)) = map.get_mut(key) {
            properties.values_mut().for_each(inputs_only);
        }
    }
    for key in ["additionalProperties", "propertyNames", "items"] {
        if let Some(inner) = map.get_mut(key) {
            inputs_only(inner);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(items)) = map.get_mut(key) {
            items.iter_mut().for_each(inputs_only);
        }
    }
}

fn is_string(map: &Map<String, Value>) -> bool {
    match map.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integration_id_lengths_are_the_parsers_and_the_patterns() {
        let longest = "a".repeat(MAX_INTEGRATION_ID);
        assert!(IntegrationId::parse(&longest).is_ok());
        assert!(IntegrationId::parse(&format!("{longest}a")).is_err());
        assert!(IntegrationId::parse("").is_err());
        assert!(
            IntegrationId::PATTERN.ends_with(&format!("{{1,{MAX_INTEGRATION_ID}}}$")),
            "{}",
            IntegrationId::PATTERN
        );
    }
}
