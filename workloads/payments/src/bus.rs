//! Payments' part of the checkout saga: the durable consumer `payments` (shared by the
//! service's pods) on `<name>.orders.>`.
//!
//! - `StockReserved`: claim the order's charge in the ledger, call the simulated provider
//!   (with the order id as its idempotency key), record the answer, publish
//!   `PaymentSucceeded` / `PaymentFailed`. A redelivery finds the recorded answer and
//!   publishes it again (the broker drops the duplicate); one in flight elsewhere is retried
//!   later. One charge per order, whatever the redeliveries and pod kills.
//! - `RefundRequested` (a payment came back after the order was cancelled): refund it once.

use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::{
    domain::{Begin, ChargeResult, SimulatedProvider},
    postgres::{PgLedger, PgLedgerError},
};
use storefront_contracts::messages::OrderEvent;
use storefront_platform::events::{Bus, Handled, PaymentReply, decode};

/// The reply for an order's recorded charge.
pub fn reply(order_id: &str, result: ChargeResult) -> PaymentReply {
    match result {
        ChargeResult::Succeeded { charge_id } => PaymentReply::PaymentSucceeded {
            order_id: order_id.to_string(),
            charge_id,
        },
        ChargeResult::Failed { reason } => PaymentReply::PaymentFailed {
            order_id: order_id.to_string(),
            reason,
        },
    }
}

/// Handles one order event.
pub async fn handle(
    ledger: &PgLedger,
    provider: &Mutex<SimulatedProvider>,
    bus: &Bus,
    event: OrderEvent,
) -> Result<Handled> {
    match event {
        OrderEvent::StockReserved {
            order_id,
            total_cents,
        } => {
            let result = match ledger.begin(&order_id, total_cents).await {
                Ok(Begin::Charge) => {
                    let (latency, result) = provider
                        .lock()
                        .map_err(|_| anyhow::anyhow!("the provider's lock is poisoned"))?
                        .decide(&order_id, total_cents);
                    tokio::time::sleep(latency).await;
                    ledger.finish(&order_id, &result).await?;
                    result
                }
                Ok(Begin::Done(result)) => result,
                Ok(Begin::InFlight) => return Ok(Handled::RetryLater),
                // An order no charge can be made for (no amount, or another amount than the
                // one claimed): answer failed, never charge a guess.
                Err(PgLedgerError::Ledger(e)) => {
                    tracing::warn!(%order_id, "refusing to charge: {e}");
                    ChargeResult::Failed {
                        reason: e.to_string(),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let answer = reply(&order_id, result);
            bus.publish_message("payments", &answer).await?;
        }
        OrderEvent::RefundRequested {
            order_id,
            charge_id,
            ..
        } => {
            let refunded = ledger.refund(&order_id).await?;
            tracing::info!(%order_id, %charge_id, refunded, "refund for a cancelled order");
        }
        _ => {}
    }
    Ok(Handled::Done)
}

/// Consumes the orders' events until the task is dropped.
pub async fn consume(
    ledger: PgLedger,
    provider: Arc<Mutex<SimulatedProvider>>,
    bus: Bus,
    concurrency: usize,
) -> Result<()> {
    let (b, metrics) = (bus.clone(), bus.metrics().clone());
    bus.consume(
        "payments",
        "orders.>",
        concurrency,
        move |subject, payload| {
            let (ledger, provider, bus, metrics) =
                (ledger.clone(), provider.clone(), b.clone(), metrics.clone());
            async move {
                let Some(event) = decode::<OrderEvent>(&metrics, &subject, &payload) else {
                    return Ok(Handled::Done);
                };
                handle(&ledger, &provider, &bus, event).await
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_contracts::messages::BusMessage;

    #[test]
    fn replies_follow_the_recorded_result() {
        assert_eq!(
            reply(
                "o1",
                ChargeResult::Succeeded {
                    charge_id: "ch1".into()
                }
            ),
            PaymentReply::PaymentSucceeded {
                order_id: "o1".into(),
                charge_id: "ch1".into()
            }
        );
        assert_eq!(
            reply(
                "o1",
                ChargeResult::Failed {
                    reason: "declined".into()
                }
            )
            .message_id(),
            "o1:PaymentFailed"
        );
    }
}
