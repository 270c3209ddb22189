//! The event bus of a Storefront: one NATS JetStream stream per shop, publishing with message
//! ids (broker de-duplication) and durable, explicitly acknowledged consumers.
//!
//! ```text
//!   stream STOREFRONT_<NAME>   subjects <name>.>   duplicate window 2 min, file storage
//!   (<name> is `<namespace>-<storefront>` in a cluster: one stream per Storefront object)
//!
//!   <name>.orders.OrderCreated      orders (outbox)  → every inventory shard, recommendations
//!   <name>.inventory.StockHeld      inventory shard  → orders  (this shard holds its lines)
//!   <name>.inventory.StockRejected  inventory shard  → orders  (a line cannot be held)
//!   <name>.orders.StockReserved     orders (outbox)  → payments (every shard held: charge)
//!   <name>.payments.PaymentSucceeded|PaymentFailed   → orders
//!   <name>.orders.OrderConfirmed|OrderCancelled      → inventory shards (commit | release)
//!   <name>.orders.RefundRequested   orders (outbox)  → payments (paid after a cancellation)
//! ```
//!
//! Delivery is at least once: a handler's database work commits before the message is acked,
//! and every handler is idempotent by order id, so a redelivery (pod killed between commit
//! and ack, ack lost) changes nothing. Publishing is at least once too (the outbox relay may
//! publish a row again after a crash); the message id (`<order>:<type>[:<shard>]`) makes the
//! broker drop the copy within the duplicate window, and the consumers' idempotency covers
//! anything later. Messages that cannot be decoded are acknowledged and counted, never
//! redelivered forever.
//!
//! Events are signed by the service that publishes them, with its own token key
//! ([`EventKeys`], `token.rs`): headers `Storefront-Key` (the key's id) and
//! `Storefront-Signature` (Ed25519 over the subject, the message id and the payload). A
//! consumer acknowledges and drops, counted as `forged`, every event that is unsigned, signed
//! by a key it does not trust, signed by a service that does not publish that type
//! ([`publisher_of`]: only orders publishes `StockReserved`, which payments charges), or whose
//! signature does not verify; nothing in the shop changes. The message id carries a tag, a
//! signature of the logical id (`<order>:<type>[:<instance>]:<tag>`): stable across a
//! publisher's retries (Ed25519 is deterministic), so the broker still drops the copies,
//! and unguessable without the key, so a forged event sent first cannot make the broker
//! drop the real one as its duplicate. A bus without keys (a test, a binary run by hand)
//! publishes unsigned and checks nothing.
//!
//! Broker calls are `nats` requests of [`crate::datastore_metrics`]: `publish` (counted and
//! timed until the broker stored the message, or failed) and `deliver` (every message a
//! consumer received; `error` when receiving or acknowledging failed; counted, not timed).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{
    self, AckKind, Context,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream,
};
use futures::StreamExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use serde::{Deserialize, Serialize};

use crate::{
    datastore_metrics::Datastore,
    datastore_op,
    token::{SigningKeys, TokenVerifier},
};

/// How long the broker remembers message ids to drop duplicates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a delivered message may stay unacknowledged before it is redelivered.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Delay before a message a handler could not process yet is delivered again.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The stream of a Storefront: `STOREFRONT_<NAME>` (upper case, `-` → `_`).
pub fn stream_name(storefront: &str) -> String {
    format!(
        "STOREFRONT_{}",
        storefront.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// A subject of a Storefront: `<name>.<area>.<type>`.
pub fn subject(storefront: &str, area: &str, kind: &str) -> String {
    format!("{storefront}.{area}.{kind}")
}

/// The last token of a subject (the event type).
pub fn kind_of(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or(subject)
}

/// Which service publishes each event type (the table above); `None` for a type nobody does.
pub fn publisher_of(kind: &str) -> Option<&'static str> {
    match kind {
        "OrderCreated" | "StockRequested" | "StockReserved" | "OrderConfirmed"
        | "OrderCancelled" | "RefundRequested" => Some("orders"),
        "StockHeld" | "StockRejected" => Some("inventory"),
        "PaymentSucceeded" | "PaymentFailed" => Some("payments"),
        _ => None,
    }
}

/// The header naming the key that signed an event (its `kid`).
pub const KEY_HEADER: &str = "Storefront-Key";
/// The header with an event's Ed25519 signature (hex) over [`signed_bytes`].
pub const SIGNATURE_HEADER: &str = "Storefront-Signature";

/// What an event's signature covers: its subject, its broker message id and its payload.
pub fn signed_bytes(subject: &str, message_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(subject.len() + message_id.len() + payload.len() + 32);
    bytes.extend_from_slice(b"storefront-event-v1\n");
    bytes.extend_from_slice(subject.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(message_id.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A service's keys on the bus: its own key signs what it publishes; the shop's key set
/// checks what it consumes.
#[derive(Clone)]
pub struct EventKeys {
    key: SigningKeys,
    trust: TokenVerifier,
}

impl EventKeys {
    /// Signs with `key` (this service's own) and trusts what `trust` trusts.
    pub fn new(key: SigningKeys, trust: TokenVerifier) -> Self {
        Self { key, trust }
    }

    /// The broker message id of the logical id `id`: `<id>:<tag>`, the tag the first 8
    /// bytes (hex) of this key's signature of `id`.
    pub fn message_id(&self, id: &str) -> String {
        let mut bytes = b"storefront-message-id-v1\n".to_vec();
        bytes.extend_from_slice(id.as_bytes());
        format!("{id}:{}", hex(&self.key.sign(&bytes)[..8]))
    }

    /// The headers of an event: the key's id and the signature.
    pub fn headers(
        &self,
        subject: &str,
        message_id: &str,
        payload: &[u8],
    ) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(KEY_HEADER, self.key.kid());
        let signature = self.key.sign(&signed_bytes(subject, message_id, payload));
        headers.insert(SIGNATURE_HEADER, hex(&signature).as_str());
        headers
    }

    /// Why an event on `subject` is refused, or `Ok` when its publisher signed it.
    pub fn check(
        &self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> std::result::Result<(), String> {
        let kind = kind_of(subject);
        let publisher = publisher_of(kind).ok_or_else(|| format!("no service publishes {kind}"))?;
        let get = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let kid = get(KEY_HEADER).ok_or("unsigned")?;
        let signature = get(SIGNATURE_HEADER).ok_or("unsigned (no signature)")?;
        let message_id = get("Nats-Msg-Id").ok_or("no message id")?;
        let (public, owner) = self
            .trust
            .service_key(&kid)
            .ok_or_else(|| format!("signed with an unknown key {kid:?}"))?;
        if let Some(owner) = owner
            && owner != publisher
        {
            return Err(format!(
                "{kind} signed with {owner}'s key; only {publisher} publishes it"
            ));
        }
        let signature = from_hex::<64>(&signature).ok_or("a malformed signature")?;
        public
            .verify_strict(
                &signed_bytes(subject, &message_id, payload),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .map_err(|_| "the signature does not verify".to_string())
    }
}

pub use storefront_contracts::messages::{
    BusMessage, PaymentReply, ShardHeld, StockReply, is_zero,
};

/// What a handler made of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Done (or nothing to do): acknowledge.
    Done,
    /// It came before the state it needs: deliver it again a little later.
    RetryLater,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: String,
    outcome: &'static str,
}

/// `storefront_events_total{type, outcome}`: published, handled, retried, failed, malformed.
#[derive(Clone, Default)]
pub struct EventMetrics {
    events: Family<EventLabels, Counter>,
}

impl EventMetrics {
    /// Registers the family in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "storefront_events",
            "Events published and consumed on the bus, by type and outcome",
            metrics.events.clone(),
        );
        metrics
    }

    /// Counts one event.
    pub fn count(&self, kind: &str, outcome: &'static str) {
        self.events
            .get_or_create(&EventLabels {
                r#type: kind.to_string(),
                outcome,
            })
            .inc();
    }
}

/// A connection to a Storefront's stream.
#[derive(Clone)]
pub struct Bus {
    js: Context,
    storefront: String,
    stream: String,
    metrics: EventMetrics,
    /// Signs what this bus publishes and checks what it consumes (`None`: neither).
    keys: Option<Arc<EventKeys>>,
}

impl Bus {
    /// Connects to NATS and makes sure the Storefront's stream exists.
    pub async fn connect(url: &str, storefront: &str, metrics: EventMetrics) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("storefront-{storefront}"))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .with_context(|| format!("failed to connect to NATS at {}", redact(url)))?;
        let js = jetstream::new(client);
        let name = stream_name(storefront);
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{storefront}.>")],
            duplicate_window: DUPLICATE_WINDOW,
            max_age: Duration::from_secs(7 * 24 * 3600),
            storage: stream::StorageType::File,
            ..stream::Config::default()
        })
        .await
        .with_context(|| format!("failed to create or open the JetStream stream {name}"))?;
        Ok(Self {
            js,
            storefront: storefront.to_string(),
            stream: name,
            metrics,
            keys: None,
        })
    }

    /// This bus, signing what it publishes and refusing unsigned or forged events
    /// ([`EventKeys`]).
    pub fn signed(mut self, keys: EventKeys) -> Self {
        self.keys = Some(Arc::new(keys));
        self
    }

    /// The event counters.
    pub fn metrics(&self) -> &EventMetrics {
        &self.metrics
    }

    /// The Storefront's name.
    pub fn storefront(&self) -> &str {
        &self.storefront
    }

    /// Publishes `message` to `<name>.<area>.<kind>` under its message id, as JSON, and waits
    /// for the broker's acknowledgement.
    pub async fn publish_message<M: BusMessage>(&self, area: &str, message: &M) -> Result<()> {
        self.publish(
            area,
            message.kind(),
            &message.message_id(),
            to_json(message),
        )
        .await
    }

    /// Publishes `payload` to `<name>.<area>.<kind>` with `message_id` and waits for the
    /// broker's acknowledgement (stored, or dropped as a duplicate).
    pub async fn publish(
        &self,
        area: &str,
        kind: &str,
        message_id: &str,
        payload: Vec<u8>,
    ) -> Result<()> {
        let ack = self.send(area, kind, message_id, payload).await?;
        ack.await
            .with_context(|| format!("JetStream did not store {kind} {message_id}"))?;
        Ok(())
    }

    /// Sends without waiting for the acknowledgement (await the returned future; the
    /// `publish` it counts is timed until then).
    pub async fn send(
        &self,
        area: &str,
        kind: &str,
        message_id: &str,
        payload: Vec<u8>,
    ) -> Result<
        impl Future<
            Output = std::result::Result<
                jetstream::publish::PublishAck,
                jetstream::context::PublishError,
            >,
        > + Send
        + use<>,
    > {
        let op = datastore_op!(Datastore::Nats, "publish");
        let started = Instant::now();
        let subject = subject(&self.storefront, area, kind);
        let mut message = jetstream::message::PublishMessage::build();
        if let Some(keys) = &self.keys {
            let id = keys.message_id(message_id);
            message = message.headers(keys.headers(&subject, &id, &payload));
            message = message.message_id(id);
        } else {
            message = message.message_id(message_id);
        }
        let sent = self
            .js
            .send_publish(subject, message.payload(payload.into()))
            .await;
        let ack = match sent {
            Ok(ack) => ack,
            Err(e) => {
                if let Some(op) = op {
                    op.record(false, Some(started.elapsed()));
                }
                return Err(e).with_context(|| format!("failed to publish {kind} {message_id}"));
            }
        };
        self.metrics.count(kind, "published");
        Ok(async move {
            let stored = ack.await;
            if let Some(op) = op {
                op.record(stored.is_ok(), Some(started.elapsed()));
            }
            stored
        })
    }

    /// Consumes `<name>.<filter>` with the durable consumer `durable` (created if missing,
    /// shared by every pod that names it), running up to `concurrency` handlers at once,
    /// until the task is dropped. A handler error is logged and the message redelivered.
    pub async fn consume<H, F>(
        &self,
        durable: &str,
        filter: &str,
        concurrency: usize,
        handler: H,
    ) -> Result<()>
    where
        H: Fn(String, Vec<u8>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Handled>> + Send,
    {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .with_context(|| format!("failed to open the stream {}", self.stream))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_string()),
                    filter_subject: format!("{}.{filter}", self.storefront),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 4096,
                    ..pull::Config::default()
                },
            )
            .await
            .with_context(|| format!("failed to create the consumer {durable}"))?;
        let messages = consumer
            .messages()
            .await
            .with_context(|| format!("failed to pull from the consumer {durable}"))?;
        let handler = Arc::new(handler);
        let metrics = self.metrics.clone();
        let keys = self.keys.clone();
        let work = messages.for_each_concurrent(concurrency.max(1), |message| {
            let handler = handler.clone();
            let metrics = metrics.clone();
            let keys = keys.clone();
            async move {
                let deliver = datastore_op!(Datastore::Nats, "deliver");
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        if let Some(op) = deliver {
                            op.record(false, None);
                        }
                        tracing::warn!("failed to receive from the bus: {e}");
                        tokio::time::sleep(RETRY_DELAY).await;
                        return;
                    }
                };
                let subject = message.subject.to_string();
                let kind = kind_of(&subject).to_string();
                if let Some(keys) = &keys
                    && let Err(reason) =
                        keys.check(&subject, message.headers.as_ref(), &message.payload)
                {
                    // Dropped for good: a forged event is not redelivered, and nothing changes.
                    metrics.count(&kind, "forged");
                    tracing::warn!(%subject, %reason, "dropping an event that is not its publisher's");
                    let acked = message.ack().await;
                    if let Some(op) = deliver {
                        op.record(acked.is_ok(), None);
                    }
                    return;
                }
                let ack = match handler(subject.clone(), message.payload.to_vec()).await {
                    Ok(Handled::Done) => {
                        metrics.count(&kind, "handled");
                        AckKind::Ack
                    }
                    Ok(Handled::RetryLater) => {
                        metrics.count(&kind, "retried");
                        AckKind::Nak(Some(RETRY_DELAY))
                    }
                    Err(e) => {
                        metrics.count(&kind, "failed");
                        tracing::warn!(%subject, "failed to handle an event, retrying: {e:#}");
                        AckKind::Nak(Some(RETRY_DELAY * 4))
                    }
                };
                let acked = message.ack_with(ack).await;
                if let Some(op) = deliver {
                    op.record(acked.is_ok(), None);
                }
                if let Err(e) = acked {
                    tracing::warn!(%subject, "failed to acknowledge: {e}");
                }
            }
        });
        work.await;
        anyhow::bail!("the consumer {durable} stopped")
    }
}

/// Decodes a JSON message; a message that does not decode is logged and counted and
/// acknowledged by the caller (answering `None`), so it is not redelivered forever.
pub fn decode<T: for<'de> Deserialize<'de>>(
    metrics: &EventMetrics,
    subject: &str,
    payload: &[u8],
) -> Option<T> {
    match serde_json::from_slice(payload) {
        Ok(v) => Some(v),
        Err(e) => {
            metrics.count(kind_of(subject), "malformed");
            tracing::warn!(%subject, "dropping a malformed event: {e}");
            None
        }
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Serializes an event (plain data: always serializes).
pub fn to_json<T: Serialize>(event: &T) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(stream_name("acme-eu"), "STOREFRONT_ACME_EU");
        assert_eq!(
            subject("acme", "orders", "OrderCreated"),
            "acme.orders.OrderCreated"
        );
        assert_eq!(kind_of("acme.payments.PaymentFailed"), "PaymentFailed");
        assert_eq!(
            redact("nats://u:p@10.0.0.1:4222"),
            "nats://***@10.0.0.1:4222"
        );
        assert_eq!(redact("nats://10.0.0.1:4222"), "nats://10.0.0.1:4222");
    }

    #[test]
    fn replies_round_trip_with_stable_ids() {
        let held = StockReply::StockHeld(ShardHeld::by_place("o1", 2, 4));
        let json = String::from_utf8(to_json(&held)).expect("utf8");
        assert_eq!(
            json,
            r#"{"type":"StockHeld","orderId":"o1","shard":2,"shards":4}"#
        );
        assert_eq!(
            serde_json::from_str::<StockReply>(&json).expect("decodes"),
            held
        );
        assert_eq!(held.message_id(), "o1:StockHeld:2");
        let lines = StockReply::StockHeld(ShardHeld {
            order_id: "o1".into(),
            shard: 2,
            shards: 5,
            skus: Some(vec!["A".into()]),
            epoch: 3,
            attempt: 1,
        });
        let json = String::from_utf8(to_json(&lines)).expect("utf8");
        assert_eq!(
            json,
            r#"{"type":"StockHeld","orderId":"o1","shard":2,"shards":5,"skus":["A"],"epoch":3,"attempt":1}"#
        );
        assert_eq!(
            serde_json::from_str::<StockReply>(&json).expect("decodes"),
            lines
        );
        assert_eq!(lines.message_id(), "o1:StockHeld:2:3:1");
        let paid = PaymentReply::PaymentFailed {
            order_id: "o1".into(),
            reason: "declined".into(),
        };
        assert_eq!(paid.message_id(), "o1:PaymentFailed");
        let metrics = EventMetrics::default();
        assert_eq!(
            decode::<PaymentReply>(&metrics, "a.payments.X", b"{nope"),
            None
        );
    }

    fn keys(seed: u8) -> EventKeys {
        let mut set = crate::token::KeySet::default();
        for (service, seed) in [("orders", 1u8), ("inventory", 2), ("payments", 3)] {
            let key = SigningKeys::from_seed([seed; 32]).expect("key");
            set.add_service_key(service, &key.public_key());
        }
        EventKeys::new(
            SigningKeys::from_seed([seed; 32]).expect("key"),
            TokenVerifier::new(set, "shop"),
        )
    }

    #[test]
    fn an_event_passes_only_signed_by_its_publisher_and_unchanged() {
        let (orders, inventory, stranger) = (keys(1), keys(2), keys(9));
        let subject = "shop.orders.StockReserved";
        let payload = br#"{"type":"StockReserved","orderId":"o1","totalCents":500}"#;
        // The tag: stable for one key, another for another key, unguessable without it.
        let id = orders.message_id("o1:StockReserved");
        assert_eq!(id, orders.message_id("o1:StockReserved"));
        assert!(id.starts_with("o1:StockReserved:") && id.len() == "o1:StockReserved:".len() + 16);
        assert_ne!(id, inventory.message_id("o1:StockReserved"));
        let with_id = |mut headers: async_nats::HeaderMap, id: &str| {
            headers.insert("Nats-Msg-Id", id);
            headers
        };
        let signed = with_id(orders.headers(subject, &id, payload), &id);
        assert_eq!(orders.check(subject, Some(&signed), payload), Ok(()));
        // Checked by any service of the shop.
        assert_eq!(keys(3).check(subject, Some(&signed), payload), Ok(()));
        let refused = |headers: Option<&async_nats::HeaderMap>, payload: &[u8]| {
            orders
                .check(subject, headers, payload)
                .expect_err("refused")
        };
        assert_eq!(refused(None, payload), "unsigned");
        let changed = br#"{"type":"StockReserved","orderId":"o1","totalCents":1}"#;
        assert_eq!(
            refused(Some(&signed), changed),
            "the signature does not verify"
        );
        let other_id = with_id(orders.headers(subject, &id, payload), "o1:StockReserved");
        assert_eq!(
            refused(Some(&other_id), payload),
            "the signature does not verify"
        );
        let by_inventory = with_id(inventory.headers(subject, &id, payload), &id);
        assert_eq!(
            refused(Some(&by_inventory), payload),
            "StockReserved signed with inventory's key; only orders publishes it"
        );
        let by_stranger = with_id(stranger.headers(subject, &id, payload), &id);
        assert!(refused(Some(&by_stranger), payload).starts_with("signed with an unknown key"));
        let mut garbled = signed.clone();
        garbled.insert(SIGNATURE_HEADER, "zz");
        assert_eq!(refused(Some(&garbled), payload), "a malformed signature");
        assert_eq!(
            orders.check("shop.orders.Refund", Some(&signed), payload),
            Err("no service publishes Refund".into())
        );
        // Inventory's own events pass with its key.
        let subject = "shop.inventory.StockHeld";
        let signed = with_id(inventory.headers(subject, &id, payload), &id);
        assert_eq!(orders.check(subject, Some(&signed), payload), Ok(()));
    }
}
