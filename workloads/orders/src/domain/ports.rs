//! What orders' domain needs from the outside (its port), as traits its adapters implement: the
//! append-only log of an order's events ([`OrderLog`], implemented by
//! [`crate::postgres::PgOrders`]). The bus is not a port of the domain: orders publishes
//! through the outbox that the log writes in the same transaction.

use std::future::Future;

use super::{Order, OrderEvent};

/// Whether an append went in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The events follow the version they were decided from.
    Done,
    /// Another writer appended after that version first: load and decide again.
    Conflict,
}

/// An order's append-only event log.
pub trait OrderLog {
    type Error;

    /// The order folded from its events, or `None` if it has none (yet).
    fn load(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Order>, Self::Error>> + Send;

    /// Appends `events` after `expected_version`, all or nothing.
    fn append(
        &self,
        order_id: &str,
        expected_version: u64,
        events: &[OrderEvent],
    ) -> impl Future<Output = Result<Appended, Self::Error>> + Send;
}
