//! The request id at the edge: every public answer names its request in `X-Request-Id`, an
//! error body repeats it as `requestId`, and the id is the request task's
//! [`storefront_platform::request_id::CURRENT`] — so every upstream call carries it as
//! `x-request-id` metadata (`WithRequestId` on each channel, [`crate::upstream::Authed`])
//! and every log line about the request's failure has it as `request_id`.
//!
//! ```text
//!  client ─ X-Request-Id? ─▶ drop_invalid       an id that is not 1..=128 visible ASCII
//!                                                characters is ignored
//!                          ─▶ SetRequestId       (tower-http) the client's id, else a UUIDv4
//!                          ─▶ PropagateRequestId (tower-http) the id on every answer, 2xx too
//!                          ─▶ scope              the id as CURRENT while the request runs;
//!                                                an error body rendered again with requestId
//!                          ─▶ router (limits, handlers, upstream calls)
//! ```
//!
//! Error bodies are built in `storefront-contracts`, which holds no per-request state:
//! [`ApiError`](storefront_contracts::api::ApiError) keeps its [`ErrorBody`] as a response
//! extension, and `scope` renders it again with the id (error answers only; a 2xx gets the
//! header and nothing else).
//!
//! Cost, measured in process (a route answering a fixed body, release build, medians of 11
//! alternating rounds): the four layers as four `Router::layer` calls with axum's `from_fn`
//! and tower-http's `MakeRequestUuid` added about 2.6 µs per request (each `Router::layer`
//! boxes every route again; `from_fn` boxes its inner service and future per request;
//! `MakeRequestUuid` asks the OS for randomness, a system call, per id). As built here — one
//! stack, `scope` a plain tower service, ids from the thread's random generator — about
//! 0.8 µs, some 4% of the ~20 µs a proxied request costs (`cargo bench -p
//! storefront-workloads --bench request_id` prints the figures).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderName, HeaderValue},
    response::Response,
};
use pin_project_lite::pin_project;
use rand::Rng;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use storefront_contracts::api::{ErrorBody, REQUEST_ID_HEADER, valid_request_id};
use storefront_platform::request_id::{CURRENT, Id};

/// Drops a client's `X-Request-Id` that is not a valid id, so that one is made instead.
fn drop_invalid(mut request: Request) -> Request {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let invalid = request
        .headers()
        .get_all(&header)
        .iter()
        .any(|v| !valid_request_id(v.as_bytes()));
    if invalid {
        request.headers_mut().remove(&header);
    }
    request
}

/// Makes a request's id: a UUIDv4 (as tower-http's `MakeRequestUuid`), its 122 random bits
/// from the thread's generator rather than one system call per id.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let uuid = uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid();
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// The innermost layer: the rest of the request runs with its id as [`CURRENT`], and an
/// error body is rendered again with `requestId`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScopeLayer;

impl<S> Layer<S> for ScopeLayer {
    type Service = Scope<S>;

    fn layer(&self, inner: S) -> Scope<S> {
        Scope(inner)
    }
}

/// The service of [`ScopeLayer`].
#[derive(Clone, Debug)]
pub struct Scope<S>(S);

impl<S, B> Service<axum::http::Request<B>> for Scope<S>
where
    S: Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ScopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|r| Id::new(r.header_value().as_bytes()));
        ScopeFuture {
            inner: CURRENT.scope(id.clone(), self.0.call(request)),
            id,
        }
    }
}

pin_project! {
    /// The future of [`Scope`].
    pub struct ScopeFuture<F> {
        #[pin]
        inner: TaskLocalFuture<Option<Id>, F>,
        id: Option<Id>,
    }
}

impl<F, E> Future for ScopeFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(with_request_id(response, this.id.take())))
    }
}

/// `response` with `requestId` in its error body, when it has one.
fn with_request_id(mut response: Response, id: Option<Id>) -> Response {
    if let Some(mut body) = response.extensions_mut().remove::<ErrorBody>() {
        body.error.request_id = id.map(|id| id.as_str().to_string());
        if let Ok(json) = serde_json::to_vec(&body) {
            *response.body_mut() = Body::from(json);
        }
    }
    response
}

/// `router` with request ids (see the module): the outermost layers of the public API, as
/// one stack (each `Router::layer` call boxes every route again).
pub fn layer(router: Router) -> Router {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_invalid)
            .layer(SetRequestIdLayer::new(header.clone(), MakeId))
            .layer(PropagateRequestIdLayer::new(header))
            .layer(ScopeLayer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_are_distinct_uuids_v4() {
        let request = axum::http::Request::new(());
        let mut make = MakeId;
        let mut id = || {
            make.make_request_id(&request)
                .map(|id| id.header_value().to_str().unwrap_or_default().to_string())
                .unwrap_or_default()
        };
        let (a, b) = (id(), id());
        assert_ne!(a, b);
        for id in [a, b] {
            let uuid = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn only_invalid_ids_are_dropped() {
        let request = |ids: &[&str]| {
            let mut r = Request::new(Body::empty());
            for id in ids {
                r.headers_mut()
                    .append(REQUEST_ID_HEADER, id.parse().expect("header"));
            }
            drop_invalid(r)
        };
        let kept = request(&["r-1"]);
        assert_eq!(
            kept.headers().get(REQUEST_ID_HEADER).map(|v| v.as_bytes()),
            Some(&b"r-1"[..])
        );
        for bad in [&["a b"][..], &["r-1", "a b"], &[""]] {
            assert!(
                request(bad).headers().get(REQUEST_ID_HEADER).is_none(),
                "{bad:?}"
            );
        }
    }
}
