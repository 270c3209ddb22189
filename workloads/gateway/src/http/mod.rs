//! The HTTP edge: the public API as one declarative route table ([`ROUTES`]), from which
//! the router ([`router`]), the OpenAPI document ([`openapi::document`]) and the rate-limit
//! scopes ([`limits::scope_of`]) are built, so a route cannot be served without its
//! description and budget, or described without being served.
//!
//! ```text
//!  ROUTES: [Route { method, path, upstream: Option<Service>, retry, handler, operation }]
//!     ├─▶ router(): one axum route per path (its methods merged, a JSON 405 for the others,
//!     │             404 elsewhere), all behind limits::enforce (budgets, headers, metrics)
//!     ├─▶ openapi::document(): each row's operation at its path and method
//!     └─▶ limits::scope_of(path): the row's upstream is the budget a request spends
//!                                 (after the shop-wide one)
//! ```
//!
//! - [`handlers`]: one function per route; each checks its input (4xx before any call) and
//!   calls its upstream with its row's [`Retry`] class through [`Gateway::caller`]
//!   ([`crate::upstream::call::Caller::call`]).
//! - [`limits`]: the budgets at the door (429, the IETF `RateLimit` headers) and the request
//!   metrics.
//! - [`openapi`]: one function per operation, and the document.
//! - [`request_id`]: the outermost layers: `X-Request-Id` on every answer, `requestId` in
//!   every error body, the id current while the request runs.
//! - [`state`]: [`Gateway`], the state every handler is given.
//! - [`client_address`]: the client's address (the connection's peer), passed to auth for its
//!   per-address throttles.
//!
//! Helpers every handler uses live here: [`json_body`] (size and time limits, JSON errors)
//! and [`SignedIn`] (the verified user of the Bearer token).

pub mod client_address;
pub mod handlers;
pub mod limits;
pub mod openapi;
pub mod request_id;
pub mod state;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    http::{Method as HttpMethod, Uri},
    response::{IntoResponse, Response},
    routing::MethodRouter,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use self::state::Gateway;
use crate::upstream::{Service, call::Retry};
use storefront_contracts::api::{ApiError, ErrorKind, MAX_BODY_BYTES};
use storefront_platform::token::Claims;

/// The methods public routes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// The name as the OpenAPI document spells it (`get`, `post`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
        }
    }
}

/// One row of the route table.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: Method,
    /// The path template (axum's syntax, which is also OpenAPI's).
    pub path: &'static str,
    /// The service the route calls (its first call is to it, except an order's, which
    /// prices its lines at the catalog first) and whose budget it spends; `None` for the API
    /// document, which calls nothing and is not limited.
    pub upstream: Option<Service>,
    /// Which failures of the call to `upstream` are retried.
    pub retry: Retry,
    /// The handler at `method`.
    pub handler: fn() -> MethodRouter<Gateway>,
    /// Its OpenAPI operation.
    pub operation: fn() -> Value,
}

impl Route {
    /// The name of the route's upstream ("" for the document, which has none).
    pub const fn service(&self) -> &'static str {
        match self.upstream {
            Some(s) => s.name(),
            None => "",
        }
    }
}

/// `POST /api/v1/users` → 201 `{id, email}`; 409 when the email is taken.
pub const CREATE_USER: Route = Route {
    method: Method::Post,
    path: "/api/v1/users",
    upstream: Some(Service::Auth),
    // A sign-up is not de-duplicated: sent again only if it never left.
    retry: Retry::IfNotSent,
    handler: mount::create_user,
    operation: openapi::create_user,
};
/// `POST /api/v1/sessions` → 200 `{token, expiresAt}`; 401 when wrong.
pub const CREATE_SESSION: Route = Route {
    method: Method::Post,
    path: "/api/v1/sessions",
    upstream: Some(Service::Auth),
    retry: Retry::Idempotent,
    handler: mount::create_session,
    operation: openapi::create_session,
};
/// `GET /api/v1/products?q=&category=&limit=&cursor=` → 200 `{items, next}`.
pub const LIST_PRODUCTS: Route = Route {
    method: Method::Get,
    path: "/api/v1/products",
    upstream: Some(Service::Catalog),
    retry: Retry::Idempotent,
    handler: mount::list_products,
    operation: openapi::list_products,
};
/// `GET /api/v1/products/{sku}` → 200 the product with its stock (degraded without).
pub const GET_PRODUCT: Route = Route {
    method: Method::Get,
    path: "/api/v1/products/{sku}",
    upstream: Some(Service::Catalog),
    retry: Retry::Idempotent,
    handler: mount::get_product,
    operation: openapi::get_product,
};
/// `GET /api/v1/products/{sku}/recommendations` → 200 `{items}` (degraded: empty).
pub const GET_RECOMMENDATIONS: Route = Route {
    method: Method::Get,
    path: "/api/v1/products/{sku}/recommendations",
    upstream: Some(Service::Recommendations),
    // A supporting call with a short deadline: no second try after UNAVAILABLE.
    retry: Retry::IfNotSent,
    handler: mount::recommendations,
    operation: openapi::recommendations,
};
/// `GET /api/v1/orders` (Bearer) → 200 the user's orders.
pub const LIST_ORDERS: Route = Route {
    method: Method::Get,
    path: "/api/v1/orders",
    upstream: Some(Service::Orders),
    retry: Retry::Idempotent,
    handler: mount::list_orders,
    operation: openapi::list_orders,
};
/// `POST /api/v1/orders` (Bearer, `Idempotency-Key`) → 202.
pub const CREATE_ORDER: Route = Route {
    method: Method::Post,
    path: "/api/v1/orders",
    upstream: Some(Service::Orders),
    // Orders de-duplicates on the Idempotency-Key: sending it again is safe.
    retry: Retry::Idempotent,
    handler: mount::create_order,
    operation: openapi::create_order,
};
/// `GET /api/v1/orders/{id}` (Bearer, owner only) → 200 the order.
pub const GET_ORDER: Route = Route {
    method: Method::Get,
    path: "/api/v1/orders/{id}",
    upstream: Some(Service::Orders),
    retry: Retry::Idempotent,
    handler: mount::get_order,
    operation: openapi::get_order,
};
/// `GET /api/v1/inventory/{sku}` → 200 the stock, from the SKU's shard.
pub const GET_INVENTORY: Route = Route {
    method: Method::Get,
    path: "/api/v1/inventory/{sku}",
    upstream: Some(Service::Inventory),
    retry: Retry::Idempotent,
    handler: mount::get_inventory,
    operation: openapi::get_inventory,
};
/// `GET /api/v1/openapi.json` → this API's OpenAPI document.
pub const OPENAPI: Route = Route {
    method: Method::Get,
    path: "/api/v1/openapi.json",
    upstream: None,
    retry: Retry::IfNotSent,
    handler: mount::serve_document,
    operation: openapi::openapi,
};

/// Each handler at its row's method: named functions rather than closures in the rows, so
/// that evaluating a row does not need its handler's body (handlers read their rows).
mod mount {
    use axum::routing::{MethodRouter, get, post};

    use super::Gateway;

    pub fn create_user() -> MethodRouter<Gateway> {
        post(super::handlers::create_user)
    }

    pub fn create_session() -> MethodRouter<Gateway> {
        post(super::handlers::create_session)
    }

    pub fn list_products() -> MethodRouter<Gateway> {
        get(super::handlers::list_products)
    }

    pub fn get_product() -> MethodRouter<Gateway> {
        get(super::handlers::get_product)
    }

    pub fn recommendations() -> MethodRouter<Gateway> {
        get(super::handlers::recommendations)
    }

    pub fn list_orders() -> MethodRouter<Gateway> {
        get(super::handlers::list_orders)
    }

    pub fn create_order() -> MethodRouter<Gateway> {
        post(super::handlers::create_order)
    }

    pub fn get_order() -> MethodRouter<Gateway> {
        get(super::handlers::get_order)
    }

    pub fn get_inventory() -> MethodRouter<Gateway> {
        get(super::handlers::get_inventory)
    }

    pub fn serve_document() -> MethodRouter<Gateway> {
        get(super::serve_document)
    }
}

/// The route table: every public route, once.
pub const ROUTES: &[Route] = &[
    CREATE_USER,
    CREATE_SESSION,
    LIST_PRODUCTS,
    GET_PRODUCT,
    GET_RECOMMENDATIONS,
    LIST_ORDERS,
    CREATE_ORDER,
    GET_ORDER,
    GET_INVENTORY,
    OPENAPI,
];

async fn serve_document() -> Json<Value> {
    Json(openapi::document(ROUTES))
}

/// The router of the public API (no operations endpoints): one route per path of
/// [`ROUTES`] with its methods (a JSON 405 for the others), every one behind
/// [`limits::enforce`]; a JSON 404 elsewhere; all of it, 404s included, behind the request
/// id's layers ([`request_id::layer`]).
pub fn router(gateway: Gateway) -> Router {
    let mut paths: Vec<(&'static str, MethodRouter<Gateway>)> = Vec::new();
    for route in ROUTES {
        let handler = (route.handler)();
        match paths.iter().position(|(p, _)| *p == route.path) {
            Some(i) => {
                let (path, merged) = paths.swap_remove(i);
                paths.insert(i, (path, merged.merge(handler)));
            }
            None => paths.push((route.path, handler)),
        }
    }
    let api = paths
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods.fallback(method_not_allowed))
        })
        .route_layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            limits::enforce,
        ))
        .fallback(no_route)
        .with_state(gateway);
    request_id::layer(api)
}

/// The verified user of a request's `Authorization: Bearer` token ([`Gateway::user`]), as
/// an extractor: it reads the header in place (axum's `HeaderMap` extractor copies them all).
pub struct SignedIn(pub Arc<Claims>);

impl axum::extract::FromRequestParts<Gateway> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        gateway: &Gateway,
    ) -> Result<Self, ApiError> {
        // Verified already by the per-client limits, when they are on.
        if let Some(limits::VerifiedUser(claims)) = parts.extensions.get() {
            return Ok(SignedIn(Arc::clone(claims)));
        }
        gateway.user(&parts.headers).map(SignedIn)
    }
}

/// Reads a JSON body: over [`MAX_BODY_BYTES`] → 413, not all there within `within` → 408,
/// unreadable → 400, not JSON or another shape (missing or unknown fields) → 400.
pub async fn json_body<T: DeserializeOwned>(body: Body, within: Duration) -> Result<T, ApiError> {
    let read = tokio::time::timeout(within, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorKind::RequestTimeout,
                format!("the body did not arrive within {} ms", within.as_millis()),
            )
        })?;
    let bytes = read.map_err(|e| {
        // axum reports the limit as http-body-util's `LengthLimitError` in the source
        // chain; its text is the stable way to tell it apart without that crate.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        let mut too_large = false;
        while let Some(s) = source {
            too_large |= s.to_string().contains("length limit exceeded");
            source = s.source();
        }
        if too_large {
            ApiError::new(
                ErrorKind::TooLarge,
                format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                ErrorKind::Malformed,
                format!("failed to read the body: {e}"),
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Malformed,
            "the body is empty; a JSON object is expected",
        ));
    }
    ApiError::parse_body(&bytes)
}

async fn no_route(method: HttpMethod, uri: Uri) -> Response {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route {method} {}", uri.path()),
    )
    .into_response()
}

/// The answer to a known path with a method it does not have (every route's fallback).
pub async fn method_not_allowed(method: HttpMethod, uri: Uri) -> Response {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
    .into_response()
}
