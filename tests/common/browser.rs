//! Headless Chromium for the console tests: Debian's `chromium`, driven
//! through `chromedriver` over the W3C WebDriver protocol (JSON over HTTP, the
//! few commands the tests need, on hyper's client). A WebDriver crate would
//! bring a second TLS stack (aws-lc, built from C) for a driver on loopback.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether this machine has the browser and its driver (`.ci/run` installs
/// them; without them the browser tests say they were skipped).
pub fn available() -> bool {
    std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists()
}

/// A chromedriver process and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless session.
    pub async fn start() -> Self {
        let port = super::server::free_addr().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(status) = browser.raw("GET", "/status", None).await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = browser
            .raw(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1200,900",
                                 "--no-first-run", "--disable-extensions"]
                    },
                    "goog:loggingPrefs": {"browser": "ALL"}
                }}})),
            )
            .await
            .expect("a session");
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| "no answer from chromedriver".to_owned())?
            .map_err(|e| e.to_string())?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// One command of this session; panics on a WebDriver error.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let answer = self.raw(method, &path, body).await.expect("chromedriver");
        if answer["value"]["error"].is_string() {
            panic!("{method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.command("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.command("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let found = self
            .raw(
                "POST",
                &format!("/session/{}/element", self.session),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .expect("chromedriver");
        let id = found["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?} on {}: {}", "the page", found["value"]))
            .to_owned();
        Element { browser: self, id }
    }

    /// The first link whose text contains `text`.
    pub async fn link(&self, text: &str) -> Element<'_> {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({"using": "partial link text", "value": text})),
            )
            .await;
        Element {
            browser: self,
            id: found[ELEMENT].as_str().expect("a link").to_owned(),
        }
    }

    /// Sends keys to whatever has the focus (Tab walks the page).
    pub async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.command(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// What the page's scripts logged at level SEVERE (errors, refused
    /// loads, CSP violations).
    pub async fn errors(&self) -> Vec<String> {
        let logs = self
            .raw(
                "POST",
                &format!("/session/{}/se/log", self.session),
                Some(json!({"type": "browser"})),
            )
            .await
            .expect("chromedriver");
        logs["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Every URL the page loaded (itself and its resources).
    pub async fn loaded(&self) -> Vec<String> {
        self.script(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
            json!([]),
        )
        .await
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
    }

    /// The window as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.command("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a PNG in base64")
    }

    /// A cookie's value, by name.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.command("GET", "/cookie", None).await;
        cookies
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_owned))
    }
}

/// An element of the current page.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Element<'_> {
    /// Clicks something that loads a new page (a link, a form's button), and
    /// waits until the new page has loaded.
    pub async fn open(&self) {
        self.browser
            .script("window.__entitledOldPage = true;", json!([]))
            .await;
        self.click().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let loaded = self
                .browser
                .script(
                    "return window.__entitledOldPage === undefined && document.readyState === 'complete';",
                    json!([]),
                )
                .await;
            if loaded == true {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "no new page loaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn click(&self) {
        self.browser
            .command(
                "POST",
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .command(
                "POST",
                &format!("/element/{}/value", self.id),
                Some(json!({"text": text})),
            )
            .await;
    }

    pub async fn clear(&self) {
        self.browser
            .command(
                "POST",
                &format!("/element/{}/clear", self.id),
                Some(json!({})),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .command("GET", &format!("/element/{}/text", self.id), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
