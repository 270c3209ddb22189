//! One handler per public route (its row in [`super::ROUTES`] names it). Each checks its
//! input first (4xx before any call), calls its row's upstream with its row's retry class
//! through [`Gateway::caller`] (guard, deadline, retries), and maps the failures: the codes a
//! route expects (a taken email, wrong credentials, an unknown SKU, a reused
//! Idempotency-Key) to their 4xx, anything else by [`upstream::error`].

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

/// `POST /api/v1/users` → 201 `{id, email}`; 422 for an address the email rule refuses
/// (before any call); 409 when the email is taken; 429 with `Retry-After` when the client's
/// address signed up too often; 503 with `Retry-After` when auth is busy.
pub async fn create_user(State(gw): State<Gateway>, from: ClientAddress, body: Body) -> Answer {
    let r: CreateUserRequest = json_body(body, gw.deadlines().body).await?;
    r.validate()?;
    let request = SignUpRequest {
        email: r.email,
        password: r.password,
        name: r.name.unwrap_or_default(),
    };
    let auth = CREATE_USER.service();
    let channel = gw.client(auth)?;
    let answer = gw
        .caller()
        .call(auth, channel, CREATE_USER.retry, |c| {
            let request = from.request(request.clone());
            async move { AuthClient::new(c).sign_up(request).await }
        })
        .await;
    let user = answer.map_err(|s| match s.code() {
        Code::AlreadyExists => ApiError::new(ErrorKind::Conflict, s.message()).into(),
        _ => upstream::refusal(auth, &s),
    })?;
    let body = UserCreated {
        id: user.user_id,
        email: user.email,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/v1/sessions` → 200 `{token, expiresAt}`; 401 when wrong (an address no account
/// can have included); 429 with `Retry-After` when the account or the client's address is
/// throttled after failures (whatever the password); 503 with `Retry-After` when auth is busy.
pub async fn create_session(State(gw): State<Gateway>, from: ClientAddress, body: Body) -> Answer {
    let r: CreateSessionRequest = json_body(body, gw.deadlines().body).await?;
    let request = SignInRequest {
        email: r.email,
        password: r.password,
    };
    let auth = CREATE_SESSION.service();
    let channel = gw.client(auth)?;
    let answer = gw
        .caller()
        .call(auth, channel, CREATE_SESSION.retry, |c| {
            let request = from.request(request.clone());
            async move { AuthClient::new(c).sign_in(request).await }
        })
        .await;
    let session = answer.map_err(|s| match s.code() {
        Code::Unauthenticated => ApiError::new(ErrorKind::Unauthenticated, s.message()).into(),
        _ => upstream::refusal(auth, &s),
    })?;
    let body = Session {
        token: session.token,
        expires_at: rfc3339(session.expires_at),
    };
    Ok(Json(body).into_response())
}

/// Query of `GET /api/v1/products`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

fn summary(p: Product) -> ProductSummary {
    ProductSummary {
        sku: p.sku,
        name: p.name,
        category: p.category,
        brand: p.brand,
        price_cents: p.price_cents,
        currency: p.currency,
    }
}

/// `GET /api/v1/products?q=&category=&limit=&cursor=` → 200 `{items, next}`.
pub async fn list_products(
    State(gw): State<Gateway>,
    query: Result<Query<ProductQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("failed to read the query: {}", e.body_text()),
        )
    })?;
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::Malformed,
                    format!("limit must be a whole number, got {raw:?}"),
                )
            })
            .and_then(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "limit must be between 1 and {MAX_PAGE}, got {n}"
                        ))
                    })
            })?,
    };
    let q = query.q.unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(
            ApiError::invalid(format!("q must be at most {MAX_QUERY_CHARS} characters")).into(),
        );
    }
    let request = SearchProductsRequest {
        query: q,
        category: query.category.unwrap_or_default(),
        limit,
        cursor: query.cursor.unwrap_or_default(),
    };
    let catalog = LIST_PRODUCTS.service();
    let channel = gw.client(catalog)?;
    let page = gw
        .caller()
        .call(catalog, channel, LIST_PRODUCTS.retry, |c| {
            let request = request.clone();
            async move { CatalogClient::new(c).search_products(request).await }
        })
        .await
        .map_err(|s| upstream::error(catalog, &s))?;
    let body = ProductPage {
        items: page.items.into_iter().map(summary).collect(),
        next: Some(page.next).filter(|n| !n.is_empty()),
    };
    Ok(Json(body).into_response())
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

/// `GET /api/v1/products/{sku}` → 200 product with `description` and `available`; 404.
/// Without inventory the product still shows, with `available: 0` and the degraded header.
pub async fn get_product(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let catalog = GET_PRODUCT.service();
    let channel = gw.client(catalog)?;
    let product = gw
        .caller()
        .call(catalog, channel, GET_PRODUCT.retry, |c| {
            let request = GetProductRequest { sku: sku.clone() };
            async move { CatalogClient::new(c).get_product(request).await }
        })
        .await
        .map_err(|s| upstream::error(catalog, &s))?;
    let stock = match gw.shard(Service::Inventory.name(), &sku) {
        Ok((channel, _)) => {
            let answer = gw
                .caller()
                .call(Service::Inventory.name(), channel, Retry::Idempotent, |c| {
                    let request = GetStockRequest { sku: sku.clone() };
                    async move { InventoryClient::new(c).get_stock(request).await }
                })
                .await;
            match answer {
                Ok(stock) => Some(stock.available),
                Err(s) if s.code() == Code::NotFound => Some(0),
                Err(s) => {
                    tracing::warn!(
                        request_id = request_id::for_log(),
                        %sku,
                        "failed to read stock for a product page: {}",
                        s.message()
                    );
                    None
                }
            }
        }
        Err(_) => None,
    };
    let description = product.description.clone();
    let body = ProductDetail {
        summary: summary(product),
        description,
        available: stock.unwrap_or(0),
    };
    let response = Json(body).into_response();
    Ok(match stock {
        Some(_) => response,
        None => degraded(response, "inventory"),
    })
}

/// `GET /api/v1/products/{sku}/recommendations` → 200 `{items}`; an empty list with
/// `Storefront-Degraded: recommendations` when that service is not routed or fails.
pub async fn recommendations(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let empty = || {
        degraded(
            Json(Recommendations { items: vec![] }).into_response(),
            "recommendations",
        )
    };
    let recommendations = GET_RECOMMENDATIONS.service();
    if !gw.is_routed(recommendations) {
        return Ok(empty());
    }
    let Ok(channel) = gw.client(recommendations) else {
        return Ok(empty());
    };
    let within = gw.deadlines().supporting;
    let answer = gw
        .caller()
        .call_within(
            recommendations,
            channel,
            GET_RECOMMENDATIONS.retry,
            within,
            |c| {
                let mut request = tonic::Request::new(BoughtTogetherRequest {
                    sku: sku.clone(),
                    limit: RECOMMENDATIONS,
                });
                request.set_timeout(within);
                async move { RecommendationsClient::new(c).bought_together(request).await }
            },
        )
        .await;
    let skus = match answer {
        Ok(r) => r.skus,
        Err(s) => {
            tracing::warn!(
                request_id = request_id::for_log(),
                "recommendations degraded: {}",
                s.message()
            );
            return Ok(empty());
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sku) in skus.into_iter().take(RECOMMENDATIONS as usize).enumerate() {
        let Ok(channel) = gw.client(Service::Catalog.name()) else {
            break;
        };
        let gw = gw.clone();
        tasks.spawn(request_id::inherit(async move {
            let answer = gw
                .caller()
                .call(Service::Catalog.name(), channel, Retry::Idempotent, |c| {
                    let request = GetProductRequest { sku: sku.clone() };
                    async move { CatalogClient::new(c).get_product(request).await }
                })
                .await;
            (i, answer)
        }));
    }
    let mut found = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, Ok(product))) = joined {
            found.insert(i, summary(product));
        }
    }
    let body = Recommendations {
        items: found.into_values().collect(),
    };
    Ok(Json(body).into_response())
}

/// The status an orders pod sent: `status`, or the text in `legacy_status` from an orders pod
/// older than that field (during a rolling upgrade). Neither known is the orders service's
/// fault, answered as 500 (what it sent is logged), never guessed.
fn status_of(o: &Order) -> Result<OrderStatus, ApiError> {
    #[allow(deprecated)] // read only when `status` is unset, from an older orders pod
    let legacy = o.legacy_status.as_str();
    match (o.status(), legacy) {
        (WireStatus::Pending, _) | (WireStatus::Unspecified, "PENDING") => Ok(OrderStatus::Pending),
        (WireStatus::Confirmed, _) | (WireStatus::Unspecified, "CONFIRMED") => {
            Ok(OrderStatus::Confirmed)
        }
        (WireStatus::Cancelled, _) | (WireStatus::Unspecified, "CANCELLED") => {
            Ok(OrderStatus::Cancelled)
        }
        (WireStatus::Unspecified, _) => {
            tracing::error!(
                request_id = request_id::for_log(),
                order_id = o.order_id,
                legacy,
                "the orders service sent an order with no known status"
            );
            Err(ApiError::new(
                ErrorKind::Internal,
                "the orders service failed; if it persists, report the request id",
            ))
        }
    }
}

fn order_view(o: Order) -> Result<OrderView, ApiError> {
    Ok(OrderView {
        status: status_of(&o)?,
        order_id: o.order_id,
        items: o
            .lines
            .into_iter()
            .map(|l| OrderLine {
                sku: l.sku,
                quantity: l.quantity,
                price_cents: l.unit_price_cents,
            })
            .collect(),
        total_cents: o.total_cents,
        currency: o.currency,
        reason: Some(o.reason).filter(|r| !r.is_empty()),
    })
}

/// `POST /api/v1/orders` (Bearer, `Idempotency-Key`) → 202 `{orderId, status: "PENDING"}`;
/// the same key and body again → the same answer; the same key with another body → 422.
/// Lines are priced by the catalog; an unknown SKU is a 422 that names it.
pub async fn create_order(
    State(gw): State<Gateway>,
    SignedIn(user): SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Malformed,
                "missing Idempotency-Key header: one per checkout attempt",
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::new(
                ErrorKind::Malformed,
                "Idempotency-Key may contain only visible ASCII characters",
            )
        })?
        .to_string();
    validate_idempotency_key(&key)?;
    let request: CreateOrderRequest = json_body(body, gw.deadlines().body).await?;
    let lines = request.validate()?;

    let request = GetPricesRequest {
        skus: lines.iter().map(|(sku, _)| sku.clone()).collect(),
    };
    let catalog = Service::Catalog.name();
    let channel = gw.client(catalog)?;
    let prices = gw
        .caller()
        .call(catalog, channel, Retry::Idempotent, |c| {
            let request = request.clone();
            async move { CatalogClient::new(c).get_prices(request).await }
        })
        .await
        .map_err(|s| upstream::error(catalog, &s))?
        .prices;
    let price_of: BTreeMap<&str, i64> = prices
        .iter()
        .map(|p| (p.sku.as_str(), p.price_cents))
        .collect();
    let unknown: Vec<&str> = lines
        .iter()
        .map(|(sku, _)| sku.as_str())
        .filter(|sku| !price_of.contains_key(sku))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(format!("unknown SKU: {}", unknown.join(", "))).into());
    }
    let message = CreateOrderMessage {
        user_id: user.sub.clone(),
        idempotency_key: key,
        lines: lines
            .iter()
            .map(|(sku, quantity)| OrderLineMessage {
                unit_price_cents: price_of.get(sku.as_str()).copied().unwrap_or_default(),
                sku: sku.clone(),
                quantity: *quantity,
            })
            .collect(),
    };
    let orders = CREATE_ORDER.service();
    let channel = gw.client(orders)?;
    let answer = gw
        .caller()
        .call(orders, channel, CREATE_ORDER.retry, |c| {
            let request = message.clone();
            async move { OrdersClient::new(c).create_order(request).await }
        })
        .await;
    let order = answer.map_err(|s| match s.code() {
        Code::AlreadyExists => ApiError::new(ErrorKind::IdempotencyKeyReused, s.message()),
        _ => upstream::error(orders, &s),
    })?;
    let body = OrderAccepted {
        order_id: order.order_id,
        status: OrderStatus::Pending,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /api/v1/orders/{id}` (Bearer, owner only) → 200 the order; 404 for another's.
pub async fn get_order(
    State(gw): State<Gateway>,
    SignedIn(user): SignedIn,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path(id)?;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no order {id:?}")).into());
    }
    let request = GetOrderRequest {
        order_id: id,
        user_id: user.sub.clone(),
    };
    let orders = GET_ORDER.service();
    let channel = gw.client(orders)?;
    let order = gw
        .caller()
        .call(orders, channel, GET_ORDER.retry, |c| {
            let request = request.clone();
            async move { OrdersClient::new(c).get_order(request).await }
        })
        .await
        .map_err(|s| upstream::error(orders, &s))?;
    Ok(Json(order_view(order)?).into_response())
}

/// `GET /api/v1/orders` (Bearer) → 200 the user's orders, newest first.
pub async fn list_orders(State(gw): State<Gateway>, SignedIn(user): SignedIn) -> Answer {
    let request = ListOrdersRequest {
        user_id: user.sub.clone(),
        limit: 0,
    };
    let orders = LIST_ORDERS.service();
    let channel = gw.client(orders)?;
    let list = gw
        .caller()
        .call(orders, channel, LIST_ORDERS.retry, |c| {
            let request = request.clone();
            async move { OrdersClient::new(c).list_orders(request).await }
        })
        .await
        .map_err(|s| upstream::error(orders, &s))?;
    let body = OrderList {
        items: list
            .orders
            .into_iter()
            .map(order_view)
            .collect::<Result<_, _>>()?,
    };
    Ok(Json(body).into_response())
}

/// `GET /api/v1/inventory/{sku}` → 200 `{sku, stock, reserved, available}` from the shard
/// that owns the SKU in the ring; 404 for an unknown SKU.
pub async fn get_inventory(
    State(gw): State<Gateway>,
    sku: Result<Path<String>, PathRejection>,
) -> Answer {
    let sku = path(sku)?;
    sku_in_path(&sku)?;
    let (channel, _epoch) = gw.shard(GET_INVENTORY.service(), &sku)?;
    let stock = gw
        .caller()
        .call(GET_INVENTORY.service(), channel, GET_INVENTORY.retry, |c| {
            let request = GetStockRequest { sku: sku.clone() };
            async move { InventoryClient::new(c).get_stock(request).await }
        })
        .await
        .map_err(|s| upstream::error(GET_INVENTORY.service(), &s))?;
    let body = InventoryView {
        sku: stock.sku,
        stock: stock.stock,
        reserved: stock.reserved,
        available: stock.available,
    };
    Ok(Json(body).into_response())
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

    #[allow(deprecated)]
    fn sent(status: WireStatus, legacy: &str) -> Order {
        let mut order = Order {
            order_id: "o1".into(),
            legacy_status: legacy.into(),
            ..Order::default()
        };
        order.set_status(status);
        order
    }

    #[test]
    fn the_enum_wins_and_old_pods_are_read_by_their_text() {
        let status = |s, legacy| status_of(&sent(s, legacy)).ok();
        assert_eq!(
            status(WireStatus::Confirmed, "CONFIRMED"),
            Some(OrderStatus::Confirmed)
        );
        assert_eq!(
            status(WireStatus::Cancelled, ""),
            Some(OrderStatus::Cancelled)
        );
        assert_eq!(
            status(WireStatus::Pending, "CANCELLED"),
            Some(OrderStatus::Pending)
        );
        // An orders pod from before the enum sends only the text.
        assert_eq!(
            status(WireStatus::Unspecified, "CONFIRMED"),
            Some(OrderStatus::Confirmed)
        );
        assert_eq!(
            status(WireStatus::Unspecified, "PENDING"),
            Some(OrderStatus::Pending)
        );
        // Neither known: an error, not a guess (it used to read as PENDING).
        assert_eq!(status(WireStatus::Unspecified, "SHIPPED"), None);
        assert_eq!(status(WireStatus::Unspecified, ""), None);
    }
}
