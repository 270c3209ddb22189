//! The cap on concurrent password hashes. Each argon2id hash or verification holds 19 MiB
//! for tens of milliseconds on one core, so the number running at once is the pod's memory
//! and CPU: a burst of sign-ins with no cap takes the pod down. The gate bounds it:
//!
//! ```text
//!  sign-in / sign-up ─▶ admit ─┬─ a slot free ──────────────────────────▶ permit
//!                              ├─ all busy, < queue waiting ─ wait ≤ W ─┬▶ permit
//!                              │                                        └▶ Busy (RESOURCE_EXHAUSTED)
//!                              └─ all busy, queue full ───────────────────▶ Busy, at once
//!  permit ─▶ (user lookup) ─▶ HashPermit::run(hash) on a blocking thread ─▶ slot freed when
//!                                                                            the hash ends
//! ```
//!
//! - **Slots** ([`HashLimits::concurrency`]): one per core by default
//!   ([`std::thread::available_parallelism`], which honours the container's CPU quota): more
//!   hashes than cores run no faster, they only hold more memory.
//! - **Queue** ([`HashLimits::queue`], [`QUEUE_PER_SLOT`] per slot by default) and **wait**
//!   ([`MAX_WAIT`]): a short burst waits for a slot instead of failing, but only as many as
//!   the slots drain well inside the gateway's 2 s call deadline (eight hashes per slot at
//!   ~50 ms each is ~0.4 s), and never longer than [`MAX_WAIT`]. Past that the request is
//!   refused at once: a waiting request holds no hash memory, but waiting past the caller's
//!   deadline is work for nobody. The refusal carries a retry hint of [`RETRY_AFTER`]: by
//!   then the queue has drained.
//! - The permit is moved into the blocking task, so a caller that gives up (its deadline, a
//!   closed connection) cannot free a slot while its hash still runs.
//!
//! Metrics ([`HashMetrics`]): `storefront_password_hashes_in_flight`,
//! `storefront_password_hash_waiting` and `storefront_password_hash_refused_total`; the peak of
//! hashes in flight is kept for tests ([`HashGate::peak`]).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests that may wait per slot, by default.
pub const QUEUE_PER_SLOT: usize = 8;
/// The longest a request waits for a slot before it is refused.
pub const MAX_WAIT: Duration = Duration::from_secs(1);
/// The retry hint of a refusal: the queue drains within [`MAX_WAIT`].
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How many hashes run at once and how many requests may wait for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashes running at once (at least 1).
    pub concurrency: usize,
    /// Requests waiting for a slot; past it, refused at once (0: never wait).
    pub queue: usize,
    /// The longest wait for a slot.
    pub wait: Duration,
}

impl HashLimits {
    /// One slot per core (per CPU of the container's quota), [`QUEUE_PER_SLOT`] waiting per
    /// slot, [`MAX_WAIT`].
    pub fn per_core() -> Self {
        Self::with_concurrency(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// `concurrency` slots (at least 1) with the default queue and wait.
    pub fn with_concurrency(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            concurrency,
            queue: concurrency.saturating_mul(QUEUE_PER_SLOT),
            wait: MAX_WAIT,
        }
    }
}

/// The gate's metrics. Cheap to clone (the series are shared); [`Default`] is unregistered
/// (tests, tools).
#[derive(Clone, Default)]
pub struct HashMetrics {
    in_flight: Gauge,
    waiting: Gauge,
    refused: Counter,
    peak: Arc<AtomicI64>,
}

impl HashMetrics {
    /// The gate's series, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "storefront_password_hashes_in_flight",
            "Password hashes and verifications running now (at most the gate's concurrency)",
            m.in_flight.clone(),
        );
        registry.register(
            "storefront_password_hash_waiting",
            "Sign-ins and sign-ups waiting for a password hashing slot",
            m.waiting.clone(),
        );
        registry.register(
            "storefront_password_hash_refused",
            "Sign-ins and sign-ups refused because every hashing slot was busy",
            m.refused.clone(),
        );
        m
    }
}

/// A refusal: every slot busy and no room to wait (or the wait ran out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    /// When to try again.
    pub retry_after: Duration,
    /// The gate's slots, for the message.
    pub concurrency: usize,
}

impl Busy {
    /// The retry hint in whole seconds (at least 1).
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} password hashing slots are busy; retry in {} s",
            self.concurrency,
            self.retry_after_seconds()
        )
    }
}

impl std::error::Error for Busy {}

/// The right to run one hash: hold it from admission to the end of the hash.
pub struct HashPermit {
    permit: OwnedSemaphorePermit,
    metrics: HashMetrics,
}

/// A running hash: leaves the in-flight gauge, then frees its slot (the fields drop after
/// `drop`), when the hash ends, even if it panicked. In that order, the next hash cannot be
/// counted before this one is not.
struct InFlight {
    metrics: HashMetrics,
    _slot: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

impl HashPermit {
    /// Runs `work` (a hash) on a blocking thread; the slot is freed when it ends, whether
    /// or not the caller still waits for it.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let Self { permit, metrics } = self;
        tokio::task::spawn_blocking(move || {
            let running = metrics.in_flight.inc() + 1;
            metrics.peak.fetch_max(running, Ordering::Relaxed);
            let _running = InFlight {
                metrics,
                _slot: permit,
            };
            work()
        })
        .await
    }
}

/// Leaves the waiting count when a wait ends, however it ends (permit, timeout, cancel).
struct Waiting<'a>(&'a HashGate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.waiting.dec();
    }
}

/// The gate (module docs).
pub struct HashGate {
    slots: Arc<Semaphore>,
    limits: HashLimits,
    waiting: AtomicUsize,
    metrics: HashMetrics,
}

impl HashGate {
    /// A gate with `limits` (a concurrency of 0 is taken as 1), recording into `metrics`.
    pub fn new(limits: HashLimits, metrics: HashMetrics) -> Self {
        let limits = HashLimits {
            concurrency: limits.concurrency.max(1),
            ..limits
        };
        Self {
            slots: Arc::new(Semaphore::new(limits.concurrency)),
            limits,
            waiting: AtomicUsize::new(0),
            metrics,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> HashLimits {
        self.limits
    }

    /// A slot: at once if one is free, after a bounded wait if the queue has room, else
    /// [`Busy`].
    pub async fn admit(&self) -> Result<HashPermit, Busy> {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => self.wait().await,
        };
        match permit {
            Some(permit) => Ok(HashPermit {
                permit,
                metrics: self.metrics.clone(),
            }),
            None => {
                self.metrics.refused.inc();
                Err(Busy {
                    retry_after: RETRY_AFTER,
                    concurrency: self.limits.concurrency,
                })
            }
        }
    }

    /// Waits in the queue for a slot, if the queue has room, for at most the limit's wait.
    async fn wait(&self) -> Option<OwnedSemaphorePermit> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.metrics.waiting.inc();
        let _waiting = Waiting(self);
        tokio::time::timeout(self.limits.wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Hashes running now.
    pub fn in_flight(&self) -> i64 {
        self.metrics.in_flight.get()
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The most hashes that ever ran at once.
    pub fn peak(&self) -> i64 {
        self.metrics.peak.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.metrics.refused.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(concurrency: usize, queue: usize, wait: Duration) -> Arc<HashGate> {
        Arc::new(HashGate::new(
            HashLimits {
                concurrency,
                queue,
                wait,
            },
            HashMetrics::default(),
        ))
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_a_freed_slot_goes_to_a_waiter() {
        let gate = gate(2, 3, Duration::from_secs(60));
        let held = [
            gate.admit().await.expect("slot 1"),
            gate.admit().await.expect("slot 2"),
        ];
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move { gate.admit().await.map(drop) })
            })
            .collect();
        while gate.waiting() < 3 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(Duration::from_millis(100), gate.admit())
            .await
            .expect("refused at once, not after a wait");
        let Err(busy) = refused else {
            panic!("a fourth waiter was admitted")
        };
        assert_eq!(busy.retry_after_seconds(), 1);
        assert_eq!(
            busy.to_string(),
            "all 2 password hashing slots are busy; retry in 1 s"
        );
        assert_eq!(gate.refused(), 1);
        drop(held);
        for w in waiters {
            assert_eq!(w.await.expect("joins"), Ok(()), "every waiter got a slot");
        }
        assert_eq!((gate.waiting(), gate.refused()), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_bounded_and_no_queue_means_no_wait() {
        let gate_ = gate(1, 1, Duration::from_millis(500));
        let _held = gate_.admit().await.expect("the slot");
        let started = tokio::time::Instant::now();
        assert!(gate_.admit().await.is_err(), "the slot never frees");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!((gate_.waiting(), gate_.refused()), (0, 1));

        let no_queue = gate(1, 0, Duration::from_secs(60));
        let _held = no_queue.admit().await.expect("the slot");
        let started = tokio::time::Instant::now();
        assert!(no_queue.admit().await.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_hashes_run_than_slots() {
        let gate = gate(2, 64, Duration::from_secs(60));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    let permit = gate.admit().await.map_err(|b| b.to_string())?;
                    permit
                        .run(|| std::thread::sleep(Duration::from_millis(10)))
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("joins"), Ok(()));
        }
        // 40 hashes of 10 ms over 2 slots overlap many times: the peak is the cap, not 1
        // (the gauge counts) and not more (the gate holds).
        assert_eq!(gate.peak(), 2);
        assert_eq!(gate.in_flight(), 0);
        assert_eq!(gate.refused(), 0);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_keeps_its_slot_until_the_hash_ends() {
        let gate = gate(1, 0, Duration::ZERO);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let permit = gate.admit().await.expect("the slot");
        let hash = tokio::spawn(permit.run(move || {
            let _ = released.recv();
        }));
        while gate.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        hash.abort();
        let _ = hash.await;
        assert!(
            gate.admit().await.is_err(),
            "the abandoned hash still runs and holds its slot"
        );
        release.send(()).expect("the hash waits");
        loop {
            if let Ok(p) = gate.admit().await {
                drop(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(gate.in_flight(), 0);
    }

    #[test]
    fn per_core_limits_have_a_slot_and_a_queue() {
        let limits = HashLimits::per_core();
        assert!(limits.concurrency >= 1);
        assert_eq!(limits.queue, limits.concurrency * QUEUE_PER_SLOT);
        assert_eq!(HashLimits::with_concurrency(0).concurrency, 1);
    }
}
