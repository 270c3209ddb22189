//! The orders routes: checkout (`POST /api/v1/orders`, Idempotency-Key, priced by the
//! catalog), one order and the user's orders; the order status read from orders' wire form.

use super::*;
use storefront_contracts::proto::orders::SaleLimit;

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
/// Lines are priced by the catalog; an unknown SKU is a 422 that names it. The flash sales'
/// per-customer caps in the route table go to orders with the order; a user past one, or
/// past the pending-order cap, gets 409 in orders' words.
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
        sale_limits: sale_limits(&gw),
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
        // The user's pending-order cap or a sale's per-customer cap (orders' own words,
        // written for the shopper).
        Code::FailedPrecondition => ApiError::new(ErrorKind::Conflict, s.message()),
        _ => upstream::error(orders, &s),
    })?;
    let body = OrderAccepted {
        order_id: order.order_id,
        status: OrderStatus::Pending,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The per-customer caps of the sales in the route table now (it follows the API watch, so a
/// sale's caps arrive about a second after its limits open).
fn sale_limits(gw: &Gateway) -> Vec<SaleLimit> {
    gw.upstreams()
        .snapshot
        .as_ref()
        .map(|s| {
            s.table
                .order_limits
                .iter()
                .map(|l| SaleLimit {
                    sale: l.sale.clone(),
                    since_unix: l.since,
                    units_per_customer: l.units_per_customer,
                    skus: l.skus.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

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
