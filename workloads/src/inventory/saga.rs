//! Inventory's part of the checkout saga: one durable consumer per shard
//! (`inventory-<shard>`, shared by the shard's pods) on `<name>.orders.>`.
//!
//! - `OrderCreated`: hold the lines this shard owns by the ring, all or nothing, and answer
//!   `StockHeld` or `StockRejected` with this shard's index and the shard count. A shard that
//!   owns none of the order's lines answers `StockHeld` at once, so orders needs no ring to
//!   know when every shard has answered.
//! - `OrderConfirmed`: commit what the order holds (sold). `OrderCancelled`: release it
//!   (or leave a tombstone, so a late `OrderCreated` cannot hold stock for a dead order).
//!
//! Everything is idempotent per order id in the store, and the answer is published before
//! the message is acked, so a pod killed at any point loses and duplicates nothing.

use std::sync::Arc;

use anyhow::Result;
use storefront_crds::ring::shard_of;

use super::{
    domain::ReserveOutcome,
    grpc::{StockStore, StoreError},
};
use crate::{
    events::{Bus, Handled, StockReply, decode, to_json},
    orders::domain::{Line, OrderEvent},
};

/// The lines of an order that shard `index` of `count` owns, as `(sku, quantity)`.
pub fn owned_lines(lines: &[Line], index: u32, count: u32) -> Vec<(String, u32)> {
    lines
        .iter()
        .filter(|l| shard_of(&l.sku, count) == index)
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}

/// The reply of shard `index` of `count` to an order whose owned lines got `outcome`.
pub fn reply(order_id: &str, index: u32, count: u32, outcome: ReserveOutcome) -> StockReply {
    match outcome {
        ReserveOutcome::Reserved => StockReply::StockHeld {
            order_id: order_id.to_string(),
            shard: index,
            shards: count,
        },
        ReserveOutcome::Rejected(r) => StockReply::StockRejected {
            order_id: order_id.to_string(),
            shard: index,
            shards: count,
            reason: r.reason(),
        },
    }
}

/// Handles one order event on shard `index` of `count`.
pub async fn handle<S: StockStore>(
    store: &S,
    bus: &Bus,
    index: u32,
    count: u32,
    event: OrderEvent,
) -> Result<Handled> {
    match event {
        OrderEvent::OrderCreated {
            order_id, lines, ..
        } => {
            let owned = owned_lines(&lines, index, count);
            let outcome = if owned.is_empty() {
                ReserveOutcome::Reserved
            } else {
                match store.reserve(&order_id, &owned).await {
                    Ok(outcome) => outcome,
                    // Lines no reservation can be made from: the order cannot succeed.
                    Err(StoreError::Invalid(e)) => {
                        let answer = StockReply::StockRejected {
                            order_id: order_id.clone(),
                            shard: index,
                            shards: count,
                            reason: e.to_string(),
                        };
                        publish(bus, &answer).await?;
                        return Ok(Handled::Done);
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            publish(bus, &reply(&order_id, index, count, outcome)).await?;
        }
        OrderEvent::OrderConfirmed { order_id } => {
            store.commit(&order_id).await?;
        }
        OrderEvent::OrderCancelled { order_id, .. } => {
            store.release(&order_id).await?;
        }
        _ => {}
    }
    Ok(Handled::Done)
}

async fn publish(bus: &Bus, answer: &StockReply) -> Result<()> {
    bus.publish(
        "inventory",
        answer.kind(),
        &answer.message_id(),
        to_json(answer),
    )
    .await
}

/// Consumes the orders' events for shard `index` of `count` until the task is dropped.
pub async fn consume<S: StockStore>(
    store: Arc<S>,
    bus: Bus,
    index: u32,
    count: u32,
    concurrency: usize,
) -> Result<()> {
    let durable = format!("inventory-{index}");
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
                handle(store.as_ref(), &bus, index, count, event).await
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::domain::Rejection;

    fn line(sku: &str) -> Line {
        Line {
            sku: sku.into(),
            quantity: 2,
            unit_price_cents: 100,
        }
    }

    #[test]
    fn every_line_is_owned_by_exactly_one_shard() {
        let lines: Vec<Line> = (0..50).map(|i| line(&format!("SKU-{i:05}"))).collect();
        for count in [1, 2, 4, 7] {
            let mut seen: Vec<String> = (0..count)
                .flat_map(|i| owned_lines(&lines, i, count))
                .map(|(sku, _)| sku)
                .collect();
            seen.sort();
            let mut all: Vec<String> = lines.iter().map(|l| l.sku.clone()).collect();
            all.sort();
            assert_eq!(seen, all, "{count} shards");
        }
        assert_eq!(owned_lines(&lines, 0, 1).len(), 50);
    }

    #[test]
    fn replies_carry_the_shard_and_the_reason() {
        assert_eq!(
            reply("o1", 1, 4, ReserveOutcome::Reserved),
            StockReply::StockHeld {
                order_id: "o1".into(),
                shard: 1,
                shards: 4
            }
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
