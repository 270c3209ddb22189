//! The bus refuses forged events (issue 20): on a real NATS JetStream, payments' consumer of
//! `StockReserved` (the event it charges) gets only what orders signed. A forger with a raw
//! NATS connection publishes, ahead of the real event, a 1-cent `StockReserved` unsigned
//! under the old predictable message id, one signed with inventory's key (a valid signature
//! from the wrong service), one signed with a key nobody trusts, and one whose payload was
//! changed after orders signed it. Each is dropped and counted as `forged`; the real event is
//! not dropped as their duplicate, and orders' retry of it is (its id is stable).
//!
//! Needs `NATS_URL` (run by `workloads/scripts/integration`).

use std::time::Duration;

use storefront_contracts::messages::OrderEvent;
use storefront_workloads::{
    auth::domain::SigningKeys,
    events::{
        Bus, BusMessage, EventKeys, EventMetrics, Handled, KEY_HEADER, SIGNATURE_HEADER,
        signed_bytes,
    },
};

use crate::gateway_support::{event_trust, signed_bus};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn payments_charges_only_what_orders_signed() {
    let url = std::env::var("NATS_URL").expect("NATS_URL (workloads/scripts/test-datastores env)");
    let shop = format!("it-signed-{}", std::process::id());
    let plain = Bus::connect(&url, &shop, EventMetrics::default())
        .await
        .expect("connects to NATS");
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = EventMetrics::register(&mut registry);
    let payments = Bus::connect(&url, &shop, metrics.clone())
        .await
        .expect("connects")
        .signed(EventKeys::new(
            SigningKeys::from_seed([33; 32]).expect("key"),
            event_trust(),
        ));
    let orders = signed_bus(&plain, "orders");
    let subject = format!("{shop}.orders.StockReserved");
    let order = "o-forged-1";
    let forge = |total: i64| {
        format!(r#"{{"type":"StockReserved","orderId":"{order}","totalCents":{total}}}"#)
    };

    // The forger: a raw connection, no key of orders.
    let forger = async_nats::connect(&url).await.expect("connects");
    let js = async_nats::jetstream::new(forger);
    let publish = |id: String, headers: Option<(String, String)>, payload: String| {
        let js = js.clone();
        let subject = subject.clone();
        async move {
            let mut message = async_nats::jetstream::message::PublishMessage::build()
                .payload(payload.into_bytes().into())
                .message_id(&id);
            if let Some((kid, signature)) = headers {
                message = message
                    .header(KEY_HEADER, kid.as_str())
                    .header(SIGNATURE_HEADER, signature.as_str());
            }
            js.send_publish(subject, message)
                .await
                .expect("sent")
                .await
                .expect("stored");
        }
    };
    let signed_by = |seed: u8, id: &str, payload: &str| {
        let key = SigningKeys::from_seed([seed; 32]).expect("key");
        let signature = key.sign(&signed_bytes(&subject, id, payload.as_bytes()));
        Some((key.kid().to_string(), hex(&signature)))
    };
    // 1. Unsigned, under the id the real event had before events were signed.
    let old_id = format!("{order}:StockReserved");
    publish(old_id.clone(), None, forge(1)).await;
    // 2. Signed with inventory's key: a valid signature, but inventory never publishes it.
    let id = format!("{order}:StockReserved:inv");
    publish(id.clone(), signed_by(32, &id, &forge(1)), forge(1)).await;
    // 3. Signed with a key nobody trusts.
    let id = format!("{order}:StockReserved:x");
    publish(id.clone(), signed_by(9, &id, &forge(1)), forge(1)).await;
    // 4. Orders' real signature over 18,997 cents on a payload that says 1.
    let id = format!("{order}:StockReserved:tampered");
    publish(id.clone(), signed_by(31, &id, &forge(18_997)), forge(1)).await;
    // The real event, sent twice (a relay retry after a crash).
    let real = BusMessage::message_id(&reserved(order, 18_997));
    assert_eq!(real, old_id, "the logical id is the old predictable one");
    for _ in 0..2 {
        orders
            .publish_message("orders", &reserved(order, 18_997))
            .await
            .expect("publishes");
    }

    let (seen, mut delivered) = tokio::sync::mpsc::unbounded_channel();
    let consumer = payments.clone();
    let consuming = tokio::spawn(async move {
        consumer
            .consume(
                "it-signed-payments",
                "orders.StockReserved",
                4,
                move |_, payload| {
                    let seen = seen.clone();
                    async move {
                        let _ = seen.send(String::from_utf8_lossy(&payload).to_string());
                        Ok(Handled::Done)
                    }
                },
            )
            .await
    });
    let first = tokio::time::timeout(Duration::from_secs(10), delivered.recv())
        .await
        .expect("the real event arrives")
        .expect("delivered");
    assert!(first.contains("18997"), "the handler saw {first}");
    // Nothing else reaches the handler: the forgeries are dropped, the retry deduplicated.
    let more = tokio::time::timeout(Duration::from_secs(2), delivered.recv()).await;
    assert!(more.is_err(), "a second event reached payments: {more:?}");
    consuming.abort();

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    assert!(
        text.contains(r#"storefront_events_total{type="StockReserved",outcome="forged"} 4"#),
        "{text}"
    );
}

fn reserved(order: &str, total: i64) -> OrderEvent {
    OrderEvent::StockReserved {
        order_id: order.to_string(),
        total_cents: total,
    }
}
