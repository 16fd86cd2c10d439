//! OpenAPI links: from the operations that create, replace or list resources
//! to the operations on one of them, with where the id comes from. A client
//! (or schemathesis's stateful phase) follows them from an answer to the
//! resource it names instead of guessing ids. Written into the generated
//! document from one table, since `#[utoipa::path]` cannot spell them.

use serde_json::{Map, Value, json};

/// One link: an answer of `from` (by operationId and status) leads to `to`,
/// its parameters filled from the request or the answer.
struct Link {
    from: &'static str,
    statuses: &'static [&'static str],
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
}

/// The id the request named in its path.
const REQUEST_ID: &[(&str, &str)] = &[("id", "$request.path.id")];
/// The id of the resource answered.
const ANSWER_ID: &[(&str, &str)] = &[("id", "$response.body#/id")];
/// The id of the first item of a page.
const FIRST_ID: &[(&str, &str)] = &[("id", "$response.body#/items/0/id")];

const CREATED_OR_REPLACED: &[&str] = &["200", "201"];
const OK: &[&str] = &["200"];

const LINKS: &[Link] = &[
    // Integrations: PUT creates or replaces; GET shows; DELETE, then GET is a 404.
    Link {
        from: "put_integration",
        statuses: CREATED_OR_REPLACED,
        to: "get_integration",
        parameters: REQUEST_ID,
    },
    Link {
        from: "put_integration",
        statuses: CREATED_OR_REPLACED,
        to: "delete_integration",
        parameters: REQUEST_ID,
    },
    Link {
        from: "delete_integration",
        statuses: &["204"],
        to: "get_integration",
        parameters: REQUEST_ID,
    },
    Link {
        from: "list_integrations",
        statuses: OK,
        to: "get_integration",
        parameters: FIRST_ID,
    },
    // Products.
    Link {
        from: "put_product",
        statuses: CREATED_OR_REPLACED,
        to: "get_product",
        parameters: &[("key", "$request.path.key")],
    },
    Link {
        from: "put_product",
        statuses: CREATED_OR_REPLACED,
        to: "preview_product_policy",
        parameters: &[("key", "$request.path.key")],
    },
    Link {
        from: "list_products",
        statuses: OK,
        to: "get_product",
        parameters: &[("key", "$response.body#/items/0/key")],
    },
    // Outbound endpoints and their messages.
    Link {
        from: "put_endpoint",
        statuses: CREATED_OR_REPLACED,
        to: "get_endpoint",
        parameters: REQUEST_ID,
    },
    Link {
        from: "put_endpoint",
        statuses: CREATED_OR_REPLACED,
        to: "list_endpoint_messages",
        parameters: REQUEST_ID,
    },
    Link {
        from: "put_endpoint",
        statuses: CREATED_OR_REPLACED,
        to: "rotate_endpoint_secret",
        parameters: REQUEST_ID,
    },
    Link {
        from: "put_endpoint",
        statuses: CREATED_OR_REPLACED,
        to: "test_endpoint",
        parameters: REQUEST_ID,
    },
    Link {
        from: "put_endpoint",
        statuses: CREATED_OR_REPLACED,
        to: "delete_endpoint",
        parameters: REQUEST_ID,
    },
    Link {
        from: "delete_endpoint",
        statuses: &["204"],
        to: "get_endpoint",
        parameters: REQUEST_ID,
    },
    Link {
        from: "list_endpoints",
        statuses: OK,
        to: "get_endpoint",
        parameters: FIRST_ID,
    },
    Link {
        from: "list_endpoint_messages",
        statuses: OK,
        to: "resend_endpoint_message",
        parameters: &[
            ("id", "$request.path.id"),
            ("message", "$response.body#/items/0/id"),
        ],
    },
    // Grants: created, then revoked.
    Link {
        from: "create_grant",
        statuses: &["201"],
        to: "revoke_grant",
        parameters: ANSWER_ID,
    },
    Link {
        from: "create_grant",
        statuses: &["201"],
        to: "get_customer",
        parameters: &[("email", "$response.body#/email")],
    },
    Link {
        from: "list_grants",
        statuses: OK,
        to: "revoke_grant",
        parameters: FIRST_ID,
    },
    // API tokens: the one created may be deleted. (Not the listed ones: the
    // first may be the caller's own.)
    Link {
        from: "create_token",
        statuses: &["201"],
        to: "delete_token",
        parameters: ANSWER_ID,
    },
    // Orders: registered (scope `app`), then shown to the admin.
    Link {
        from: "register_order",
        statuses: CREATED_OR_REPLACED,
        to: "get_order",
        parameters: ANSWER_ID,
    },
    Link {
        from: "register_order",
        statuses: CREATED_OR_REPLACED,
        to: "get_customer",
        parameters: &[("email", "$response.body#/email")],
    },
    Link {
        from: "list_orders",
        statuses: OK,
        to: "get_order",
        parameters: FIRST_ID,
    },
    // What the deliveries made.
    Link {
        from: "list_subscriptions",
        statuses: OK,
        to: "get_subscription",
        parameters: FIRST_ID,
    },
    Link {
        from: "receive_webhook",
        statuses: OK,
        to: "get_delivery",
        parameters: &[("id", "$response.body#/delivery_id")],
    },
    Link {
        from: "list_deliveries",
        statuses: OK,
        to: "get_delivery",
        parameters: FIRST_ID,
    },
    Link {
        from: "list_deliveries",
        statuses: OK,
        to: "replay_delivery",
        parameters: FIRST_ID,
    },
    // The change log names customers.
    Link {
        from: "list_changes",
        statuses: OK,
        to: "get_customer",
        parameters: &[("email", "$response.body#/items/0/email")],
    },
];

/// Writes [`LINKS`] into the answers they start from.
pub fn state(doc: &mut Value) {
    for link in LINKS {
        let Some(operation) = operation_mut(doc, link.from) else {
            continue;
        };
        for status in link.statuses {
            let Some(Value::Object(response)) =
                operation.pointer_mut(&format!("/responses/{status}"))
            else {
                continue;
            };
            let parameters: Map<String, Value> = link
                .parameters
                .iter()
                .map(|(name, expression)| ((*name).to_owned(), json!(expression)))
                .collect();
            let links = response
                .entry("links")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(links) = links {
                links.insert(
                    link.to.to_owned(),
                    json!({"operationId": link.to, "parameters": parameters}),
                );
            }
        }
    }
}

/// The operation with this `operationId`.
fn operation_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    doc.get_mut("paths")?
        .as_object_mut()?
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|operation| operation.get("operationId").and_then(Value::as_str) == Some(id))
}
