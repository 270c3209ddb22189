//! Recommendations' consumer (`recommendations`, shared by the service's pods) on
//! `<name>.orders.>`: baskets from `OrderCreated`, counted on `OrderConfirmed`, dropped on
//! `OrderCancelled`.

use anyhow::Result;

use super::postgres::{Counted, PgRecommendations};
use storefront_contracts::messages::OrderEvent;
use storefront_platform::events::{Bus, Handled, decode};

/// Handles one order event.
pub async fn handle(store: &PgRecommendations, event: OrderEvent) -> Result<Handled> {
    match event {
        OrderEvent::OrderCreated {
            order_id, lines, ..
        } => {
            let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
            store.record(&order_id, &skus).await?;
        }
        OrderEvent::OrderConfirmed { order_id } => {
            let counted = store.confirm(&order_id).await?;
            return Ok(match counted {
                Counted::NoBasket => Handled::RetryLater,
                Counted::Now | Counted::Before => Handled::Done,
            });
        }
        OrderEvent::OrderCancelled { order_id, .. } => store.cancel(&order_id).await?,
        _ => {}
    }
    Ok(Handled::Done)
}

/// Consumes the orders' events until the task is dropped.
pub async fn consume(store: PgRecommendations, bus: Bus, concurrency: usize) -> Result<()> {
    let metrics = bus.metrics().clone();
    bus.consume(
        "recommendations",
        "orders.>",
        concurrency,
        move |subject, payload| {
            let (store, metrics) = (store.clone(), metrics.clone());
            async move {
                let Some(event) = decode::<OrderEvent>(&metrics, &subject, &payload) else {
                    return Ok(Handled::Done);
                };
                handle(&store, event).await
            }
        },
    )
    .await
}
