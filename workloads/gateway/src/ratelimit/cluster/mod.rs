//! The gateway's cluster-wide limiter at run time: one bucket per scope (`gateway`, the
//! shop-wide budget, and one per upstream service), each spending tokens leased from the
//! shared budget in Redis ([`super::lease`]), so a decision is a local compare-and-swap.
//!
//! ```text
//!  request ─▶ check(scope) ─▶ lease.try_take()  ── token ──▶ allowed (refill ahead when low)
//!                               │ empty
//!                               ├─ blocked until T (the authority said so) ──▶ 429, Retry-After
//!                               ├─ Redis healthy: wait ≤ 25 ms for refills (≥ 1 token per waiter)
//!                               └─ Redis degraded or slower than that: local GCRA with
//!                                  budget ÷ live replicas, for this request
//! ```
//!
//! - **Refill**: one at a time per bucket, asking for what the bucket's offered load spends
//!   in one lease lifetime ([`lease::lease_size`], capped at this replica's fair share as
//!   last answered); it starts ahead of need (a quarter of the last grant left) and, once a
//!   lease outlives [`lease::LEASE_LIFETIME_US`], gives its unused tokens back. A refused
//!   refill says when a token will be free: until then the bucket refuses locally, without
//!   asking again.
//! - **Fair shares**: each refill sends this replica's offered rate (the demand, with
//!   headroom, [`super::fair::demand_rpm`]) and its member name; the script records it next
//!   to the budget and caps the grant at this replica's max-min fair share while the budget
//!   is short ([`lease`]), so replicas offered equal load admit equal parts.
//! - **Liveness and replicas**: every second each replica writes a heartbeat into a sorted
//!   set (`…:gateways`), counts the members seen in the last 5 s (the live replicas, for the
//!   fair lease size and the fallback share), and so probes Redis.
//! - **Degraded**: a refill or heartbeat that fails (refused, reset, a script error), or
//!   [`SLOW_STREAK`] calls in a row over [`CALL_TIMEOUT`], switch the limiter to the fallback
//!   at once (no request waits on Redis again until a heartbeat succeeds): each replica
//!   enforces its share (`budget ÷ live replicas last counted`, or the operator's hint
//!   `GATEWAY_REPLICAS` if Redis never answered), so the cluster stays within the budget —
//!   never unlimited. It is reported by [`ClusterLimiter::degraded`] (for the response
//!   header and the Storefront's `RateLimiterDegraded` failure point) and
//!   `storefront_ratelimit_degraded`. While a replica falls back, the others may still spend
//!   the shared budget, so the cluster can admit up to that replica's share more than the
//!   budget for as long as it lasts (about a heartbeat).
//! - Without Redis configured at all, the limiter is the fallback from the start, and says so.
//!
//! Every lease and heartbeat call is counted in `storefront_datastore_requests_total{datastore=
//! "redis", operation="lease"|"heartbeat"}` ([`storefront_platform::datastore_metrics`]).
//!
//! Redis keys: `storefront:ratelimit:{<namespace>/<storefront>}:<scope>:<interval µs>:<burst>`
//! (the TAT; a changed limit is a new key, a fresh bucket), the same with `:replicas` (each
//! replica's demand and fair-share bucket, a hash) and
//! `storefront:ratelimit:{<namespace>/<storefront>}:gateways` (heartbeats).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::{
    client::{ClientKey, ClientRules, Rule},
    clients::{ClientMetrics, ClientTable},
    fair,
    gcra::{self, Rate},
    lease::{self, Lease},
};

/// The longest a Redis call may take before the limiter falls back.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// The longest a request waits for a refill in flight (Redis healthy).
pub const REFILL_WAIT: Duration = Duration::from_millis(25);
/// How often each replica heartbeats (and probes Redis).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Slow Redis calls in a row that switch a replica to the fallback (a refused or broken
/// connection does at once).
pub const SLOW_STREAK: u64 = 3;
/// A replica not seen for this long is not counted.
const LIVE_WINDOW_MS: u64 = 5_000;

/// One budget of the route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `gateway` or a service name.
    pub scope: String,
    pub requests_per_minute: u32,
    pub burst: u32,
}

/// The answer for one request in one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub scope: Arc<str>,
    pub requests_per_minute: u32,
    /// Tokens left (shared budget as last seen plus this replica's lease).
    pub remaining: u64,
    /// Seconds until the budget is full again.
    pub reset_s: u64,
    /// When refused: seconds until a retry may succeed (at least 1).
    pub retry_after_s: u64,
    /// Decided by the local fallback share (Redis unreachable).
    pub fallback: bool,
}

type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Default)]
struct Metrics {
    decisions: Family<Labels, Counter>,
    degraded: Gauge,
    replicas: Gauge,
    remaining: Family<Labels, Gauge>,
}

/// The state a refill and the fallback change (never held across an await).
#[derive(Debug)]
struct Shared {
    rate: Rate,
    rpm: u32,
    /// The budget's Redis key: the scope and its settings, so a changed limit is a fresh
    /// bucket at once (a FlashSale's new limit is not held back by the old one's debt).
    key: String,
    /// The shared budget's tokens after the last grant.
    remaining: u64,
    reset_us: u64,
    /// The authority refused: nothing to ask for before this.
    blocked_until: Option<Instant>,
    /// When the current lease was granted.
    granted_at: Instant,
    last_grant: u64,
    /// Offered requests counted at the last refill, and when.
    offered_then: u64,
    measured_at: Instant,
    demand_per_s: f64,
    /// The offered rate as recorded for the fair shares (windows of 100 ms at least).
    meter: fair::DemandMeter,
    /// This replica's fair share as the authority last answered (requests/s; infinite
    /// before the first answer).
    share_per_s: f64,
    /// The fallback's own GCRA state.
    fallback_tat_us: u64,
}

struct Bucket {
    scope: Arc<str>,
    lease: Lease,
    offered: AtomicU64,
    /// Requests waiting for a refill right now.
    waiting: AtomicU64,
    /// This scope's decision counters (allowed/limited × shared/fallback) and remaining
    /// gauge, looked up once, so a decision builds no labels.
    decisions: [Counter; 4],
    remaining: Gauge,
    refilling: AtomicBool,
    refilled: Notify,
    shared: Mutex<Shared>,
}

impl Bucket {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Inner {
    redis: Option<redis::Client>,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    prefix: String,
    member: String,
    /// The operator's planned replica count: the fallback never divides by less.
    replicas_hint: u64,
    /// Redis calls in a row that took over [`CALL_TIMEOUT`].
    slow_streak: AtomicU64,
    /// Live replicas from the heartbeats; 0 until Redis has answered once.
    replicas: AtomicU64,
    degraded: AtomicBool,
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    /// The per-client budgets ([`super::clients`]), reported every [`super::clients::SYNC`].
    clients: ClientTable,
    client_script: redis::Script,
    client_metrics: ClientMetrics,
    started: Instant,
    metrics: Metrics,
    /// The last problem logged, so a change is logged once.
    logged: Mutex<String>,
}

/// The limiter: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct ClusterLimiter(Arc<Inner>);

impl ClusterLimiter {
    /// A limiter for Storefront `storefront` in `namespace`, as replica `member`, sharing
    /// budgets through Redis at `redis_url` (or only the local fallback without one).
    pub fn new(
        redis_url: Option<&str>,
        namespace: &str,
        storefront: &str,
        member: &str,
        replicas_hint: u64,
    ) -> Result<Self, redis::RedisError> {
        let redis = redis_url.map(redis::Client::open).transpose()?;
        let client_metrics = ClientMetrics::default();
        let limiter = Self(Arc::new(Inner {
            clients: ClientTable::new(client_metrics.clone()),
            client_script: redis::Script::new(super::clients::SCRIPT),
            client_metrics,
            degraded: AtomicBool::new(redis.is_none()),
            redis,
            connection: tokio::sync::Mutex::new(None),
            script: redis::Script::new(&lease::script()),
            prefix: format!("storefront:ratelimit:{{{namespace}/{storefront}}}"),
            member: member.to_string(),
            replicas_hint: replicas_hint.max(1),
            replicas: AtomicU64::new(0),
            slow_streak: AtomicU64::new(0),
            buckets: RwLock::new(HashMap::new()),
            started: Instant::now(),
            metrics: Metrics::default(),
            logged: Mutex::new(String::new()),
        }));
        limiter
            .0
            .metrics
            .degraded
            .set(i64::from(limiter.degraded()));
        limiter.0.metrics.replicas.set(limiter.replicas() as i64);
        Ok(limiter)
    }

    /// A limiter with no Redis: every replica enforces its share of each budget.
    pub fn local(replicas: u64) -> Self {
        // Without a URL nothing can fail.
        Self::new(None, "local", "local", "local", replicas).unwrap_or_else(|_| unreachable!())
    }

    /// Registers the limiter's metrics.
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.0.metrics;
        registry.register(
            "storefront_ratelimit_decisions",
            "Rate-limit decisions by scope, decision (allowed|limited) and mode (shared|fallback)",
            m.decisions.clone(),
        );
        registry.register(
            "storefront_ratelimit_degraded",
            "1 while Redis is unreachable and each replica enforces its share of the budget",
            m.degraded.clone(),
        );
        registry.register(
            "storefront_ratelimit_replicas",
            "Gateway replicas seen sharing the budgets",
            m.replicas.clone(),
        );
        registry.register(
            "storefront_ratelimit_remaining",
            "Tokens left in a budget as this replica last saw it",
            m.remaining.clone(),
        );
        let c = &self.0.client_metrics;
        registry.register(
            "storefront_ratelimit_client_decisions",
            "Per-client rate-limit decisions by budget (user, address, route:<route>) and decision (allowed|limited)",
            c.decisions.clone(),
        );
        registry.register(
            "storefront_ratelimit_clients",
            "Clients this replica keeps a per-client budget for",
            c.tracked.clone(),
        );
    }

    /// Sets the per-client rules (`None`: no per-client limits).
    pub fn configure_clients(&self, rules: Option<ClientRules>) {
        self.0.clients.configure(rules);
    }

    /// The per-client rules in force.
    pub fn client_rules(&self) -> Option<Arc<ClientRules>> {
        self.0.clients.rules()
    }

    /// The per-client budgets this replica keeps (for tests and the sync).
    pub fn clients(&self) -> &ClientTable {
        &self.0.clients
    }

    /// Decides one request of `client` in `rule`'s per-client budget (no await, no Redis);
    /// `None` when the rule has no budget.
    pub fn check_client(
        &self,
        rules: &ClientRules,
        rule: Rule,
        client: &ClientKey,
    ) -> Option<Verdict> {
        let budget = rules.budget(rule)?;
        let d = self.0.clients.take(rule, client, self.now_us())?;
        Some(Verdict {
            allowed: d.allowed,
            scope: Arc::clone(&budget.name),
            requests_per_minute: budget.requests_per_minute,
            remaining: d.remaining,
            reset_s: d.reset_us.div_ceil(1_000_000),
            retry_after_s: if d.allowed {
                0
            } else {
                d.retry_after_us.div_ceil(1_000_000).max(1)
            },
            fallback: self.degraded(),
        })
    }

    /// Whether the limiter runs on the local fallback.
    pub fn degraded(&self) -> bool {
        self.0.degraded.load(Ordering::Acquire)
    }

    /// Why the limiter runs on its fallback, while it does.
    pub fn degraded_reason(&self) -> Option<String> {
        self.degraded().then(|| {
            let reason = self.0.logged.lock().unwrap_or_else(PoisonError::into_inner);
            format!(
                "{}; each gateway replica enforces its share (budget ÷ {})",
                if reason.is_empty() {
                    "Redis unreachable"
                } else {
                    reason.as_str()
                },
                self.replicas()
            )
        })
    }

    /// Replicas sharing the budgets: the live ones the heartbeats counted, or the
    /// operator's hint before Redis ever answered.
    pub fn replicas(&self) -> u64 {
        match self.0.replicas.load(Ordering::Acquire) {
            0 => self.0.replicas_hint,
            live => live,
        }
    }

    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.0.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn note(&self, problem: &str) {
        let mut logged = self.0.logged.lock().unwrap_or_else(PoisonError::into_inner);
        if *logged != problem {
            problem.clone_into(&mut logged);
            if problem.is_empty() {
                tracing::info!("rate limiter: budgets shared through Redis again");
            } else {
                tracing::warn!(
                    "rate limiter degraded: {problem}; each replica enforces budget ÷ {}",
                    self.replicas()
                );
            }
        }
    }

    fn set_degraded(&self, degraded: bool, problem: &str) {
        let was = self.0.degraded.swap(degraded, Ordering::AcqRel);
        if degraded && !was {
            self.seed_fallback();
        }
        self.0.metrics.degraded.set(i64::from(degraded));
        self.note(if degraded { problem } else { "" });
    }

    /// Sets the budgets: new scopes start, changed ones keep their state under the new rate,
    /// dropped ones go. A policy that is not a valid budget (0 or absurd) is refused and
    /// named in the result; its scope keeps its previous budget.
    pub fn configure(&self, policies: &[Policy]) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut buckets = self
            .0
            .buckets
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::new();
        for p in policies {
            let rate = match Rate::per_minute(u64::from(p.requests_per_minute), u64::from(p.burst))
            {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{}: {e}", p.scope));
                    if let Some(b) = buckets.remove(&p.scope) {
                        next.insert(p.scope.clone(), b);
                    }
                    continue;
                }
            };
            let bucket = match buckets.remove(&p.scope) {
                Some(b) => {
                    let mut s = b.shared();
                    if s.rate != rate {
                        s.rate = rate;
                        s.rpm = p.requests_per_minute;
                        s.key = self.key(p, rate);
                        s.remaining = rate.burst;
                        s.blocked_until = None;
                        s.share_per_s = f64::INFINITY;
                        s.fallback_tat_us = 0;
                    }
                    drop(s);
                    b
                }
                None => Arc::new(Bucket {
                    scope: p.scope.as_str().into(),
                    lease: Lease::new(0),
                    offered: AtomicU64::new(0),
                    waiting: AtomicU64::new(0),
                    decisions: self.decision_counters(&p.scope),
                    remaining: self
                        .0
                        .metrics
                        .remaining
                        .get_or_create(&vec![("scope", p.scope.clone())])
                        .clone(),
                    refilling: AtomicBool::new(false),
                    refilled: Notify::new(),
                    shared: Mutex::new(Shared {
                        rate,
                        rpm: p.requests_per_minute,
                        key: self.key(p, rate),
                        remaining: rate.burst,
                        reset_us: 0,
                        blocked_until: None,
                        granted_at: Instant::now(),
                        last_grant: 0,
                        offered_then: 0,
                        measured_at: Instant::now(),
                        demand_per_s: 0.0,
                        meter: fair::DemandMeter::new(0, self.now_us()),
                        share_per_s: f64::INFINITY,
                        fallback_tat_us: 0,
                    }),
                }),
            };
            next.insert(p.scope.clone(), bucket);
        }
        *buckets = next;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn decision_counters(&self, scope: &str) -> [Counter; 4] {
        let counter = |decision: &str, mode: &str| {
            self.0
                .metrics
                .decisions
                .get_or_create(&vec![
                    ("scope", scope.to_string()),
                    ("decision", decision.to_string()),
                    ("mode", mode.to_string()),
                ])
                .clone()
        };
        [
            counter("allowed", "shared"),
            counter("allowed", "fallback"),
            counter("limited", "shared"),
            counter("limited", "fallback"),
        ]
    }

    fn key(&self, p: &Policy, rate: Rate) -> String {
        format!(
            "{}:{}:{}:{}",
            self.0.prefix, p.scope, rate.interval_us, rate.burst
        )
    }

    fn bucket(&self, scope: &str) -> Option<Arc<Bucket>> {
        self.0
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
            .cloned()
    }

    /// Decides one request in `scope`; `None` when the scope has no budget.
    pub async fn check(&self, scope: &str) -> Option<Verdict> {
        let bucket = self.bucket(scope)?;
        bucket.offered.fetch_add(1, Ordering::Relaxed);
        let verdict = self.decide(&bucket).await;
        let index = usize::from(!verdict.allowed) * 2 + usize::from(verdict.fallback);
        bucket.decisions[index].inc();
        bucket
            .remaining
            .set(i64::try_from(verdict.remaining).unwrap_or(i64::MAX));
        Some(verdict)
    }

    async fn decide(&self, bucket: &Arc<Bucket>) -> Verdict {
        if self.degraded() {
            return self.fallback(bucket);
        }
        if bucket.lease.try_take() {
            self.refill_ahead(bucket);
            return self.shared_verdict(bucket, true, 0);
        }
        let blocked = bucket.shared().blocked_until;
        if let Some(until) = blocked {
            let now = Instant::now();
            if now < until {
                return self.shared_verdict(bucket, false, (until - now).as_micros() as u64);
            }
        }
        // Empty, not blocked: refills (each asking for at least the requests waiting), waited
        // for until REFILL_WAIT; then, if Redis is that slow, this request is decided by the
        // local share — never a wait on Redis, never a refusal the budget did not make.
        let deadline = tokio::time::Instant::now() + REFILL_WAIT;
        bucket.waiting.fetch_add(1, Ordering::AcqRel);
        let verdict = loop {
            let refilled = bucket.refilled.notified();
            self.spawn_refill(bucket);
            if tokio::time::timeout_at(deadline, refilled).await.is_err() {
                break None;
            }
            if bucket.lease.try_take() {
                break Some(self.shared_verdict(bucket, true, 0));
            }
            if self.degraded() {
                break None;
            }
            let blocked = bucket.shared().blocked_until;
            if let Some(until) = blocked {
                let now = Instant::now();
                if now < until {
                    let retry_us = (until - now).as_micros() as u64;
                    break Some(self.shared_verdict(bucket, false, retry_us));
                }
            }
        };
        bucket.waiting.fetch_sub(1, Ordering::AcqRel);
        verdict.unwrap_or_else(|| self.fallback(bucket))
    }

    fn shared_verdict(&self, bucket: &Bucket, allowed: bool, retry_us: u64) -> Verdict {
        let s = bucket.shared();
        Verdict {
            allowed,
            scope: Arc::clone(&bucket.scope),
            requests_per_minute: s.rpm,
            remaining: (s.remaining + bucket.lease.left()).min(s.rate.burst),
            reset_s: s.reset_us.div_ceil(1_000_000),
            retry_after_s: if allowed {
                0
            } else {
                retry_us.div_ceil(1_000_000).max(1)
            },
            fallback: false,
        }
    }

    /// Entering the fallback: each bucket's local share starts as full as this replica's part
    /// of the shared budget last seen (not full), so a switch never adds a fresh burst.
    fn seed_fallback(&self) {
        let now = self.now_us();
        let replicas = self.replicas();
        let buckets = self
            .0
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for b in buckets.values() {
            let mut s = b.shared();
            let share = s.rate.share(replicas);
            let mine = (s.remaining / replicas.max(1) + b.lease.left()).min(share.burst);
            s.fallback_tat_us =
                now.saturating_add((share.burst - mine).saturating_mul(share.interval_us));
        }
    }

    /// The local share of the budget (Redis unreachable).
    fn fallback(&self, bucket: &Bucket) -> Verdict {
        let now = self.now_us();
        let replicas = self.replicas();
        let mut s = bucket.shared();
        let rate = s.rate.share(replicas);
        let d = gcra::take(rate, s.fallback_tat_us, now, 1);
        if d.allowed {
            s.fallback_tat_us = d.tat_us;
        }
        Verdict {
            allowed: d.allowed,
            scope: Arc::clone(&bucket.scope),
            requests_per_minute: s.rpm,
            remaining: d.remaining,
            reset_s: d.reset_us.div_ceil(1_000_000),
            retry_after_s: if d.allowed {
                0
            } else {
                d.retry_after_us.div_ceil(1_000_000).max(1)
            },
            fallback: true,
        }
    }
}

mod redis_side;
#[cfg(test)]
mod tests;
