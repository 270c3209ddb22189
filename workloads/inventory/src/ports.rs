//! What inventory's adapters need from a shard's stock, as the trait they are written
//! against: [`StockStore`] (implemented by [`crate::postgres::PgInventory`] and
//! [`crate::memory::MemoryStock`]), its errors, and the shard's place in the ring.

use std::future::Future;

use storefront_crds::ring::shard_of;

use crate::domain::{Held, InventoryError, ReserveOutcome, RingView, StockLevel};

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
    ) -> impl Future<Output = Result<Held, StoreError>> + Send {
        hold_by_place(self, order_id, lines, place)
    }
    /// Whether the store finds every SKU's owner itself (a ring in the database): then the
    /// gRPC adapter leaves ownership to it instead of checking the shard's flags.
    fn routes_itself(&self) -> bool {
        false
    }
}

/// Holds the lines `place` says this shard owns, by [`StockStore::reserve`]: how a store
/// without a ring of its own holds.
pub async fn hold_by_place<S: StockStore + ?Sized>(
    store: &S,
    order_id: &str,
    lines: &[(String, u32)],
    place: ShardPlace,
) -> Result<Held, StoreError> {
    let owned = place.owned(lines);
    if owned.is_empty() {
        return Ok(place.held(ReserveOutcome::Reserved, Vec::new()));
    }
    let outcome = store.reserve(order_id, &owned).await?;
    let skus = held_skus(&outcome, &owned);
    Ok(place.held(outcome, skus))
}

/// The SKUs an outcome holds.
pub fn held_skus(outcome: &ReserveOutcome, lines: &[(String, u32)]) -> Vec<String> {
    if *outcome != ReserveOutcome::Reserved {
        return Vec::new();
    }
    let mut skus: Vec<String> = lines.iter().map(|(s, _)| s.clone()).collect();
    skus.sort();
    skus.dedup();
    skus
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
    pub fn held(&self, outcome: ReserveOutcome, skus: Vec<String>) -> Held {
        Held {
            outcome,
            skus,
            ring: RingView {
                epoch: self.epoch,
                shards: self.count,
            },
        }
    }
}
