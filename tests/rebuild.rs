//! Rebuild and previews (DESIGN.md "Rebuild and previews"), on both engines:
//! random lifecycles rebuild to exactly what is stored; a divergence made by
//! hand in the database is listed exactly and repaired by a real rebuild; a
//! policy preview lists exactly the customers whose answer would flip, and
//! changes nothing; bad input is refused with the field named.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::lifecycle::{
    self, CUSTOMERS, Lifecycle, PRODUCTS, ZENOFY_PRODUCTS, zaypay, zaypay_event,
};
use common::{TestApp, fixture_json};
use entitled::domain::access::window;
use entitled::domain::{CanceledAccess, Email, Policy, ProductKey};
use entitled::store::{Answer, EntitlementRow};
use entitled::time_fmt;
use serde_json::{Value, json};

on_both_databases!(
    random_lifecycles_rebuild_to_exactly_what_is_stored,
    a_divergence_made_by_hand_is_listed_exactly_and_repaired,
    a_preview_lists_exactly_the_customers_whose_answer_would_flip,
    rebuild_and_preview_refuse_bad_input,
    what_is_written_while_a_rebuild_runs_is_left_as_it_is,
);

async fn rebuild(app: &TestApp, dry_run: bool) -> Value {
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/rebuild",
            Some(json!({"dry_run": dry_run})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn assert_no_difference(report: &Value, when: &str) {
    assert_eq!(report["sources_changed"], json!([]), "{when}: {report:#}");
    assert_eq!(report["access_changed"], json!([]), "{when}: {report:#}");
    assert_eq!(report["counts"]["sources_changed"], 0, "{when}");
    assert_eq!(report["counts"]["access_changed"], 0, "{when}");
    assert_eq!(report["applied"], false, "{when}");
}

/// The change log's length: a rebuild with no difference appends nothing.
async fn changes(app: &TestApp) -> usize {
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/changes?limit=500{cursor}"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        count += reply.body["items"].as_array().unwrap().len();
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
}

async fn random_lifecycles_rebuild_to_exactly_what_is_stored(app: TestApp) {
    let mut run = Lifecycle::start(&app, 0x0bad_5eed_0000_0013).await;
    for step in 0..160 {
        run.step(&app).await;
        if step % 40 == 39 {
            let report = rebuild(&app, true).await;
            assert_no_difference(&report, &format!("a dry run after step {step}"));
        }
    }
    // A subscription whose period has ended, expired by the clock: the run
    // has at least one recorded tick to re-evaluate.
    let lapsed = lifecycle::activation(
        "sub-lapsed",
        "ed@example.com",
        ZENOFY_PRODUCTS[1].0,
        -60,
        -30,
    );
    let reply = app.zenofy(lapsed).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(app.store.expire_lapsed(time_fmt::now()).await.unwrap() > 0);

    let before = changes(&app).await;
    let report = rebuild(&app, false).await;
    assert_no_difference(&report, "a real rebuild");
    let counts = &report["counts"];
    assert!(counts["deliveries"].as_u64().unwrap() > 50, "{counts}");
    assert!(counts["sources"].as_u64().unwrap() > 10, "{counts}");
    for input in [
        "registrations",
        "replays",
        "grants",
        "policies",
        "clock_ticks",
    ] {
        assert!(
            counts[input].as_u64().unwrap() > 0,
            "the run had {input}: {counts}"
        );
    }
    assert_eq!(counts["skipped"], 0);
    assert_eq!(changes(&app).await, before, "nothing was appended");

    // The command line says the same, readable and as JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_entitled"))
        .args(["rebuild", "--dry-run", "--database-url", &app.url])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run entitled rebuild");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("No difference"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rebuild: deriving"), "progress: {stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_entitled"))
        .args(["rebuild", "--dry-run", "--json", "--database-url", &app.url])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run entitled rebuild --json");
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_no_difference(&json, "the command line");
    assert_eq!(json["counts"]["sources"], report["counts"]["sources"]);
}

/// An active subscription to `pro`.
fn activation(subscription: &str, email: &str) -> Vec<u8> {
    lifecycle::activation(subscription, email, ZENOFY_PRODUCTS[0].0, -1, 30)
}

async fn access(app: &TestApp, email: &str) -> Value {
    let reply = app.access(email, "pro", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn a_divergence_made_by_hand_is_listed_exactly_and_repaired(app: TestApp) {
    Lifecycle::start(&app, 1).await;
    let ada = app.zenofy(activation("sub-ada", "ada@example.com")).await;
    let ada_id = ada.body["subject"]["id"].as_str().unwrap().to_owned();
    app.zenofy(activation("sub-bo", "bo@example.com")).await;
    let reply = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(json!({"integration": "zaypay", "external_id": "zp-cy",
                "email": "cy@example.com", "product": "pro"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let order_id = reply.body["id"].as_str().unwrap().to_owned();
    zaypay(&app, zaypay_event("completed", "zp-cy")).await;
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "di@example.com", "product": "pro", "reason": "support"})),
        )
        .await;
    let grant_id = reply.body["id"].as_str().unwrap().to_owned();
    assert_no_difference(&rebuild(&app, true).await, "before any change by hand");

    // By hand: ada's subscription in a wrong state (its row untouched), cy's
    // order row and di's grant row deleted.
    app.store
        .execute_admin(&format!(
            "UPDATE subscriptions SET state = 'canceled' WHERE id = '{ada_id}'"
        ))
        .await
        .unwrap();
    app.store
        .execute_admin(&format!(
            "DELETE FROM entitlements WHERE source_id IN ('{order_id}', '{grant_id}')"
        ))
        .await
        .unwrap();

    let report = rebuild(&app, true).await;
    let listed: BTreeSet<(String, String)> = report["sources_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("subscription", ada_id.as_str()),
        ("order", order_id.as_str()),
        ("grant", grant_id.as_str()),
    ]
    .into_iter()
    .map(|(k, i)| (k.to_owned(), i.to_owned()))
    .collect();
    assert_eq!(listed, expected, "{report:#}");
    let by_kind = |kind: &str| {
        report["sources_changed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap()
            .clone()
    };
    let sub = by_kind("subscription");
    assert_eq!(
        (
            sub["before"]["state"].clone(),
            sub["after"]["state"].clone()
        ),
        (json!("canceled"), json!("active"))
    );
    assert_eq!(sub["before"]["entitlements"], sub["after"]["entitlements"]);
    let order = by_kind("order");
    assert_eq!(order["before"]["entitlements"], json!([]));
    assert_eq!(order["after"]["entitlements"][0]["product"], "pro");
    assert_eq!(order["after"]["state"], "paid");
    // Ada's row still answers active: only cy's and di's answers change.
    let access_changed: Vec<(String, Value, Value)> = report["access_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["product"], "pro");
            (
                a["email"].as_str().unwrap().to_owned(),
                a["before"]["reason"].clone(),
                a["after"]["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        access_changed,
        vec![
            (
                "cy@example.com".to_owned(),
                json!("no_entitlement"),
                json!("purchase")
            ),
            (
                "di@example.com".to_owned(),
                json!("no_entitlement"),
                json!("grant")
            ),
        ],
        "{report:#}"
    );
    assert_eq!(report["counts"]["sources_changed"], 3);
    assert_eq!(report["counts"]["access_changed"], 2);
    // A dry run wrote nothing.
    assert_eq!(app.subscription(&ada_id).await["state"], "canceled");
    assert_eq!(
        rebuild(&app, true).await["counts"]["sources_changed"],
        3,
        "still there"
    );

    let changes_before = changes(&app).await;
    let report = rebuild(&app, false).await;
    assert_eq!(report["applied"], true);
    assert_eq!(report["counts"]["sources_changed"], 3);
    assert_eq!(app.subscription(&ada_id).await["state"], "active");
    assert_eq!(access(&app, "cy@example.com").await["reason"], "purchase");
    assert_eq!(access(&app, "di@example.com").await["reason"], "grant");
    assert_eq!(access(&app, "ada@example.com").await["reason"], "active");
    // Each answer that changed is in the change log, caused by the rebuild.
    assert_eq!(changes(&app).await, changes_before + 2);
    for email in ["cy@example.com", "di@example.com"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/changes?email={}", common::urlencode(email)),
                None,
            )
            .await;
        let last = reply.body["items"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["cause"]["kind"], "rebuild", "{last}");
        assert_eq!(last["answer"]["entitled"], true, "{last}");
    }
    // The subscription's history says what the rebuild did.
    let reply = app
        .admin(
            Method::GET,
            &format!(
                "/v1/admin/customers/{}",
                common::urlencode("ada@example.com")
            ),
            None,
        )
        .await;
    let rebuilt: Vec<&Value> = reply.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "rebuild")
        .collect();
    assert_eq!(rebuilt.len(), 1, "{:#}", reply.body["timeline"]);
    assert_eq!(rebuilt[0]["from_state"], "canceled");
    assert_eq!(rebuilt[0]["to_state"], "active");
    assert_no_difference(&rebuild(&app, true).await, "after the repair");
}

/// What `rows` answer now under `policy` (their windows recomputed), as the
/// test computes it.
fn answer_under(rows: &[EntitlementRow], policy: &Policy, at: entitled::domain::Instant) -> Answer {
    let recomputed: Vec<EntitlementRow> = rows
        .iter()
        .map(|r| EntitlementRow {
            window: window(&r.facts, policy),
            ..r.clone()
        })
        .collect();
    Answer::of(&recomputed, at)
}

async fn a_preview_lists_exactly_the_customers_whose_answer_would_flip(app: TestApp) {
    let mut run = Lifecycle::start(&app, 0x0000_0f11_95ee_d001).await;
    for _ in 0..120 {
        run.step(&app).await;
    }
    let candidates = [
        Policy {
            grace_period_seconds: 0,
            suspended_access: true,
            canceled_access: CanceledAccess::PeriodEnd,
            purchase_access_seconds: Some(86_400),
        },
        Policy {
            grace_period_seconds: 30 * 86_400,
            suspended_access: false,
            canceled_access: CanceledAccess::Immediate,
            purchase_access_seconds: None,
        },
    ];
    let log_before = changes(&app).await;
    let mut flipped = 0;
    for product in PRODUCTS {
        let key = ProductKey::parse(product).unwrap();
        let stored = app
            .admin(Method::GET, &format!("/v1/admin/products/{product}"), None)
            .await;
        for candidate in &candidates {
            let body = json!({
                "grace_period_seconds": candidate.grace_period_seconds,
                "suspended_access": candidate.suspended_access,
                "canceled_access": candidate.canceled_access.as_str(),
                "purchase_access_seconds": candidate.purchase_access_seconds,
            });
            let reply = app
                .admin(
                    Method::POST,
                    &format!("/v1/admin/products/{product}/preview"),
                    Some(body),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            let now = time_fmt::now();
            let (mut gained, mut lost, mut moved, mut unchanged) =
                (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), 0);
            for customer in CUSTOMERS {
                let email = Email::parse(customer).unwrap();
                let rows = app
                    .store
                    .stored_entitlement_rows(&email, Some(&key))
                    .await
                    .unwrap();
                if rows.is_empty() {
                    continue;
                }
                let before = Answer::of(&rows, now);
                let after = answer_under(&rows, candidate, now);
                match (before.entitled, after.entitled) {
                    (false, true) => gained.insert(customer.to_owned()),
                    (true, false) => lost.insert(customer.to_owned()),
                    (true, true) if before.valid_until != after.valid_until => {
                        moved.insert(customer.to_owned())
                    }
                    _ => {
                        unchanged += 1;
                        true
                    }
                };
            }
            let listed = |list: &str| -> BTreeSet<String> {
                reply.body[list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["email"].as_str().unwrap().to_owned())
                    .collect()
            };
            let what = format!("{product} under {candidate:?}: {:#}", reply.body);
            assert_eq!(listed("gained"), gained, "{what}");
            assert_eq!(listed("lost"), lost, "{what}");
            assert_eq!(listed("moved"), moved, "{what}");
            let counts = &reply.body["counts"];
            assert_eq!(counts["gained"], gained.len(), "{what}");
            assert_eq!(counts["lost"], lost.len(), "{what}");
            assert_eq!(counts["moved"], moved.len(), "{what}");
            assert_eq!(counts["unchanged"], unchanged, "{what}");
            for flip in reply.body["gained"].as_array().unwrap() {
                assert_eq!(flip["before"]["entitled"], false);
                assert_eq!(flip["after"]["entitled"], true);
            }
            flipped += gained.len() + lost.len() + moved.len();
        }
        // Nothing changed: the policy, and the log.
        let after = app
            .admin(Method::GET, &format!("/v1/admin/products/{product}"), None)
            .await;
        assert_eq!(after.body, stored.body);
    }
    assert!(flipped > 0, "the candidates flipped someone");
    assert_eq!(changes(&app).await, log_before, "a preview appends nothing");
}

async fn rebuild_and_preview_refuse_bad_input(app: TestApp) {
    for (body, field) in [
        (json!({"dry_run": "yes"}), "dry_run"),
        (json!({"dry_run": true, "force": true}), "force"),
    ] {
        let reply = app
            .admin(Method::POST, "/v1/admin/rebuild", Some(body))
            .await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    // Not an object: serde would read `[]` as a body of optional fields.
    for path in ["/v1/admin/rebuild", "/v1/admin/products/pro/preview"] {
        let reply = app.admin(Method::POST, path, Some(json!([]))).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, None);
        assert_eq!(reply.body["detail"], "the body must be a JSON object");
    }
    for (path, body, field) in [
        ("/v1/admin/products/no%20spaces/preview", json!({}), "key"),
        (
            "/v1/admin/products/pro/preview",
            json!({"grace_period_seconds": -1}),
            "grace_period_seconds",
        ),
        (
            "/v1/admin/products/pro/preview",
            json!({"purchase_access_seconds": 0}),
            "purchase_access_seconds",
        ),
        (
            "/v1/admin/products/pro/preview",
            json!({"canceled_access": "later"}),
            "canceled_access",
        ),
    ] {
        let reply = app.admin(Method::POST, path, Some(body)).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
    // A preview of a product nobody configured reads its rows under the
    // defaults; with no rows it lists nobody.
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/products/pro/preview",
            Some(json!({"grace_period_seconds": 0})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"gained": [], "lost": [], "moved": [],
               "counts": {"gained": 0, "lost": 0, "moved": 0, "unchanged": 0}})
    );
    // App tokens can do neither.
    let token = app.app_token().await;
    for path in ["/v1/admin/rebuild", "/v1/admin/products/pro/preview"] {
        let reply = app
            .with_token(&token, Method::POST, path, Some(json!({})))
            .await;
        reply.assert_problem(StatusCode::FORBIDDEN, None);
    }
}

/// Deliveries and grants keep arriving while a rebuild runs: whether the
/// rebuild derived them or left their sources alone (written after it
/// began), nothing they wrote is undone.
async fn what_is_written_while_a_rebuild_runs_is_left_as_it_is(app: TestApp) {
    Lifecycle::start(&app, 2).await;
    let reply = app.zenofy(activation("sub-ada", "ada@example.com")).await;
    let ada_id = reply.body["subject"]["id"].as_str().unwrap().to_owned();
    let router = app.router.clone();
    let running = tokio::spawn(async move {
        let request = axum::http::Request::post("/v1/admin/rebuild")
            .header("authorization", format!("Bearer {}", common::ADMIN_TOKEN))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"dry_run": false}"#))
            .unwrap();
        let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    // Meanwhile: ada's subscription is suspended, bo subscribes, cy is given
    // a grant.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut suspended = fixture_json("zenofy/subscription.suspended.json");
    let activated: Value =
        serde_json::from_slice(&activation("sub-ada", "ada@example.com")).unwrap();
    for field in [
        "subscriptionId",
        "customerEmail",
        "productId",
        "currentPeriodStart",
        "currentPeriodEnd",
    ] {
        suspended[field] = activated[field].clone();
    }
    let reply = app.zenofy(serde_json::to_vec(&suspended).unwrap()).await;
    assert_eq!(
        reply.body["subject"]["state"], "suspended",
        "{:?}",
        reply.body
    );
    app.zenofy(activation("sub-bo", "bo@example.com")).await;
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(json!({"email": "cy@example.com", "product": "pro", "reason": "support"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    let (status, report) = running.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{report}");
    // How many it left alone depends on timing: printed, not asserted.
    eprintln!("left as they are: {}", report["counts"]["skipped"]);
    assert_eq!(report["sources_changed"], json!([]), "{report:#}");
    assert_eq!(app.subscription(&ada_id).await["state"], "suspended");
    assert_eq!(access(&app, "ada@example.com").await["reason"], "suspended");
    assert_eq!(access(&app, "bo@example.com").await["reason"], "active");
    assert_eq!(access(&app, "cy@example.com").await["reason"], "grant");
    // And the next rebuild derives all of it, to the same.
    assert_no_difference(&rebuild(&app, true).await, "after the writes");
}
