//! Orders' bus adapter: the outbox relay, the consumers of the saga's replies, and the
//! timeout sweeper. The decisions are [`super::domain::decide`]'s; this module only moves
//! messages between JetStream and [`PgOrders`].
//!
//! - **Relay**: claims unpublished outbox rows (`FOR UPDATE SKIP LOCKED`, so the pods of the
//!   service share the work), publishes each with its message id, waits for the broker's
//!   acknowledgements, then marks them published in the same transaction. It wakes on the
//!   `storefront_outbox` PostgreSQL notification that every outbox insert sends at commit,
//!   and sweeps every second anyway (a missed notification delays, never loses).
//! - **Replies**: `orders-stock` (inventory's `StockHeld`/`StockRejected`) and
//!   `orders-payments` (`PaymentSucceeded`/`PaymentFailed`) become [`SagaInput`]s applied
//!   with optimistic concurrency; a reply that came before the state it needs is redelivered.
//! - **Timeouts**: orders pending longer than the timeout are cancelled (inventory releases
//!   on `OrderCancelled`; a payment that still succeeds later is refunded).

use std::time::Duration;

use anyhow::{Context as _, Result};
use sqlx::postgres::PgListener;

use super::{
    domain::SagaInput,
    postgres::{OUTBOX_CHANNEL, PgOrders},
};
use storefront_platform::events::{Bus, Handled, PaymentReply, ShardHeld, StockReply, decode};
use storefront_platform::grpc::unix_now;

/// Rows published per relay transaction.
const RELAY_BATCH: i64 = 256;

/// Publishes the outbox until the process stops.
pub async fn relay(store: PgOrders, bus: Bus) -> Result<()> {
    let mut listener = PgListener::connect_with(store.pool())
        .await
        .context("failed to listen for outbox notifications")?;
    listener
        .listen(OUTBOX_CHANNEL)
        .await
        .context("failed to listen for outbox notifications")?;
    loop {
        match relay_once(&store, &bus).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("outbox relay: {e:#}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        // Wait for a commit with outbox rows in our schema, or a second.
        let deadline = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                n = listener.try_recv() => match n {
                    Ok(Some(n)) if n.payload() == store.schema() => break,
                    Ok(Some(_)) => continue,
                    // The connection dropped (and reconnects on the next call): sweep now.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("outbox notifications: {e}");
                        break;
                    }
                },
            }
        }
    }
}

/// Publishes one batch; the number of rows published.
pub async fn relay_once(store: &PgOrders, bus: &Bus) -> Result<usize> {
    let (tx, messages) = store.claim_outbox(RELAY_BATCH).await?;
    if messages.is_empty() {
        tx.rollback().await.ok();
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(messages.len());
    for m in &messages {
        let (area, kind) = m.subject.split_once('.').unwrap_or(("orders", &m.subject));
        acks.push(
            bus.send(area, kind, &m.message_id, m.payload.clone().into_bytes())
                .await?,
        );
    }
    for (ack, m) in acks.into_iter().zip(&messages) {
        ack.await
            .with_context(|| format!("JetStream did not store {}", m.message_id))?;
    }
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    PgOrders::mark_published(tx, &ids).await?;
    Ok(messages.len())
}

/// The saga input an inventory reply stands for.
pub fn stock_input(reply: StockReply) -> (String, SagaInput) {
    match reply {
        StockReply::StockHeld(ShardHeld {
            order_id,
            shard,
            shards,
            skus: None,
            ..
        }) => (order_id, SagaInput::StockHeld { shard, shards }),
        StockReply::StockHeld(ShardHeld {
            order_id,
            shard,
            shards,
            skus: Some(skus),
            epoch,
            attempt,
        }) => (
            order_id,
            SagaInput::LinesHeld {
                shard,
                shards,
                epoch,
                attempt,
                skus,
            },
        ),
        StockReply::StockRejected {
            order_id, reason, ..
        } => (order_id, SagaInput::StockRejected { reason }),
    }
}

/// The saga input a payments reply stands for.
pub fn payment_input(reply: PaymentReply) -> (String, SagaInput) {
    match reply {
        PaymentReply::PaymentSucceeded {
            order_id,
            charge_id,
        } => (order_id, SagaInput::PaymentSucceeded { charge_id }),
        PaymentReply::PaymentFailed { order_id, reason } => {
            (order_id, SagaInput::PaymentFailed { reason })
        }
    }
}

/// Applies one input; an unknown order is acknowledged (nothing can ever apply to it).
pub async fn apply(store: &PgOrders, order_id: &str, input: &SagaInput) -> Result<Handled> {
    match store.apply(order_id, input).await? {
        None => {
            tracing::warn!(order_id, "a reply for an unknown order; dropped");
            Ok(Handled::Done)
        }
        Some(decision) if decision.retry_later => Ok(Handled::RetryLater),
        Some(_) => Ok(Handled::Done),
    }
}

/// Consumes inventory's and payments' replies until `stop`.
pub async fn consume_replies(store: PgOrders, bus: Bus, concurrency: usize) -> Result<()> {
    let metrics = bus.metrics().clone();
    let (s1, m1) = (store.clone(), metrics.clone());
    let stock = bus.consume(
        "orders-stock",
        "inventory.>",
        concurrency,
        move |subject, payload| {
            let (store, metrics) = (s1.clone(), m1.clone());
            async move {
                let Some(reply) = decode::<StockReply>(&metrics, &subject, &payload) else {
                    return Ok(Handled::Done);
                };
                let (order_id, input) = stock_input(reply);
                apply(&store, &order_id, &input).await
            }
        },
    );
    let (s2, m2) = (store.clone(), metrics);
    let payments = bus.consume(
        "orders-payments",
        "payments.>",
        concurrency,
        move |subject, payload| {
            let (store, metrics) = (s2.clone(), m2.clone());
            async move {
                let Some(reply) = decode::<PaymentReply>(&metrics, &subject, &payload) else {
                    return Ok(Handled::Done);
                };
                let (order_id, input) = payment_input(reply);
                apply(&store, &order_id, &input).await
            }
        },
    );
    tokio::try_join!(stock, payments)?;
    Ok(())
}

/// Cancels orders pending longer than `timeout`, and asks the shards again for orders whose
/// lines are not all held after [`crate::domain::STALL_SECS`], checking every
/// `every`.
pub async fn sweep_timeouts(store: PgOrders, timeout: Duration, every: Duration) -> Result<()> {
    let timeout = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(every).await;
        let now = unix_now();
        let stalled = match store
            .overdue(now.saturating_sub(crate::domain::STALL_SECS), 500)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("stall sweep: {e}");
                Vec::new()
            }
        };
        for order_id in stalled {
            match store.apply(&order_id, &SagaInput::Stalled { now }).await {
                Ok(Some(d)) if !d.events.is_empty() => {
                    tracing::info!(%order_id, "order's stock not all held; asked the shards again");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%order_id, "failed to check a stalled order: {e}"),
            }
        }
        let overdue = match store.overdue(unix_now().saturating_sub(timeout), 500).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("timeout sweep: {e}");
                continue;
            }
        };
        for order_id in overdue {
            match store.apply(&order_id, &SagaInput::TimedOut).await {
                Ok(_) => tracing::info!(%order_id, "order timed out; cancelled"),
                Err(e) => tracing::warn!(%order_id, "failed to time out an order: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_saga_inputs() {
        assert_eq!(
            stock_input(StockReply::StockHeld(ShardHeld::by_place("o1", 1, 2))),
            (
                "o1".into(),
                SagaInput::StockHeld {
                    shard: 1,
                    shards: 2
                }
            )
        );
        assert_eq!(
            stock_input(StockReply::StockRejected {
                order_id: "o1".into(),
                shard: 1,
                shards: 2,
                reason: "r".into()
            }),
            ("o1".into(), SagaInput::StockRejected { reason: "r".into() })
        );
        assert_eq!(
            payment_input(PaymentReply::PaymentFailed {
                order_id: "o2".into(),
                reason: "declined".into()
            }),
            (
                "o2".into(),
                SagaInput::PaymentFailed {
                    reason: "declined".into()
                }
            )
        );
    }
}
