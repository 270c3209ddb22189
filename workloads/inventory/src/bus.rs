//! Inventory's part of the checkout saga: one durable consumer per shard
//! (`inventory-<shard>`, shared by the shard's pods) on `<name>.orders.>`.
//!
//! - `OrderCreated` (and `StockRequested`, orders asking again after a reshard): hold the
//!   lines this shard owns by the ring, all or nothing, and answer `StockHeld` or
//!   `StockRejected` with this shard's index and the shard count. A shard that owns none of
//!   the order's lines answers `StockHeld` at once, so orders needs no ring to know when
//!   every shard has answered. A shard with the ring in the database decides by the ring in
//!   force when it acts and states the SKUs it holds, the epoch and the request answered.
//! - `OrderConfirmed`: commit what the order holds (sold). `OrderCancelled`: release it
//!   (or leave a tombstone, so a late `OrderCreated` cannot hold stock for a dead order).
//!
//! Everything is idempotent per order id in the store, and the answer is published before
//! the message is acked, so a pod killed at any point loses and duplicates nothing.

use std::sync::Arc;

use anyhow::Result;

use super::{
    domain::{Held, ReserveOutcome},
    ports::{ShardPlace, StockStore, StoreError},
};
use storefront_contracts::messages::{OrderEvent, ShardHeld};
use storefront_platform::events::{Bus, Handled, StockReply, decode};

/// The reply of shard `index` of `count` to an order whose owned lines got `outcome`.
pub fn reply(order_id: &str, index: u32, count: u32, outcome: ReserveOutcome) -> StockReply {
    match outcome {
        ReserveOutcome::Reserved => {
            StockReply::StockHeld(ShardHeld::by_place(order_id, index, count))
        }
        ReserveOutcome::Rejected(r) => StockReply::StockRejected {
            order_id: order_id.to_string(),
            shard: index,
            shards: count,
            reason: r.reason(),
        },
    }
}

/// The reply of shard `index` to request `attempt` of an order, from what its store held:
/// the SKUs it holds and the ring it decided under.
pub fn held_reply(order_id: &str, index: u32, attempt: u32, held: Held) -> StockReply {
    match held.outcome {
        ReserveOutcome::Reserved => StockReply::StockHeld(ShardHeld {
            order_id: order_id.to_string(),
            shard: index,
            shards: held.ring.shards,
            skus: Some(held.skus),
            epoch: held.ring.epoch,
            attempt,
        }),
        ReserveOutcome::Rejected(r) => StockReply::StockRejected {
            order_id: order_id.to_string(),
            shard: index,
            shards: held.ring.shards,
            reason: r.reason(),
        },
    }
}

/// Handles one order event on shard `place.index` (of `place.count` by its flags; a store
/// with the ring in the database decides by that ring).
pub async fn handle<S: StockStore>(
    store: &S,
    bus: &Bus,
    place: ShardPlace,
    event: OrderEvent,
) -> Result<Handled> {
    let (order_id, lines, attempt) = match event {
        OrderEvent::OrderCreated {
            order_id, lines, ..
        } => (order_id, lines, 0),
        OrderEvent::StockRequested {
            order_id,
            lines,
            attempt,
        } => (order_id, lines, attempt),
        OrderEvent::OrderConfirmed { order_id } => {
            store.commit(&order_id).await?;
            return Ok(Handled::Done);
        }
        OrderEvent::OrderCancelled { order_id, .. } => {
            store.release(&order_id).await?;
            return Ok(Handled::Done);
        }
        _ => return Ok(Handled::Done),
    };
    let all: Vec<(String, u32)> = lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
    let answer = match store.hold(&order_id, &all, place).await {
        Ok(held) if store.routes_itself() => held_reply(&order_id, place.index, attempt, held),
        Ok(held) => reply(&order_id, place.index, place.count, held.outcome),
        // Lines no reservation can be made from: the order cannot succeed.
        Err(StoreError::Invalid(e)) => StockReply::StockRejected {
            order_id: order_id.clone(),
            shard: place.index,
            shards: place.count,
            reason: e.to_string(),
        },
        Err(e) => return Err(e.into()),
    };
    publish(bus, &answer).await?;
    Ok(Handled::Done)
}

async fn publish(bus: &Bus, answer: &StockReply) -> Result<()> {
    bus.publish_message("inventory", answer).await
}

/// Consumes the orders' events for shard `place.index` until the task is dropped.
pub async fn consume<S: StockStore>(
    store: Arc<S>,
    bus: Bus,
    place: ShardPlace,
    concurrency: usize,
) -> Result<()> {
    let durable = format!("inventory-{}", place.index);
    let (b, metrics) = (bus.clone(), bus.metrics().clone());
    bus.consume(
        &durable,
        "orders.>",
        concurrency,
        move |subject, payload| {
            let (store, bus, metrics) = (store.clone(), b.clone(), metrics.clone());
            async move {
                let Some(event) = decode::<OrderEvent>(&metrics, &subject, &payload) else {
                    return Ok(Handled::Done);
                };
                handle(store.as_ref(), &bus, place, event).await
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rejection;

    #[test]
    fn every_line_is_owned_by_exactly_one_shard() {
        let lines: Vec<(String, u32)> = (0..50).map(|i| (format!("SKU-{i:05}"), 2)).collect();
        for count in [1, 2, 4, 7] {
            let mut seen: Vec<String> = (0..count)
                .flat_map(|index| {
                    ShardPlace {
                        index,
                        count,
                        epoch: 1,
                    }
                    .owned(&lines)
                })
                .map(|(sku, _)| sku)
                .collect();
            seen.sort();
            let mut all: Vec<String> = lines.iter().map(|(sku, _)| sku.clone()).collect();
            all.sort();
            assert_eq!(seen, all, "{count} shards");
        }
        let one = ShardPlace {
            index: 0,
            count: 1,
            epoch: 1,
        };
        assert_eq!(one.owned(&lines).len(), 50);
    }

    #[test]
    fn replies_carry_the_shard_and_the_reason() {
        assert_eq!(
            reply("o1", 1, 4, ReserveOutcome::Reserved),
            StockReply::StockHeld(ShardHeld::by_place("o1", 1, 4))
        );
        let r = reply(
            "o1",
            3,
            4,
            ReserveOutcome::Rejected(Rejection::UnknownSku { sku: "X".into() }),
        );
        assert!(
            matches!(r, StockReply::StockRejected { shard: 3, ref reason, .. } if reason.contains('X'))
        );
    }
}
