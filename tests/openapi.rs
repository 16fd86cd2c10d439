//! The OpenAPI document: the committed `openapi/openapi.json` is exactly what
//! the code generates (so any API change shows up in review), the router serves
//! it and the Swagger UI from the binary, it documents every route of
//! DESIGN.md's table and only routes the router really has, and every operation
//! is described and names the bearer scheme exactly when it needs a token.
//! The rules it states are the server's (integration ids here), and its links
//! lead from real answers to the resources they name.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::{Db, TestApp};
use entitled::domain::IntegrationId;

on_both_databases!(
    an_integration_id_is_refused_wherever_it_is_taken_as_the_document_states,
    the_links_lead_from_real_answers_to_the_resources_they_name,
);

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

/// Every place the document takes an integration id: `(operation, where)`.
fn integration_id_schemas(document: &Value) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for (key, operation) in operations(document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["name"] == "integration" {
                found.insert(
                    format!("{key} {}", parameter["in"].as_str().unwrap()),
                    parameter["schema"].clone(),
                );
            }
        }
    }
    found.insert(
        "POST /v1/orders body".to_owned(),
        document["components"]["schemas"]["Registration"]["properties"]["integration"].clone(),
    );
    found
}

#[test]
fn every_integration_id_the_document_takes_states_the_servers_rule() {
    let document = generated();
    let found = integration_id_schemas(&document);
    for place in [
        "POST /v1/webhooks/{integration} path",
        "GET /v1/admin/orders query",
        "GET /v1/admin/subscriptions query",
        "GET /v1/admin/deliveries query",
        "POST /v1/orders body",
    ] {
        assert!(found.contains_key(place), "{place} not found in {found:#?}");
    }
    for (place, schema) in &found {
        assert_eq!(schema["type"], "string", "{place}: {schema}");
        assert_eq!(
            schema["pattern"],
            IntegrationId::PATTERN,
            "{place}: {schema}"
        );
        assert_eq!(schema["minLength"], 1, "{place}: {schema}");
        assert_eq!(schema["maxLength"], 64, "{place}: {schema}");
    }
    // The ids of integrations and endpoints in paths, too.
    for key in [
        "GET /v1/admin/integrations/{id}",
        "PUT /v1/admin/integrations/{id}",
        "DELETE /v1/admin/integrations/{id}",
        "PUT /v1/admin/endpoints/{id}",
    ] {
        let operations = operations(&document);
        let id = operations[key]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "id")
            .unwrap();
        assert_eq!(id["schema"]["pattern"], IntegrationId::PATTERN, "{key}");
        assert_eq!(id["schema"]["maxLength"], 64, "{key}");
    }
}

async fn an_integration_id_is_refused_wherever_it_is_taken_as_the_document_states(app: TestApp) {
    let made = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop-pay",
            Some(
                serde_json::json!({"provider": "zaypay", "secret": "zaypay-url-token-0123456789"}),
            ),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let order = |integration: &str| {
        serde_json::json!({
            "integration": integration,
            "external_id": "zp-1",
            "email": "ada@example.com",
            "product": "pro",
        })
    };
    let too_long = "a".repeat(65);
    // Not an id at all: refused for its shape, naming the field.
    for integration in ["", "Shop-Pay", "shop pay", "shop/pay", too_long.as_str()] {
        let reply = app
            .admin(Method::POST, "/v1/orders", Some(order(integration)))
            .await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some("integration"));
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("not an integration id"),
            "{integration:?}: {detail}"
        );
    }
    // An id, but of no integration: refused too, naming the field.
    let reply = app
        .admin(Method::POST, "/v1/orders", Some(order("no-such-one")))
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("integration"));
    let orders = app.admin(Method::GET, "/v1/admin/orders", None).await;
    assert_eq!(
        orders.body["items"],
        serde_json::json!([]),
        "nothing registered"
    );

    let registered = app
        .admin(Method::POST, "/v1/orders", Some(order("shop-pay")))
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    assert_eq!(registered.body["integration"], "shop-pay");
    assert_eq!(registered.body["state"], "pending");

    // The lists' `integration` filters: the same rule, a 400 naming it.
    for list in ["orders", "subscriptions", "deliveries"] {
        for bad in ["", "Shop", "shop%20pay", too_long.as_str()] {
            let reply = app
                .admin(
                    Method::GET,
                    &format!("/v1/admin/{list}?integration={bad}"),
                    None,
                )
                .await;
            reply.assert_problem(StatusCode::BAD_REQUEST, Some("integration"));
        }
        let other = app
            .admin(
                Method::GET,
                &format!("/v1/admin/{list}?integration=no-such-one"),
                None,
            )
            .await;
        assert_eq!(other.status, StatusCode::OK, "{list}: {:?}", other.body);
        assert_eq!(other.body["items"], serde_json::json!([]), "{list}");
    }
    let mine = app
        .admin(Method::GET, "/v1/admin/orders?integration=shop-pay", None)
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{:?}", mine.body);
    assert_eq!(mine.body["items"][0]["id"], registered.body["id"]);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);

    // A webhook to something that is not an id: no such integration.
    let reply = app
        .webhook(
            "/v1/webhooks/Shop-Pay?token=zaypay-url-token-0123456789",
            &[],
            "{}",
        )
        .await;
    reply.assert_problem(StatusCode::NOT_FOUND, None);
}

/// The schema a `$response.body#/...` pointer reaches in `schema`, following
/// `$ref`s, object properties and array items (a number names an item).
fn schema_at<'a>(document: &'a Value, mut schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    for segment in pointer.split('/').skip(1) {
        while let Some(reference) = schema["$ref"].as_str() {
            schema = document.pointer(reference.strip_prefix('#')?)?;
        }
        schema = if segment.parse::<usize>().is_ok() {
            schema.get("items")?
        } else {
            schema["properties"].get(segment).or_else(|| {
                schema["allOf"]
                    .as_array()?
                    .iter()
                    .find_map(|part| schema_at(document, part, &format!("/{segment}")))
            })?
        };
    }
    Some(schema)
}

#[test]
fn every_link_names_an_operation_and_fills_its_path_from_what_the_answer_has() {
    let document = generated();
    let all = operations(&document);
    let by_id: BTreeMap<&str, (&str, &Value)> = all
        .iter()
        .map(|(key, operation)| {
            let id = operation["operationId"].as_str().unwrap();
            (id, (key.as_str(), *operation))
        })
        .collect();
    let path_parameters = |operation: &Value| -> BTreeSet<String> {
        operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut links = BTreeSet::new();
    for (key, operation) in &all {
        for (status, response) in operation["responses"].as_object().unwrap() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap();
                let (target_key, target_operation) = by_id
                    .get(target)
                    .unwrap_or_else(|| panic!("{key} {status} {name}: no operation {target}"));
                links.insert(format!(
                    "{} -> {target}",
                    operation["operationId"].as_str().unwrap()
                ));
                let filled: BTreeSet<String> = link["parameters"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                assert_eq!(
                    filled,
                    path_parameters(target_operation),
                    "{key} {status} {name}: every path parameter of {target_key}, nothing else"
                );
                for (parameter, expression) in link["parameters"].as_object().unwrap() {
                    let expression = expression.as_str().unwrap();
                    if let Some(source) = expression.strip_prefix("$request.path.") {
                        assert!(
                            path_parameters(operation).contains(source),
                            "{key} {status} {name}.{parameter}: {key} has no path parameter {source}"
                        );
                    } else if let Some(pointer) = expression.strip_prefix("$response.body#") {
                        let schema = &response["content"]["application/json"]["schema"];
                        let reached = schema_at(&document, schema, pointer).unwrap_or_else(|| {
                            panic!(
                                "{key} {status} {name}.{parameter}: {pointer} is not in the answer"
                            )
                        });
                        assert_eq!(
                            reached["type"], "string",
                            "{key} {status} {name}.{parameter}"
                        );
                    } else {
                        panic!("{key} {status} {name}.{parameter}: {expression}");
                    }
                }
            }
        }
    }
    for expected in [
        "put_integration -> get_integration",
        "create_token -> delete_token",
        "create_grant -> revoke_grant",
        "register_order -> get_order",
        "put_product -> get_product",
        "put_endpoint -> get_endpoint",
        "list_subscriptions -> get_subscription",
        "list_deliveries -> get_delivery",
    ] {
        assert!(links.contains(expected), "no link {expected}: {links:#?}");
    }
}

/// Evaluates a link's runtime expression against the request and its answer.
fn evaluate(expression: &str, request_path: &BTreeMap<&str, &str>, answer: &Value) -> String {
    if let Some(name) = expression.strip_prefix("$request.path.") {
        return request_path[name].to_owned();
    }
    let pointer = expression.strip_prefix("$response.body#").unwrap();
    answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} not in {answer}"))
        .to_owned()
}

/// Follows every link of `from`'s `status` answer, as a stateful client
/// would: each target answers 2xx (or what `expect` says) for the resource.
async fn follow(
    app: &TestApp,
    document: &Value,
    from: &str,
    status: u16,
    request_path: &[(&str, &str)],
    answer: &Value,
    expect: &[(&str, StatusCode)],
) -> BTreeSet<String> {
    let request_path: BTreeMap<&str, &str> = request_path.iter().copied().collect();
    let operations = operations(document);
    let (_, operation) = operations
        .iter()
        .find(|(_, op)| op["operationId"] == from)
        .unwrap();
    let mut followed = BTreeSet::new();
    for (name, link) in operation["responses"][status.to_string()]["links"]
        .as_object()
        .unwrap_or_else(|| panic!("{from} {status} has no links"))
    {
        let target = link["operationId"].as_str().unwrap();
        let (key, _) = operations
            .iter()
            .find(|(_, op)| op["operationId"] == target)
            .unwrap();
        let (method, template) = key.split_once(' ').unwrap();
        let mut path = template.to_owned();
        for (parameter, expression) in link["parameters"].as_object().unwrap() {
            let value = evaluate(expression.as_str().unwrap(), &request_path, answer);
            path = path.replace(&format!("{{{parameter}}}"), &common::urlencode(&value));
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method == Method::POST).then(|| serde_json::json!({}));
        let reply = app.admin(method, &path, body).await;
        let want = expect.iter().find(|(t, _)| *t == target).map(|(_, s)| *s);
        match want {
            Some(want) => assert_eq!(
                reply.status, want,
                "{from} -> {name} {path}: {:?}",
                reply.body
            ),
            None => assert!(
                reply.status.is_success(),
                "{from} -> {name} {path}: {} {:?}",
                reply.status,
                reply.body
            ),
        }
        followed.insert(target.to_owned());
    }
    followed
}

async fn the_links_lead_from_real_answers_to_the_resources_they_name(app: TestApp) {
    let document = generated();
    let integration = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/shop-pay",
            Some(
                serde_json::json!({"provider": "zaypay", "secret": "zaypay-url-token-0123456789"}),
            ),
        )
        .await;
    assert_eq!(integration.status, StatusCode::CREATED);
    let followed = follow(
        &app,
        &document,
        "put_integration",
        201,
        &[("id", "shop-pay")],
        &integration.body,
        // Deleting it is a link too; it answers 204.
        &[],
    )
    .await;
    assert!(followed.contains("get_integration") && followed.contains("delete_integration"));
    let gone = app
        .admin(Method::GET, "/v1/admin/integrations/shop-pay", None)
        .await;
    gone.assert_problem(StatusCode::NOT_FOUND, None);

    let token = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(serde_json::json!({"name": "backend", "scope": "app"})),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED);
    follow(&app, &document, "create_token", 201, &[], &token.body, &[]).await;
    let tokens = app.admin(Method::GET, "/v1/admin/tokens", None).await;
    assert!(
        !tokens.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == token.body["id"]),
        "the linked DELETE removed the token: {:?}",
        tokens.body
    );

    let grant = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(
                serde_json::json!({"email": "ada@example.com", "product": "pro", "reason": "comp"}),
            ),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{:?}", grant.body);
    let followed = follow(&app, &document, "create_grant", 201, &[], &grant.body, &[]).await;
    assert!(followed.contains("revoke_grant") && followed.contains("get_customer"));
    let grants = app
        .admin(
            Method::GET,
            "/v1/admin/grants?email=ada%40example.com",
            None,
        )
        .await;
    assert!(
        grants.body["items"][0]["revoked_at"].is_string(),
        "{:?}",
        grants.body
    );

    app.admin(
        Method::PUT,
        "/v1/admin/integrations/shop-pay",
        Some(serde_json::json!({"provider": "zaypay", "secret": "zaypay-url-token-0123456789"})),
    )
    .await;
    let order = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(serde_json::json!({
                "integration": "shop-pay", "external_id": "zp-1",
                "email": "bea@example.com", "product": "pro",
            })),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.body);
    let followed = follow(
        &app,
        &document,
        "register_order",
        201,
        &[],
        &order.body,
        &[],
    )
    .await;
    assert!(followed.contains("get_order"));
    let orders = app.admin(Method::GET, "/v1/admin/orders", None).await;
    follow(&app, &document, "list_orders", 200, &[], &orders.body, &[]).await;
}
