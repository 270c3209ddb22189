//! Orders' gRPC adapter (`proto/orders.proto`) over [`PgOrders`], behind the service-token
//! check. The gateway prices the lines (catalog `GetPrices`) and passes the user's
//! `Idempotency-Key`; the fingerprint is taken over `(sku, quantity)` in the shopper's order,
//! which is exactly what the public body says, so a retried request replays and a changed
//! one conflicts (`ALREADY_EXISTS`, which the gateway answers with 422).
//!
//! The gateway also passes the per-customer caps of the flash sales in force (`sale_limits`,
//! from its route table). A user past the pending-order cap or past a sale's cap is refused
//! with `FAILED_PRECONDITION` and a message written for the shopper (the gateway's 409).

use std::{future::Future, sync::Arc};

use rand::Rng;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::{
    domain::{Line, Order, OrderEvent, OrderStatus, sale_limits::SaleLimit},
    idempotency::Fingerprint,
    postgres::{Created, PgOrders, PgOrdersError},
};
use storefront_contracts::proto::orders::{
    CreateOrderRequest as CreateOrderMessage, GetOrderRequest, ListOrdersRequest,
    ListOrdersResponse, Order as OrderMessage, OrderLine, OrderStatus as WireStatus,
    SaleLimit as SaleLimitMessage,
    orders_server::{Orders as OrdersApi, OrdersServer},
};
use storefront_contracts::{api::validate_idempotency_key, order_lines};
use storefront_platform::grpc::{RequireServiceToken, unix_now};
use storefront_platform::request_id::hidden;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "orders";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: the gateway, for shoppers); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "CreateOrder" | "GetOrder" | "ListOrders" => &["gateway"],
        _ => &[],
    }
}
/// The currency of every order (the catalog's).
pub const CURRENCY: &str = "USD";

/// A store failure as the caller sees it: short stable words; the driver's are logged with
/// the request id ([`hidden`]).
fn db(e: PgOrdersError) -> Status {
    match e {
        PgOrdersError::Db(e) => hidden(Code::Unavailable, "the orders store is unavailable", e),
        other => hidden(Code::Internal, "the orders store failed", other),
    }
}

fn message(order: Order) -> OrderMessage {
    let status = order.status();
    #[allow(deprecated)] // still sent for gateways older than `status` (see orders.proto)
    OrderMessage {
        legacy_status: status.as_str().into(),
        status: wire_status(status).into(),
        order_id: order.order_id,
        user_id: order.user_id,
        lines: order
            .lines
            .into_iter()
            .map(|l| OrderLine {
                sku: l.sku,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        total_cents: order.total_cents,
        currency: order.currency,
        reason: order.reason.unwrap_or_default(),
        created_at: order.created_at,
    }
}

/// The order status as `orders.proto` carries it.
fn wire_status(status: OrderStatus) -> WireStatus {
    match status {
        OrderStatus::Pending => WireStatus::Pending,
        OrderStatus::Confirmed => WireStatus::Confirmed,
        OrderStatus::Cancelled => WireStatus::Cancelled,
    }
}

/// The sales' caps of a request; a cap of 0 (it would refuse every order) or a sale with no
/// name is the caller's mistake.
fn sale_limits(limits: Vec<SaleLimitMessage>) -> Result<Vec<SaleLimit>, Status> {
    limits
        .into_iter()
        .map(|l| {
            if l.sale.is_empty() || l.units_per_customer == 0 {
                return Err(Status::invalid_argument(format!(
                    "sale_limits: sale {:?} needs a name and units_per_customer of at least 1",
                    l.sale
                )));
            }
            Ok(SaleLimit {
                sale: l.sale,
                since: l.since_unix,
                units_per_customer: l.units_per_customer,
                skus: l.skus,
            })
        })
        .collect()
}

/// A new order id (128 random bits).
pub fn new_order_id() -> String {
    format!("o-{:032x}", rand::rng().random::<u128>())
}

/// The tonic implementation.
pub struct OrdersGrpc {
    store: Arc<PgOrders>,
}

#[tonic::async_trait]
impl OrdersApi for OrdersGrpc {
    async fn create_order(
        &self,
        request: Request<CreateOrderMessage>,
    ) -> Result<Response<OrderMessage>, Status> {
        let r = request.into_inner();
        if r.user_id.is_empty() {
            return Err(Status::invalid_argument("user_id is required"));
        }
        validate_idempotency_key(&r.idempotency_key)
            .map_err(|e| Status::invalid_argument(e.message))?;
        // The same rules as the public API's.
        let checked = order_lines::validate(
            r.lines
                .iter()
                .map(|l| (l.sku.as_str(), i64::from(l.quantity))),
        )
        .map_err(Status::invalid_argument)?;
        let limits = sale_limits(r.sale_limits)?;
        let mut total: i64 = 0;
        for l in &r.lines {
            if l.unit_price_cents <= 0 {
                return Err(Status::invalid_argument(format!(
                    "{}: unit_price_cents must be positive",
                    l.sku
                )));
            }
            total = l
                .unit_price_cents
                .checked_mul(i64::from(l.quantity))
                .and_then(|line| total.checked_add(line))
                .ok_or_else(|| Status::invalid_argument("the order total overflows"))?;
        }
        let created = OrderEvent::OrderCreated {
            order_id: new_order_id(),
            user_id: r.user_id,
            lines: r
                .lines
                .into_iter()
                .map(|l| Line {
                    sku: l.sku,
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                })
                .collect(),
            total_cents: total,
            currency: CURRENCY.into(),
            created_at: unix_now(),
        };
        match self
            .store
            .create_under(
                &r.idempotency_key,
                &Fingerprint::of(&checked),
                created,
                &limits,
            )
            .await
            .map_err(db)?
        {
            Created::New(order) | Created::Replay(order) => Ok(Response::new(message(order))),
            Created::Conflict => Err(Status::already_exists(format!(
                "Idempotency-Key {:?} was used with another body",
                r.idempotency_key
            ))),
            Created::TooManyPending { pending, cap } => Err(Status::failed_precondition(format!(
                "you have {pending} orders still pending (at most {cap} at once); \
                 wait until one is confirmed or cancelled"
            ))),
            Created::OverSaleLimit(over) => Err(Status::failed_precondition(over.to_string())),
        }
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<OrderMessage>, Status> {
        let r = request.into_inner();
        let not_found = || Status::not_found(format!("no order {}", r.order_id));
        let order = self
            .store
            .load(&r.order_id)
            .await
            .map_err(db)?
            .ok_or_else(not_found)?;
        // Another user's order does not exist, as far as this user can tell.
        if order.user_id != r.user_id {
            return Err(not_found());
        }
        Ok(Response::new(message(order)))
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let r = request.into_inner();
        let limit = if r.limit == 0 { 50 } else { i64::from(r.limit) };
        let orders = self.store.list(&r.user_id, limit).await.map_err(db)?;
        Ok(Response::new(ListOrdersResponse {
            orders: orders.into_iter().map(message).collect(),
        }))
    }
}

/// Serves orders and gRPC health on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    store: Arc<PgOrders>,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = OrdersServer::with_interceptor(
        OrdersGrpc { store },
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, service, shutdown).await
}
