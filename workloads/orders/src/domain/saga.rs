//! The checkout saga's decisions: what the orders service hears ([`SagaInput`]) and, given
//! an order's state, which events to append ([`decide`]); pure, so every transition is
//! unit-tested (`domain/tests.rs`).

use std::collections::BTreeSet;

use super::{Line, Order, OrderEvent, SagaState, ShardHeld};

/// What the orders service hears about an order (from NATS, or its own timer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaInput {
    /// Inventory shard `shard` of `shards` holds the order's lines it owns.
    StockHeld {
        shard: u32,
        shards: u32,
    },
    /// Inventory shard `shard` of `shards` (ring `epoch`) holds `skus` of the order, in
    /// answer to request `attempt`.
    LinesHeld {
        shard: u32,
        shards: u32,
        epoch: i64,
        attempt: u32,
        skus: Vec<String>,
    },
    /// A shard cannot hold a line.
    StockRejected {
        reason: String,
    },
    PaymentSucceeded {
        charge_id: String,
    },
    PaymentFailed {
        reason: String,
    },
    /// The order waited too long for stock or payment.
    TimedOut,
    /// The periodic sweep looks at a pending order at unix second `now`: an order whose
    /// lines are not all held after [`STALL_SECS`] (a shard that never answered: a reply lost
    /// with a shard removed by a reshard, a consumer down) asks the shards again.
    Stalled {
        now: i64,
    },
}

/// A compensating action a decision asks for, read from its events (the event is what the
/// bus carries to the service that compensates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compensation {
    /// Give back a payment taken for an order that was cancelled meanwhile.
    Refund {
        charge_id: String,
        amount_cents: i64,
    },
}

/// What to do about one input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    /// Events to append (in one transaction, with their outbox rows).
    pub events: Vec<OrderEvent>,
    /// The input arrived before the state it needs (not acknowledged: redelivered later).
    pub retry_later: bool,
}

impl Decision {
    fn append(events: Vec<OrderEvent>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    /// The compensations its events ask for: a refund per `RefundRequested`.
    pub fn compensations(&self) -> Vec<Compensation> {
        self.events
            .iter()
            .filter_map(|e| match e {
                OrderEvent::RefundRequested {
                    charge_id,
                    amount_cents,
                    ..
                } => Some(Compensation::Refund {
                    charge_id: charge_id.clone(),
                    amount_cents: *amount_cents,
                }),
                _ => None,
            })
            .collect()
    }
}

/// The saga: decides what follows `input` given the order's current state. Duplicates and
/// late inputs after a final state decide nothing (idempotent consumers), except a payment
/// that succeeded for a cancelled order, which is recorded and refunded.
pub fn decide(order: &Order, input: &SagaInput) -> Decision {
    use SagaState::*;
    let id = || order.order_id.clone();
    let cancel = |reason: &str| OrderEvent::OrderCancelled {
        order_id: id(),
        reason: reason.to_string(),
    };
    match (order.state, input) {
        (AwaitingStock, SagaInput::StockHeld { shard, shards }) => {
            if *shards == 0 || shard >= shards || order.held.contains(shard) {
                // A duplicate, or a reply no ring can produce: nothing to record.
                return Decision::default();
            }
            if order.shards.is_some_and(|n| n != *shards) {
                // The inventory ring changed while the order was being reserved: shards of
                // two rings cannot add up to all of the order's lines. Cancel (every shard
                // releases what it holds); the shopper orders again on the new ring.
                return Decision::append(vec![cancel(
                    "inventory was resharded while reserving stock; please order again",
                )]);
            }
            let mut events = vec![OrderEvent::StockHeld(ShardHeld::by_place(
                id(),
                *shard,
                *shards,
            ))];
            if order.held.len() + 1 == *shards as usize {
                events.push(OrderEvent::StockReserved {
                    order_id: id(),
                    total_cents: order.total_cents,
                });
            }
            Decision::append(events)
        }
        (
            AwaitingStock,
            SagaInput::LinesHeld {
                shard,
                shards,
                epoch,
                attempt,
                skus,
            },
        ) => lines_held(order, *shard, *shards, *epoch, *attempt, skus),
        (AwaitingStock, SagaInput::Stalled { now }) => {
            let waited = now.saturating_sub(order.created_at);
            let held = |l: &Line| order.covered.contains(&l.sku);
            let due = waited >= STALL_SECS * (i64::from(order.requests) + 1);
            if order.lines.iter().all(held) || !due || order.requests >= MAX_STOCK_REQUESTS {
                return Decision::default();
            }
            Decision::append(vec![OrderEvent::StockRequested {
                order_id: id(),
                lines: order.lines.clone(),
                attempt: order.requests + 1,
            }])
        }
        (AwaitingStock, SagaInput::StockRejected { reason }) => Decision::append(vec![
            OrderEvent::StockRejected {
                order_id: id(),
                reason: reason.clone(),
            },
            cancel(&format!("out of stock: {reason}")),
        ]),
        // Payments only charges after StockReserved; hearing of it first means our
        // StockReserved message is still in flight.
        (AwaitingStock, SagaInput::PaymentSucceeded { .. } | SagaInput::PaymentFailed { .. }) => {
            Decision {
                retry_later: true,
                ..Decision::default()
            }
        }
        (AwaitingStock | AwaitingPayment, SagaInput::TimedOut) => {
            // Inventory releases whatever it holds on OrderCancelled (a no-op if nothing).
            Decision::append(vec![cancel("timed out waiting for stock or payment")])
        }
        (AwaitingPayment, SagaInput::PaymentSucceeded { charge_id }) => Decision::append(vec![
            OrderEvent::PaymentSucceeded {
                order_id: id(),
                charge_id: charge_id.clone(),
            },
            OrderEvent::OrderConfirmed { order_id: id() },
        ]),
        (AwaitingPayment, SagaInput::PaymentFailed { reason }) => Decision::append(vec![
            OrderEvent::PaymentFailed {
                order_id: id(),
                reason: reason.clone(),
            },
            // Compensation for the reservation: inventory releases on OrderCancelled.
            cancel(&format!("payment failed: {reason}")),
        ]),
        (Cancelled, SagaInput::PaymentSucceeded { charge_id }) if order.charge_id.is_none() => {
            Decision {
                events: vec![
                    OrderEvent::PaymentSucceeded {
                        order_id: id(),
                        charge_id: charge_id.clone(),
                    },
                    OrderEvent::RefundRequested {
                        order_id: id(),
                        charge_id: charge_id.clone(),
                        amount_cents: order.total_cents,
                    },
                ],
                retry_later: false,
            }
        }
        // Duplicates, and anything after a final state: nothing to do.
        _ => Decision::default(),
    }
}

/// How many times orders asks the shards again before it gives up on an order.
pub const MAX_STOCK_REQUESTS: u32 = 3;
/// How long an order waits for every line to be held before it asks again (and again after
/// twice as long, ...), well inside the order timeout (120 s by default).
pub const STALL_SECS: i64 = 10;

/// A shard that states its SKUs holds `skus`: the order is reserved once every line is held
/// by some shard. A line can be missed only when the ring changed while the shards answered
/// (a shard that answered before the switch did not own it yet, its old owner answered
/// after): then, as when every shard of a ring answered and a line is still not held, orders
/// asks every shard again; per-line idempotence makes that safe.
fn lines_held(
    order: &Order,
    shard: u32,
    shards: u32,
    epoch: i64,
    attempt: u32,
    skus: &[String],
) -> Decision {
    let seen = order
        .answered
        .get(&(attempt, epoch))
        .is_some_and(|(_, who)| who.contains(&shard));
    if shards == 0 || seen || attempt > order.requests {
        // A duplicate, a reply no ring can produce, or an answer to a request never made.
        return Decision::default();
    }
    let id = order.order_id.clone();
    let mut events = vec![OrderEvent::StockHeld(ShardHeld {
        order_id: id.clone(),
        shard,
        shards,
        skus: Some(skus.to_vec()),
        epoch,
        attempt,
    })];
    let covered = |sku: &String| order.covered.contains(sku) || skus.contains(sku);
    if order.lines.iter().all(|l| covered(&l.sku)) {
        events.push(OrderEvent::StockReserved {
            order_id: id,
            total_cents: order.total_cents,
        });
        return Decision::append(events);
    }
    let epochs: BTreeSet<i64> = order
        .answered
        .keys()
        .filter(|(a, _)| *a == attempt)
        .map(|(_, e)| *e)
        .chain([epoch])
        .collect();
    let everyone = order
        .answered
        .get(&(attempt, epoch))
        .map_or(0, |(_, who)| who.iter().filter(|&&s| s < shards).count())
        + usize::from(shard < shards)
        == shards as usize;
    let stalled = epochs.len() > 1 || everyone;
    if stalled && order.requests == attempt {
        if attempt >= MAX_STOCK_REQUESTS {
            events.push(OrderEvent::OrderCancelled {
                order_id: id,
                reason: format!(
                    "inventory could not hold every line after {} requests",
                    attempt + 1
                ),
            });
        } else {
            events.push(OrderEvent::StockRequested {
                order_id: id,
                lines: order.lines.clone(),
                attempt: attempt + 1,
            });
        }
    }
    Decision::append(events)
}
