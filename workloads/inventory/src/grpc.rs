//! Inventory's gRPC adapter: `proto/inventory.proto` for one shard, over any
//! [`StockStore`] (PostgreSQL in production, memory in tests), behind the service-token check.
//!
//! A shard reserves only the SKUs it owns in the ring (`storefront_crds::ring`): a caller
//! that sent a SKU of another shard gets `FAILED_PRECONDITION` and must reload its ring.
//! A store that keeps the ring in the database (every PostgreSQL shard of a sharded
//! inventory) decides ownership itself, by the ring in force when it acts, and reads a SKU
//! it no longer owns from its owner; a store without one (memory, an unsharded inventory) is
//! checked against the shard's flags here, epoch included. An order whose lines span shards is reserved per shard under
//! the same order id (each part all-or-nothing and idempotent); orders releases the parts
//! that succeeded when another part is rejected.

use std::{future::Future, sync::Arc};

use storefront_crds::ring::shard_of;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::{
    domain::ReserveOutcome,
    ports::{StockStore, StoreError},
};
// The stores and the place this server runs over, where its callers found them.
use super::ports::ShardPlace;
use storefront_contracts::order_lines::{MAX_ORDER_LINES, MAX_QUANTITY, validate_sku};
use storefront_contracts::proto::inventory::{
    CommitRequest, CommitResponse, GetStockRequest, ReleaseRequest, ReleaseResponse,
    ReserveRequest, ReserveResponse, Stock,
    inventory_server::{Inventory as InventoryApi, InventoryServer},
};
use storefront_platform::grpc::RequireServiceToken;
use storefront_platform::request_id::hidden;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "inventory";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: the gateway reads stock; only orders moves it); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "GetStock" => &["gateway"],
        // The saga reserves over the bus; over gRPC, only orders (the saga's owner) may.
        "Reserve" | "Release" | "Commit" => &["orders"],
        _ => &[],
    }
}

/// Refuses a SKU this shard does not own.
fn check_owner(place: &ShardPlace, sku: &str) -> Result<(), Status> {
    let owner = shard_of(sku, place.count);
    if owner == place.index {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "SKU {sku} belongs to shard {owner} of {} (this is shard {}, epoch {}); reload the ring",
            place.count, place.index, place.epoch
        )))
    }
}

/// Refuses a caller that routed by another epoch (0 means "not stated").
fn check_epoch(place: &ShardPlace, epoch: i64) -> Result<(), Status> {
    if epoch == 0 || epoch == place.epoch {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "routed by ring epoch {epoch}, this shard is at epoch {}; reload the ring",
            place.epoch
        )))
    }
}

/// The tonic implementation.
pub struct InventoryGrpc<S> {
    store: Arc<S>,
    place: ShardPlace,
}

impl<S> InventoryGrpc<S> {
    pub fn new(store: Arc<S>, place: ShardPlace) -> Self {
        Self { store, place }
    }
}

/// A store's answer as the caller sees it: its refusals in its words (written for the
/// caller), its failure in short stable ones (the driver's are logged with the request id,
/// [`hidden`]).
fn status(err: StoreError) -> Status {
    match err {
        StoreError::NotOwner(e) => Status::failed_precondition(e),
        StoreError::Invalid(e) => Status::invalid_argument(e.to_string()),
        StoreError::Unavailable(e) => {
            hidden(Code::Unavailable, "the stock store is unavailable", e)
        }
    }
}

fn check_order_id(order_id: &str) -> Result<(), Status> {
    if order_id.is_empty() || order_id.len() > 128 {
        return Err(Status::invalid_argument(
            "order_id must be 1 to 128 characters",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl<S: StockStore> InventoryApi for InventoryGrpc<S> {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveResponse>, Status> {
        let r = request.into_inner();
        check_order_id(&r.order_id)?;
        let routes_itself = self.store.routes_itself();
        if !routes_itself {
            check_epoch(&self.place, r.ring_epoch)?;
        }
        if r.lines.is_empty() || r.lines.len() > MAX_ORDER_LINES {
            return Err(Status::invalid_argument(format!(
                "a reservation has 1 to {MAX_ORDER_LINES} lines, got {}",
                r.lines.len()
            )));
        }
        let mut lines = Vec::with_capacity(r.lines.len());
        for line in r.lines {
            validate_sku(&line.sku)
                .map_err(|m| Status::invalid_argument(format!("sku {:?}: {m}", line.sku)))?;
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(Status::invalid_argument(format!(
                    "{}: quantity must be between 1 and {MAX_QUANTITY}, got {}",
                    line.sku, line.quantity
                )));
            }
            if !routes_itself {
                check_owner(&self.place, &line.sku)?;
            }
            lines.push((line.sku, line.quantity));
        }
        let outcome = self
            .store
            .reserve(&r.order_id, &lines)
            .await
            .map_err(status)?;
        Ok(Response::new(match outcome {
            ReserveOutcome::Reserved => ReserveResponse {
                reserved: true,
                ..ReserveResponse::default()
            },
            ReserveOutcome::Rejected(rejection) => ReserveResponse {
                reserved: false,
                reason: rejection.reason(),
                sku: rejection.sku().unwrap_or_default().to_string(),
            },
        }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        let order_id = request.into_inner().order_id;
        check_order_id(&order_id)?;
        let released = self.store.release(&order_id).await.map_err(status)?;
        Ok(Response::new(ReleaseResponse { released }))
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        let order_id = request.into_inner().order_id;
        check_order_id(&order_id)?;
        let committed = self.store.commit(&order_id).await.map_err(status)?;
        Ok(Response::new(CommitResponse { committed }))
    }

    async fn get_stock(
        &self,
        request: Request<GetStockRequest>,
    ) -> Result<Response<Stock>, Status> {
        let sku = request.into_inner().sku;
        validate_sku(&sku).map_err(|m| Status::invalid_argument(format!("sku {sku:?}: {m}")))?;
        if !self.store.routes_itself() {
            check_owner(&self.place, &sku)?;
        }
        let level = self
            .store
            .level(&sku)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("unknown SKU {sku}")))?;
        Ok(Response::new(Stock {
            available: level.available(),
            stock: level.stock,
            reserved: level.reserved,
            sku,
        }))
    }
}

/// Serves the shard and gRPC health on `listener` until `shutdown` completes, then drains.
pub async fn serve<S: StockStore>(
    listener: TcpListener,
    store: Arc<S>,
    place: ShardPlace,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let inventory = InventoryServer::with_interceptor(
        InventoryGrpc::new(store, place),
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, inventory, shutdown).await
}
