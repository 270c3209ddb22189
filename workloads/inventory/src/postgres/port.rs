//! [`PgInventory`] as the [`StockStore`] the gRPC server and the bus consumer run over.

use super::{PgInventory, PgInventoryError};
use crate::{
    domain::{Held, ReserveOutcome, StockLevel},
    ports::{ShardPlace, StockStore, StoreError, hold_by_place},
};

impl From<PgInventoryError> for StoreError {
    fn from(e: PgInventoryError) -> Self {
        match e {
            PgInventoryError::Input(e) => Self::Invalid(e),
            e @ PgInventoryError::NotOwner { .. } => Self::NotOwner(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
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
        hold_by_place(self, order_id, lines, place).await
    }
    fn routes_itself(&self) -> bool {
        self.place().is_some()
    }
}
