//! The messages of the shop's event bus (NATS JetStream, `storefront_platform::events`): what
//! happened to an order, published by orders (through its outbox), the inventory shards and
//! payments, and decoded by every service that takes part in the checkout saga.
//!
//! Every message is a [`BusMessage`]: its [`BusMessage::kind`] is its variant's name (the
//! `type` tag, the subject suffix, the metric label, derived once by `strum`), and its
//! [`BusMessage::message_id`] (the broker's de-duplication key) is built by one provided
//! method from the order id, the kind and what tells two messages of that kind apart
//! ([`BusMessage::instance`]). [`StockReply`] and [`PaymentReply`] are the inventory shards'
//! and payments' answers: the same messages as the matching [`OrderEvent`]s, narrowed to what
//! each publisher may send.

use serde::{Deserialize, Serialize};

/// A message of the event bus.
pub trait BusMessage: Serialize {
    /// The order it belongs to.
    fn order_id(&self) -> &str;

    /// The message's type: the variant's name, which is also its `type` tag, its subject
    /// suffix and its metric label.
    fn kind(&self) -> &'static str;

    /// What tells two messages of this kind for one order apart (a shard, a ring epoch, a
    /// request), or `None` when an order has at most one.
    fn instance(&self) -> Option<String>;

    /// The broker message id: `<order>:<kind>[:<instance>]`, unique per message and stable
    /// across redeliveries and replays, so a copy is dropped by the broker.
    fn message_id(&self) -> String {
        match self.instance() {
            Some(instance) => format!("{}:{}:{instance}", self.order_id(), self.kind()),
            None => format!("{}:{}", self.order_id(), self.kind()),
        }
    }
}

/// Whether a value is its type's default (serde's `skip_serializing_if` for fields that old
/// readers do not know).
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One inventory shard's word that it holds the lines of an order it owns: sent on the bus
/// ([`StockReply::StockHeld`]) and recorded as it came in the order's log
/// ([`OrderEvent::StockHeld`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardHeld {
    pub order_id: String,
    /// The shard (`shard` of `shards`).
    pub shard: u32,
    pub shards: u32,
    /// The order's SKUs this shard holds (or sold). Shards that keep the ring in the
    /// database state them, so orders can tell which lines are held even when the ring
    /// changes while the order is being reserved; absent in older replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skus: Option<Vec<String>>,
    /// The ring epoch the shard decided under (0: not stated).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: i64,
    /// The request answered: 0 for `OrderCreated`, n for the n-th `StockRequested`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

impl ShardHeld {
    /// The word of a shard that decides by its place in the ring (no ring in its database):
    /// it holds every line it owns, and states no SKUs, epoch or request.
    pub fn by_place(order_id: impl Into<String>, shard: u32, shards: u32) -> Self {
        Self {
            order_id: order_id.into(),
            shard,
            shards,
            skus: None,
            epoch: 0,
            attempt: 0,
        }
    }

    /// What tells two of these apart for one order: the shard, and the ring epoch and
    /// request when the shard states them (older shards state neither).
    fn instance(&self) -> String {
        if self.epoch != 0 || self.attempt != 0 {
            format!("{}:{}:{}", self.shard, self.epoch, self.attempt)
        } else {
            self.shard.to_string()
        }
    }
}

/// One line of an order, priced when the order was created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// What happened to an order. Serialized with a `type` tag; these are also the NATS
/// subjects' message bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum OrderEvent {
    OrderCreated {
        order_id: String,
        user_id: String,
        lines: Vec<Line>,
        total_cents: i64,
        currency: String,
        /// Unix seconds.
        created_at: i64,
    },
    /// One inventory shard holds the lines it owns.
    StockHeld(ShardHeld),
    /// Asks the inventory shards again for the order's lines: the ring changed while they
    /// answered, and a line moved between a shard that answered before the switch and one
    /// that answered after it. Shards hold what they own now and answer with `attempt`.
    StockRequested {
        order_id: String,
        lines: Vec<Line>,
        attempt: u32,
    },
    /// Every shard holds its lines: payments may charge `total_cents`.
    StockReserved {
        order_id: String,
        #[serde(default)]
        total_cents: i64,
    },
    StockRejected {
        order_id: String,
        reason: String,
    },
    PaymentSucceeded {
        order_id: String,
        charge_id: String,
    },
    PaymentFailed {
        order_id: String,
        reason: String,
    },
    OrderConfirmed {
        order_id: String,
    },
    OrderCancelled {
        order_id: String,
        reason: String,
    },
    /// A payment succeeded for an order cancelled meanwhile: payments gives it back.
    RefundRequested {
        order_id: String,
        charge_id: String,
        amount_cents: i64,
    },
}

impl BusMessage for OrderEvent {
    fn order_id(&self) -> &str {
        match self {
            Self::OrderCreated { order_id, .. }
            | Self::StockHeld(ShardHeld { order_id, .. })
            | Self::StockRequested { order_id, .. }
            | Self::StockReserved { order_id, .. }
            | Self::RefundRequested { order_id, .. }
            | Self::StockRejected { order_id, .. }
            | Self::PaymentSucceeded { order_id, .. }
            | Self::PaymentFailed { order_id, .. }
            | Self::OrderConfirmed { order_id }
            | Self::OrderCancelled { order_id, .. } => order_id,
        }
    }

    fn kind(&self) -> &'static str {
        self.into()
    }

    /// An order has at most one event of each type, but one `StockHeld` per shard, ring
    /// epoch and request, and one `StockRequested` per attempt.
    fn instance(&self) -> Option<String> {
        match self {
            Self::StockHeld(held) => Some(held.instance()),
            Self::StockRequested { attempt, .. } => Some(attempt.to_string()),
            _ => None,
        }
    }
}

/// What an inventory shard answers to `OrderCreated` (or `StockRequested`): whether it holds
/// the lines it owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum StockReply {
    /// Every line this shard owns is held (or it owns none of the order's lines).
    StockHeld(ShardHeld),
    /// A line this shard owns cannot be held; nothing is held on this shard.
    StockRejected {
        order_id: String,
        shard: u32,
        shards: u32,
        reason: String,
    },
}

impl BusMessage for StockReply {
    fn order_id(&self) -> &str {
        match self {
            Self::StockHeld(ShardHeld { order_id, .. }) | Self::StockRejected { order_id, .. } => {
                order_id
            }
        }
    }

    fn kind(&self) -> &'static str {
        self.into()
    }

    /// One answer per order and shard (and, for shards that state them, per ring epoch and
    /// request).
    fn instance(&self) -> Option<String> {
        Some(match self {
            Self::StockHeld(held) => held.instance(),
            Self::StockRejected { shard, .. } => shard.to_string(),
        })
    }
}

/// What payments answers to `StockReserved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum PaymentReply {
    PaymentSucceeded { order_id: String, charge_id: String },
    PaymentFailed { order_id: String, reason: String },
}

impl BusMessage for PaymentReply {
    fn order_id(&self) -> &str {
        match self {
            Self::PaymentSucceeded { order_id, .. } | Self::PaymentFailed { order_id, .. } => {
                order_id
            }
        }
    }

    fn kind(&self) -> &'static str {
        self.into()
    }

    /// One answer per order.
    fn instance(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(message: &impl BusMessage) -> String {
        let json = serde_json::to_value(message).expect("serializes");
        json["type"].as_str().expect("a type tag").to_string()
    }

    #[test]
    fn the_kind_is_the_type_tag_and_the_id_names_order_kind_and_instance() {
        let o = || "o1".to_string();
        let events = [
            (
                OrderEvent::OrderCreated {
                    order_id: o(),
                    user_id: "u".into(),
                    lines: vec![],
                    total_cents: 1,
                    currency: "EUR".into(),
                    created_at: 0,
                },
                "o1:OrderCreated",
            ),
            (
                OrderEvent::StockHeld(ShardHeld::by_place(o(), 2, 3)),
                "o1:StockHeld:2",
            ),
            (
                OrderEvent::StockRequested {
                    order_id: o(),
                    lines: vec![],
                    attempt: 4,
                },
                "o1:StockRequested:4",
            ),
            (
                OrderEvent::RefundRequested {
                    order_id: o(),
                    charge_id: "c".into(),
                    amount_cents: 5,
                },
                "o1:RefundRequested",
            ),
        ];
        for (event, id) in &events {
            assert_eq!(event.kind(), tag(event));
            assert_eq!(event.message_id(), *id);
        }
        let rejected = StockReply::StockRejected {
            order_id: o(),
            shard: 1,
            shards: 2,
            reason: "gone".into(),
        };
        assert_eq!(rejected.kind(), tag(&rejected));
        assert_eq!(rejected.message_id(), "o1:StockRejected:1");
        let held = StockReply::StockHeld(ShardHeld {
            order_id: o(),
            shard: 1,
            shards: 2,
            skus: None,
            epoch: 7,
            attempt: 0,
        });
        assert_eq!(held.message_id(), "o1:StockHeld:1:7:0");
        let paid = PaymentReply::PaymentSucceeded {
            order_id: o(),
            charge_id: "c".into(),
        };
        assert_eq!(paid.kind(), tag(&paid));
        assert_eq!(paid.message_id(), "o1:PaymentSucceeded");
    }
}
