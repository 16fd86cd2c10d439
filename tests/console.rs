//! The operator console in a real headless Chromium (Debian's, through
//! chromedriver), against a real `entitled serve` on SQLite and on
//! PostgreSQL: sign-in (a wrong token, an app token, an admin token), finding
//! a customer and following a timeline entry to its raw delivery, filtering
//! the delivery log and replaying a rejected delivery, giving and revoking a
//! grant (and the access API agreeing), signing out; a cross-site POST with
//! the session cookie is refused; no page loads anything from another host,
//! logs a script error or shows a secret. Then configuration: a policy
//! change previewed (and nothing changed) then saved, an endpoint added (its
//! secret shown once), tested, its message resent; a token made (shown once),
//! used and deleted.

mod common;

use serde_json::{Value, json};

use common::browser::{self, Browser};
use common::receiver::Receiver;
use common::server::{PgDatabase, Server, http_request};
use common::{ADMIN_TOKEN, SECRET, TempDir, fixture_json, urlencode};

/// Tab, as WebDriver types it.
const TAB: &str = "\u{E004}";

fn zenofy(server: &Server, event: &str, subscription: &str, email: &str) -> Value {
    // One period for every event of the test: midnight-aligned.
    let now = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let fmt = |at: time::OffsetDateTime| entitled::time_fmt::rfc3339(at);
    let mut body = fixture_json(&format!("zenofy/subscription.{event}.json"));
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["currentPeriodStart"] = json!(fmt(now - time::Duration::days(1)));
    body["currentPeriodEnd"] = json!(fmt(now + time::Duration::days(30)));
    let (status, reply) = server.call(
        "POST",
        "/v1/webhooks/zenofy",
        &[
            ("content-type", "application/json"),
            ("x-webhook-secret", SECRET),
        ],
        body.to_string().as_bytes(),
    );
    assert!(status == 200 || status == 202, "{status} {reply}");
    reply
}

fn access(server: &Server, token: &str, email: &str) -> Value {
    let auth = format!("Bearer {token}");
    let (status, body) = server.call(
        "GET",
        &format!("/v1/access?email={}&product=pro", urlencode(email)),
        &[("authorization", auth.as_str())],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// What every page must be: only this host's resources, no script error, no
/// secret, every visible form control labelled.
async fn check_page(browser: &Browser, base: &str, secrets: &[&str]) {
    let url = browser.url().await;
    for loaded in browser.loaded().await {
        assert!(loaded.starts_with(base), "{url} loaded {loaded}");
    }
    let errors = browser.errors().await;
    assert!(errors.is_empty(), "{url} logged {errors:?}");
    let source = browser.source().await;
    for secret in secrets {
        assert!(!source.contains(secret), "{url} shows a secret");
    }
    let unlabelled = browser
        .script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select')]
               .filter(e => !e.id || !document.querySelector(`label[for=\"${e.id}\"]`))
               .map(e => e.name);",
            json!([]),
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{url}: controls without a label");
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console/sign-in")).await;
    browser.find("#token").await.type_text(token).await;
    browser.find("form button[type=submit]").await.open().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_answers_a_customer_in_the_browser_on_sqlite() {
    if !browser::available() {
        eprintln!(
            "skipped: the console tests need {} and {}",
            browser::CHROMIUM,
            browser::CHROMEDRIVER
        );
        return;
    }
    let dir = TempDir::new();
    operator_session(&format!("sqlite://{}/entitled.db", dir.0.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_answers_a_customer_in_the_browser_on_postgres() {
    if !browser::available() {
        eprintln!(
            "skipped: the console tests need {} and {}",
            browser::CHROMIUM,
            browser::CHROMEDRIVER
        );
        return;
    }
    let Some(db) = PgDatabase::create() else {
        eprintln!(
            "skipped an_operator_answers_a_customer_in_the_browser on PostgreSQL: \
             set ENTITLED_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    operator_session(&db.url).await;
}

async fn operator_session(url: &str) {
    let logs = TempDir::new();
    let server = Server::start(url, &logs.0);
    let base = format!("http://{}", server.addr);
    let integration = json!({"provider": "zenofy", "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}});
    let (status, body) = server.admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");
    let (status, app) = server.admin(
        "POST",
        "/v1/admin/tokens",
        Some(&json!({"name": "backend", "scope": "app"})),
    );
    assert_eq!(status, 201, "{app}");
    let app_token = app["token"].as_str().unwrap().to_owned();
    let secrets = [SECRET, ADMIN_TOKEN, app_token.as_str()];

    // ada is active; bea's suspension arrives before her activation: rejected.
    let ada = zenofy(&server, "activated", "sub-ada", "ada@example.com");
    assert_eq!(ada["outcome"], "applied");
    zenofy(&server, "created", "sub-bea", "bea@example.com");
    let rejected = zenofy(&server, "suspended", "sub-bea", "bea@example.com");
    assert_eq!(rejected["outcome"], "rejected", "{rejected}");

    let browser = Browser::start().await;
    // Signed out, every page leads to the sign-in form.
    browser.goto(&format!("{base}/console")).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
    check_page(&browser, &base, &secrets).await;
    // A wrong token, then an app token, are refused with a reason.
    sign_in(&browser, &base, "not-a-token-at-all").await;
    let text = browser.text().await;
    assert!(text.contains("That token is not known"), "{text}");
    sign_in(&browser, &base, &app_token).await;
    assert!(
        browser
            .text()
            .await
            .contains("the console needs an admin token")
    );
    assert!(browser.cookie("entitled_console").await.is_none());
    // The browser notes the two refusals (401, 403) as failed loads: those
    // and nothing else.
    let refusals = browser.errors().await;
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[0].contains("/console/sign-in") && refusals[0].contains("401"));
    assert!(refusals[1].contains("/console/sign-in") && refusals[1].contains("403"));
    sign_in(&browser, &base, ADMIN_TOKEN).await;
    assert_eq!(browser.url().await, format!("{base}/console"));
    let text = browser.text().await;
    assert!(text.contains("Sources by state"), "{text}");
    assert!(text.contains("Deliveries by outcome"), "{text}");
    check_page(&browser, &base, &secrets).await;
    // The keyboard reaches the skip link first.
    browser.keys(TAB).await;
    let focused = browser
        .script("return document.activeElement.textContent;", json!([]))
        .await;
    assert_eq!(focused, "Skip to content");

    // Find ada: search, pick her, read her answer and what led to it.
    browser.link("Customers").await.open().await;
    browser.find("#q").await.type_text("ad").await;
    browser.find("form[role=search] button").await.open().await;
    check_page(&browser, &base, &secrets).await;
    browser.link("ada@example.com").await.open().await;
    let text = browser.text().await;
    assert!(text.contains("pro: entitled"), "{text}");
    assert!(text.contains("Reason active"), "{text}");
    check_page(&browser, &base, &secrets).await;
    // `ENTITLED_CONSOLE_SCREENSHOT=docs/console-customer.png` keeps a picture
    // of this page (the README's).
    if let Ok(path) = std::env::var("ENTITLED_CONSOLE_SCREENSHOT") {
        std::fs::write(path, browser.screenshot().await).expect("the screenshot");
    }
    // On a narrow screen nothing spills sideways.
    let narrow = browser
        .script(
            "document.body.style.width = '360px'; \
             return document.body.scrollWidth <= 360 + 1;",
            json!([]),
        )
        .await;
    assert_eq!(narrow, true, "the customer page overflows at 360 px");

    // The timeline entry leads to the raw delivery.
    browser.link("delivery ").await.open().await;
    let delivery_id = ada["delivery_id"].as_str().unwrap();
    assert_eq!(
        browser.url().await,
        format!("{base}/console/deliveries/{delivery_id}")
    );
    let text = browser.text().await;
    assert!(text.contains("subscription.activated"), "the body: {text}");
    assert!(text.contains("[REDACTED]"), "the headers, redacted: {text}");
    check_page(&browser, &base, &secrets).await;

    // The delivery log filtered to rejected deliveries: only bea's.
    browser.link("Deliveries").await.open().await;
    browser.find("#f-outcome").await.click().await;
    browser
        .find("#f-outcome option[value=rejected]")
        .await
        .click()
        .await;
    browser
        .find("main form button[type=submit]")
        .await
        .open()
        .await;
    assert!(browser.url().await.contains("outcome=rejected"));
    let outcomes = browser
        .script(
            "return [...document.querySelectorAll('main table tbody tr')].map(r => r.cells[3].textContent);",
            json!([]),
        )
        .await;
    assert_eq!(outcomes, json!(["rejected"]));
    check_page(&browser, &base, &secrets).await;
    // Once bea's activation has come, replaying the rejected suspension applies it.
    zenofy(&server, "activated", "sub-bea", "bea@example.com");
    browser.find("main table tbody a").await.open().await;
    browser.find("main form button").await.open().await;
    let text = browser.text().await;
    assert!(text.contains("Replayed: applied."), "{text}");
    let attempts = browser
        .script(
            "return [...document.querySelectorAll('main table tbody tr')].map(r => r.cells[1].textContent + ' ' + r.cells[2].textContent);",
            json!([]),
        )
        .await;
    assert_eq!(attempts, json!(["received rejected", "replay applied"]));
    assert_eq!(
        access(&server, &app_token, "bea@example.com")["reason"],
        "suspended"
    );
    check_page(&browser, &base, &secrets).await;

    // Subscriptions filtered to bea's; her history links every delivery.
    browser.link("Subscriptions").await.open().await;
    browser
        .find("#f-email")
        .await
        .type_text("BEA@example.com")
        .await;
    browser
        .find("main form button[type=submit]")
        .await
        .open()
        .await;
    let customers = browser
        .script(
            "return [...document.querySelectorAll('main table tbody tr')].map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent);",
            json!([]),
        )
        .await;
    assert_eq!(customers, json!(["bea@example.com suspended"]));
    check_page(&browser, &base, &secrets).await;
    browser
        .find("main table tbody td:last-child a")
        .await
        .open()
        .await;
    let events = browser
        .script(
            "return [...document.querySelectorAll('main table tbody tr')].map(r => r.cells[1].textContent + ' ' + r.cells[3].firstChild.textContent);",
            json!([]),
        )
        .await;
    let events: Vec<String> = serde_json::from_value(events).unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events[0].starts_with("created applied"), "{events:?}");
    let links = browser
        .script(
            "return document.querySelectorAll('main a[href^=\"/console/deliveries/\"]').length;",
            json!([]),
        )
        .await;
    assert_eq!(links, json!(4), "every entry links its delivery");
    check_page(&browser, &base, &secrets).await;
    browser.link("Orders").await.open().await;
    assert!(browser.text().await.contains("No orders match."));
    check_page(&browser, &base, &secrets).await;
    // Integrations show the URL to paste into the provider, never the secret;
    // after a rotation that keeps the old secret, until when it is accepted.
    let rotated = json!({"provider": "zenofy", "secret": "zenofy-secret-rotated-4711",
        "product_map": {"507f1f77bcf86cd799439011": "pro"}, "keep_previous_secret_seconds": 86400});
    let (status, body) = server.admin("PUT", "/v1/admin/integrations/zenofy", Some(&rotated));
    assert_eq!(status, 200, "{body}");
    let until = body["previous_secret_until"].as_str().unwrap().to_owned();
    browser.link("Integrations").await.open().await;
    let text = browser.text().await;
    assert!(
        text.contains(&format!("{base}/v1/webhooks/zenofy")),
        "{text}"
    );
    assert!(text.contains(&format!("accepted until {until}")), "{text}");
    check_page(&browser, &base, &secrets).await;
    check_page(&browser, &base, &["zenofy-secret-rotated-4711"]).await;

    // A grant given and revoked in the console; the access API agrees each time.
    browser
        .goto(&format!("{base}/console/customers/carl%40example.com"))
        .await;
    browser.find("#grant-product").await.type_text("pro").await;
    browser
        .find("#grant-reason")
        .await
        .type_text("support ticket 4711")
        .await;
    browser
        .find("form[action$='/grants'] button")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Granted pro to carl@example.com."), "{text}");
    assert!(text.contains("pro: entitled"), "{text}");
    let answer = access(&server, &app_token, "carl@example.com");
    assert_eq!(
        (answer["entitled"].clone(), answer["reason"].clone()),
        (json!(true), json!("grant"))
    );
    check_page(&browser, &base, &secrets).await;
    browser
        .find("form[action$='/revoke'] button")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Revoked the pro grant."), "{text}");
    let answer = access(&server, &app_token, "carl@example.com");
    assert_eq!(
        (answer["entitled"].clone(), answer["reason"].clone()),
        (json!(false), json!("revoked"))
    );

    // A cross-site POST carrying the session cookie is refused, even with the
    // form's token; nothing is written.
    let cookie = browser
        .cookie("entitled_console")
        .await
        .expect("the session cookie");
    let csrf = browser
        .script(
            "return document.querySelector('input[name=csrf]').value;",
            json!([]),
        )
        .await;
    let csrf = csrf.as_str().unwrap();
    let post = |origin: Option<&str>, csrf: &str| {
        let cookie = format!("entitled_console={cookie}");
        let form = format!("csrf={csrf}&product=pro&reason=forged");
        let mut headers = vec![
            ("cookie", cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        let (status, _) = http_request(
            server.addr,
            "POST",
            "/console/customers/dan%40example.com/grants",
            &headers,
            form.as_bytes(),
        )
        .unwrap();
        status
    };
    assert_eq!(post(Some("http://evil.example"), csrf), 403);
    assert_eq!(post(None, csrf), 403, "no Origin, no Referer");
    assert_eq!(post(Some(&base), "not-the-token"), 403);
    let (_, grants) = server.admin("GET", "/v1/admin/grants?email=dan%40example.com", None);
    assert_eq!(grants["items"], json!([]), "nothing was written");
    assert_eq!(
        post(Some(&base), csrf),
        303,
        "the same form from the console is taken"
    );

    // Sign out: the session ends, the console asks to sign in again.
    browser.find("header form button").await.open().await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
    let (status, _) = http_request(
        server.addr,
        "GET",
        "/console",
        &[("cookie", format!("entitled_console={cookie}").as_str())],
        b"",
    )
    .unwrap();
    assert_eq!(status, 303, "the old cookie no longer opens the console");
    browser.goto(&format!("{base}/console")).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_configures_products_endpoints_and_tokens_on_sqlite() {
    if !browser::available() {
        eprintln!(
            "skipped: the console tests need {} and {}",
            browser::CHROMIUM,
            browser::CHROMEDRIVER
        );
        return;
    }
    let dir = TempDir::new();
    configuration_session(&format!("sqlite://{}/entitled.db", dir.0.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_configures_products_endpoints_and_tokens_on_postgres() {
    if !browser::available() {
        eprintln!(
            "skipped: the console tests need {} and {}",
            browser::CHROMIUM,
            browser::CHROMEDRIVER
        );
        return;
    }
    let Some(db) = PgDatabase::create() else {
        eprintln!(
            "skipped an_operator_configures_products_endpoints_and_tokens on PostgreSQL: \
             set ENTITLED_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    configuration_session(&db.url).await;
}

/// The value of the read-only field a secret is shown in, once.
async fn shown_secret(browser: &Browser) -> String {
    let value = browser
        .script("return document.querySelector('#secret').value;", json!([]))
        .await;
    value.as_str().expect("a secret is shown").to_owned()
}

async fn configuration_session(url: &str) {
    let logs = TempDir::new();
    let server = Server::start(url, &logs.0);
    let base = format!("http://{}", server.addr);
    let integration = json!({"provider": "zenofy", "secret": SECRET,
        "product_map": {"507f1f77bcf86cd799439011": "pro"}});
    let (status, body) = server.admin("PUT", "/v1/admin/integrations/zenofy", Some(&integration));
    assert_eq!(status, 201, "{body}");
    let (status, app) = server.admin(
        "POST",
        "/v1/admin/tokens",
        Some(&json!({"name": "backend", "scope": "app"})),
    );
    assert_eq!(status, 201, "{app}");
    let app_token = app["token"].as_str().unwrap().to_owned();
    // ada is active; bea canceled (under the default policy: no access).
    zenofy(&server, "activated", "sub-ada", "ada@example.com");
    zenofy(&server, "activated", "sub-bea", "bea@example.com");
    zenofy(&server, "canceled", "sub-bea", "bea@example.com");
    let bea = access(&server, &app_token, "bea@example.com");
    assert_eq!(bea["entitled"], json!(false), "{bea}");

    let browser = Browser::start().await;
    sign_in(&browser, &base, ADMIN_TOKEN).await;
    let mut secrets = vec![SECRET.to_owned(), ADMIN_TOKEN.to_owned(), app_token.clone()];
    let check = async |browser: &Browser, secrets: &[String]| {
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        check_page(browser, &base, &secrets).await;
    };

    // Products: open pro (not configured: the defaults), preview a change.
    browser.link("Products").await.open().await;
    assert!(
        browser
            .text()
            .await
            .contains("No product is configured yet.")
    );
    check(&browser, &secrets).await;
    browser.find("#p-key").await.type_text("pro").await;
    browser
        .find("form[action='/console/products'] button")
        .await
        .open()
        .await;
    assert!(browser.url().await.ends_with("/console/products/pro"));
    let text = browser.text().await;
    assert!(text.contains("Not configured"), "{text}");
    check(&browser, &secrets).await;
    let grace = browser.find("#grace").await;
    grace.clear().await;
    grace.type_text("0").await;
    browser
        .script(
            "document.querySelector('#canceled').value = 'period_end';",
            json!([]),
        )
        .await;
    browser
        .find("button[formaction$='/preview']")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(
        text.contains("1 would gain access, 0 would lose it, 1 would keep it with another end"),
        "{text}"
    );
    let rows = browser
        .script(
            "return [...document.querySelectorAll('main table')].map(t => \
               [...t.tBodies[0].rows].map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent));",
            json!([]),
        )
        .await;
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0][0].starts_with("bea@example.com active"), "{rows:?}");
    assert!(rows[1][0].starts_with("ada@example.com active"), "{rows:?}");
    check(&browser, &secrets).await;
    // A preview changes nothing.
    let bea = access(&server, &app_token, "bea@example.com");
    assert_eq!(bea["entitled"], json!(false), "{bea}");
    let (status, _) = server.admin("GET", "/v1/admin/products/pro", None);
    assert_eq!(status, 404, "still not configured");
    // The previewed form is kept: save it, and bea has access.
    browser
        .find("form[action='/console/products/pro'] button:not([formaction])")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Saved the policy of pro."), "{text}");
    let bea = access(&server, &app_token, "bea@example.com");
    assert_eq!(bea["entitled"], json!(true), "{bea}");
    let (_, product) = server.admin("GET", "/v1/admin/products/pro", None);
    assert_eq!(product["grace_period_seconds"], json!(0));
    assert_eq!(product["canceled_access"], json!("period_end"));
    check(&browser, &secrets).await;
    // A bad field is refused with its name, nothing saved.
    let grace = browser.find("#grace").await;
    grace.clear().await;
    grace.type_text("three days").await;
    browser
        .find("form[action='/console/products/pro'] button:not([formaction])")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(
        text.contains("`grace_period_seconds` must be a whole number"),
        "{text}"
    );
    let (_, product) = server.admin("GET", "/v1/admin/products/pro", None);
    assert_eq!(product["grace_period_seconds"], json!(0));
    let _ = browser.errors().await; // the 400 is noted as a failed load

    // Endpoints: add one; its secret is shown once and signs what it gets.
    let receiver = Receiver::start().await;
    browser.goto(&format!("{base}/console/endpoints")).await;
    check(&browser, &secrets).await;
    browser.find("#e-id").await.type_text("backend").await;
    browser.find("#e-url").await.type_text(&receiver.url).await;
    browser.find("#e-products").await.type_text("pro").await;
    browser
        .find("form[action='/console/endpoints'] button")
        .await
        .open()
        .await;
    let secret = shown_secret(&browser).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.trust(&secret);
    secrets.push(secret);
    browser.link("Continue").await.open().await;
    assert!(browser.url().await.ends_with("/console/endpoints/backend"));
    check(&browser, &secrets).await;
    browser
        .find("form[action$='/test'] button")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Test message delivered: 200."), "{text}");
    // A change is sent, and resent from its row with the same id.
    zenofy(&server, "suspended", "sub-ada", "ada@example.com");
    let got = receiver
        .wait_for(2, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|m| m.verified_by == [0]), "{got:?}");
    assert_eq!(got[1].body["data"]["email"], json!("ada@example.com"));
    browser
        .goto(&format!(
            "{base}/console/endpoints/backend?status=delivered"
        ))
        .await;
    let text = browser.text().await;
    assert!(text.contains(&got[1].id), "{text}");
    check(&browser, &secrets).await;
    browser
        .find(&format!(
            "form[action$='/messages/{}/resend'] button",
            got[1].id
        ))
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains(": 200; it is delivered."), "{text}");
    let got = receiver
        .wait_for(3, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].id, got[1].id, "a resend keeps the webhook-id");
    assert_eq!(got[2].body, got[1].body);
    check(&browser, &secrets).await;
    // Rotating shows the new secret once; the old one is still trusted.
    browser
        .find("form[action$='/rotate-secret'] button")
        .await
        .open()
        .await;
    let rotated = shown_secret(&browser).await;
    assert!(rotated.starts_with("whsec_") && !secrets.contains(&rotated));
    secrets.push(rotated);
    browser.link("Continue").await.open().await;
    check(&browser, &secrets).await;
    browser
        .find("form[action$='/delete'] button")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Deleted endpoint backend."), "{text}");
    let (status, _) = server.admin("GET", "/v1/admin/endpoints/backend", None);
    assert_eq!(status, 404);

    // Tokens: make one (shown once), use it, delete it: refused at once.
    browser.link("Tokens").await.open().await;
    let text = browser.text().await;
    assert!(
        text.contains("this session's token") || text.contains("backend"),
        "{text}"
    );
    check(&browser, &secrets).await;
    browser.find("#t-name").await.type_text("edge worker").await;
    browser
        .find("form[action='/console/tokens'] button")
        .await
        .open()
        .await;
    let made = shown_secret(&browser).await;
    assert!(made.starts_with("ent_"), "{made}");
    let ada = access(&server, &made, "ada@example.com");
    assert_eq!(ada["reason"], json!("suspended"), "{ada}");
    secrets.push(made.clone());
    browser.link("Continue").await.open().await;
    check(&browser, &secrets).await;
    browser
        .find("button[aria-label='Delete token edge worker']")
        .await
        .open()
        .await;
    let text = browser.text().await;
    assert!(text.contains("Deleted token"), "{text}");
    assert!(!text.contains("edge worker"), "{text}");
    let auth = format!("Bearer {made}");
    let (status, _) = server.call(
        "GET",
        "/v1/access?email=ada%40example.com&product=pro",
        &[("authorization", auth.as_str())],
        b"",
    );
    assert_eq!(status, 401, "a deleted token is refused");
    check(&browser, &secrets).await;
}
