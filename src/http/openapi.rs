//! The OpenAPI document: every handler's `#[utoipa::path]` gathered in one
//! place. Served at `/openapi.json`, browsable at `/docs` (Swagger UI, served
//! from the binary), printed by `entitled openapi` and committed as
//! `openapi/openapi.json`, which a test keeps equal to [`json`].

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::error::Problem;
use super::{
    AppState, access, changes, customers, deliveries, endpoints, entitlement_tokens, events,
    grants, health, integrations, orders, products, rebuild, subscriptions, tokens, webhooks,
};

/// Where the document is served.
pub const JSON_PATH: &str = "/openapi.json";

/// Where the Swagger UI is served.
pub const UI_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "entitled",
        description = "Turns payment-provider webhooks into entitlements.\n\n\
            JSON everywhere; instants are RFC 3339 UTC (`2026-05-01T08:30:00Z`). Errors are \
            RFC 9457 problem details (`application/problem+json`). Lists take `limit` \
            (default 50, max 500) and `cursor`, and return `{\"items\": [...], \"next_cursor\": null | \"...\"}`.\n\n\
            Authentication: `Authorization: Bearer <token>`. Scopes: `admin` (everything) and `app` \
            (access checks, customer entitlements, order registration). Missing or unknown token: 401; \
            wrong scope: 403. Webhooks authenticate with the provider's own scheme instead."
    ),
    paths(
        webhooks::receive,
        access::check,
        access::entitlements,
        entitlement_tokens::mint,
        entitlement_tokens::jwks,
        orders::register,
        orders::list,
        orders::show,
        integrations::put,
        integrations::list,
        integrations::show,
        integrations::delete,
        products::put,
        products::list,
        products::show,
        products::preview,
        rebuild::rebuild,
        subscriptions::list,
        subscriptions::show,
        grants::create,
        grants::list,
        grants::revoke,
        deliveries::list,
        deliveries::show,
        deliveries::replay,
        customers::show,
        changes::list,
        events::stream,
        endpoints::put,
        endpoints::list,
        endpoints::show,
        endpoints::remove,
        endpoints::rotate,
        endpoints::test,
        endpoints::messages,
        endpoints::resend,
        tokens::create,
        tokens::list,
        tokens::remove,
        health::healthz,
        health::readyz,
        health::metrics,
        serve,
    ),
    components(schemas(Problem)),
    modifiers(&SecurityAddon, &DocsAddon),
    tags(
        (name = "webhooks", description = "Provider webhook ingress"),
        (name = "access", description = "What a SaaS backend asks: is this customer entitled?"),
        (name = "orders", description = "One-time orders: registration (scope `app`) and the admin view"),
        (name = "integrations", description = "Configured webhook sources"),
        (name = "products", description = "Access policies"),
        (name = "rebuild", description = "Every source derived again from the stored deliveries"),
        (name = "subscriptions", description = "What the state machine made of the deliveries"),
        (name = "grants", description = "Entitlements given by hand"),
        (name = "deliveries", description = "The delivery log, and replay"),
        (name = "customers", description = "Everything about one customer"),
        (name = "changes", description = "The change log: every change of an access answer, with its cause"),
        (name = "events", description = "The change log as Server-Sent Events"),
        (name = "endpoints", description = "Outbound webhooks: endpoints, messages, attempts"),
        (name = "tokens", description = "API tokens"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "openapi", description = "This document and its browsable UI"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the token-guarded operations name.
struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`ent_…`) with scope `admin` or `app`, created with \
                         `POST /v1/admin/tokens` (or the bootstrap admin token)",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /docs`: the Swagger UI's routes are utoipa-swagger-ui's, so the
/// operation is described here rather than on a handler.
struct DocsAddon;

impl Modify for DocsAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let redirect = ResponseBuilder::new()
            .description("To `/docs/`, the Swagger UI (HTML, served from the binary)")
            .header(
                "location",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("`/docs/`"))
                    .build(),
            )
            .build();
        let operation = OperationBuilder::new()
            .tag("openapi")
            .operation_id(Some("docs"))
            .summary(Some("Browse this document."))
            .description(Some(
                "A Swagger UI for `/openapi.json`, served from the binary with no network \
                 access. `/docs` redirects to `/docs/`.",
            ))
            .response("303", redirect)
            .build();
        openapi
            .paths
            .add_path_operation(UI_PATH, vec![HttpMethod::Get], operation);
    }
}

/// The whole document as JSON: what utoipa generates from the handlers, then
/// what derive macros cannot spell: the rules requests must follow
/// ([`super::rules::state`]), the events of the event stream
/// ([`events::document_events`]) and the links between operations
/// ([`super::links::state`]).
pub fn document_value() -> serde_json::Value {
    let mut value =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    super::rules::state(&mut value);
    events::document_events(&mut value);
    super::links::state(&mut value);
    value
}

/// The document as pretty JSON with a trailing newline: what `/openapi.json`
/// serves, `entitled openapi` prints and `openapi/openapi.json` holds. Maps
/// are ordered (paths, schemas, properties), so the output is stable.
pub fn json() -> String {
    let mut json =
        serde_json::to_string_pretty(&document_value()).expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

static JSON: LazyLock<String> = LazyLock::new(json);

/// `/openapi.json` and the Swagger UI at `/docs`, outside authentication.
pub(super) fn router() -> Router<AppState> {
    let ui = SwaggerUi::new(UI_PATH).config(Config::new([JSON_PATH]).validator_url("none"));
    Router::new().route(JSON_PATH, get(serve)).merge(ui)
}

/// This OpenAPI document.
///
/// The OpenAPI description of every endpoint, the same bytes as
/// `entitled openapi` prints and `openapi/openapi.json` holds.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "openapi",
    responses((status = 200, description = "The document", body = Object, content_type = "application/json")),
)]
async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}
