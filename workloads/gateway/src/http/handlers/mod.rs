//! One handler per public route (its row in [`super::ROUTES`] names it). Each checks its
//! input first (4xx before any call), calls its row's upstream with its row's retry class
//! through [`Gateway::caller`] (guard, deadline, retries), and maps the failures: the codes a
//! route expects (a taken email, wrong credentials, an unknown SKU, a reused
//! Idempotency-Key) to their 4xx, anything else by [`upstream::error`].
//!
//! By resource: [`accounts`] (sign-up, sign-in), [`catalog`] (products, search,
//! recommendations), [`orders`], [`inventory`]; what they share is here.

mod accounts;
mod catalog;
mod inventory;
mod orders;

pub use accounts::{create_session, create_user};
pub use catalog::{get_product, list_products, recommendations};
pub use inventory::get_inventory;
pub use orders::{create_order, get_order, list_orders};

use std::collections::BTreeMap;

use axum::{
    Json,
    body::Body,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tonic::Code;

use super::{
    CREATE_ORDER, CREATE_SESSION, CREATE_USER, GET_INVENTORY, GET_ORDER, GET_PRODUCT,
    GET_RECOMMENDATIONS, Gateway, LIST_ORDERS, LIST_PRODUCTS, SignedIn,
    client_address::ClientAddress, json_body,
};
use crate::{
    resilience::guard::Refusal,
    upstream::{self, Service, call::Retry},
};
use storefront_contracts::api::{
    ApiError, CreateOrderRequest, CreateSessionRequest, CreateUserRequest, DEGRADED_HEADER,
    ErrorKind, InventoryView, OrderAccepted, OrderLine, OrderList, OrderStatus, OrderView,
    ProductDetail, ProductPage, ProductSummary, Recommendations, Session, UserCreated,
    validate_idempotency_key, validate_sku,
};
use storefront_contracts::proto::{
    auth::{SignInRequest, SignUpRequest, auth_client::AuthClient},
    catalog::{
        GetPricesRequest, GetProductRequest, Product, SearchProductsRequest,
        catalog_client::CatalogClient,
    },
    inventory::{GetStockRequest, inventory_client::InventoryClient},
    orders::{
        CreateOrderRequest as CreateOrderMessage, GetOrderRequest, ListOrdersRequest, Order,
        OrderLine as OrderLineMessage, OrderStatus as WireStatus, orders_client::OrdersClient,
    },
    recommendations::{BoughtTogetherRequest, recommendations_client::RecommendationsClient},
};
use storefront_platform::request_id;

/// The largest page of products.
pub const MAX_PAGE: u32 = 100;
/// Products on a page when `limit` is absent.
pub const DEFAULT_PAGE: u32 = 20;
/// The longest search query.
pub const MAX_QUERY_CHARS: usize = 200;
/// How many recommendations a product page shows.
pub const RECOMMENDATIONS: u32 = 8;
/// The header that carries the client's Idempotency-Key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

type Answer = Result<Response, Refusal>;

fn degraded(mut response: Response, what: &'static str) -> Response {
    response
        .headers_mut()
        .insert(DEGRADED_HEADER, HeaderValue::from_static(what));
    response
}

/// A path segment, or a 400 JSON error (axum's own rejection is plain text).
fn path(segment: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    segment.map(|Path(s)| s).map_err(|e| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("failed to read the path: {}", e.body_text()),
        )
    })
}

fn sku_in_path(sku: &str) -> Result<(), ApiError> {
    validate_sku(sku).map_err(|m| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("no product {sku:?}: the SKU {m}"),
        )
    })
}

/// Unix seconds as RFC 3339 UTC (`2026-11-27T02:13:52Z`).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_746_832), "2026-11-27T02:33:52Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
