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
use tokio::{net::TcpListener, sync::Mutex};
use tonic::{Request, Response, Status};

use super::{
    domain::{Inventory, InventoryError, ReserveOutcome, StockLevel},
    postgres::{Held, PgInventory, PgInventoryError, RingView},
};
use storefront_contracts::api::{MAX_ORDER_LINES, MAX_QUANTITY, validate_sku};
use storefront_contracts::proto::inventory::{
    CommitRequest, CommitResponse, GetStockRequest, ReleaseRequest, ReleaseResponse,
    ReserveRequest, ReserveResponse, Stock,
    inventory_server::{Inventory as InventoryApi, InventoryServer},
};
use storefront_platform::grpc::RequireServiceToken;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "inventory";

/// Failures of a stock store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Invalid(#[from] InventoryError),
    #[error("failed to reach the stock store: {0}")]
    Unavailable(String),
    /// A line of a SKU another shard owns (the caller's ring is stale).
    #[error("{0}")]
    NotOwner(String),
}

impl From<PgInventoryError> for StoreError {
    fn from(e: PgInventoryError) -> Self {
        match e {
            PgInventoryError::Input(e) => Self::Invalid(e),
            e @ PgInventoryError::NotOwner { .. } => Self::NotOwner(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Where a shard's stock lives.
pub trait StockStore: Send + Sync + 'static {
    fn reserve(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
    ) -> impl Future<Output = Result<ReserveOutcome, StoreError>> + Send;
    fn release(&self, order_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn commit(&self, order_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn level(
        &self,
        sku: &str,
    ) -> impl Future<Output = Result<Option<StockLevel>, StoreError>> + Send;
    /// Holds the lines of an order that this shard owns (by the store's ring if it keeps
    /// one, else by `place`), all or nothing; answers which of the order's SKUs it holds.
    fn hold(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
        place: ShardPlace,
    ) -> impl Future<Output = Result<Held, StoreError>> + Send;
    /// Whether the store finds every SKU's owner itself (a ring in the database): then the
    /// gRPC adapter leaves ownership to it instead of checking the shard's flags.
    fn routes_itself(&self) -> bool {
        false
    }
}

impl StockStore for PgInventory {
    async fn reserve(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
    ) -> Result<ReserveOutcome, StoreError> {
        Ok(PgInventory::reserve(self, order_id, lines).await?)
    }
    async fn release(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(PgInventory::release(self, order_id).await?)
    }
    async fn commit(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(PgInventory::commit(self, order_id).await?)
    }
    async fn level(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        Ok(PgInventory::level(self, sku).await?)
    }
    async fn hold(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
        place: ShardPlace,
    ) -> Result<Held, StoreError> {
        if self.place().is_some() {
            return Ok(PgInventory::hold(self, order_id, lines).await?);
        }
        let owned = place.owned(lines);
        if owned.is_empty() {
            return Ok(place.held(ReserveOutcome::Reserved, Vec::new()));
        }
        let outcome = PgInventory::reserve(self, order_id, &owned).await?;
        let skus = held_skus(&outcome, &owned);
        Ok(place.held(outcome, skus))
    }
    fn routes_itself(&self) -> bool {
        self.place().is_some()
    }
}

/// The SKUs an outcome holds.
fn held_skus(outcome: &ReserveOutcome, lines: &[(String, u32)]) -> Vec<String> {
    if *outcome != ReserveOutcome::Reserved {
        return Vec::new();
    }
    let mut skus: Vec<String> = lines.iter().map(|(s, _)| s.clone()).collect();
    skus.sort();
    skus.dedup();
    skus
}

/// The domain model behind a lock: tests and single-process runs.
#[derive(Default)]
pub struct MemoryStock(pub Mutex<Inventory>);

impl StockStore for MemoryStock {
    async fn reserve(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
    ) -> Result<ReserveOutcome, StoreError> {
        Ok(self.0.lock().await.reserve(order_id, lines)?)
    }
    async fn release(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(self.0.lock().await.release(order_id))
    }
    async fn commit(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(self.0.lock().await.commit(order_id))
    }
    async fn level(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        Ok(self.0.lock().await.level(sku).cloned())
    }
    async fn hold(
        &self,
        order_id: &str,
        lines: &[(String, u32)],
        place: ShardPlace,
    ) -> Result<Held, StoreError> {
        let owned = place.owned(lines);
        if owned.is_empty() {
            return Ok(place.held(ReserveOutcome::Reserved, Vec::new()));
        }
        let outcome = self.0.lock().await.reserve(order_id, &owned)?;
        let skus = held_skus(&outcome, &owned);
        Ok(place.held(outcome, skus))
    }
}

/// This shard's place in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardPlace {
    pub index: u32,
    pub count: u32,
    pub epoch: i64,
}

impl ShardPlace {
    /// The lines this shard owns.
    pub fn owned(&self, lines: &[(String, u32)]) -> Vec<(String, u32)> {
        lines
            .iter()
            .filter(|(sku, _)| shard_of(sku, self.count) == self.index)
            .cloned()
            .collect()
    }

    /// An answer under this place's ring.
    fn held(&self, outcome: ReserveOutcome, skus: Vec<String>) -> Held {
        Held {
            outcome,
            skus,
            ring: RingView {
                epoch: self.epoch,
                shards: self.count,
            },
        }
    }

    /// Refuses a SKU this shard does not own.
    fn check_owner(&self, sku: &str) -> Result<(), Status> {
        let owner = shard_of(sku, self.count);
        if owner == self.index {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "SKU {sku} belongs to shard {owner} of {} (this is shard {}, epoch {}); reload the ring",
                self.count, self.index, self.epoch
            )))
        }
    }

    /// Refuses a caller that routed by another epoch (0 means "not stated").
    fn check_epoch(&self, epoch: i64) -> Result<(), Status> {
        if epoch == 0 || epoch == self.epoch {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "routed by ring epoch {epoch}, this shard is at epoch {}; reload the ring",
                self.epoch
            )))
        }
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

fn status(err: StoreError) -> Status {
    match err {
        StoreError::NotOwner(e) => Status::failed_precondition(e),
        StoreError::Invalid(e) => Status::invalid_argument(e.to_string()),
        StoreError::Unavailable(e) => Status::unavailable(e),
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
            self.place.check_epoch(r.ring_epoch)?;
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
                self.place.check_owner(&line.sku)?;
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
            self.place.check_owner(&sku)?;
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
        RequireServiceToken::new(verifier, SERVICE),
    );
    storefront_platform::grpc::serve(listener, inventory, shutdown).await
}
