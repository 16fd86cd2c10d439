//! Entitlement tokens (DESIGN.md "Entitlement tokens"), on both engines:
//! every token is verified here by an independent verifier (ed25519-dalek,
//! not the service's ring) against the key `GET /.well-known/jwks.json`
//! publishes; claims as documented for an active subscription, an expired one
//! and a grant; ttl bounds and bad input; tampered and foreign tokens fail;
//! rotation keeps old tokens valid until they expire.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::TestApp;
use common::lifecycle::{self, ZENOFY_PRODUCTS};
use entitled::time_fmt;
use serde_json::{Value, json};

on_both_databases!(
    tokens_carry_the_documented_claims_and_verify_against_the_jwks,
    ttl_bounds_and_bad_input_are_refused_with_the_field_named,
    a_tampered_token_and_one_signed_by_another_key_fail,
    rotation_keeps_old_tokens_valid_until_they_expire,
);

async fn jwks(app: &TestApp) -> Value {
    let reply = app
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// What an independent verifier does: split the compact JWS, find the key by
/// the header's `kid` in the JWKS, check the Ed25519 signature over
/// `header.payload`; answers the header and the claims.
fn verify(token: &str, jwks: &Value) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| B64.decode(part).map_err(|e| e.to_string());
    let header_json: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header_json["alg"] != "EdDSA" {
        return Err(format!("alg {}", header_json["alg"]));
    }
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header_json["kid"])
        .ok_or("no such kid")?;
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let x: [u8; 32] = decode(key["x"].as_str().unwrap())?
        .try_into()
        .map_err(|_| "x is not 32 bytes")?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let signature: [u8; 64] = decode(signature)?
        .try_into()
        .map_err(|_| "the signature is not 64 bytes")?;
    verifying
        .verify_strict(
            format!("{header}.{payload}").as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|e| format!("signature: {e}"))?;
    let claims = serde_json::from_slice(&decode(payload)?).map_err(|e| e.to_string())?;
    Ok((header_json, claims))
}

async fn mint(app: &TestApp, body: Value) -> Value {
    let reply = app
        .admin(Method::POST, "/v1/access/tokens", Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// An active subscription (ada, `pro`), an expired one (bo, `pro`) and a grant
/// (cy, `team`, ten days).
async fn customers(app: &TestApp) {
    app.zenofy_integration().await;
    for (sub, email, start, end) in [
        ("sub-ada", "ada@example.com", -1, 30),
        ("sub-bo", "bo@example.com", -60, -30),
    ] {
        let reply = app
            .zenofy(lifecycle::activation(
                sub,
                email,
                ZENOFY_PRODUCTS[0].0,
                start,
                end,
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    assert_eq!(app.store.expire_lapsed(time_fmt::now()).await.unwrap(), 1);
    let until = time_fmt::truncate(time_fmt::now()) + time::Duration::days(10);
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/grants",
            Some(
                json!({"email": "cy@example.com", "product": "team", "reason": "support",
                "valid_until": time_fmt::rfc3339(until)}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// The entitlement `GET /v1/access` answers, as a token claims it.
async fn claimed(app: &TestApp, email: &str, product: &str) -> Value {
    let reply = app.access(email, product, None).await;
    assert_eq!(reply.body["entitled"], true, "{:?}", reply.body);
    json!({"product": product, "reason": reply.body["reason"],
        "valid_until": reply.body["valid_until"], "plan": reply.body["plan"]})
}

async fn tokens_carry_the_documented_claims_and_verify_against_the_jwks(app: TestApp) {
    customers(&app).await;
    let before = time_fmt::now().unix_timestamp();
    let answer = mint(&app, json!({"email": "Ada@Example.com"})).await;
    let after = time_fmt::now().unix_timestamp();
    let keys = jwks(&app).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let jwk = &keys["keys"][0];
    assert_eq!(
        jwk.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["kty", "crv", "x", "kid", "use", "alg"],
        "a public key only: {jwk}"
    );
    assert_eq!(
        (jwk["use"].clone(), jwk["alg"].clone()),
        (json!("sig"), json!("EdDSA"))
    );

    let (header, claims) = verify(answer["token"].as_str().unwrap(), &keys).expect("verifies");
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "JWT", "kid": jwk["kid"]})
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=after).contains(&iat), "{claims}");
    assert_eq!(
        claims,
        json!({
            "iss": "http://127.0.0.1:8080",
            "sub": "ada@example.com",
            "iat": iat,
            "exp": iat + 300,
            "entitlements": [claimed(&app, "ada@example.com", "pro").await],
        })
    );
    assert_eq!(claims["entitlements"][0]["reason"], "active");
    let expires_at = time::OffsetDateTime::from_unix_timestamp(iat + 300).unwrap();
    assert_eq!(answer["expires_at"], time_fmt::rfc3339(expires_at));
    assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");

    // Expired: no entitlements, and nothing else changes.
    let (_, claims) = verify(
        mint(&app, json!({"email": "bo@example.com", "products": null})).await["token"]
            .as_str()
            .unwrap(),
        &keys,
    )
    .unwrap();
    assert_eq!(claims["sub"], "bo@example.com");
    assert_eq!(claims["entitlements"], json!([]));
    assert_eq!(
        app.access("bo@example.com", "pro", None).await.body["reason"],
        "expired"
    );

    // A grant, with its `valid_until`; `products` narrows the list.
    let grant = claimed(&app, "cy@example.com", "team").await;
    assert_eq!(grant["reason"], "grant");
    assert!(grant["valid_until"].is_string());
    for (products, expected) in [
        (json!(null), json!([grant.clone()])),
        (json!(["team"]), json!([grant.clone()])),
        (json!(["pro", "team", "team"]), json!([grant.clone()])),
        (json!(["pro"]), json!([])),
        (json!([]), json!([])),
    ] {
        let answer = mint(
            &app,
            json!({"email": "cy@example.com", "products": products, "ttl_seconds": 60}),
        )
        .await;
        let (_, claims) = verify(answer["token"].as_str().unwrap(), &keys).unwrap();
        assert_eq!(claims["entitlements"], expected, "products {products}");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
    }
    // Nobody we know: a token with no entitlements.
    let (_, claims) = verify(
        mint(&app, json!({"email": "nobody@example.com"})).await["token"]
            .as_str()
            .unwrap(),
        &keys,
    )
    .unwrap();
    assert_eq!(claims["entitlements"], json!([]));

    // An app token may mint; no token may not; the JWKS needs none and may be
    // cached briefly.
    let token = app.app_token().await;
    let reply = app
        .with_token(
            &token,
            Method::POST,
            "/v1/access/tokens",
            Some(json!({"email": "ada@example.com"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    verify(reply.body["token"].as_str().unwrap(), &keys).unwrap();
    let reply = app
        .send(
            Request::post("/v1/access/tokens")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"email":"ada@example.com"}"#))
                .unwrap(),
        )
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, None);
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::get("/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");

    // The private key is in the database only.
    let seeds = private_keys(&app).await;
    assert_eq!(seeds.len(), 1);
    let jwks_text = keys.to_string();
    assert!(!jwks_text.contains(&seeds[0]) && !answer.to_string().contains(&seeds[0]));
}

/// The stored private halves of the keys that still have one.
async fn private_keys(app: &TestApp) -> Vec<String> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(&app.url).await.unwrap();
    let rows = sqlx::query("SELECT private_d FROM signing_keys WHERE private_d IS NOT NULL")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let seeds = rows
        .iter()
        .map(|r| r.get::<String, _>("private_d"))
        .collect();
    conn.close().await.unwrap();
    seeds
}

async fn ttl_bounds_and_bad_input_are_refused_with_the_field_named(app: TestApp) {
    let keys = jwks(&app).await;
    for ttl in [1, 3600] {
        let answer = mint(
            &app,
            json!({"email": "ada@example.com", "ttl_seconds": ttl}),
        )
        .await;
        let (_, claims) = verify(answer["token"].as_str().unwrap(), &keys).unwrap();
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            ttl
        );
    }
    let many: Vec<String> = (0..101).map(|i| format!("p{i}")).collect();
    for (body, field) in [
        (
            json!({"email": "ada@example.com", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"email": "ada@example.com", "ttl_seconds": 3601}),
            "ttl_seconds",
        ),
        (
            json!({"email": "ada@example.com", "ttl_seconds": -5}),
            "ttl_seconds",
        ),
        (
            json!({"email": "ada@example.com", "ttl_seconds": 1.5}),
            "ttl_seconds",
        ),
        (
            json!({"email": "ada@example.com", "ttl_seconds": "300"}),
            "ttl_seconds",
        ),
        (json!({"ttl_seconds": 300}), "email"),
        (json!({"email": "not an email"}), "email"),
        (
            json!({"email": "ada@example.com", "products": ["no spaces"]}),
            "products[0]",
        ),
        (
            json!({"email": "ada@example.com", "products": ["pro", ""]}),
            "products[1]",
        ),
        (
            json!({"email": "ada@example.com", "products": "pro"}),
            "products",
        ),
        (
            json!({"email": "ada@example.com", "products": many}),
            "products",
        ),
        (json!({"email": "ada@example.com", "scope": "all"}), "scope"),
    ] {
        let reply = app
            .admin(Method::POST, "/v1/access/tokens", Some(body.clone()))
            .await;
        reply.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
}

async fn a_tampered_token_and_one_signed_by_another_key_fail(app: TestApp) {
    customers(&app).await;
    let keys = jwks(&app).await;
    let token = mint(&app, json!({"email": "bo@example.com"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    verify(&token, &keys).expect("the original verifies");
    let [header, payload, signature] = token.split('.').collect::<Vec<_>>()[..] else {
        panic!("three parts")
    };
    // Bo claims Ada's entitlements: the payload changed, the signature not.
    let mut claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["entitlements"] = json!([{"product": "pro", "reason": "active",
        "valid_until": null, "plan": null}]);
    let forged = format!(
        "{header}.{}.{signature}",
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    assert!(verify(&forged, &keys).unwrap_err().starts_with("signature"));
    // One bit of the signature flipped.
    let mut bytes = B64.decode(signature).unwrap();
    bytes[10] ^= 1;
    let flipped = format!("{header}.{payload}.{}", B64.encode(bytes));
    assert!(
        verify(&flipped, &keys)
            .unwrap_err()
            .starts_with("signature")
    );
    // Signed by a key the service never published, under its own kid or
    // under the service's.
    let other = entitled::crypto::jws::SigningKey::generate();
    let foreign = other.sign_jwt(&claims);
    assert_eq!(verify(&foreign, &keys).unwrap_err(), "no such kid");
    let under_our_kid =
        other.sign_compact(&B64.decode(header).unwrap(), &B64.decode(payload).unwrap());
    assert!(
        verify(&under_our_kid, &keys)
            .unwrap_err()
            .starts_with("signature")
    );
    // The service's own verifier agrees.
    let published: Vec<entitled::crypto::jws::Jwk> =
        app.store.published_keys(time_fmt::now()).await.unwrap();
    assert!(entitled::crypto::jws::verify(&token, &published).is_ok());
    for bad in [&forged, &flipped, &foreign, &under_our_kid] {
        assert!(
            entitled::crypto::jws::verify(bad, &published).is_err(),
            "{bad}"
        );
    }
}

async fn rotation_keeps_old_tokens_valid_until_they_expire(app: TestApp) {
    use entitled::store::{KEY_PUBLISHED_AFTER_RETIREMENT, KEY_PUBLISHED_BEFORE_SIGNING};
    customers(&app).await;
    let old = mint(
        &app,
        json!({"email": "ada@example.com", "ttl_seconds": 3600}),
    )
    .await;
    let old_token = old["token"].as_str().unwrap().to_owned();
    let (old_header, _) = verify(&old_token, &jwks(&app).await).unwrap();
    let old_kid = old_header["kid"].as_str().unwrap().to_owned();

    // From the command line, as an operator would.
    let rotated_at = time_fmt::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_entitled"))
        .args(["rotate-signing-key", "--database-url", &app.url])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run entitled rotate-signing-key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Retiring {old_kid}: it signs until")),
        "{stdout}"
    );
    for seed in private_keys(&app).await {
        assert!(!stdout.contains(&seed), "no private key printed");
    }

    // The new key is published at once, before it signs.
    let keys = jwks(&app).await;
    let kids: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2, "{keys}");
    let new_kid = kids[0].clone();
    assert_eq!(kids[1], old_kid, "{keys}");
    assert!(
        stdout.contains(&format!("Added signing key {new_kid}")),
        "{stdout}"
    );
    let still_old = mint(&app, json!({"email": "ada@example.com"})).await;
    let (header, _) = verify(still_old["token"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(
        header["kid"],
        old_kid.as_str(),
        "the old key signs until the switch"
    );

    // After the switch the new key signs, and every token verifies against
    // the set published before it.
    let at = |d: time::Duration| rotated_at + d;
    let switched = at(KEY_PUBLISHED_BEFORE_SIGNING + time::Duration::seconds(5));
    let signer = app.store.signing_key(switched).await.unwrap();
    assert_eq!(signer.kid(), new_kid);
    let (header, claims) = verify(&signer.sign_jwt(&json!({"sub": "ada@example.com"})), &keys)
        .expect("a token of the new key verifies against the JWKS published before it signed");
    assert_eq!(
        (header["kid"].as_str(), claims["sub"].as_str()),
        (Some(new_kid.as_str()), Some("ada@example.com"))
    );
    verify(&old_token, &keys).expect("a token of the retired key still verifies");

    // The clock deletes the retired key's private half once it stops signing.
    assert_eq!(private_keys(&app).await.len(), 2);
    let before_switch = at(KEY_PUBLISHED_BEFORE_SIGNING - time::Duration::seconds(5));
    assert_eq!(
        app.store
            .forget_retired_signing_keys(before_switch)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.store
            .forget_retired_signing_keys(switched)
            .await
            .unwrap(),
        1
    );
    assert_eq!(private_keys(&app).await.len(), 1);

    // The retired key stays published until every token it signed has expired
    // (an hour at most after the switch, and a margin), and not after.
    let published = async |when| -> Vec<String> {
        app.store
            .published_keys(when)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect()
    };
    let last_exp = at(KEY_PUBLISHED_BEFORE_SIGNING + time::Duration::seconds(3600));
    assert!(KEY_PUBLISHED_AFTER_RETIREMENT > time::Duration::seconds(3600));
    assert_eq!(
        published(last_exp).await,
        [new_kid.clone(), old_kid.clone()]
    );
    let gone = at(KEY_PUBLISHED_BEFORE_SIGNING
        + KEY_PUBLISHED_AFTER_RETIREMENT
        + time::Duration::seconds(5));
    assert_eq!(published(gone).await, [new_kid.as_str()]);
    // A rotation then deletes the old key for good, and retires the new one.
    let rotation = app.store.rotate_signing_key(gone).await.unwrap();
    assert_eq!(rotation.retired, [new_kid.as_str()]);
    assert_eq!(published(gone).await, [rotation.added.clone(), new_kid]);
}
