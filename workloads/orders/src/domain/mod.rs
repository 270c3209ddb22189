//! Orders' domain: the event-sourced order and the checkout saga, with no storage and no
//! broker, so every transition is unit-tested. This module folds an order from its events;
//! [`saga`] decides what to append when something happens; [`step`] is the saga's step
//! (load → decide → append, again on a concurrent append) over the [`ports::OrderLog`]
//! port, which the PostgreSQL store implements.
//!
//! An order is never updated in place: its state is [`Order::fold`] of its append-only events
//! (`order_events` in PostgreSQL). The saga reacts to what other services report and decides
//! which events to append next; it is idempotent (a redelivered message changes nothing) and
//! compensates when a step fails after an earlier one succeeded. [`sale_limits`] decides
//! whether a new order stays within the flash sales' per-customer caps.
//!
//! ```text
//!                 OrderCreated ──▶ inventory reserves (all or nothing)
//!   AwaitingStock ─ StockReserved ─▶ AwaitingPayment ─ PaymentSucceeded ─▶ Confirmed
//!        │                                │                 (OrderConfirmed)
//!        │ StockRejected                  │ PaymentFailed / timeout
//!        ▼                                ▼
//!   Cancelled (nothing held)         Cancelled + compensation: inventory releases on
//!                                    OrderCancelled; a payment that succeeds after a
//!                                    cancellation is refunded
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use storefront_contracts::messages::{BusMessage, Line, OrderEvent, ShardHeld};

pub mod ports;
mod saga;
pub mod sale_limits;
mod step;

pub use saga::{Compensation, Decision, MAX_STOCK_REQUESTS, STALL_SECS, SagaInput, decide};
pub use step::{Step, step};

/// Where the saga of an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaState {
    AwaitingStock,
    AwaitingPayment,
    Confirmed,
    Cancelled,
}

/// An order as folded from its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub user_id: String,
    pub lines: Vec<Line>,
    pub total_cents: i64,
    pub currency: String,
    pub created_at: i64,
    pub state: SagaState,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// Whether a payment was taken (decides whether a cancellation must refund).
    pub charge_id: Option<String>,
    /// The inventory shards that hold their lines, and how many shards there are (replies
    /// that do not state their SKUs).
    pub held: BTreeSet<u32>,
    pub shards: Option<u32>,
    /// The order's SKUs that some shard holds (replies that state them).
    pub covered: BTreeSet<String>,
    /// Which shards answered, per request and ring epoch: `(attempt, epoch) → (shards, who)`.
    pub answered: BTreeMap<(u32, i64), (u32, BTreeSet<u32>)>,
    /// The last `StockRequested` attempt (0: none).
    pub requests: u32,
    /// How many events were folded (the next event's sequence number).
    pub version: u64,
}

/// What a shopper is told about an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    /// Its name on the wire (`Order.status` in `proto/orders.proto`, `status` in the public
    /// JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl Order {
    /// The public status.
    pub fn status(&self) -> OrderStatus {
        match self.state {
            SagaState::AwaitingStock | SagaState::AwaitingPayment => OrderStatus::Pending,
            SagaState::Confirmed => OrderStatus::Confirmed,
            SagaState::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// Why a stream of events does not fold into an order (corrupt or foreign history).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("an order's history must start with OrderCreated, found {0}")]
    NotCreatedFirst(&'static str),
    #[error("the order has no events")]
    Empty,
    #[error("event {event} of order {found} is in the history of order {expected}")]
    ForeignEvent {
        expected: String,
        found: String,
        event: &'static str,
    },
    #[error("{event} cannot follow state {state:?}")]
    IllegalTransition {
        state: SagaState,
        event: &'static str,
    },
}

impl Order {
    /// Folds an order's history (in append order) into its current state.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a OrderEvent>,
    ) -> Result<Self, ProjectionError> {
        let mut events = events.into_iter();
        let first = events.next().ok_or(ProjectionError::Empty)?;
        let OrderEvent::OrderCreated {
            order_id,
            user_id,
            lines,
            total_cents,
            currency,
            created_at,
        } = first
        else {
            return Err(ProjectionError::NotCreatedFirst(first.kind()));
        };
        let mut order = Order {
            order_id: order_id.clone(),
            user_id: user_id.clone(),
            lines: lines.clone(),
            total_cents: *total_cents,
            currency: currency.clone(),
            created_at: *created_at,
            state: SagaState::AwaitingStock,
            reason: None,
            charge_id: None,
            held: BTreeSet::new(),
            shards: None,
            covered: BTreeSet::new(),
            answered: BTreeMap::new(),
            requests: 0,
            version: 1,
        };
        for event in events {
            order.apply(event)?;
        }
        Ok(order)
    }

    /// Applies one recorded event. Only transitions the saga can produce are legal.
    fn apply(&mut self, event: &OrderEvent) -> Result<(), ProjectionError> {
        if event.order_id() != self.order_id {
            return Err(ProjectionError::ForeignEvent {
                expected: self.order_id.clone(),
                found: event.order_id().to_string(),
                event: event.kind(),
            });
        }
        use SagaState::*;
        let illegal = || ProjectionError::IllegalTransition {
            state: self.state,
            event: event.kind(),
        };
        match (self.state, event) {
            (
                AwaitingStock,
                OrderEvent::StockHeld(ShardHeld {
                    shard,
                    shards,
                    skus: None,
                    ..
                }),
            ) => {
                self.held.insert(*shard);
                self.shards = Some(*shards);
            }
            (
                AwaitingStock,
                OrderEvent::StockHeld(ShardHeld {
                    shard,
                    shards,
                    skus: Some(skus),
                    epoch,
                    attempt,
                    ..
                }),
            ) => {
                self.covered.extend(skus.iter().cloned());
                let who = self
                    .answered
                    .entry((*attempt, *epoch))
                    .or_insert_with(|| (*shards, BTreeSet::new()));
                who.1.insert(*shard);
            }
            (AwaitingStock, OrderEvent::StockRequested { attempt, .. }) => {
                self.requests = self.requests.max(*attempt);
            }
            (AwaitingStock, OrderEvent::StockReserved { .. }) => self.state = AwaitingPayment,
            (Cancelled, OrderEvent::RefundRequested { .. }) => {}
            // Recorded facts that do not move the state by themselves: the cancellation or
            // confirmation that follows them does.
            (AwaitingStock, OrderEvent::StockRejected { .. })
            | (AwaitingPayment, OrderEvent::PaymentFailed { .. }) => {}
            (AwaitingPayment, OrderEvent::PaymentSucceeded { charge_id, .. })
            | (Cancelled, OrderEvent::PaymentSucceeded { charge_id, .. }) => {
                self.charge_id = Some(charge_id.clone());
            }
            (AwaitingPayment, OrderEvent::OrderConfirmed { .. }) if self.charge_id.is_some() => {
                self.state = Confirmed;
            }
            (AwaitingStock | AwaitingPayment, OrderEvent::OrderCancelled { reason, .. }) => {
                self.state = Cancelled;
                self.reason = Some(reason.clone());
            }
            _ => return Err(illegal()),
        }
        self.version += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
