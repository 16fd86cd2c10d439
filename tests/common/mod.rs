//! The test harness: the real router on a fresh database, SQLite always and
//! PostgreSQL when `ENTITLED_TEST_POSTGRES_URL` is set (each test in its own
//! schema, so tests run in parallel).
#![allow(dead_code)]

pub mod browser;
pub mod lifecycle;
pub mod orders;
pub mod receiver;
pub mod server;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use entitled::store::Store;
use entitled::{AppState, Settings, app};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const SECRET: &str = "zenofy-secret-123";

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running app on its own database.
pub struct TestApp {
    pub router: Router,
    /// What the router's handlers share: the outbound sender, the metrics.
    pub state: AppState,
    pub store: Store,
    pub db: Db,
    /// The database URL, for a second store or process on the same data.
    pub url: String,
    /// The store's background work (writers, sequencer, follower).
    _workers: entitled::workers::Workers,
    cleanup: Option<Cleanup>,
    _dir: Option<TempDir>,
}

/// Runs one test body on one engine; PostgreSQL is skipped (with a note)
/// unless `ENTITLED_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestApp::start($crate::common::Db::Sqlite).await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::common::TestApp::start($crate::common::Db::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!(
                            "skipped {}: set ENTITLED_TEST_POSTGRES_URL to run it on PostgreSQL",
                            stringify!($name)
                        ),
                    }
                }
            )*
        }
    };
}

impl TestApp {
    /// A fresh app, or `None` for PostgreSQL when no server is configured.
    pub async fn start(db: Db) -> Option<Self> {
        Self::start_with(db, Settings::default()).await
    }

    pub async fn start_with(db: Db, settings: Settings) -> Option<Self> {
        let (url, cleanup, dir) = match db {
            Db::Sqlite => {
                let dir = TempDir::new();
                (
                    format!("sqlite://{}/entitled.db", dir.0.display()),
                    None,
                    Some(dir),
                )
            }
            Db::Postgres => {
                let base = std::env::var("ENTITLED_TEST_POSTGRES_URL").ok()?;
                let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
                let (admin, _background) = Store::connect_without_migrating(&base)
                    .await
                    .expect("postgres");
                admin
                    .execute_admin(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create schema");
                admin.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                (url, Some(Cleanup { base, schema }), None)
            }
        };
        let (store, workers) = entitled::workers::connect(&url)
            .await
            .expect("connect and migrate");
        store
            .bootstrap_admin_token(
                Some(&entitled::secret::Secret::new(ADMIN_TOKEN)),
                entitled::time_fmt::now(),
            )
            .await
            .expect("admin token");
        assert!(
            store.wait_ready(std::time::Duration::from_secs(30)).await,
            "the read model did not load"
        );
        let state = AppState::new(store.clone(), settings);
        let router = app(state.clone());
        Some(Self {
            router,
            state,
            store,
            db,
            url,
            _workers: workers,
            cleanup,
            _dir: dir,
        })
    }

    /// Sends one request through the real router.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// A request with the admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.with_token(ADMIN_TOKEN, method, path, body).await
    }

    pub async fn with_token(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// Creates a Zenofy integration `zenofy` with `SECRET`, mapping the docs'
    /// product id to `pro`.
    pub async fn zenofy_integration(&self) {
        let reply = self
            .admin(
                Method::PUT,
                "/v1/admin/integrations/zenofy",
                Some(serde_json::json!({
                    "provider": "zenofy",
                    "secret": SECRET,
                    "product_map": {"507f1f77bcf86cd799439011": "pro"}
                })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }

    /// Makes an app-scope API token; answers its value.
    pub async fn app_token(&self) -> String {
        let made = self
            .admin(
                Method::POST,
                "/v1/admin/tokens",
                Some(serde_json::json!({"name": "backend", "scope": "app"})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        made.body["token"].as_str().unwrap().to_owned()
    }

    /// Posts a raw body to a webhook URL with the given extra headers.
    pub async fn webhook(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder().method(Method::POST).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body.into())).unwrap())
            .await
    }

    /// Posts a body to the Zenofy integration, authenticated by header.
    pub async fn zenofy(&self, body: impl Into<Vec<u8>>) -> Reply {
        self.webhook(
            "/v1/webhooks/zenofy",
            &[
                ("content-type", "application/json"),
                ("x-webhook-secret", SECRET),
            ],
            body,
        )
        .await
    }

    /// `GET /v1/access` with the admin token.
    pub async fn access(&self, email: &str, product: &str, at: Option<&str>) -> Reply {
        let mut path = format!("/v1/access?email={}&product={product}", urlencode(email));
        if let Some(at) = at {
            path.push_str(&format!("&at={}", urlencode(at)));
        }
        self.admin(Method::GET, &path, None).await
    }

    /// A subscription's detail (with history) by id.
    pub async fn subscription(&self, id: &str) -> Value {
        let reply = self
            .admin(Method::GET, &format!("/v1/admin/subscriptions/{id}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body
    }
}

/// A response, its body parsed as JSON (or kept as a string).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// Asserts an RFC 9457 problem with this status naming `field`.
    pub fn assert_problem(&self, status: StatusCode, field: Option<&str>) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{:?}",
            self.body
        );
        assert_eq!(self.body["status"], status.as_u16(), "{:?}", self.body);
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        let detail = self.body["detail"].as_str().expect("detail");
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "{:?}", self.body);
            assert!(
                detail.contains(field),
                "detail {detail:?} should name {field}"
            );
        }
    }

    /// Asserts a 400 `invalid-request` problem naming `field`; `what` says
    /// which case of a test this is.
    pub fn assert_invalid(&self, what: &str, field: &str) {
        assert_eq!(
            self.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            self.body
        );
        self.assert_problem(StatusCode::BAD_REQUEST, Some(field));
        assert_eq!(
            self.body["type"], "urn:entitled:problem:invalid-request",
            "{what}: {:?}",
            self.body
        );
    }

    /// Asserts a 404 `not-found` problem.
    pub fn assert_not_found(&self) {
        self.assert_problem(StatusCode::NOT_FOUND, None);
        assert_eq!(
            self.body["type"], "urn:entitled:problem:not-found",
            "{:?}",
            self.body
        );
    }
}

pub fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Standard Webhooks signature header entry (`v1,<base64>`) of one
/// message, as Svix signs it for Zeno Bank: the tests' only signer. The
/// timestamp is signed as written, so a malformed one can be signed too.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: impl std::fmt::Display,
    body: &[u8],
) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, Mac};
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded).expect("a base64 secret");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// A fixture's bytes.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// A fixture as JSON, to derive variants from.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).expect("fixture is JSON")
}

/// A fixture with some fields changed, as bytes.
pub fn variant(path: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut json = fixture_json(path);
    edit(&mut json);
    serde_json::to_vec(&json).unwrap()
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("entitled-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Drops a test's PostgreSQL schema when the test ends.
struct Cleanup {
    base: String,
    schema: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(Cleanup { base, schema }) = self.cleanup.take() {
            // A separate thread and runtime: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let (admin, _background) =
                        Store::connect_without_migrating(&base).await.ok()?;
                    let _ = admin
                        .execute_admin(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                    admin.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}
