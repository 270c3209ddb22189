//! The route list of the public API and its OpenAPI 3.1 description, served at
//! `/api/v1/openapi.json`.
//!
//! [`ROUTES`] is the one list: [`routes`] builds the router from it (every path gets every
//! method it lists, and a JSON 405 for the others), and [`document`] describes exactly its
//! paths and methods. Tests check that the three agree, so a route cannot be added without
//! its description. The document is written by hand with `serde_json::json!` (shapes as in
//! [`storefront_contracts::api`], camelCase) rather than generated, to keep the API types free of
//! documentation-only derives.

use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use super::{Gateway, handlers, method_not_allowed};

/// Every public path and its methods.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/users", &["post"]),
    ("/api/v1/sessions", &["post"]),
    ("/api/v1/products", &["get"]),
    ("/api/v1/products/{sku}", &["get"]),
    ("/api/v1/products/{sku}/recommendations", &["get"]),
    ("/api/v1/orders", &["get", "post"]),
    ("/api/v1/orders/{id}", &["get"]),
    ("/api/v1/inventory/{sku}", &["get"]),
    ("/api/v1/openapi.json", &["get"]),
];

/// The router's routes, one per entry of [`ROUTES`] in the same order.
pub fn routes() -> Vec<(&'static str, MethodRouter<Gateway>)> {
    let routes: Vec<(&'static str, MethodRouter<Gateway>)> = vec![
        ("/api/v1/users", post(handlers::create_user)),
        ("/api/v1/sessions", post(handlers::create_session)),
        ("/api/v1/products", get(handlers::list_products)),
        ("/api/v1/products/{sku}", get(handlers::get_product)),
        (
            "/api/v1/products/{sku}/recommendations",
            get(handlers::recommendations),
        ),
        (
            "/api/v1/orders",
            get(handlers::list_orders).post(handlers::create_order),
        ),
        ("/api/v1/orders/{id}", get(handlers::get_order)),
        ("/api/v1/inventory/{sku}", get(handlers::get_inventory)),
        ("/api/v1/openapi.json", get(serve_document)),
    ];
    routes
        .into_iter()
        .map(|(path, r)| (path, r.fallback(method_not_allowed)))
        .collect()
}

async fn serve_document() -> axum::Json<Value> {
    axum::Json(document())
}

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
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
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
    all.entry("503")
        .or_insert_with(|| error_response("a service the route needs is unavailable"));
    op.insert("responses".into(), Value::Object(all));
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
            "properties": {"code": string, "message": string}}}},
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

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn document() -> Value {
    let unauthorized = || error_response("no, bad, expired or wrong-audience token");
    let invalid = || error_response("semantically invalid");
    let too_large = || error_response("the body is over the size limit");
    let sku = || path_param("sku");
    let degraded = json!({"Storefront-Degraded": {"description":
        "present when an answer was built without a supporting service",
        "schema": {"type": "string"}}});
    let mut recommendations_ok = ok("bought together", "Recommendations");
    recommendations_ok["headers"] = degraded.clone();
    let mut product_ok = ok("the product", "Product");
    product_ok["headers"] = degraded;
    let idempotency_key = json!({"name": "Idempotency-Key", "in": "header", "required": true,
        "schema": {"type": "string", "minLength": 1,
                   "maxLength": storefront_contracts::api::MAX_IDEMPOTENCY_KEY_LEN}});
    let paths = json!({
        "/api/v1/users": {"post": operation("createUser", "Sign up", false, vec![],
            Some(body("CreateUser")), vec![("201", ok("created", "UserCreated")),
            ("409", error_response("the email is taken")), ("413", too_large()),
            ("422", invalid())])},
        "/api/v1/sessions": {"post": operation("createSession", "Sign in", false, vec![],
            Some(body("CreateSession")), vec![("200", ok("a bearer token", "Session")),
            ("401", error_response("wrong email or password")), ("413", too_large())])},
        "/api/v1/products": {"get": operation("listProducts", "Search and list products",
            false, vec![query_param("q", "string", "full-text query (all words must match)"),
                query_param("category", "string", "only this category"),
                query_param("limit", "integer", "1..=100, default 20"),
                query_param("cursor", "string", "`next` of the previous page")],
            None, vec![("200", ok("a page", "ProductPage")), ("422", invalid())])},
        "/api/v1/products/{sku}": {"get": operation("getProduct", "A product", false,
            vec![sku()], None, vec![("200", product_ok),
            ("404", error_response("no such product"))])},
        "/api/v1/products/{sku}/recommendations": {"get": operation("getRecommendations",
            "Bought together (supporting: empty and degraded when unavailable)", false,
            vec![sku()], None, vec![("200", recommendations_ok),
            ("404", error_response("not a SKU"))])},
        "/api/v1/orders": {
            "post": operation("createOrder", "Place an order (idempotent on the key)", true,
                vec![idempotency_key], Some(body("CreateOrder")),
                vec![("202", ok("accepted", "OrderAccepted")), ("401", unauthorized()),
                ("413", too_large()),
                ("422", error_response("invalid lines, unknown SKU, or the key reused with another body"))]),
            "get": operation("listOrders", "The user's orders, newest first", true, vec![],
                None, vec![("200", ok("orders", "OrderList")), ("401", unauthorized())])},
        "/api/v1/orders/{id}": {"get": operation("getOrder", "One of the user's orders",
            true, vec![path_param("id")], None, vec![("200", ok("the order", "Order")),
            ("401", unauthorized()), ("404", error_response("no such order of this user"))])},
        "/api/v1/inventory/{sku}": {"get": operation("getInventory",
            "Stock of a SKU (from its shard)", false, vec![sku()], None,
            vec![("200", ok("stock", "Inventory")), ("404", error_response("unknown SKU"))])},
        "/api/v1/openapi.json": {"get": {"operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1",
                "content": {"application/json": {}}}}}},
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Storefront public API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Money is integer minor units with a currency. Errors are {\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {"schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn router_routes_and_document_agree() {
        let listed: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
        let routed: Vec<&str> = routes().iter().map(|(p, _)| *p).collect();
        assert_eq!(listed, routed, "ROUTES and the router");
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(
            documented,
            listed.iter().copied().collect(),
            "ROUTES and the document"
        );
        for (path, methods) in ROUTES {
            let ops: BTreeSet<&str> = paths[*path]
                .as_object()
                .expect("operations")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(ops, methods.iter().copied().collect(), "{path}");
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = 0;
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
            refs += 1;
        }
        assert!(refs > 10, "{refs} references");
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
