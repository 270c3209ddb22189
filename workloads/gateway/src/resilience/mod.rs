//! The gateway's resilience (issue 7): the guard every upstream call passes ([`guard`]: the
//! [`UpstreamGuard`] trait, [`Refusal`], [`Outcome`]), a [`breaker::Breaker`] per upstream
//! and a [`retry_budget::RetryBudget`] (both pure and unit-tested), and [`BreakerGuard`], the
//! gateway's [`UpstreamGuard`] that refuses calls to an upstream whose breaker is open (503
//! with `Retry-After`, at once, instead of every request waiting out a dead service's
//! deadline) and exports `storefront_circuit_state{service}` (0 closed, 1 half-open,
//! 2 open). Both are wired into every upstream call by the call pipeline
//! (`upstream::call`): the breaker admits each attempt and sees its outcome, and each retry
//! takes a token from the upstream's retry budget. This module imports nothing of
//! `upstream`.

pub mod breaker;
pub mod guard;
pub mod retry_budget;

use std::{collections::HashMap, sync::Mutex, time::Instant};

use axum::http::{HeaderMap, HeaderValue, header::RETRY_AFTER};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tonic::Code;

use breaker::{Breaker, BreakerConfig, State};
use guard::{Outcome, Refusal, UpstreamGuard};
use storefront_contracts::api::{ApiError, ErrorKind};

type Labels = Vec<(&'static str, String)>;

/// Whether a failed call counts against the upstream (its own refusals do not, and neither
/// does `RESOURCE_EXHAUSTED`: the service shedding or throttling a request is healthy).
pub fn is_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::Unknown
            | Code::DataLoss
    )
}

/// Breakers per upstream service: the gateway's [`UpstreamGuard`].
pub struct BreakerGuard {
    config: BreakerConfig,
    started: Instant,
    breakers: Mutex<HashMap<String, Breaker>>,
    states: Family<Labels, Gauge>,
}

impl BreakerGuard {
    /// A guard with `config`, its gauge registered in `registry`.
    pub fn new(config: BreakerConfig, registry: &mut Registry) -> Self {
        let states = Family::<Labels, Gauge>::default();
        registry.register(
            "storefront_circuit_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            states.clone(),
        );
        Self {
            config,
            started: Instant::now(),
            breakers: Mutex::new(HashMap::new()),
            states,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn with<T>(&self, service: &str, f: impl FnOnce(&mut Breaker, u64) -> T) -> T {
        let now = self.now_ms();
        let mut map = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaker = map
            .entry(service.to_string())
            .or_insert_with(|| Breaker::new(self.config));
        let out = f(breaker, now);
        self.states
            .get_or_create(&vec![("service", service.to_string())])
            .set(breaker.state(now).gauge());
        out
    }

    /// The state of `service`'s breaker now.
    pub fn state(&self, service: &str) -> State {
        self.with(service, |b, now| b.state(now))
    }
}

impl UpstreamGuard for BreakerGuard {
    fn admit(&self, service: &str) -> Result<(), Refusal> {
        let (allowed, retry_ms) = self.with(service, |b, now| (b.allow(now), b.retry_in_ms(now)));
        if allowed {
            return Ok(());
        }
        let mut headers = HeaderMap::new();
        let seconds = retry_ms.div_ceil(1_000).max(1);
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            headers.insert(RETRY_AFTER, v);
        }
        Err(Refusal {
            error: ApiError::new(
                ErrorKind::Unavailable,
                format!("the {service} service is failing; calls resume in {seconds} s"),
            ),
            headers: Some(Box::new(headers)),
        })
    }

    fn record(&self, service: &str, outcome: Outcome) {
        let ok = match outcome {
            Outcome::Answered => true,
            Outcome::Failed(code) => !is_failure(code),
        };
        self.with(service, |b, now| b.record(ok, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_that_keeps_failing_is_refused_with_retry_after() {
        let mut registry = Registry::default();
        let guard = BreakerGuard::new(BreakerConfig::default(), &mut registry);
        for _ in 0..5 {
            assert!(guard.admit("recommendations").is_ok());
            guard.record("recommendations", Outcome::Failed(Code::Unavailable));
        }
        let refusal = guard.admit("recommendations").expect_err("open");
        assert_eq!(refusal.error.kind, ErrorKind::Unavailable);
        let headers = refusal.headers.expect("headers");
        assert_eq!(
            headers.get(RETRY_AFTER).map(|v| v.to_str().ok()),
            Some(Some("2"))
        );
        // Other upstreams are not affected; the service's own refusals do not count.
        for _ in 0..10 {
            assert!(guard.admit("catalog").is_ok());
            guard.record("catalog", Outcome::Failed(Code::NotFound));
        }
        assert_eq!(guard.state("catalog"), State::Closed);
        // Nor does shedding: a flood of sign-ins at one account must not close auth to all.
        for _ in 0..10 {
            assert!(guard.admit("auth").is_ok());
            guard.record("auth", Outcome::Failed(Code::ResourceExhausted));
        }
        assert_eq!(guard.state("auth"), State::Closed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(r#"storefront_circuit_state{service="recommendations"} 2"#),
            "{text}"
        );
    }
}
