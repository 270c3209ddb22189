//! The domain model behind a lock as a [`StockStore`]: tests and single-process runs.

use tokio::sync::Mutex;

use crate::{
    domain::{Inventory, ReserveOutcome, StockLevel},
    ports::{StockStore, StoreError},
};

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
}
