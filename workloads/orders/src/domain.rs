//! Orders' domain: the event-sourced order and the checkout saga, with no storage and no
//! broker, so every transition is unit-tested.
//!
//! An order is never updated in place: its state is [`Order::fold`] of its append-only events
//! (`order_events` in PostgreSQL). The saga reacts to what other services report and decides
//! which events to append next; it is idempotent (a redelivered message changes nothing) and
//! compensates when a step fails after an earlier one succeeded.
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

pub use storefront_contracts::messages::{BusMessage, Line, OrderEvent};

use storefront_contracts::api::OrderStatus;

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
                OrderEvent::StockHeld {
                    shard,
                    shards,
                    skus: None,
                    ..
                },
            ) => {
                self.held.insert(*shard);
                self.shards = Some(*shards);
            }
            (
                AwaitingStock,
                OrderEvent::StockHeld {
                    shard,
                    shards,
                    skus: Some(skus),
                    epoch,
                    attempt,
                    ..
                },
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

/// A compensating action the saga asks for besides its events.
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
    /// Compensations to run.
    pub compensations: Vec<Compensation>,
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
            let mut events = vec![OrderEvent::StockHeld {
                order_id: id(),
                shard: *shard,
                shards: *shards,
                skus: None,
                epoch: 0,
                attempt: 0,
            }];
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
                compensations: vec![Compensation::Refund {
                    charge_id: charge_id.clone(),
                    amount_cents: order.total_cents,
                }],
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
    let mut events = vec![OrderEvent::StockHeld {
        order_id: id.clone(),
        shard,
        shards,
        skus: Some(skus.to_vec()),
        epoch,
        attempt,
    }];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            order_id: "o1".into(),
            user_id: "u1".into(),
            lines: vec![
                Line {
                    sku: "SKU-A".into(),
                    quantity: 2,
                    unit_price_cents: 500,
                },
                Line {
                    sku: "SKU-B".into(),
                    quantity: 1,
                    unit_price_cents: 250,
                },
            ],
            total_cents: 1250,
            currency: "USD".into(),
            created_at: 100,
        }
    }

    /// Runs inputs through decide + fold, the way the service does, returning the history.
    fn run(inputs: &[SagaInput]) -> (Vec<OrderEvent>, Vec<Compensation>) {
        let mut history = vec![created()];
        let mut compensations = vec![];
        for input in inputs {
            let order = Order::fold(&history).expect("folds");
            let decision = decide(&order, input);
            history.extend(decision.events);
            compensations.extend(decision.compensations);
        }
        (history, compensations)
    }

    fn kinds(history: &[OrderEvent]) -> Vec<&'static str> {
        history.iter().map(OrderEvent::kind).collect()
    }

    #[test]
    fn happy_path_confirms() {
        let (history, comp) = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            SagaInput::PaymentSucceeded {
                charge_id: "ch1".into(),
            },
        ]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockReserved",
                "PaymentSucceeded",
                "OrderConfirmed"
            ]
        );
        assert!(comp.is_empty());
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.status(), OrderStatus::Confirmed);
        assert_eq!(order.charge_id.as_deref(), Some("ch1"));
        assert_eq!(order.version, 5);
        assert_eq!(order.total_cents, 1250);
    }

    #[test]
    fn stock_rejected_cancels_without_compensation() {
        let (history, comp) = run(&[SagaInput::StockRejected {
            reason: "SKU-A: 1 available".into(),
        }]);
        assert_eq!(
            kinds(&history),
            ["OrderCreated", "StockRejected", "OrderCancelled"]
        );
        assert!(comp.is_empty());
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.status(), OrderStatus::Cancelled);
        assert_eq!(
            order.reason.as_deref(),
            Some("out of stock: SKU-A: 1 available")
        );
    }

    #[test]
    fn payment_failure_cancels_so_inventory_releases() {
        let (history, _) = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            SagaInput::PaymentFailed {
                reason: "card declined".into(),
            },
        ]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockReserved",
                "PaymentFailed",
                "OrderCancelled"
            ]
        );
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.status(), OrderStatus::Cancelled);
        assert_eq!(
            order.reason.as_deref(),
            Some("payment failed: card declined")
        );
    }

    #[test]
    fn redeliveries_change_nothing() {
        let paid = SagaInput::PaymentSucceeded {
            charge_id: "ch1".into(),
        };
        let once = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            paid.clone(),
        ]);
        let twice = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            paid.clone(),
            paid,
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            SagaInput::TimedOut,
            SagaInput::PaymentFailed {
                reason: "late".into(),
            },
        ]);
        assert_eq!(once, twice);
    }

    #[test]
    fn payment_heard_before_stock_is_retried_later() {
        let order = Order::fold(&[created()]).expect("folds");
        let decision = decide(
            &order,
            &SagaInput::PaymentSucceeded {
                charge_id: "ch1".into(),
            },
        );
        assert!(decision.retry_later);
        assert!(decision.events.is_empty());
    }

    #[test]
    fn a_payment_after_a_timeout_is_refunded_once() {
        let paid = SagaInput::PaymentSucceeded {
            charge_id: "ch9".into(),
        };
        let (history, comp) = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 1,
            },
            SagaInput::TimedOut,
            paid.clone(),
            paid,
        ]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockReserved",
                "OrderCancelled",
                "PaymentSucceeded",
                "RefundRequested"
            ]
        );
        assert_eq!(
            comp,
            [Compensation::Refund {
                charge_id: "ch9".into(),
                amount_cents: 1250
            }]
        );
        assert_eq!(
            Order::fold(&history).expect("folds").status(),
            OrderStatus::Cancelled
        );
    }

    #[test]
    fn stock_is_reserved_when_every_shard_holds_in_any_order_once() {
        let held = |shard| SagaInput::StockHeld { shard, shards: 3 };
        let (history, _) = run(&[held(2), held(0), held(2), held(1), held(1)]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockHeld",
                "StockHeld",
                "StockReserved"
            ]
        );
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.state, SagaState::AwaitingPayment);
        assert_eq!(order.held, BTreeSet::from([0, 1, 2]));
        assert_eq!(
            history.last(),
            Some(&OrderEvent::StockReserved {
                order_id: "o1".into(),
                total_cents: 1250
            })
        );
    }

    #[test]
    fn one_shard_rejecting_cancels_and_later_holds_change_nothing() {
        let (history, _) = run(&[
            SagaInput::StockHeld {
                shard: 0,
                shards: 2,
            },
            SagaInput::StockRejected {
                reason: "SKU-B: 1 requested, 0 available".into(),
            },
            SagaInput::StockHeld {
                shard: 1,
                shards: 2,
            },
        ]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockRejected",
                "OrderCancelled"
            ]
        );
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.status(), OrderStatus::Cancelled);
        assert!(order.reason.as_deref().is_some_and(|r| r.contains("SKU-B")));
    }

    #[test]
    fn replies_from_two_rings_cancel_and_impossible_replies_are_ignored() {
        let (history, _) = run(&[
            SagaInput::StockHeld {
                shard: 5,
                shards: 4,
            },
            SagaInput::StockHeld {
                shard: 0,
                shards: 0,
            },
            SagaInput::StockHeld {
                shard: 0,
                shards: 2,
            },
            SagaInput::StockHeld {
                shard: 1,
                shards: 4,
            },
        ]);
        assert_eq!(
            kinds(&history),
            ["OrderCreated", "StockHeld", "OrderCancelled"]
        );
        assert!(
            Order::fold(&history)
                .expect("folds")
                .reason
                .is_some_and(|r| r.contains("resharded"))
        );
    }

    #[test]
    fn message_ids_name_the_shard_of_a_hold() {
        let e = OrderEvent::StockHeld {
            order_id: "o1".into(),
            shard: 3,
            shards: 4,
            skus: None,
            epoch: 0,
            attempt: 0,
        };
        assert_eq!(e.message_id(), "o1:StockHeld:3");
        let e = OrderEvent::StockHeld {
            order_id: "o1".into(),
            shard: 3,
            shards: 4,
            skus: Some(vec![]),
            epoch: 2,
            attempt: 1,
        };
        assert_eq!(e.message_id(), "o1:StockHeld:3:2:1");
        let r = OrderEvent::StockRequested {
            order_id: "o1".into(),
            lines: vec![],
            attempt: 2,
        };
        assert_eq!(r.message_id(), "o1:StockRequested:2");
    }

    fn lines_held(shard: u32, shards: u32, epoch: i64, attempt: u32, skus: &[&str]) -> SagaInput {
        SagaInput::LinesHeld {
            shard,
            shards,
            epoch,
            attempt,
            skus: skus.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn stated_lines_reserve_once_every_line_is_held_whatever_the_ring() {
        // Two shards at one epoch: A on shard 0, B on shard 1.
        let (history, _) = run(&[
            lines_held(1, 2, 1, 0, &["SKU-B"]),
            lines_held(1, 2, 1, 0, &["SKU-B"]),
            lines_held(0, 2, 1, 0, &["SKU-A"]),
        ]);
        assert_eq!(
            kinds(&history),
            ["OrderCreated", "StockHeld", "StockHeld", "StockReserved"],
            "the duplicate is dropped"
        );
        // Across a switch 2 -> 3 where B moves from shard 1 to the new shard 2: shard 2
        // answered before the switch (owning nothing), shard 1 after it (B is gone). The
        // epochs differ and B is not held: ask every shard again.
        let (history, _) = run(&[
            lines_held(0, 2, 1, 0, &["SKU-A"]),
            lines_held(2, 2, 1, 0, &[]),
            lines_held(1, 3, 2, 0, &[]),
        ]);
        assert_eq!(
            kinds(&history),
            [
                "OrderCreated",
                "StockHeld",
                "StockHeld",
                "StockHeld",
                "StockRequested"
            ]
        );
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.requests, 1);
        assert_eq!(order.status(), OrderStatus::Pending);
        // The answers to the request: shard 2 now owns B and holds it.
        let mut history = history;
        for input in [
            lines_held(0, 3, 2, 1, &["SKU-A"]),
            lines_held(1, 3, 2, 1, &[]),
            lines_held(2, 3, 2, 1, &["SKU-B"]),
        ] {
            let order = Order::fold(&history).expect("folds");
            history.extend(decide(&order, &input).events);
        }
        assert_eq!(
            kinds(&history[5..]),
            ["StockHeld", "StockHeld", "StockHeld", "StockReserved"]
        );
        // An answer to a request that was never made is not recorded.
        let (history, _) = run(&[lines_held(0, 2, 1, 3, &["SKU-A", "SKU-B"])]);
        assert_eq!(kinds(&history), ["OrderCreated"]);
    }

    #[test]
    fn a_stalled_order_asks_again_at_growing_intervals_until_its_lines_are_held() {
        // Shard 0 answered before a switch; the owner of SKU-B was removed before it answered.
        let (history, _) = run(&[lines_held(0, 5, 1, 0, &["SKU-A"])]);
        let at = |secs| SagaInput::Stalled { now: 100 + secs };
        let mut history = history;
        let step = |input: SagaInput, history: &mut Vec<OrderEvent>| {
            let order = Order::fold(history.iter()).expect("folds");
            let d = decide(&order, &input);
            history.extend(d.events.clone());
            d.events.len()
        };
        assert_eq!(step(at(STALL_SECS - 1), &mut history), 0, "not yet");
        assert_eq!(step(at(STALL_SECS), &mut history), 1);
        assert_eq!(kinds(&history).last(), Some(&"StockRequested"));
        assert_eq!(
            step(at(STALL_SECS + 1), &mut history),
            0,
            "waits twice as long"
        );
        // The new owner answers the request: reserved.
        assert_eq!(step(lines_held(2, 3, 2, 1, &["SKU-B"]), &mut history), 2);
        assert_eq!(kinds(&history).last(), Some(&"StockReserved"));
        assert_eq!(
            step(at(1000), &mut history),
            0,
            "nothing once every line is held"
        );
    }

    #[test]
    fn every_shard_of_a_ring_answered_and_a_line_missing_asks_again_then_gives_up() {
        let mut history = vec![created()];
        for attempt in 0..=MAX_STOCK_REQUESTS {
            for shard in 0..2 {
                let order = Order::fold(&history).expect("folds");
                let skus: &[&str] = if shard == 0 { &["SKU-A"] } else { &[] };
                history.extend(decide(&order, &lines_held(shard, 2, 1, attempt, skus)).events);
            }
        }
        let order = Order::fold(&history).expect("folds");
        assert_eq!(order.requests, MAX_STOCK_REQUESTS);
        assert_eq!(order.state, SagaState::Cancelled);
        assert!(
            order
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("could not hold every line")),
            "{:?}",
            order.reason
        );
    }

    #[test]
    fn corrupt_histories_do_not_fold() {
        assert_eq!(Order::fold(&[]), Err(ProjectionError::Empty));
        let confirmed = OrderEvent::OrderConfirmed {
            order_id: "o1".into(),
        };
        assert_eq!(
            Order::fold(std::slice::from_ref(&confirmed)),
            Err(ProjectionError::NotCreatedFirst("OrderConfirmed"))
        );
        // Confirmed without a payment.
        let reserved = OrderEvent::StockReserved {
            order_id: "o1".into(),
            total_cents: 1250,
        };
        assert!(matches!(
            Order::fold(&[created(), reserved.clone(), confirmed]),
            Err(ProjectionError::IllegalTransition { .. })
        ));
        assert!(matches!(
            Order::fold(&[created(), reserved.clone(), reserved]),
            Err(ProjectionError::IllegalTransition { .. })
        ));
        let foreign = OrderEvent::StockReserved {
            order_id: "o2".into(),
            total_cents: 1250,
        };
        assert!(matches!(
            Order::fold(&[created(), foreign]),
            Err(ProjectionError::ForeignEvent { .. })
        ));
    }

    #[test]
    fn events_serialize_with_a_type_tag_and_stable_message_ids() {
        let e = OrderEvent::StockRejected {
            order_id: "o1".into(),
            reason: "none left".into(),
        };
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"type": "StockRejected", "orderId": "o1", "reason": "none left"})
        );
        assert_eq!(
            serde_json::from_value::<OrderEvent>(json).expect("parses"),
            e
        );
        assert_eq!(e.message_id(), "o1:StockRejected");
        let back: OrderEvent =
            serde_json::from_str(&serde_json::to_string(&created()).expect("serializes"))
                .expect("parses");
        assert_eq!(back, created());
    }
}
