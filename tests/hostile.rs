//! Hostile input over HTTP, on both databases: one test per class of attack the
//! hardening issue found. Each asserts the status, the problem naming the field,
//! that nothing was stored, and that the service still answers.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{SECRET, TestApp, fixture_json, urlencode};
use serde_json::{Value, json};

on_both_databases!(
    instants_at_the_upper_bound_are_answered_and_beyond_it_refused,
    instants_before_1970_are_refused_and_the_epoch_is_rfc3339,
    a_period_ending_at_the_upper_bound_saturates_the_grace,
    a_period_end_beyond_the_upper_bound_is_malformed,
    nul_in_a_webhook_field_is_malformed_naming_it,
    nul_in_query_path_and_body_is_400_naming_the_field_alike,
    nul_in_a_webhook_path_without_credentials_is_400,
    the_kelvin_sign_is_not_k,
    control_characters_and_long_emails_are_refused,
    framework_errors_are_problems,
    json_endpoints_take_json_only,
    a_body_that_is_not_json_is_a_problem_naming_no_field,
    a_cursor_the_server_did_not_issue_is_400,
    oversized_headers_are_431,
    metrics_are_prometheus_text_with_bounded_labels,
);

const ACTIVATED: &str = "zenofy/subscription.activated.json";

fn activation(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut json = fixture_json(ACTIVATED);
    edit(&mut json);
    serde_json::to_vec(&json).unwrap()
}

async fn count(app: &TestApp, list: &str) -> usize {
    let reply = app
        .admin(Method::GET, &format!("/v1/admin/{list}?limit=500"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().len()
}

/// The stored delivery a webhook answer names.
async fn delivery_of(app: &TestApp, reply: &common::Reply) -> common::Reply {
    let id = reply.body["delivery_id"].as_str().expect("a delivery id");
    app.admin(Method::GET, &format!("/v1/admin/deliveries/{id}"), None)
        .await
}

async fn still_answers(app: &TestApp) {
    let reply = app.access("buyer@example.com", "pro", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

async fn instants_at_the_upper_bound_are_answered_and_beyond_it_refused(app: TestApp) {
    let reply = app
        .access("a@b.c", "pro", Some("9999-12-31T23:59:59Z"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["at"], "9999-12-31T23:59:59Z");
    for at in [
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.5Z",
        "+10000-01-01T00:00:00Z",
    ] {
        app.access("a@b.c", "pro", Some(at))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some("at"));
        app.admin(
            Method::GET,
            &format!("/v1/customers/a@b.c/entitlements?at={}", urlencode(at)),
            None,
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("at"));
    }
    let before = count(&app, "grants").await;
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "a@b.c", "product": "pro", "reason": "x",
                        "valid_until": "9999-12-31T23:59:59-01:00"})),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("valid_until"));
    assert_eq!(count(&app, "grants").await, before, "nothing stored");
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "a@b.c", "product": "pro", "reason": "x",
                        "valid_until": "9999-12-31T23:59:59Z"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let access = app.access("a@b.c", "pro", None).await;
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["valid_until"], "9999-12-31T23:59:59Z");
}

async fn instants_before_1970_are_refused_and_the_epoch_is_rfc3339(app: TestApp) {
    for at in [
        "0000-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "-0001-12-31T23:00:00Z",
    ] {
        app.access("a@b.c", "pro", Some(at))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some("at"));
    }
    let reply = app
        .access("a@b.c", "pro", Some("1970-01-01T01:00:00+01:00"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["at"], "1970-01-01T00:00:00Z");
}

async fn a_period_ending_at_the_upper_bound_saturates_the_grace(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .zenofy(activation(|j| {
            j["currentPeriodEnd"] = json!("9999-12-31T23:59:59Z");
        }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let access = app
        .access("buyer@example.com", "pro", Some("9999-12-31T23:59:59Z"))
        .await;
    assert_eq!(access.body["entitled"], false, "{:?}", access.body);
    let access = app
        .access("buyer@example.com", "pro", Some("9999-12-31T23:59:58Z"))
        .await;
    assert_eq!(access.body["entitled"], true, "{:?}", access.body);
    assert_eq!(access.body["reason"], "active", "{:?}", access.body);
    assert_eq!(access.body["valid_until"], "9999-12-31T23:59:59Z");
    let customer = app
        .admin(Method::GET, "/v1/admin/customers/buyer@example.com", None)
        .await;
    assert_eq!(customer.status, StatusCode::OK, "{:?}", customer.body);
}

async fn a_period_end_beyond_the_upper_bound_is_malformed(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .zenofy(activation(|j| {
            j["currentPeriodEnd"] = json!("9999-12-31T23:59:59-01:00");
        }))
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("currentPeriodEnd"));
    assert_eq!(reply.body["outcome"], "malformed");
    assert_eq!(count(&app, "subscriptions").await, 0, "no subscription");
    let delivery = delivery_of(&app, &reply).await;
    assert_eq!(delivery.body["outcome"], "malformed", "{:?}", delivery.body);
    still_answers(&app).await;
}

async fn nul_in_a_webhook_field_is_malformed_naming_it(app: TestApp) {
    app.zenofy_integration().await;
    for field in ["customerEmail", "subscriptionId", "event", "productId"] {
        let body = activation(|j| {
            let value = j[field].as_str().unwrap().to_owned();
            j[field] = json!(format!("{}\u{0}{}", &value[..2], &value[2..]));
        });
        let reply = app.zenofy(body.clone()).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
        assert_eq!(reply.body["outcome"], "malformed", "{field}");
        let delivery = delivery_of(&app, &reply).await;
        assert_eq!(delivery.status, StatusCode::OK, "{:?}", delivery.body);
        assert_eq!(
            delivery.body["body"].as_str().unwrap().as_bytes(),
            &body[..],
            "the raw body is stored byte for byte"
        );
    }
    assert_eq!(count(&app, "subscriptions").await, 0, "no subscription");
    let reply = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            activation(|j| j["order"]["customer"]["email"] = json!("x\u{0}@y.z")),
        )
        .await;
    // A field the adapter does not read is left alone: the body is stored as sent.
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    still_answers(&app).await;
}

async fn nul_in_query_path_and_body_is_400_naming_the_field_alike(app: TestApp) {
    for (path, field) in [
        ("/v1/access?email=kate%00@example.com&product=pro", "email"),
        (
            "/v1/access?email=kate@example.com&product=p%00ro",
            "product",
        ),
        ("/v1/admin/subscriptions?email=a%00@b.c", "email"),
        ("/v1/admin/subscriptions?integration=a%00b", "integration"),
        ("/v1/admin/deliveries?integration=a%00b", "integration"),
        ("/v1/admin/orders?state=paid%00", "state"),
        ("/v1/admin/grants?email=a%00@b.c", "email"),
        ("/v1/admin/subscriptions/a%00b", "id"),
        ("/v1/admin/orders/a%00b", "id"),
        ("/v1/admin/deliveries/a%00b", "id"),
        ("/v1/admin/integrations/a%00b", "id"),
        ("/v1/admin/products/a%00b", "key"),
        ("/v1/admin/customers/a%00@b.c", "email"),
        ("/v1/customers/a%00@b.c/entitlements", "email"),
    ] {
        app.admin(Method::GET, path, None)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "a@b.c", "product": "pro", "reason": "comp\u{0}"})),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("reason"));
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/integrations/zen",
            Some(json!({"provider": "zenofy", "secret": "s3cret-s3cret",
                        "product_map": {"a\u{0}": "pro"}})),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("product_map.a\u{FFFD}"));
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "x\u{0}", "scope": "app"})),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("name"));
    assert_eq!(count(&app, "grants").await, 0);
    assert_eq!(count(&app, "integrations").await, 0);
    assert_eq!(count(&app, "tokens").await, 1, "only the bootstrap token");
    still_answers(&app).await;
}

async fn nul_in_a_webhook_path_without_credentials_is_400(app: TestApp) {
    let reply = app.webhook("/v1/webhooks/a%00b", &[], "{}").await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("integration"));
    let reply = app
        .webhook("/v1/webhooks/zenofy?token=a%00", &[], "{}")
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("token"));
    assert_eq!(count(&app, "deliveries").await, 0, "nothing stored");
}

/// Within the fixture's period.
const IN_PERIOD: Option<&str> = Some("2026-05-15T00:00:00Z");

async fn the_kelvin_sign_is_not_k(app: TestApp) {
    app.zenofy_integration().await;
    let reply = app
        .zenofy(activation(|j| {
            j["customerEmail"] = json!("kate@example.com")
        }))
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let kelvin = "\u{212A}ate@example.com";
    let access = app.access(kelvin, "pro", IN_PERIOD).await;
    assert_eq!(access.status, StatusCode::OK, "{:?}", access.body);
    assert_eq!(access.body["email"], kelvin);
    assert_eq!(access.body["entitled"], false, "{:?}", access.body);
    assert_eq!(access.body["reason"], "no_entitlement");
    assert_eq!(
        app.access("KATE@example.com", "pro", IN_PERIOD).await.body["entitled"],
        true
    );

    let reply = app
        .zenofy(activation(|j| {
            j["customerEmail"] = json!("\u{212A}ATE@Example.com");
            j["subscriptionId"] = json!("sub-kelvin");
        }))
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
    let kelvins = app
        .admin(
            Method::GET,
            &format!("/v1/admin/subscriptions?email={}", urlencode(kelvin)),
            None,
        )
        .await;
    let items = kelvins.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", kelvins.body);
    assert_eq!(items[0]["email"], "\u{212A}ate@example.com");
    let kates = app
        .admin(
            Method::GET,
            "/v1/admin/subscriptions?email=kate@example.com",
            None,
        )
        .await;
    assert_eq!(kates.body["items"].as_array().unwrap().len(), 1);
    // The dotted capital I is not folded either.
    let reply = app.access("\u{130}da@example.com", "pro", None).await;
    assert_eq!(reply.body["email"], "\u{130}da@example.com");
}

async fn control_characters_and_long_emails_are_refused(app: TestApp) {
    let long = format!("{}@example.com", "a".repeat(320));
    for email in [
        "a\u{1}@b.c",
        "a\u{7f}@b.c",
        "a\u{1f}b@c.d",
        long.as_str(),
        "@b.c",
        "a@",
        "ab.c",
    ] {
        app.access(email, "pro", None)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some("email"));
    }
    let at_limit = format!("{}@example.com", "a".repeat(320 - "@example.com".len()));
    let reply = app
        .access(&format!(" {} ", &at_limit[2..]), "pro", None)
        .await;
    assert_eq!(reply.body["email"], at_limit[2..], "{:?}", reply.body);
    app.access(&format!(" {at_limit} "), "pro", None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("email"));
    let reply = app.access(&at_limit, "pro", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["email"], at_limit);
    app.zenofy_integration().await;
    let reply = app
        .zenofy(activation(|j| j["customerEmail"] = json!("a\u{1b}@b.c")))
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("customerEmail"));
    assert_eq!(count(&app, "subscriptions").await, 0);
}

async fn framework_errors_are_problems(app: TestApp) {
    let reply = app.admin(Method::DELETE, "/v1/access", None).await;
    reply.assert_problem(StatusCode::METHOD_NOT_ALLOWED, None);
    let allow = app
        .router
        .clone()
        .oneshot_raw(
            Request::builder()
                .method(Method::PATCH)
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(allow.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allowed = allow
        .headers()
        .get("allow")
        .expect("Allow")
        .to_str()
        .unwrap();
    assert!(allowed.contains("GET"), "{allowed}");
    let reply = app.admin(Method::GET, "/v2/nothing", None).await;
    reply.assert_problem(StatusCode::NOT_FOUND, None);
}

async fn json_endpoints_take_json_only(app: TestApp) {
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/admin/grants")
            .header("authorization", format!("Bearer {}", common::ADMIN_TOKEN));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let body = json!({"email": "a@b.c", "product": "pro", "reason": "x"}).to_string();
        let reply = app.send(request.body(Body::from(body)).unwrap()).await;
        reply.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
    }
    assert_eq!(count(&app, "grants").await, 0, "nothing stored");
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/admin/grants")
        .header("authorization", format!("Bearer {}", common::ADMIN_TOKEN))
        .header(
            "content-type",
            "application/merge-patch+json; charset=utf-8",
        )
        .body(Body::from(
            json!({"email": "a@b.c", "product": "pro", "reason": "x"}).to_string(),
        ))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::CREATED);
    // Webhooks take any content type: providers choose it.
    app.zenofy_integration().await;
    let reply = app
        .webhook(
            "/v1/webhooks/zenofy",
            &[("content-type", "text/plain"), ("x-webhook-secret", SECRET)],
            activation(|_| {}),
        )
        .await;
    assert_eq!(reply.body["outcome"], "applied", "{:?}", reply.body);
}

/// A body that is not JSON (or not all of it) is a 400 about the body: it
/// names no field (not `?`, where the parser stood), on every JSON endpoint.
async fn a_body_that_is_not_json_is_a_problem_naming_no_field(app: TestApp) {
    let endpoints = [
        (Method::POST, "/v1/admin/grants"),
        (Method::POST, "/v1/orders"),
        (Method::PUT, "/v1/admin/products/pro"),
        (Method::PUT, "/v1/admin/integrations/zen"),
        (Method::POST, "/v1/admin/tokens"),
        (Method::POST, "/v1/admin/rebuild"),
    ];
    let bodies = [
        "not json",
        "{x}",
        "{\"email\": ",
        "{'email': 'a@b.c'}",
        "",
        "{\"email\": \"a@b.c\"} and more",
    ];
    for (method, path) in &endpoints {
        for body in bodies {
            let request = Request::builder()
                .method(method.clone())
                .uri(*path)
                .header("authorization", format!("Bearer {}", common::ADMIN_TOKEN))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            let reply = app.send(request).await;
            reply.assert_problem(StatusCode::BAD_REQUEST, None);
            assert_eq!(
                reply.body.get("field"),
                None,
                "{method} {path} {body:?}: {}",
                reply.body
            );
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(
                detail.starts_with("the body is not valid"),
                "{method} {path} {body:?}: {detail}"
            );
        }
    }
    // A JSON body with a bad field still names it.
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": 5, "product": "pro", "reason": "x"})),
        )
        .await;
    reply.assert_problem(StatusCode::BAD_REQUEST, Some("email"));
    assert_eq!(count(&app, "grants").await, 0, "nothing stored");
    assert_eq!(count(&app, "tokens").await, 1, "only the bootstrap token");
    still_answers(&app).await;
}

async fn a_cursor_the_server_did_not_issue_is_400(app: TestApp) {
    for list in [
        "subscriptions",
        "orders",
        "deliveries",
        "grants",
        "integrations",
        "products",
        "tokens",
    ] {
        for cursor in ["not-a-cursor", "", "AAAA"] {
            app.admin(
                Method::GET,
                &format!("/v1/admin/{list}?cursor={cursor}"),
                None,
            )
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some("cursor"));
        }
    }
}

async fn oversized_headers_are_431(app: TestApp) {
    let request = Request::builder()
        .uri("/healthz")
        .header("x-padding", "a".repeat(20 * 1024))
        .body(Body::empty())
        .unwrap();
    app.send(request)
        .await
        .assert_problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, None);
    let reply = app.admin(Method::GET, "/healthz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
}

async fn metrics_are_prometheus_text_with_bounded_labels(app: TestApp) {
    app.zenofy_integration().await;
    app.zenofy(activation(|_| {})).await;
    app.webhook(
        "/v1/webhooks/zenofy",
        &[("x-webhook-secret", "wrong")],
        "{}",
    )
    .await;
    still_answers(&app).await;
    for method in ["BREW", "PROPFIND", "X-ANYTHING"] {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri("/nowhere")
            .body(Body::empty())
            .unwrap();
        app.send(request).await;
    }
    let reply = app.admin(Method::GET, "/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.body.as_str().unwrap();
    for counter in [
        "entitled_webhook_deliveries_total",
        "entitled_webhook_auth_failures_total",
        "entitled_access_checks_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {counter} ")),
            "{counter}: {text}"
        );
        assert!(
            text.contains(&format!("# TYPE {counter} counter")),
            "{counter}: {text}"
        );
    }
    assert!(text.contains("method=\"other\""), "{text}");
    for method in ["BREW", "PROPFIND", "X-ANYTHING"] {
        assert!(!text.contains(method), "{method} became a label value");
    }
    assert!(!text.contains("# EOF"));
    let request = Request::builder()
        .uri("/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text")
    );
    assert!(reply.body.as_str().unwrap().ends_with("# EOF\n"));
}

/// A raw `oneshot` that keeps the response headers.
trait OneshotRaw {
    async fn oneshot_raw(self, request: Request<Body>) -> axum::response::Response;
}

impl OneshotRaw for axum::Router {
    async fn oneshot_raw(self, request: Request<Body>) -> axum::response::Response {
        use tower::ServiceExt;
        self.oneshot(request).await.expect("infallible")
    }
}

/// `promtool check metrics` (Prometheus' own text parser and linter) reads the
/// exposition clean. CI installs promtool; without it the test says it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_reads_the_metrics_clean() {
    let Some(promtool) = ["promtool", "/usr/bin/promtool"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok()
    }) else {
        eprintln!("skipped promtool_reads_the_metrics_clean: promtool is not installed");
        return;
    };
    let app = TestApp::start(common::Db::Sqlite).await.unwrap();
    app.zenofy_integration().await;
    app.zenofy(activation(|_| {})).await;
    app.webhook(
        "/v1/webhooks/zenofy",
        &[("x-webhook-secret", "wrong")],
        "{}",
    )
    .await;
    still_answers(&app).await;
    let text = app.admin(Method::GET, "/metrics", None).await.body;
    let text = text.as_str().unwrap().to_owned();
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool: {said}\n{text}");
    assert!(
        said.trim().is_empty(),
        "promtool found problems: {said}\n{text}"
    );
}

/// A Python with Prometheus' own client library (`prometheus_client`), if
/// one is found: `ENTITLED_TEST_PYTHON`, CI's schemathesis virtualenv, or
/// `python3`.
fn python_with_prometheus_client() -> Option<String> {
    let candidates = [
        std::env::var("ENTITLED_TEST_PYTHON").ok(),
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/target/st-venv/bin/python").to_owned()),
        Some("python3".to_owned()),
    ];
    candidates.into_iter().flatten().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import prometheus_client"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Parses an exposition with `prometheus_client`'s parser for `format`
/// (`text` or `openmetrics`); what it said when it refused it.
fn prometheus_client_parses(python: &str, format: &str, exposition: &str) -> Result<(), String> {
    use std::io::Write;
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as text\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics\n\
        parse = {'text': text, 'openmetrics': openmetrics}[sys.argv[1]]\n\
        families = list(parse(sys.stdin.read()))\n\
        assert families, 'no metric families'\n\
        print(len(families))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script, format])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The text format parses with `prometheus_client`'s text parser and the
/// OpenMetrics one with its OpenMetrics parser (which refuses a counter
/// family named `_total`, or text served in OpenMetrics' place). CI runs this
/// where its virtualenv has `prometheus_client`; elsewhere it says it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_client_parses_both_expositions() {
    let Some(python) = python_with_prometheus_client() else {
        eprintln!(
            "skipped prometheus_client_parses_both_expositions: no python with prometheus_client"
        );
        return;
    };
    let app = TestApp::start(common::Db::Sqlite).await.unwrap();
    app.zenofy_integration().await;
    app.zenofy(activation(|_| {})).await;
    app.webhook(
        "/v1/webhooks/zenofy",
        &[("x-webhook-secret", "wrong")],
        "{}",
    )
    .await;
    still_answers(&app).await;
    app.send(
        Request::builder()
            .method(Method::from_bytes(b"BREW").unwrap())
            .uri("/nowhere")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    for (accept, format, content_type) in [
        (None, "text", "text/plain; version=0.0.4"),
        (
            Some("application/openmetrics-text; version=1.0.0"),
            "openmetrics",
            "application/openmetrics-text; version=1.0.0",
        ),
        // Media types are case-insensitive; what Prometheus sends.
        (
            Some("Application/OpenMetrics-Text"),
            "openmetrics",
            "application/openmetrics-text",
        ),
        (
            Some(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,\
                 text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            "openmetrics",
            "application/openmetrics-text",
        ),
        (Some("text/plain, */*"), "text", "text/plain; version=0.0.4"),
    ] {
        let mut request = Request::builder().uri("/metrics");
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let reply = app.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.content_type.starts_with(content_type),
            "{accept:?}: {}",
            reply.content_type
        );
        let exposition = reply.body.as_str().unwrap();
        assert!(
            exposition.contains("entitled_webhook_deliveries_total{"),
            "{exposition}"
        );
        if let Err(said) = prometheus_client_parses(&python, format, exposition) {
            panic!(
                "prometheus_client's {format} parser refused it ({accept:?}): {said}\n{exposition}"
            );
        }
    }
}
