//! The guard around every upstream call: [`UpstreamGuard`] admits (or refuses, with a
//! [`Refusal`]) each call before it is made and sees how each attempt ended ([`Outcome`]).
//! The gateway runs with [`super::BreakerGuard`] (a breaker per upstream); [`AllowAll`] is
//! for tests and tools. These types live here, in `resilience`, so that the upstream
//! pipeline (which calls the guard) and the breakers (which implement it) both see them
//! without `resilience` importing `upstream`.

use axum::{
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use tonic::Code;

use storefront_contracts::api::ApiError;

/// A refused request: the public error and the headers that go with it (a 429's
/// `Retry-After`, `RateLimit-Policy` and `RateLimit`). Handlers answer with it, so anything
/// that refuses (the guard, input checks via `From<ApiError>`) keeps its headers.
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    /// Boxed: most refusals carry none, and results stay small.
    pub headers: Option<Box<HeaderMap>>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            headers: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
        response
    }
}

/// How an upstream call ended, for the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (including the service's own refusals: not found, invalid argument).
    Answered,
    /// The service was unreachable, overloaded or out of time.
    Failed(Code),
}

/// Admission and outcomes of upstream calls: called before every call (and before every
/// retry) and after every attempt. The gateway's is [`super::BreakerGuard`]; the route
/// budgets (429) are enforced at the door, before the handler (`http::limits`).
pub trait UpstreamGuard: Send + Sync + 'static {
    /// Before a call to `service`: an error refuses it without calling.
    fn admit(&self, service: &str) -> Result<(), Refusal>;
    /// After a call to `service`.
    fn record(&self, service: &str, outcome: Outcome);
}

/// Admits every call and records nothing (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl UpstreamGuard for AllowAll {
    fn admit(&self, _service: &str) -> Result<(), Refusal> {
        Ok(())
    }
    fn record(&self, _service: &str, _outcome: Outcome) {}
}
