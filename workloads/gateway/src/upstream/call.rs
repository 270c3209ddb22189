//! One upstream call with retries: [`Caller::call`] runs an RPC, records every attempt's
//! outcome for the guard (breakers), and tries again only when it is safe and affordable:
//!
//! - **safe**: a request that never reached the service (the connection was refused or
//!   timed out — tonic's `ConnectError`) may always be sent again; a call marked
//!   [`Retry::Idempotent`] (reads, and writes the service de-duplicates) may also be retried
//!   after `UNAVAILABLE`. Nothing is retried after a deadline: the time is spent.
//! - **affordable**: each retry takes a token from the upstream's retry budget (a share of
//!   its requests, [`crate::resilience::retry_budget`]), and the breaker must still admit
//!   the upstream; so an outage is never multiplied by the attempt count.
//!
//! The whole call, retries included, ends by its deadline: each attempt runs with what is
//! left of it.
//!
//! Backoff is exponential with jitter (25–50 ms, then ×2 per attempt, at most
//! [`MAX_RETRIES`]), bridging the second or so a new endpoint takes to be programmed into
//! every node's service rules after its pod turned ready.

use std::{error::Error as _, future::Future, sync::Arc, time::Duration};

use rand::Rng;
use tonic::{Code, Status};

use super::{Authed, metrics::UpstreamMetrics, outcome};
use crate::resilience::{
    guard::{Outcome, Refusal, UpstreamGuard},
    retry_budget::RetryBudgets,
};

/// Retries after the first attempt, at most.
pub const MAX_RETRIES: u32 = 4;
/// The first backoff step (the jittered delay lies in `[step/2, step]`).
pub const FIRST_STEP: Duration = Duration::from_millis(50);

/// Which failures a call may be retried after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Only when the request was never sent (a refused or failed connection).
    IfNotSent,
    /// Also after `UNAVAILABLE`: the call reads, or the service de-duplicates it.
    Idempotent,
}

/// Whether `status` shows the request never reached the service.
pub fn not_sent(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a call that failed with `status` may be retried under `retry`.
pub fn retryable(status: &Status, retry: Retry) -> bool {
    not_sent(status) || (retry == Retry::Idempotent && status.code() == Code::Unavailable)
}

/// The delay before retry number `n` (1-based), `unit` in `[0, 1)` its jitter.
pub fn backoff(n: u32, unit: f64) -> Duration {
    let step = FIRST_STEP.saturating_mul(1 << n.clamp(1, 16).saturating_sub(1));
    step.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// The call pipeline's state, shared by every call: the guard (breakers), the retry budget
/// per upstream, the per-attempt metrics and the call deadline.
pub struct Caller {
    guard: Arc<dyn UpstreamGuard>,
    retries: RetryBudgets,
    metrics: UpstreamMetrics,
    deadline: Duration,
}

impl Caller {
    /// A pipeline that admits calls through `guard` and ends each by `deadline`.
    pub fn new(guard: Arc<dyn UpstreamGuard>, deadline: Duration) -> Self {
        Self {
            guard,
            retries: RetryBudgets::default(),
            metrics: UpstreamMetrics::default(),
            deadline,
        }
    }

    /// Whether the guard lets a call to `service` start now.
    pub fn admit(&self, service: &'static str) -> Result<(), Refusal> {
        self.guard.admit(service)
    }

    /// Registers the retry budgets' and the attempts' metrics in `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.retries.register(registry);
        self.metrics.register(registry);
    }

    /// Runs `rpc` on `channel` (a gateway's `client` or `shard` channel, so already
    /// admitted), retrying as the module says within the call deadline; returns the answer
    /// or the last failure.
    pub async fn call<T, F, Fut>(
        &self,
        service: &'static str,
        channel: Authed,
        retry: Retry,
        rpc: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Authed) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_within(service, channel, retry, self.deadline, rpc)
            .await
    }

    /// [`Caller::call`], retrying only while a retry can start before `within` (from the
    /// first attempt) is over: a supporting call keeps its short deadline, retries included.
    pub async fn call_within<T, F, Fut>(
        &self,
        service: &'static str,
        channel: Authed,
        retry: Retry,
        within: Duration,
        mut rpc: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Authed) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let retries = &self.retries;
        retries.deposit(service);
        let started = tokio::time::Instant::now();
        let mut sent = started;
        let mut attempt = 0;
        loop {
            // Each attempt gets what is left of `within`, so retries never stretch the call
            // past its deadline (an attempt's own timeout starts afresh: a first attempt
            // refused after 250 ms and a second that hangs would otherwise take 550 ms).
            let left = within.saturating_sub(started.elapsed());
            // Boxed: a tonic call is a large future; in place it would be copied into the
            // timeout, this call's future and every future around it (the handler's too).
            let attempt_rpc = Box::pin(rpc(channel.clone()));
            let answer = match tokio::time::timeout(left, attempt_rpc).await {
                Ok(answer) => answer,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "{service} did not answer within {} ms",
                    within.as_millis()
                ))),
            };
            self.metrics.record(
                service,
                answer.as_ref().map_or_else(Status::code, |_| Code::Ok),
                sent.elapsed().as_secs_f64(),
            );
            let status = match self.finish(service, answer) {
                Ok(answer) => return Ok(answer),
                Err(status) => status,
            };
            let delay = backoff(attempt + 1, rand::rng().random());
            if attempt < MAX_RETRIES
                && started.elapsed() + delay < within
                && retryable(&status, retry)
                && self.guard.admit(service).is_ok()
                && retries.try_retry(service)
            {
                attempt += 1;
                tracing::debug!(
                    service,
                    attempt,
                    "retrying after {}: {}",
                    status.code(),
                    status.message()
                );
                tokio::time::sleep(delay).await;
                sent = tokio::time::Instant::now();
            } else {
                return Err(status);
            }
        }
    }

    /// Records the outcome of a call for the guard and unwraps the answer.
    pub fn finish<T>(
        &self,
        service: &'static str,
        result: Result<tonic::Response<T>, Status>,
    ) -> Result<T, Status> {
        match result {
            Ok(r) => {
                self.guard.record(service, Outcome::Answered);
                Ok(r.into_inner())
            }
            Err(status) => {
                self.guard.record(service, outcome(&status));
                Err(status)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsent_requests_or_idempotent_unavailable_calls_are_retried() {
        let mut refused = Status::unavailable("tcp connect error");
        refused.set_source(std::sync::Arc::new(tonic::ConnectError(
            "connection refused".into(),
        )));
        assert!(not_sent(&refused));
        assert!(retryable(&refused, Retry::IfNotSent));
        assert!(retryable(&refused, Retry::Idempotent));

        let reset = Status::unavailable("connection reset");
        assert!(!not_sent(&reset), "the request may have been processed");
        assert!(!retryable(&reset, Retry::IfNotSent));
        assert!(retryable(&reset, Retry::Idempotent));

        for status in [
            Status::deadline_exceeded("late"),
            Status::invalid_argument("bad"),
            Status::internal("bug"),
        ] {
            assert!(!retryable(&status, Retry::Idempotent), "{status:?}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(25));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(4, 1.0), Duration::from_millis(400));
        let total: Duration = (1..=MAX_RETRIES).map(|n| backoff(n, 1.0)).sum();
        assert!(
            total < Duration::from_secs(1),
            "all retries fit well inside the 2 s call deadline: {total:?}"
        );
        assert_eq!(
            backoff(0, 0.5),
            backoff(1, 0.5),
            "never below the first step"
        );
        assert!(backoff(u32::MAX, 1.0) <= Duration::from_secs(3_600));
    }
}
