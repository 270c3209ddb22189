//! Client-side metrics of the calls a service makes to its datastores and to the broker, under
//! the same names in every service, so the console can label the topology's
//! service → PostgreSQL / Redis / NATS edges:
//!
//! - `storefront_datastore_requests_total{service, datastore, operation, outcome}`, where
//!   `datastore` is [`Datastore::label`] (`postgres`, `postgres-replica`, `redis`, `nats`),
//!   `operation` the store method (`get_product`, `reserve`, `publish`, `deliver`, ...) and
//!   `outcome` `ok` or `error` (the datastore failed or could not be reached; a business
//!   answer such as "out of stock" or a lost optimistic-concurrency race is `ok`);
//! - `storefront_datastore_request_duration_seconds{service, datastore}`: how long the calls
//!   that waited on the datastore took (a statement or transaction, a Redis command, a
//!   JetStream publish until the broker stored it). A consumer delivery (`deliver`) is counted,
//!   not timed: its time is the handler's, which the handler's own calls already time.
//!
//! Instrumented at the store adapters (each store method is one request), not inside sqlx or
//! the clients. The hot path allocates nothing and looks nothing up: every call site holds a
//! `static` [`OpSite`] (made by [`datastore_op!`](crate::datastore_op)) that resolves its label sets once per
//! datastore into cached [`Counter`]/[`Histogram`] handles; after that a call costs two
//! atomic loads, an `Instant::now()`, an increment and a histogram observation.
//!
//! A process runs one service: [`install`] (called by [`crate::metrics::install`]) fixes the
//! `service` label and registers the families; before it, and in processes that never call it,
//! every recording is a no-op.

use std::{
    future::Future,
    sync::OnceLock,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// What a service talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datastore {
    /// The PostgreSQL primary.
    Postgres,
    /// A PostgreSQL read replica (the catalog's product reads when the shop names one).
    PostgresReplica,
    /// Redis (the catalog's product cache).
    Redis,
    /// NATS JetStream (the event bus).
    Nats,
}

impl Datastore {
    /// Every datastore, in [`Datastore::index`] order.
    pub const ALL: [Datastore; 4] = [
        Datastore::Postgres,
        Datastore::PostgresReplica,
        Datastore::Redis,
        Datastore::Nats,
    ];

    /// The `datastore` label.
    pub const fn label(self) -> &'static str {
        match self {
            Datastore::Postgres => "postgres",
            Datastore::PostgresReplica => "postgres-replica",
            Datastore::Redis => "redis",
            Datastore::Nats => "nats",
        }
    }

    const fn index(self) -> usize {
        match self {
            Datastore::Postgres => 0,
            Datastore::PostgresReplica => 1,
            Datastore::Redis => 2,
            Datastore::Nats => 3,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: &'static str,
    datastore: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    service: &'static str,
    datastore: &'static str,
}

/// Buckets for datastore calls: most take well under a millisecond to a few milliseconds.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The two families of one process, with its `service` label.
#[derive(Clone)]
pub struct DatastoreMetrics {
    service: &'static str,
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
}

impl DatastoreMetrics {
    /// New families for `service` (not registered anywhere yet).
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }

    /// Registers the families in `registry` (they may be registered in several).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "storefront_datastore_requests",
            "Calls to datastores and the broker by service, datastore, operation and outcome",
            self.requests.clone(),
        );
        registry.register(
            "storefront_datastore_request_duration_seconds",
            "Latency of calls to datastores and the broker by service and datastore",
            self.duration.clone(),
        );
    }

    /// The handles of one operation on one datastore (looked up once by each [`OpSite`]).
    pub fn op(&self, datastore: Datastore, operation: &'static str) -> Op {
        let counter = |outcome| {
            self.requests
                .get_or_create(&RequestLabels {
                    service: self.service,
                    datastore: datastore.label(),
                    operation,
                    outcome,
                })
                .clone()
        };
        Op {
            ok: counter("ok"),
            error: counter("error"),
            duration: self
                .duration
                .get_or_create(&DurationLabels {
                    service: self.service,
                    datastore: datastore.label(),
                })
                .clone(),
        }
    }
}

static INSTALLED: OnceLock<DatastoreMetrics> = OnceLock::new();

/// Fixes this process's `service` label (the first call wins) and registers the families in
/// `registry` (every call: a test may read them from a registry of its own).
pub fn install(registry: &mut Registry, service: &'static str) {
    INSTALLED
        .get_or_init(|| DatastoreMetrics::new(service))
        .register(registry);
}

/// The cached handles of one operation on one datastore.
#[derive(Clone, Debug)]
pub struct Op {
    ok: Counter,
    error: Counter,
    duration: Histogram,
}

impl Op {
    /// Counts one call and, when it waited on the datastore, its duration.
    pub fn record(&self, ok: bool, took: Option<Duration>) {
        if ok { &self.ok } else { &self.error }.inc();
        if let Some(took) = took {
            self.duration.observe(took.as_secs_f64());
        }
    }
}

/// Counts one call under `op` (nothing before [`install`]); `took` is `None` when the call
/// never reached the datastore. For calls [`timed`] cannot wrap (a timeout around them).
pub fn record(op: Option<&'static Op>, ok: bool, took: Option<Duration>) {
    if let Some(op) = op {
        op.record(ok, took);
    }
}

/// One call site's operation, as a `static`: resolves its handles per datastore the first
/// time it is used after [`install`] and keeps them.
pub struct OpSite {
    operation: &'static str,
    ops: [OnceLock<Op>; 4],
}

impl OpSite {
    /// A site of `operation` (use [`datastore_op!`](crate::datastore_op)).
    pub const fn new(operation: &'static str) -> Self {
        Self {
            operation,
            ops: [const { OnceLock::new() }; 4],
        }
    }

    /// The handles on `datastore`; `None` until [`install`] ran.
    pub fn on(&'static self, datastore: Datastore) -> Option<&'static Op> {
        let slot = &self.ops[datastore.index()];
        if let Some(op) = slot.get() {
            return Some(op);
        }
        let metrics = INSTALLED.get()?;
        Some(slot.get_or_init(|| metrics.op(datastore, self.operation)))
    }
}

/// The cached handles of `operation` (a literal) on `datastore` at this call site:
/// `datastore_op!(Datastore::Postgres, "reserve")`.
#[macro_export]
macro_rules! datastore_op {
    ($datastore:expr, $operation:literal) => {{
        static SITE: $crate::datastore_metrics::OpSite =
            $crate::datastore_metrics::OpSite::new($operation);
        SITE.on($datastore)
    }};
}

/// Whether a failure was the datastore's (an `error` outcome) rather than a business answer.
pub trait DatastoreFailure {
    /// `true` when the datastore failed or could not be reached.
    fn is_datastore_failure(&self) -> bool;
}

impl DatastoreFailure for sqlx::Error {
    fn is_datastore_failure(&self) -> bool {
        true
    }
}

impl DatastoreFailure for anyhow::Error {
    fn is_datastore_failure(&self) -> bool {
        true
    }
}

/// Runs `call`, counting it under `op` with its outcome and timing it.
pub async fn timed<T, E: DatastoreFailure>(
    op: Option<&'static Op>,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    if let Some(op) = op {
        let ok = result
            .as_ref()
            .err()
            .is_none_or(|e| !e.is_datastore_failure());
        op.record(ok, Some(started.elapsed()));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).expect("encodes");
        out
    }

    #[test]
    fn an_op_counts_by_outcome_and_times_by_datastore() {
        let mut registry = Registry::default();
        let metrics = DatastoreMetrics::new("catalog");
        metrics.register(&mut registry);
        let get = metrics.op(Datastore::PostgresReplica, "get_product");
        get.record(true, Some(Duration::from_millis(2)));
        get.record(true, Some(Duration::from_millis(3)));
        get.record(false, Some(Duration::from_millis(50)));
        metrics.op(Datastore::Nats, "deliver").record(true, None);
        let out = text(&registry);
        for line in [
            r#"storefront_datastore_requests_total{service="catalog",datastore="postgres-replica",operation="get_product",outcome="ok"} 2"#,
            r#"storefront_datastore_requests_total{service="catalog",datastore="postgres-replica",operation="get_product",outcome="error"} 1"#,
            r#"storefront_datastore_requests_total{service="catalog",datastore="nats",operation="deliver",outcome="ok"} 1"#,
            r#"storefront_datastore_request_duration_seconds_count{service="catalog",datastore="postgres-replica"} 3"#,
            r#"storefront_datastore_request_duration_seconds_count{service="catalog",datastore="nats"} 0"#,
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn the_same_labels_share_one_handle() {
        let metrics = DatastoreMetrics::new("orders");
        let a = metrics.op(Datastore::Postgres, "load");
        let b = metrics.op(Datastore::Postgres, "load");
        a.record(true, None);
        b.record(true, None);
        assert_eq!(a.ok.get(), 2);
        assert_eq!(metrics.op(Datastore::Redis, "load").ok.get(), 0);
    }

    #[derive(Debug)]
    struct Business;

    impl DatastoreFailure for Business {
        fn is_datastore_failure(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn timed_reports_outcomes_and_passes_results_through() {
        let metrics = DatastoreMetrics::new("inventory");
        let op: &'static Op = Box::leak(Box::new(metrics.op(Datastore::Postgres, "reserve")));
        assert_eq!(
            timed(Some(op), async { Ok::<_, Business>(7) }).await.ok(),
            Some(7)
        );
        assert!(
            timed(Some(op), async { Err::<(), _>(Business) })
                .await
                .is_err()
        );
        assert!(
            timed(Some(op), async { Err::<(), _>(sqlx::Error::PoolTimedOut) })
                .await
                .is_err()
        );
        assert_eq!((op.ok.get(), op.error.get()), (2, 1));
        // Not installed: nothing recorded, the result is the call's.
        assert_eq!(
            timed(None, async { Ok::<_, Business>(1) }).await.ok(),
            Some(1)
        );
    }
}
