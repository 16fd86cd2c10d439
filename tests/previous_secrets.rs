//! DESIGN.md "Webhook ingress": an integration's previous secret. `PUT` with a
//! new secret and `keep_previous_secret_seconds` keeps accepting the old one
//! until then (a provider's key rotation, a changed Zid Basic password),
//! for every provider's way of authenticating; neither secret is ever shown.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Reply, TestApp, fixture, standard_webhooks_signature};
use serde_json::{Value, json};

on_both_databases!(
    every_auth_mode_accepts_the_previous_secret_until_its_time,
    keep_previous_secret_seconds_is_validated,
    a_put_without_it_holds_no_previous_secret,
);

/// One way a provider authenticates.
#[derive(Clone, Copy, Debug)]
enum Mode {
    ZenofyHeader,
    ZenofyQuery,
    ZidQuery,
    ZidBasic,
    Zenobank,
    Zaypay,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Self::ZenofyHeader,
        Self::ZenofyQuery,
        Self::ZidQuery,
        Self::ZidBasic,
        Self::Zenobank,
        Self::Zaypay,
    ];

    fn provider(self) -> &'static str {
        match self {
            Self::ZenofyHeader | Self::ZenofyQuery => "zenofy",
            Self::ZidQuery | Self::ZidBasic => "zid",
            Self::Zenobank => "zenobank",
            Self::Zaypay => "zaypay",
        }
    }

    fn integration(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// The old, new and a wrong secret, valid for the provider.
    fn secrets(self) -> [&'static str; 3] {
        match self {
            Self::Zenobank => [
                "whsec_b2xkLXNlY3JldC1mb3ItemVub2Jhbmsh",
                "whsec_bmV3LXNlY3JldC1mb3ItemVub2Jhbmsh",
                "whsec_YmFkLXNlY3JldC1mb3ItemVub2Jhbmsh",
            ],
            _ => [
                "old-secret-0123456789",
                "new-secret-0123456789",
                "bad-secret-0123456789",
            ],
        }
    }

    fn body(self) -> Vec<u8> {
        fixture(match self {
            Self::ZenofyHeader | Self::ZenofyQuery => "zenofy/subscription.activated.json",
            Self::ZidQuery | Self::ZidBasic => "zid/app.market.subscription.active.json",
            Self::Zenobank => "zenobank/checkout.completed.json",
            Self::Zaypay => "zaypay/completed.json",
        })
    }

    /// Posts the mode's body authenticated with `secret`; `n` makes a Zeno
    /// Bank message id of its own.
    async fn post(self, app: &TestApp, secret: &str, n: usize) -> Reply {
        let id = self.integration();
        let json = ("content-type", "application/json");
        let body = self.body();
        match self {
            Self::ZenofyHeader => {
                app.webhook(
                    &format!("/v1/webhooks/{id}"),
                    &[json, ("x-webhook-secret", secret)],
                    body,
                )
                .await
            }
            Self::ZenofyQuery | Self::ZidQuery | Self::Zaypay => {
                app.webhook(&format!("/v1/webhooks/{id}?token={secret}"), &[json], body)
                    .await
            }
            Self::ZidBasic => {
                let basic = format!("Basic {}", BASE64.encode(format!("store:{secret}")));
                app.webhook(
                    &format!("/v1/webhooks/{id}"),
                    &[json, ("authorization", &basic)],
                    body,
                )
                .await
            }
            Self::Zenobank => {
                let message = format!("msg_rotation_{n}");
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let signature = standard_webhooks_signature(secret, &message, now, &body);
                let now = now.to_string();
                app.webhook(
                    &format!("/v1/webhooks/{id}"),
                    &[
                        json,
                        ("webhook-id", &message),
                        ("webhook-timestamp", &now),
                        ("webhook-signature", &signature),
                    ],
                    body,
                )
                .await
            }
        }
    }
}

/// `PUT` the mode's integration; answers the reply.
async fn put(app: &TestApp, mode: Mode, secret: &str, keep: Option<Value>) -> Reply {
    let mut body = json!({"provider": mode.provider(), "secret": secret});
    if let Some(keep) = keep {
        body["keep_previous_secret_seconds"] = keep;
    }
    app.admin(
        Method::PUT,
        &format!("/v1/admin/integrations/{}", mode.integration()),
        Some(body),
    )
    .await
}

/// Authenticated: any answer but 401 (the body may be a duplicate).
fn assert_authenticated(what: &str, reply: &Reply) {
    assert_ne!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {:?}",
        reply.body
    );
    assert!(
        reply.body["delivery_id"].is_string(),
        "{what}: {:?}",
        reply.body
    );
}

fn assert_refused(what: &str, reply: &Reply) {
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
    assert!(
        reply.body.get("delivery_id").is_none(),
        "{what}: {:?}",
        reply.body
    );
}

/// No secret of the mode appears anywhere in an answer.
fn assert_no_secret(mode: Mode, body: &Value) {
    let text = body.to_string();
    for secret in mode.secrets() {
        assert!(!text.contains(secret), "{mode:?}: {text}");
    }
    assert!(!text.contains("previous_secret\""), "{text}");
}

async fn every_auth_mode_accepts_the_previous_secret_until_its_time(app: TestApp) {
    let mut n = 0;
    for mode in Mode::ALL {
        let [old, new, wrong] = mode.secrets();
        let made = put(&app, mode, old, None).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        assert_eq!(made.body["previous_secret_until"], Value::Null);

        // Rotate, keeping the old secret for a day.
        let before = time::OffsetDateTime::now_utc();
        let rotated = put(&app, mode, new, Some(json!(86_400))).await;
        assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
        assert_no_secret(mode, &rotated.body);
        let until = rotated.body["previous_secret_until"].as_str().unwrap();
        let until =
            time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let kept = until - before;
        assert!(
            kept >= time::Duration::days(1)
                && kept < time::Duration::days(1) + time::Duration::minutes(5),
            "{mode:?}: kept {kept}"
        );
        let shown = app
            .admin(
                Method::GET,
                &format!("/v1/admin/integrations/{}", mode.integration()),
                None,
            )
            .await;
        assert_eq!(
            shown.body["previous_secret_until"],
            rotated.body["previous_secret_until"]
        );
        assert_no_secret(mode, &shown.body);

        for (secret, accepted) in [(new, true), (old, true), (wrong, false)] {
            n += 1;
            let reply = mode.post(&app, secret, n).await;
            let what = format!(
                "{mode:?} with the {} secret",
                if secret == old {
                    "old"
                } else if secret == new {
                    "new"
                } else {
                    "wrong"
                }
            );
            if accepted {
                assert_authenticated(&what, &reply);
            } else {
                assert_refused(&what, &reply);
            }
        }

        // A second rotation replaces the previous secret: the first is gone.
        let third = match mode {
            Mode::Zenobank => "whsec_dGhpcmQtc2VjcmV0LWZvci16ZW5vYmFuayE=",
            _ => "third-secret-0123456789",
        };
        let again = put(&app, mode, third, Some(json!(60))).await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        n += 1;
        assert_refused(
            &format!("{mode:?}, the first secret after two rotations"),
            &mode.post(&app, old, n).await,
        );
        n += 1;
        assert_authenticated(
            &format!("{mode:?}, the second as previous"),
            &mode.post(&app, new, n).await,
        );
    }

    // Time is up for every previous secret: refused once integrations are
    // read again (a replica keeps one it read for at most a second).
    app.store
        .execute_admin("UPDATE integrations SET previous_secret_until = 1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for mode in Mode::ALL {
        let shown = app
            .admin(
                Method::GET,
                &format!("/v1/admin/integrations/{}", mode.integration()),
                None,
            )
            .await;
        assert_eq!(shown.body["previous_secret_until"], Value::Null, "{mode:?}");
        n += 1;
        let [_, new, _] = mode.secrets();
        assert_refused(
            &format!("{mode:?}, the previous secret after its time"),
            &mode.post(&app, new, n).await,
        );
    }
}

async fn keep_previous_secret_seconds_is_validated(app: TestApp) {
    let mode = Mode::ZidBasic;
    let [old, new, _] = mode.secrets();
    assert_eq!(put(&app, mode, old, None).await.status, StatusCode::CREATED);
    for bad in [
        json!(-1),
        json!(2_592_001),
        json!(i64::MAX),
        json!("86400"),
        json!(1.5),
        json!(true),
    ] {
        let reply = put(&app, mode, new, Some(bad.clone())).await;
        reply.assert_problem(
            StatusCode::BAD_REQUEST,
            Some("keep_previous_secret_seconds"),
        );
        assert_no_secret(mode, &reply.body);
        // Nothing changed: the old secret is still the one.
        assert_authenticated(&format!("after {bad}"), &mode.post(&app, old, 0).await);
    }
    // A whole number written as a float is the same number (JSON Schema's
    // integer).
    let whole = put(&app, mode, new, Some(json!(553.0))).await;
    assert_eq!(whole.status, StatusCode::OK, "{:?}", whole.body);
    assert_authenticated("the previous after 553.0", &mode.post(&app, old, 1).await);
    let longest = put(&app, mode, new, Some(json!(2_592_000))).await;
    assert_eq!(longest.status, StatusCode::OK, "{:?}", longest.body);
    assert!(longest.body["previous_secret_until"].is_string());
}

/// `PUT` without `keep_previous_secret_seconds` (or with 0) holds none, also
/// dropping one held; the same secret again keeps the previous one as it is.
async fn a_put_without_it_holds_no_previous_secret(app: TestApp) {
    let mode = Mode::ZenofyHeader;
    let [old, new, _] = mode.secrets();
    assert_eq!(put(&app, mode, old, None).await.status, StatusCode::CREATED);
    let plain = put(&app, mode, new, None).await;
    assert_eq!(plain.body["previous_secret_until"], Value::Null);
    assert_refused("old after a plain rotation", &mode.post(&app, old, 0).await);

    assert_eq!(
        put(&app, mode, old, Some(json!(3600))).await.status,
        StatusCode::OK
    );
    // The same secret with a keep: the previous one (`new`) stays as it was.
    let same = put(&app, mode, old, Some(json!(60))).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_authenticated(
        "previous after the same secret again",
        &mode.post(&app, new, 0).await,
    );
    // With 0: none held.
    let zero = put(&app, mode, old, Some(json!(0))).await;
    assert_eq!(zero.body["previous_secret_until"], Value::Null);
    assert_refused("previous after keep 0", &mode.post(&app, new, 0).await);
}
