//! The OpenAPI document: the committed `openapi/openapi.json` is exactly what
//! the code generates (so any API change shows up in review), the router serves
//! it and the Swagger UI from the binary, it documents every route of
//! DESIGN.md's table and only routes the router really has, and every operation
//! is described and names the bearer scheme exactly when it needs a token.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::{Db, TestApp};

const REGENERATE: &str = "cargo run -q -- openapi > openapi/openapi.json";

/// Every route of DESIGN.md's "HTTP API (v1)" table, as `METHOD path`.
const DESIGN_ROUTES: &[&str] = &[
    "POST /v1/webhooks/{integration}",
    "GET /v1/access",
    "GET /v1/customers/{email}/entitlements",
    "POST /v1/access/tokens",
    "GET /.well-known/jwks.json",
    "POST /v1/orders",
    "PUT /v1/admin/integrations/{id}",
    "GET /v1/admin/integrations",
    "GET /v1/admin/integrations/{id}",
    "DELETE /v1/admin/integrations/{id}",
    "PUT /v1/admin/products/{key}",
    "POST /v1/admin/products/{key}/preview",
    "POST /v1/admin/rebuild",
    "GET /v1/admin/products",
    "GET /v1/admin/products/{key}",
    "GET /v1/admin/subscriptions",
    "GET /v1/admin/subscriptions/{id}",
    "GET /v1/admin/orders",
    "GET /v1/admin/orders/{id}",
    "POST /v1/admin/grants",
    "GET /v1/admin/grants",
    "DELETE /v1/admin/grants/{id}",
    "GET /v1/admin/deliveries",
    "GET /v1/admin/deliveries/{id}",
    "POST /v1/admin/deliveries/{id}/replay",
    "GET /v1/admin/customers/{email}",
    "POST /v1/admin/tokens",
    "GET /v1/admin/tokens",
    "DELETE /v1/admin/tokens/{id}",
    "GET /v1/admin/changes",
    "GET /v1/events",
    "PUT /v1/admin/endpoints/{id}",
    "GET /v1/admin/endpoints",
    "GET /v1/admin/endpoints/{id}",
    "DELETE /v1/admin/endpoints/{id}",
    "POST /v1/admin/endpoints/{id}/rotate-secret",
    "POST /v1/admin/endpoints/{id}/test",
    "GET /v1/admin/endpoints/{id}/messages",
    "POST /v1/admin/endpoints/{id}/messages/{message}/resend",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
];

/// Routes that take no bearer token: provider-authenticated or public.
fn is_public(path: &str) -> bool {
    !path.starts_with("/v1/") || path.starts_with("/v1/webhooks/")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document, by `METHOD path`.
fn operations(document: &Value) -> BTreeMap<String, &Value> {
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                operations.insert(format!("{} {path}", method.to_uppercase()), operation);
            }
        }
    }
    operations
}

fn generated() -> Value {
    serde_json::from_str(&entitled::http::openapi::json()).expect("the document is JSON")
}

async fn get(app: &TestApp, method: Method, path: &str) -> (StatusCode, String, Bytes) {
    let response = app
        .router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .or_else(|| response.headers().get(header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, content_type, body)
}

#[test]
fn committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; generate it with `{REGENERATE}`"));
    let generated = entitled::http::openapi::json();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi/openapi.json is not the generated document (first difference at line {}:\n  committed: {:?}\n  generated: {:?}).\nThe API changed: regenerate it with `{REGENERATE}` and review the diff.",
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn json_is_pretty_stable_and_ends_with_a_newline() {
    let json = entitled::http::openapi::json();
    assert_eq!(json, entitled::http::openapi::json());
    assert!(json.ends_with("}\n") && !json.ends_with("\n\n"));
    assert!(
        json.starts_with("{\n  \"openapi\": \"3.1.0\""),
        "{}",
        &json[..80]
    );
    assert_eq!(entitled::http::openapi::document_value(), generated());
}

#[tokio::test]
async fn served_document_equals_the_generated_one_and_lists_every_design_route() {
    let app = TestApp::start(Db::Sqlite).await.unwrap();
    let (status, content_type, body) = get(&app, Method::GET, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        std::str::from_utf8(&body).expect("UTF-8"),
        entitled::http::openapi::json(),
        "GET /openapi.json must serve the generated document byte for byte"
    );

    let document: Value = serde_json::from_slice(&body).unwrap();
    let documented: BTreeSet<String> = operations(&document).into_keys().collect();
    let expected: BTreeSet<String> = DESIGN_ROUTES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(
        documented, expected,
        "documented operations (left) differ from DESIGN.md's routes (right)"
    );
}

/// Every documented operation is a real route: none falls through to the
/// router's fallback or answers 405, and the bearer-guarded ones answer 401
/// without a token while the others do not.
#[tokio::test]
async fn every_documented_operation_is_routed_and_guarded_as_documented() {
    let app = TestApp::start(Db::Sqlite).await.unwrap();
    let document = generated();
    for (key, operation) in operations(&document) {
        let (method, template) = key.split_once(' ').unwrap();
        let path: String = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "nobody"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _, body) = get(&app, method, &path).await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{key}: not routed");
        assert!(
            !(status == StatusCode::NOT_FOUND && body["detail"] == "no such endpoint"),
            "{key}: not routed"
        );
        let guarded = operation.get("security").is_some();
        assert_eq!(
            status == StatusCode::UNAUTHORIZED,
            guarded,
            "{key}: answered {status} without a token, documented {}",
            if guarded {
                "as bearer-guarded"
            } else {
                "as public"
            }
        );
        let documented = operation["responses"]
            .get(status.as_str())
            .is_some_and(|r| r.is_object());
        assert!(
            documented,
            "{key}: answered {status}, which it does not document"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_without_a_token() {
    let app = TestApp::start(Db::Sqlite).await.unwrap();

    let (status, location, _) = get(&app, Method::GET, "/docs").await;
    assert!(status.is_redirection(), "/docs answered {status}");
    assert_eq!(location, "/docs/");

    let (status, content_type, body) = get(&app, Method::GET, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = String::from_utf8_lossy(&body).to_lowercase();
    assert!(html.contains("swagger"), "{html}");
    // Every asset is relative, served from the binary: no CDN.
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "{html}"
    );

    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    ] {
        assert!(html.contains(asset), "index.html should load {asset}");
        let (status, _, body) = get(&app, Method::GET, &format!("/docs/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(body.len() > 1000, "{asset} is only {} bytes", body.len());
    }

    let (status, _, body) = get(&app, Method::GET, "/docs/swagger-initializer.js").await;
    assert_eq!(status, StatusCode::OK);
    let initializer = String::from_utf8_lossy(&body);
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    assert!(
        !initializer.contains("validator.swagger.io"),
        "the UI must not call the online validator: {initializer}"
    );
}

#[test]
fn every_operation_is_described_and_names_bearer_exactly_when_it_needs_a_token() {
    let document = generated();
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");

    let mut ids = HashSet::new();
    let tags: HashSet<&str> = document["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for (key, operation) in operations(&document) {
        let path = key.split_once(' ').unwrap().1;
        let text = |field: &str| operation[field].as_str().unwrap_or("").trim().to_owned();
        assert!(
            !text("summary").is_empty() || !text("description").is_empty(),
            "{key} has neither summary nor description"
        );
        let id = text("operationId");
        assert!(
            !id.is_empty() && ids.insert(id.clone()),
            "{key}: operationId {id:?}"
        );
        let tag = operation["tags"][0].as_str().unwrap_or_default();
        assert!(tags.contains(tag), "{key}: tag {tag:?} is not declared");

        if is_public(path) {
            assert!(operation.get("security").is_none(), "{key} needs no token");
        } else {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}]),
                "{key} needs a bearer token"
            );
            assert!(operation["responses"].get("401").is_some(), "{key}: 401");
        }
        if path.starts_with("/v1/admin/") {
            assert!(operation["responses"].get("403").is_some(), "{key}: 403");
        }

        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status.starts_with('3')),
            "{key} documents no success"
        );
        for (status, response) in responses {
            assert!(
                !response["description"].as_str().unwrap_or("").is_empty(),
                "{key} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{key} {status}: errors are problem documents"
                );
            }
        }
    }
}
