//! The catalog's product cache in Redis: product pages read through it, catalog writes go
//! through it (write-through), and it never stands between a shopper and a product.
//!
//! - Keys `storefront:<shop>:product:<sku>` hold the product's JSON for [`TTL`]; a write
//!   sets the key after PostgreSQL committed, so a reader sees the old or the new product,
//!   never one that was not stored.
//! - Every Redis call has a short deadline ([`CALL_TIMEOUT`]); an error or a timeout counts
//!   as a miss (read from PostgreSQL) and is counted as `error`. While Redis is unreachable a
//!   reconnect is tried at most every [`RECONNECT_EVERY`], so a dead Redis costs nothing per
//!   request. Hits, misses and errors: `storefront_cache_requests_total{cache, result}`.
//! - Every lookup and write is also a `redis` request of [`storefront_platform::datastore_metrics`]
//!   (`get_product`, `put_products`; a hit or a miss is `ok`, an error or a timeout `error`),
//!   timed when it reached Redis (while it is unreachable the `error`s are counted, not timed).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use redis::{AsyncCommands, aio::ConnectionManager};

use super::seed::Product;
use storefront_platform::datastore_metrics::{Datastore, record};
use storefront_platform::datastore_op;

/// How long a cached product lives (a safety net: writes update the cache anyway).
pub const TTL: Duration = Duration::from_secs(600);
/// The deadline of one Redis call.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often to try reconnecting while Redis is unreachable.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

/// `storefront_cache_requests_total{cache, result}`.
#[derive(Clone, Default)]
pub struct CacheMetrics {
    requests: Family<CacheLabels, Counter>,
}

impl CacheMetrics {
    /// Registers the family in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "storefront_cache_requests",
            "Cache lookups and writes by result (hit, miss, write, error)",
            m.requests.clone(),
        );
        m
    }

    fn count(&self, result: &'static str) {
        self.requests
            .get_or_create(&CacheLabels {
                cache: "product",
                result,
            })
            .inc();
    }

    /// How many lookups or writes ended with `result` (tests).
    pub fn get(&self, result: &'static str) -> u64 {
        self.requests
            .get_or_create(&CacheLabels {
                cache: "product",
                result,
            })
            .get()
    }
}

/// The key of a product.
pub fn key(shop: &str, sku: &str) -> String {
    format!("storefront:{shop}:product:{sku}")
}

struct Link {
    connection: Option<ConnectionManager>,
    last_attempt: Option<Instant>,
}

/// A product cache of one shop.
#[derive(Clone)]
pub struct ProductCache {
    client: redis::Client,
    shop: String,
    link: Arc<tokio::sync::Mutex<Link>>,
    metrics: CacheMetrics,
    warned: Arc<Mutex<Option<Instant>>>,
}

impl ProductCache {
    /// A cache at `url` (not connected yet: the first use connects). A malformed URL is an
    /// error now, not a silent cache that never works.
    pub fn new(url: &str, shop: &str, metrics: CacheMetrics) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            shop: shop.to_string(),
            link: Arc::new(tokio::sync::Mutex::new(Link {
                connection: None,
                last_attempt: None,
            })),
            metrics,
            warned: Arc::default(),
        })
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut link = self.link.lock().await;
        if let Some(c) = &link.connection {
            return Some(c.clone());
        }
        if link
            .last_attempt
            .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
        {
            return None;
        }
        link.last_attempt = Some(Instant::now());
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            Duration::from_secs(1),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                link.connection = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.warn(&format!("failed to connect to Redis: {e}"));
                None
            }
            Err(_) => {
                self.warn("failed to connect to Redis: timed out");
                None
            }
        }
    }

    /// Logs at most once a minute.
    fn warn(&self, message: &str) {
        if let Ok(mut last) = self.warned.lock()
            && last.is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            *last = Some(Instant::now());
            tracing::warn!("product cache degraded (reading PostgreSQL): {message}");
        }
    }

    /// The cached product, if any (`None` on a miss or any Redis trouble).
    pub async fn get(&self, sku: &str) -> Option<Product> {
        let op = datastore_op!(Datastore::Redis, "get_product");
        let Some(mut c) = self.connection().await else {
            self.metrics.count("error");
            record(op, false, None);
            return None;
        };
        let started = Instant::now();
        let got: Result<Result<Option<String>, _>, _> =
            tokio::time::timeout(CALL_TIMEOUT, c.get(key(&self.shop, sku))).await;
        record(op, matches!(got, Ok(Ok(_))), Some(started.elapsed()));
        match got {
            Ok(Ok(Some(json))) => match serde_json::from_str(&json) {
                Ok(p) => {
                    self.metrics.count("hit");
                    Some(p)
                }
                Err(_) => {
                    // Not ours or from another version: treat as a miss; the read refills it.
                    self.metrics.count("miss");
                    None
                }
            },
            Ok(Ok(None)) => {
                self.metrics.count("miss");
                None
            }
            Ok(Err(e)) => {
                self.metrics.count("error");
                self.warn(&e.to_string());
                None
            }
            Err(_) => {
                self.metrics.count("error");
                self.warn("a read timed out");
                None
            }
        }
    }

    /// Stores products (after PostgreSQL has them); errors are counted, never returned.
    pub async fn put(&self, products: &[Product]) {
        if products.is_empty() {
            return;
        }
        let op = datastore_op!(Datastore::Redis, "put_products");
        let Some(mut c) = self.connection().await else {
            self.metrics.count("error");
            record(op, false, None);
            return;
        };
        let mut pipe = redis::pipe();
        for p in products {
            let json = serde_json::to_string(p).unwrap_or_default();
            pipe.set_ex(key(&self.shop, &p.sku), json, TTL.as_secs())
                .ignore();
        }
        let deadline = CALL_TIMEOUT * u32::try_from(products.len() / 500 + 1).unwrap_or(1);
        let started = Instant::now();
        let done = tokio::time::timeout(deadline, pipe.query_async::<()>(&mut c)).await;
        record(op, matches!(done, Ok(Ok(()))), Some(started.elapsed()));
        match done {
            Ok(Ok(())) => self.metrics.count("write"),
            Ok(Err(e)) => {
                self.metrics.count("error");
                self.warn(&e.to_string());
            }
            Err(_) => {
                self.metrics.count("error");
                self.warn("a write timed out");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_shop() {
        assert_eq!(key("ns-acme", "SKU-1"), "storefront:ns-acme:product:SKU-1");
        assert_ne!(key("a", "SKU-1"), key("b", "SKU-1"));
    }

    #[test]
    fn a_malformed_url_is_refused_at_once() {
        assert!(ProductCache::new("not a url", "s", CacheMetrics::default()).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_miss_and_is_not_retried_per_request() {
        // A closed loopback port: connection refused at once.
        let cache =
            ProductCache::new("redis://127.0.0.1:1", "s", CacheMetrics::default()).expect("url");
        assert!(cache.get("SKU-1").await.is_none());
        let first = cache.link.lock().await.last_attempt;
        assert!(first.is_some());
        for _ in 0..100 {
            assert!(cache.get("SKU-1").await.is_none());
        }
        cache.put(&[]).await;
        assert_eq!(
            cache.link.lock().await.last_attempt,
            first,
            "no reconnect per request"
        );
        assert_eq!(cache.metrics.get("error"), 101);
    }
}
