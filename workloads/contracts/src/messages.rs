//! The messages of the shop's event bus (NATS JetStream, `storefront_platform::events`): what
//! happened to an order, published by orders (through its outbox), the inventory shards and
//! payments, and decoded by every service that takes part in the checkout saga. Each message
//! names its own [`OrderEvent::kind`] (the `type` tag, the subject suffix, the metric label)
//! and [`OrderEvent::message_id`] (the broker's de-duplication key).

use serde::{Deserialize, Serialize};

/// Whether a value is its type's default (serde's `skip_serializing_if` for fields that old
/// readers do not know).
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// One inventory shard holds the lines it owns (`shard` of `shards`).
    StockHeld {
        order_id: String,
        shard: u32,
        shards: u32,
        /// The order's SKUs it holds (shards with the ring in the database state them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skus: Option<Vec<String>>,
        /// The ring epoch it decided under.
        #[serde(default, skip_serializing_if = "is_zero")]
        epoch: i64,
        /// The request it answered (0: `OrderCreated`).
        #[serde(default, skip_serializing_if = "is_zero")]
        attempt: u32,
    },
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

impl OrderEvent {
    /// The order this event belongs to.
    pub fn order_id(&self) -> &str {
        match self {
            Self::OrderCreated { order_id, .. }
            | Self::StockHeld { order_id, .. }
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

    /// The event's type name (the `type` tag, the metric label, the subject suffix).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OrderCreated { .. } => "OrderCreated",
            Self::StockHeld { .. } => "StockHeld",
            Self::StockRequested { .. } => "StockRequested",
            Self::StockReserved { .. } => "StockReserved",
            Self::RefundRequested { .. } => "RefundRequested",
            Self::StockRejected { .. } => "StockRejected",
            Self::PaymentSucceeded { .. } => "PaymentSucceeded",
            Self::PaymentFailed { .. } => "PaymentFailed",
            Self::OrderConfirmed { .. } => "OrderConfirmed",
            Self::OrderCancelled { .. } => "OrderCancelled",
        }
    }

    /// The message id for broker de-duplication: an order has at most one event of each
    /// type (one `StockHeld` per shard, ring epoch and request; one `StockRequested` per
    /// attempt), so `order id + type [+ shard [+ epoch + attempt]]` is unique and stable
    /// across redeliveries and replays.
    pub fn message_id(&self) -> String {
        match self {
            Self::StockHeld {
                shard,
                epoch,
                attempt,
                ..
            } if *epoch != 0 || *attempt != 0 => format!(
                "{}:{}:{shard}:{epoch}:{attempt}",
                self.order_id(),
                self.kind()
            ),
            Self::StockHeld { shard, .. } => {
                format!("{}:{}:{shard}", self.order_id(), self.kind())
            }
            Self::StockRequested { attempt, .. } => {
                format!("{}:{}:{attempt}", self.order_id(), self.kind())
            }
            _ => format!("{}:{}", self.order_id(), self.kind()),
        }
    }
}

/// What an inventory shard answers to `OrderCreated` (or `StockRequested`): whether it holds
/// the lines it owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum StockReply {
    /// Every line this shard owns is held (or it owns none of the order's lines).
    StockHeld {
        order_id: String,
        shard: u32,
        shards: u32,
        /// The order's SKUs this shard holds (or sold). Shards that keep the ring in the
        /// database state them, so orders can tell which lines are held even when the ring
        /// changes while the order is being reserved; absent in older replies.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skus: Option<Vec<String>>,
        /// The ring epoch the shard decided under (0: not stated).
        #[serde(default, skip_serializing_if = "is_zero")]
        epoch: i64,
        /// The request answered: 0 for `OrderCreated`, n for the n-th `StockRequested`.
        #[serde(default, skip_serializing_if = "is_zero")]
        attempt: u32,
    },
    /// A line this shard owns cannot be held; nothing is held on this shard.
    StockRejected {
        order_id: String,
        shard: u32,
        shards: u32,
        reason: String,
    },
}

impl StockReply {
    /// The event type (subject suffix).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::StockHeld { .. } => "StockHeld",
            Self::StockRejected { .. } => "StockRejected",
        }
    }

    /// The broker message id: one reply per order and shard (and, for shards that state
    /// them, per ring epoch and request).
    pub fn message_id(&self) -> String {
        match self {
            Self::StockHeld {
                order_id,
                shard,
                epoch,
                attempt,
                ..
            } if *epoch != 0 || *attempt != 0 => {
                format!("{order_id}:{}:{shard}:{epoch}:{attempt}", self.kind())
            }
            Self::StockHeld {
                order_id, shard, ..
            }
            | Self::StockRejected {
                order_id, shard, ..
            } => format!("{order_id}:{}:{shard}", self.kind()),
        }
    }
}

/// What payments answers to `StockReserved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum PaymentReply {
    PaymentSucceeded { order_id: String, charge_id: String },
    PaymentFailed { order_id: String, reason: String },
}

impl PaymentReply {
    /// The event type (subject suffix).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PaymentSucceeded { .. } => "PaymentSucceeded",
            Self::PaymentFailed { .. } => "PaymentFailed",
        }
    }

    /// The broker message id: one answer per order.
    pub fn message_id(&self) -> String {
        match self {
            Self::PaymentSucceeded { order_id, .. } | Self::PaymentFailed { order_id, .. } => {
                format!("{order_id}:{}", self.kind())
            }
        }
    }
}
