//! The registration of orders whose payloads carry no email (`POST /v1/orders`)
//! on both databases: its validation and authentication, payments that arrive
//! before their registration, and payments, retries and registrations racing
//! each other without losing or doubling anything.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::lifecycle::zaypay_event;
use common::orders::{
    BUYER, ZB, ZB_ORDER, ZB_SECRET, ZP, assert_access, assert_delivery, assert_order, deliveries,
    delivery, entry, history, now_unix, order, order_ids, orders, parse, register, zaypay,
    zaypay_integration, zb_body, zenobank, zenobank_integration, zenobank_svix,
};
use common::{Reply, TestApp, fixture, standard_webhooks_signature as sign};
use serde_json::{Value, json};

on_both_databases!(
    payment_before_registration_is_applied_by_the_registration,
    order_registration_validation,
    concurrent_payment_and_registration_never_lose_the_payment,
    concurrent_retries_and_double_registrations_apply_once,
);

// ---------------------------------------------------------------- payment before registration

async fn payment_before_registration_is_applied_by_the_registration(app: TestApp) {
    zenobank_integration(&app).await;

    // The payment races ahead of the registration: stored, unmatched.
    let body = fixture("zenobank/checkout.completed.json");
    let ts = now_unix();
    let signature = sign(ZB_SECRET, "msg_early", ts, &body);
    let early = assert_delivery(
        "checkout.completed before the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "unmatched",
        None,
    );
    assert!(
        early["reason"].as_str().unwrap().contains(ZB_ORDER),
        "{early:?}"
    );
    assert_access(
        &app,
        "unmatched payment",
        (BUYER, "pro", None),
        false,
        "no_entitlement",
        Value::Null,
    )
    .await;
    assert_eq!(orders(&app, "").await["items"], json!([]));
    // Retried by Svix before the registration: still one message.
    assert_delivery(
        "retry before the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "duplicate",
        None,
    );

    // The registration applies it: paid in the registration's own answer.
    let reply = register(&app, ZB, ZB_ORDER, BUYER, "pro").await;
    let registered = assert_order("registration", &reply, StatusCode::CREATED, "paid");
    let id = registered["id"].as_str().unwrap().to_owned();
    let paid_at = parse(registered["paid_at"].as_str().expect("paid_at"));
    assert!(
        paid_at <= parse(registered["created_at"].as_str().unwrap()),
        "paid when the payment arrived, before the registration: {registered:?}"
    );
    let answer = assert_access(
        &app,
        "right after the registration",
        (BUYER, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
    assert_eq!(answer["sources"][0]["id"], id, "{answer:?}");
    assert_eq!(answer["sources"][0]["access_from"], registered["paid_at"]);

    let detail = order(&app, &id).await;
    assert_eq!(detail["state"], "paid");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                early["delivery_id"].clone()
            ),
        ],
        "{detail:#?}"
    );

    // The delivery log: the early delivery now carries the registration's
    // outcome, beside the one it got when it arrived.
    let early_id = early["delivery_id"].as_str().unwrap();
    let logged = delivery(&app, early_id).await;
    assert_eq!(logged["outcome"], "applied", "{logged:#?}");
    assert_eq!(
        logged["subject"],
        json!({"kind": "order", "id": id}),
        "{logged:#?}"
    );
    assert_eq!(logged["event"], "checkout.completed", "{logged:#?}");
    assert_eq!(logged["body"].as_str().unwrap().as_bytes(), &body[..]);
    let attempts: Vec<_> = logged["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["trigger"].clone(),
                a["outcome"].clone(),
                a["subject"].clone(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            (json!("received"), json!("unmatched"), Value::Null),
            (
                json!("registration"),
                json!("applied"),
                json!({"kind": "order", "id": id})
            ),
        ],
        "{logged:#?}"
    );
    assert!(
        deliveries(&app, "?outcome=unmatched").await.is_empty(),
        "no delivery is left unmatched"
    );

    // A retry of the early message now: still a duplicate, pointing at the order.
    let retry = assert_delivery(
        "retry after the registration",
        &zenobank_svix(&app, "msg_early", ts, &signature, &body).await,
        "duplicate",
        Some("paid"),
    );
    assert_eq!(retry["subject"]["id"], id);

    // Registering again: the same buyer and product (in any case) is harmless.
    for email in [BUYER, " BUYER@example.COM "] {
        let again = assert_order(
            "registration again",
            &register(&app, ZB, ZB_ORDER, email, "pro").await,
            StatusCode::OK,
            "paid",
        );
        assert_eq!(again["id"], id);
        assert_eq!(again["paid_at"], registered["paid_at"]);
    }
    // Another buyer or product for the same order is a conflict.
    for (email, product) in [("thief@example.com", "pro"), (BUYER, "enterprise")] {
        let reply = register(&app, ZB, ZB_ORDER, email, product).await;
        reply.assert_problem(StatusCode::CONFLICT, None);
        assert_eq!(
            reply.body["type"], "urn:entitled:problem:conflict",
            "{:?}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains(ZB_ORDER),
            "{:?}",
            reply.body
        );
    }
    assert_access(
        &app,
        "the conflicting buyer",
        ("thief@example.com", "pro", None),
        false,
        "no_entitlement",
        Value::Null,
    )
    .await;
    let detail = order(&app, &id).await;
    assert_eq!(detail["email"], BUYER);
    assert_eq!(detail["products"], json!(["pro"]));
    assert_eq!(
        detail["history"].as_array().unwrap().len(),
        2,
        "{detail:#?}"
    );
}

// ---------------------------------------------------------------- the API

async fn order_registration_validation(app: TestApp) {
    zenobank_integration(&app).await;
    app.zenofy_integration().await;
    let valid = json!({
        "integration": ZB,
        "external_id": ZB_ORDER,
        "email": BUYER,
        "product": "pro",
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no email", without("email"), "email"),
        ("empty email", with("email", json!("")), "email"),
        (
            "invalid email",
            with("email", json!("not-an-email")),
            "email",
        ),
        ("email not a string", with("email", json!(42)), "email"),
        (
            "unknown integration",
            with("integration", json!("nope")),
            "integration",
        ),
        (
            "a zenofy integration",
            with("integration", json!("zenofy")),
            "integration",
        ),
        ("no integration", without("integration"), "integration"),
        (
            "empty external_id",
            with("external_id", json!("")),
            "external_id",
        ),
        (
            "blank external_id",
            with("external_id", json!("   ")),
            "external_id",
        ),
        ("no external_id", without("external_id"), "external_id"),
        ("empty product", with("product", json!("")), "product"),
        ("no product", without("product"), "product"),
    ];
    for (what, body, field) in cases {
        let reply = app.admin(Method::POST, "/v1/orders", Some(body)).await;
        reply.assert_invalid(what, field);
    }
    let reply = app
        .admin(
            Method::POST,
            "/v1/orders",
            Some(with("zenofy", json!(true))),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown field: {:?}",
        reply.body
    );
    let reply = app.admin(Method::POST, "/v1/orders", Some(json!([]))).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "not an object: {:?}",
        reply.body
    );

    // Without a valid token: 401.
    let anonymous = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/orders")
                .header("content-type", "application/json")
                .body(Body::from(valid.to_string()))
                .unwrap(),
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, None);
    let wrong = app
        .with_token(
            "not-a-token",
            Method::POST,
            "/v1/orders",
            Some(valid.clone()),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, None);
    assert_eq!(
        orders(&app, "").await["items"],
        json!([]),
        "nothing registered"
    );

    // An `app` token registers orders; it cannot read the admin views.
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/tokens",
            Some(json!({"name": "saas backend", "scope": "app"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let reply = app
        .with_token(&token, Method::POST, "/v1/orders", Some(valid))
        .await;
    let registered = assert_order("valid", &reply, StatusCode::CREATED, "pending");
    let forbidden = app
        .with_token(&token, Method::GET, "/v1/admin/orders", None)
        .await;
    forbidden.assert_problem(StatusCode::FORBIDDEN, None);
    let forbidden = app
        .with_token(
            &token,
            Method::GET,
            &format!("/v1/admin/orders/{}", registered["id"].as_str().unwrap()),
            None,
        )
        .await;
    forbidden.assert_problem(StatusCode::FORBIDDEN, None);

    // The admin views validate their parameters.
    app.admin(Method::GET, "/v1/admin/orders?state=bogus", None)
        .await
        .assert_invalid("state filter", "state");
    app.admin(Method::GET, "/v1/admin/orders?email=nope", None)
        .await
        .assert_invalid("email filter", "email");
    let missing = app
        .admin(Method::GET, "/v1/admin/orders/no-such-order", None)
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND, None);
    let anonymous = app
        .send(
            Request::builder()
                .uri("/v1/admin/orders")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, None);
}

// ---------------------------------------------------------------- concurrency

/// A request to run concurrently with others.
type Pending = std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Runs every request at the same instant (each in its own task, released
/// together, spawned in the order given); the replies in that order.
async fn together(requests: Vec<Pending>) -> Vec<Reply> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// Runs `payment` and `registration` at the same instant.
async fn race(
    payment: impl Future<Output = Reply> + Send + 'static,
    registration: impl Future<Output = Reply> + Send + 'static,
    payment_first: bool,
) -> (Reply, Reply) {
    if payment_first {
        let mut replies = together(vec![Box::pin(payment), Box::pin(registration)]).await;
        let registered = replies.pop().unwrap();
        (replies.pop().unwrap(), registered)
    } else {
        let mut replies = together(vec![Box::pin(registration), Box::pin(payment)]).await;
        let paid = replies.pop().unwrap();
        (paid, replies.pop().unwrap())
    }
}

/// Checks one raced order: paid, the buyer entitled, one `paid` entry in the
/// history carrying the payment's delivery id, and answers consistent with the
/// order the two requests were serialised in.
async fn check_race(app: &TestApp, what: &str, email: &str, payment: &Reply, registration: &Reply) {
    let delivery = &payment.body["delivery_id"];
    match payment.body["outcome"].as_str() {
        Some("applied") => {
            // Registered first: the registration answered pending.
            assert_delivery(what, payment, "applied", Some("paid"));
            assert_order(what, registration, StatusCode::CREATED, "pending");
        }
        Some("unmatched") => {
            // Paid first: the registration applied it.
            assert_delivery(what, payment, "unmatched", None);
            assert_order(what, registration, StatusCode::CREATED, "paid");
        }
        _ => panic!("{what}: payment {:?}", payment.body),
    }
    let id = registration.body["id"].as_str().unwrap();
    let detail = order(app, id).await;
    assert_eq!(detail["state"], "paid", "{what}: {detail:#?}");
    assert_eq!(
        history(&detail, &[]),
        vec![
            entry(
                "registered",
                Value::Null,
                json!("pending"),
                "applied",
                Value::Null
            ),
            entry(
                "paid",
                json!("pending"),
                json!("paid"),
                "applied",
                delivery.clone()
            ),
        ],
        "{what}: {detail:#?}"
    );
    assert_access(
        app,
        what,
        (email, "pro", None),
        true,
        "purchase",
        Value::Null,
    )
    .await;
}

async fn concurrent_payment_and_registration_never_lose_the_payment(app: TestApp) {
    zenobank_integration(&app).await;
    zaypay_integration(&app).await;
    let app = Arc::new(app);
    let mut outcomes = Vec::new();

    for n in 0..10 {
        let order_id = format!("race-order-{n}");
        let email = format!("racer{n}@example.com");
        let body = zb_body("checkout.completed", &order_id);
        let msg = format!("msg_race_{n}");
        let payment = {
            let app = app.clone();
            async move { zenobank(&app, &msg, &body).await }
        };
        let registration = {
            let (app, order_id, email) = (app.clone(), order_id.clone(), email.clone());
            async move { register(&app, ZB, &order_id, &email, "pro").await }
        };
        let (paid, registered) = race(payment, registration, n % 2 == 0).await;
        let what = format!("zeno bank race {n}");
        check_race(&app, &what, &email, &paid, &registered).await;
        outcomes.push(paid.body["outcome"].as_str().unwrap().to_owned());
    }

    for n in 0..6 {
        let subject = format!("dddddddd-0000-4000-8000-{n:012}");
        let email = format!("zp-racer{n}@example.com");
        let body = zaypay_event("completed", &subject);
        let payment = {
            let app = app.clone();
            async move { zaypay(&app, body).await }
        };
        let registration = {
            let (app, subject, email) = (app.clone(), subject.clone(), email.clone());
            async move { register(&app, ZP, &subject, &email, "pro").await }
        };
        let (paid, registered) = race(payment, registration, n % 2 == 1).await;
        let what = format!("zaypay race {n}");
        check_race(&app, &what, &email, &paid, &registered).await;
        outcomes.push(paid.body["outcome"].as_str().unwrap().to_owned());
    }
    eprintln!("race outcomes: {outcomes:?}");
    assert_eq!(order_ids(&app, "?state=paid&limit=500").await.len(), 16);
    assert_eq!(order_ids(&app, "?state=pending").await.len(), 0);
}

async fn concurrent_retries_and_double_registrations_apply_once(app: TestApp) {
    zenobank_integration(&app).await;
    let app = Arc::new(app);
    for n in 0..6 {
        let order_id = format!("retry-race-{n}");
        let email = format!("retry{n}@example.com");
        let body = zb_body("checkout.completed", &order_id);
        let msg = format!("msg_retry_race_{n}");
        // Svix sends the message and retries it (same id, timestamp and
        // signature) while the backend registers the order twice.
        let ts = now_unix();
        let signature = sign(ZB_SECRET, &msg, ts, &body);
        let payment = || -> Pending {
            let (app, msg, signature, body) =
                (app.clone(), msg.clone(), signature.clone(), body.clone());
            Box::pin(async move { zenobank_svix(&app, &msg, ts, &signature, &body).await })
        };
        let registration = || -> Pending {
            let (app, order_id, email) = (app.clone(), order_id.clone(), email.clone());
            Box::pin(async move { register(&app, ZB, &order_id, &email, "pro").await })
        };
        let requests = if n % 2 == 0 {
            vec![payment(), registration(), payment(), registration()]
        } else {
            vec![registration(), payment(), registration(), payment()]
        };
        let replies = together(requests).await;
        let (payments, registrations): (Vec<_>, Vec<_>) = replies
            .iter()
            .partition(|r| r.body.get("delivery_id").is_some());
        let what = format!("retry race {n}");
        assert_eq!(payments.len(), 2, "{what}: {replies:?}");
        assert_eq!(registrations.len(), 2, "{what}: {replies:?}");

        // One message: exactly one of the two is the duplicate.
        let first: Vec<_> = payments
            .iter()
            .filter(|r| r.body["outcome"] != "duplicate")
            .collect();
        assert_eq!(first.len(), 1, "{what}: {payments:?}");
        assert!(
            ["applied", "unmatched"].contains(&first[0].body["outcome"].as_str().unwrap()),
            "{what}: {payments:?}"
        );
        for reply in &payments {
            assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
        }
        // One order: created once, the other registration returns it.
        let mut statuses: Vec<_> = registrations.iter().map(|r| r.status).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            vec![StatusCode::OK, StatusCode::CREATED],
            "{what}: {registrations:?}"
        );
        let id = &registrations[0].body["id"];
        assert_eq!(&registrations[1].body["id"], id, "{what}");

        let detail = order(&app, id.as_str().unwrap()).await;
        assert_eq!(detail["state"], "paid", "{what}: {detail:#?}");
        assert_eq!(
            history(&detail, &[]),
            vec![
                entry(
                    "registered",
                    Value::Null,
                    json!("pending"),
                    "applied",
                    Value::Null
                ),
                entry(
                    "paid",
                    json!("pending"),
                    json!("paid"),
                    "applied",
                    first[0].body["delivery_id"].clone()
                ),
            ],
            "{what}: {detail:#?}"
        );
        assert_access(
            &app,
            &what,
            (&email, "pro", None),
            true,
            "purchase",
            Value::Null,
        )
        .await;
    }
}
