//! The route list of the public API and its OpenAPI 3.1 description, served at
//! `/api/v1/openapi.json`.
//!
//! Each row of the route table ([`super::ROUTES`]) names its operation here (one function
//! per operation); [`document`] puts them at the rows' paths and methods, so the document
//! describes exactly what the router serves. The document is written by hand with
//! `serde_json::json!` (shapes as in
//! [`storefront_contracts::api`], camelCase) rather than generated, to keep the API types free of
//! documentation-only derives.
//!
//! Every operation takes an optional `X-Request-Id` and every response carries one (one
//! definition each under `components`, referenced everywhere: [`super::request_id`]); the
//! `Error` schema has the `requestId` that repeats it.

use serde_json::{Map, Value, json};

use super::Route;

fn error_response(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn body(schema: &str) -> Value {
    json!({"required": true,
           "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// A reference to `components/<kind>/<name>`.
fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

/// `responses` with the `X-Request-Id` header each of them carries.
fn with_request_id(mut responses: Map<String, Value>) -> Map<String, Value> {
    for response in responses.values_mut() {
        if let Some(response) = response.as_object_mut() {
            let headers = response
                .entry("headers")
                .or_insert_with(|| Value::Object(Map::new()));
            headers["X-Request-Id"] = reference("headers", "RequestId");
        }
    }
    responses
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_param(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"type": kind},
           "description": description})
}

fn operation(
    id: &str,
    summary: &str,
    bearer: bool,
    params: Vec<Value>,
    request: Option<Value>,
    responses: Vec<(&str, Value)>,
) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(id));
    op.insert("summary".into(), json!(summary));
    if bearer {
        op.insert("security".into(), json!([{"bearer": []}]));
    }
    let mut params = params;
    params.push(reference("parameters", "RequestId"));
    op.insert("parameters".into(), Value::Array(params));
    let has_body = request.is_some();
    if let Some(request) = request {
        op.insert("requestBody".into(), request);
    }
    let mut all: Map<String, Value> = responses
        .into_iter()
        .map(|(code, v)| (code.to_string(), v))
        .collect();
    all.entry("400")
        .or_insert_with(|| error_response("malformed request"));
    if has_body {
        all.entry("408")
            .or_insert_with(|| error_response("the body did not arrive in time"));
        all.entry("413")
            .or_insert_with(|| error_response("the body is over the size limit"));
    }
    all.entry("429").or_insert_with(|| {
        error_response(
            "over a limit: the shop's or the service's request budget, or (sign-in, sign-up) \
             too many attempts for the account or from the address; Retry-After says when",
        )
    });
    all.entry("503")
        .or_insert_with(|| error_response("a service the route needs is unavailable"));
    op.insert("responses".into(), Value::Object(with_request_id(all)));
    Value::Object(op)
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer", "format": "int64"});
    let summary = json!({"type": "object",
        "required": ["sku", "name", "category", "brand", "priceCents", "currency"],
        "properties": {"sku": string, "name": string, "category": string, "brand": string,
                       "priceCents": int, "currency": string}});
    let status = json!({"type": "string", "enum": ["PENDING", "CONFIRMED", "CANCELLED"]});
    let order = json!({"type": "object",
        "required": ["orderId", "status", "items", "totalCents", "currency"],
        "properties": {"orderId": string, "status": status,
            "items": {"type": "array", "items": {"type": "object",
                "required": ["sku", "quantity", "priceCents"],
                "properties": {"sku": string, "quantity": {"type": "integer"}, "priceCents": int}}},
            "totalCents": int, "currency": string, "reason": string}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": string, "message": string,
                "requestId": {"type": "string",
                    "description": "the X-Request-Id of the answer: quote it when reporting a problem"}}}}},
        "CreateUser": {"type": "object", "additionalProperties": false,
            "required": ["email", "password"],
            "properties": {"email": string, "password": string, "name": string}},
        "UserCreated": {"type": "object", "required": ["id", "email"],
            "properties": {"id": string, "email": string}},
        "CreateSession": {"type": "object", "additionalProperties": false,
            "required": ["email", "password"],
            "properties": {"email": string, "password": string}},
        "Session": {"type": "object", "required": ["token", "expiresAt"],
            "properties": {"token": string, "expiresAt": {"type": "string", "format": "date-time"}}},
        "ProductSummary": summary,
        "ProductPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ProductSummary"}},
            "next": {"type": ["string", "null"]}}},
        "Product": {"allOf": [{"$ref": "#/components/schemas/ProductSummary"},
            {"type": "object", "required": ["description", "available"],
             "properties": {"description": string, "available": int}}]},
        "Recommendations": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ProductSummary"}}}},
        "CreateOrder": {"type": "object", "additionalProperties": false, "required": ["items"],
            "properties": {"items": {"type": "array", "minItems": 1,
                "maxItems": storefront_contracts::api::MAX_ORDER_LINES,
                "items": {"type": "object", "additionalProperties": false,
                    "required": ["sku", "quantity"],
                    "properties": {"sku": string, "quantity": {"type": "integer",
                        "minimum": 1, "maximum": storefront_contracts::api::MAX_QUANTITY}}}}}},
        "OrderAccepted": {"type": "object", "required": ["orderId", "status"],
            "properties": {"orderId": string, "status": {"const": "PENDING"}}},
        "Order": order,
        "OrderList": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}}}},
        "Inventory": {"type": "object", "required": ["sku", "stock", "reserved", "available"],
            "properties": {"sku": string, "stock": int, "reserved": int, "available": int}},
    })
}

fn unauthorized() -> Value {
    error_response("no, bad, expired or wrong-audience token")
}

fn invalid() -> Value {
    error_response("semantically invalid")
}

fn too_large() -> Value {
    error_response("the body is over the size limit")
}

fn sku() -> Value {
    path_param("sku")
}

/// `ok` with the header a degraded answer carries.
fn degraded_ok(description: &str, schema: &str) -> Value {
    let mut ok = ok(description, schema);
    ok["headers"] = json!({"Storefront-Degraded": {"description":
        "present when an answer was built without a supporting service",
        "schema": {"type": "string"}}});
    ok
}

/// `POST /api/v1/users`.
pub fn create_user() -> Value {
    operation(
        "createUser",
        "Sign up",
        false,
        vec![],
        Some(body("CreateUser")),
        vec![
            ("201", ok("created", "UserCreated")),
            ("409", error_response("the email is taken")),
            ("413", too_large()),
            ("422", invalid()),
        ],
    )
}

/// `POST /api/v1/sessions`.
pub fn create_session() -> Value {
    operation(
        "createSession",
        "Sign in",
        false,
        vec![],
        Some(body("CreateSession")),
        vec![
            ("200", ok("a bearer token", "Session")),
            ("401", error_response("wrong email or password")),
            ("413", too_large()),
        ],
    )
}

/// `GET /api/v1/products`.
pub fn list_products() -> Value {
    operation(
        "listProducts",
        "Search and list products",
        false,
        vec![
            query_param("q", "string", "full-text query (all words must match)"),
            query_param("category", "string", "only this category"),
            query_param("limit", "integer", "1..=100, default 20"),
            query_param("cursor", "string", "`next` of the previous page"),
        ],
        None,
        vec![("200", ok("a page", "ProductPage")), ("422", invalid())],
    )
}

/// `GET /api/v1/products/{sku}`.
pub fn get_product() -> Value {
    operation(
        "getProduct",
        "A product",
        false,
        vec![sku()],
        None,
        vec![
            ("200", degraded_ok("the product", "Product")),
            ("404", error_response("no such product")),
        ],
    )
}

/// `GET /api/v1/products/{sku}/recommendations`.
pub fn recommendations() -> Value {
    operation(
        "getRecommendations",
        "Bought together (supporting: empty and degraded when unavailable)",
        false,
        vec![sku()],
        None,
        vec![
            ("200", degraded_ok("bought together", "Recommendations")),
            ("404", error_response("not a SKU")),
        ],
    )
}

/// `POST /api/v1/orders`.
pub fn create_order() -> Value {
    let idempotency_key = json!({"name": "Idempotency-Key", "in": "header", "required": true,
        "schema": {"type": "string", "minLength": 1,
                   "maxLength": storefront_contracts::api::MAX_IDEMPOTENCY_KEY_LEN}});
    operation(
        "createOrder",
        "Place an order (idempotent on the key)",
        true,
        vec![idempotency_key],
        Some(body("CreateOrder")),
        vec![
            ("202", ok("accepted", "OrderAccepted")),
            ("401", unauthorized()),
            (
                "409",
                error_response(
                    "the user already has the most pending orders the shop allows at once \
                     (MAX_PENDING_ORDERS; retry when one is confirmed or cancelled), or the order \
                     would take the user past a flash sale's per-customer cap on a SKU \
                     (FlashSale orderLimits; the message names the sale, the SKU, the cap and \
                     how many the user has)",
                ),
            ),
            ("413", too_large()),
            (
                "422",
                error_response("invalid lines, unknown SKU, or the key reused with another body"),
            ),
        ],
    )
}

/// `GET /api/v1/orders`.
pub fn list_orders() -> Value {
    operation(
        "listOrders",
        "The user's orders, newest first",
        true,
        vec![],
        None,
        vec![("200", ok("orders", "OrderList")), ("401", unauthorized())],
    )
}

/// `GET /api/v1/orders/{id}`.
pub fn get_order() -> Value {
    operation(
        "getOrder",
        "One of the user's orders",
        true,
        vec![path_param("id")],
        None,
        vec![
            ("200", ok("the order", "Order")),
            ("401", unauthorized()),
            ("404", error_response("no such order of this user")),
        ],
    )
}

/// `GET /api/v1/inventory/{sku}`.
pub fn get_inventory() -> Value {
    operation(
        "getInventory",
        "Stock of a SKU (from its shard)",
        false,
        vec![sku()],
        None,
        vec![
            ("200", ok("stock", "Inventory")),
            ("404", error_response("unknown SKU")),
        ],
    )
}

/// `GET /api/v1/openapi.json`.
pub fn openapi() -> Value {
    let responses = json!({"200": {"description": "OpenAPI 3.1",
        "content": {"application/json": {}}}});
    json!({"operationId": "openapi",
        "summary": "This document",
        "parameters": [reference("parameters", "RequestId")],
        "responses": with_request_id(responses.as_object().cloned().unwrap_or_default())})
}

/// The `X-Request-Id` a client may send, and the one every answer carries.
fn request_id_components() -> (Value, Value) {
    let max = storefront_contracts::api::MAX_REQUEST_ID_LEN;
    let parameter = json!({"name": "X-Request-Id", "in": "header", "required": false,
        "description": "the client's id for this request, used as it is when valid; otherwise \
                        the gateway makes one",
        "schema": {"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[!-~]+$"}});
    let header = json!({"description": "the request's id (the client's when it sent a valid \
                        one, else a UUID): repeated as requestId in an error body, and in the \
                        logs of every service the request reached",
        "schema": {"type": "string", "maxLength": max}});
    (parameter, header)
}

/// The OpenAPI 3.1 document of `routes` (the route table): each row's operation at its path
/// and method.
pub fn document(routes: &[Route]) -> Value {
    let (parameter, header) = request_id_components();
    let mut paths = Map::new();
    for route in routes {
        let operations = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        operations[route.method.name()] = (route.operation)();
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Storefront public API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Money is integer minor units with a currency. Errors are {\"error\": {\"code\", \"message\", \"requestId\"}}; every answer has an X-Request-Id header."},
        "paths": paths,
        "components": {"schemas": schemas(),
            "parameters": {"RequestId": parameter},
            "headers": {"RequestId": header},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{super::ROUTES, *};

    #[test]
    fn the_document_describes_exactly_the_route_table() {
        let doc = document(ROUTES);
        let paths = doc["paths"].as_object().expect("paths");
        let documented: BTreeSet<(&str, &str)> = paths
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .expect("operations")
                    .keys()
                    .map(move |m| (path.as_str(), m.as_str()))
            })
            .collect();
        let routed: BTreeSet<(&str, &str)> =
            ROUTES.iter().map(|r| (r.path, r.method.name())).collect();
        assert_eq!(documented, routed);
        assert_eq!(routed.len(), ROUTES.len(), "no path and method twice");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document(ROUTES);
        let text = doc.to_string();
        let mut refs = 0;
        for piece in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            let (kind, name) = target.split_once('/').unwrap_or((target, ""));
            assert!(
                doc["components"][kind].get(name).is_some(),
                "unresolved $ref {target}"
            );
            refs += 1;
        }
        assert!(refs > 10, "{refs} references");
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn every_operation_takes_and_every_response_names_a_request_id() {
        let doc = document(ROUTES);
        let mut responses = 0;
        for (path, operations) in doc["paths"].as_object().expect("paths") {
            for (method, op) in operations.as_object().expect("operations") {
                let takes = op["parameters"]
                    .as_array()
                    .is_some_and(|p| p.contains(&reference("parameters", "RequestId")));
                assert!(takes, "{method} {path}");
                for (status, response) in op["responses"].as_object().expect("responses") {
                    assert_eq!(
                        response["headers"]["X-Request-Id"],
                        reference("headers", "RequestId"),
                        "{method} {path} {status}"
                    );
                    responses += 1;
                }
            }
        }
        assert!(responses > 40, "{responses} responses");
        let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
        assert_eq!(error["properties"]["requestId"]["type"], "string");
        // Still present on a degraded answer, beside its own header.
        let product = &doc["paths"]["/api/v1/products/{sku}"]["get"]["responses"]["200"];
        assert!(product["headers"]["Storefront-Degraded"].is_object());
    }
}
