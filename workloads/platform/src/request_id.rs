//! The public request's id inside the shop: the gateway names every request
//! (`X-Request-Id`, see `storefront_contracts::api`) and sends the id with each call as
//! `x-request-id` metadata ([`REQUEST_ID_HEADER`]), so one id from a shopper's report finds
//! the log lines of every service the request reached.
//!
//! ```text
//!  gateway: CURRENT = the request's id ──▶ WithRequestId (client interceptor)
//!             ── x-request-id metadata ──▶ service: RequestIdLayer (on every grpc::serve)
//!                                            CURRENT = the call's id
//!                                          adapter: hidden(code, "orders storage is unavailable", sqlx error)
//!                                            → Status(code, the short words) + a log line with request_id
//! ```
//!
//! The id lives in a task-local ([`CURRENT`]) for the task that serves the request, so log
//! lines and error paths read it ([`current`], [`for_log`]) without a parameter; a spawned
//! task takes it along with [`inherit`].
//!
//! [`hidden`] is the one way an adapter answers a failure of its own machinery (its database,
//! index or hasher): the driver's words go to the log, never into a `Status` that can travel
//! to a client.

use std::{
    fmt::Display,
    future::Future,
    task::{Context, Poll},
};

use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
};

pub use storefront_contracts::api::REQUEST_ID_HEADER;
use storefront_contracts::api::valid_request_id;

/// A checked request id: valid as a header, as gRPC metadata and in a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id(MetadataValue<Ascii>);

impl Id {
    /// `value` as an id, when it is one (`storefront_contracts::api::valid_request_id`).
    pub fn new(value: &[u8]) -> Option<Self> {
        if !valid_request_id(value) {
            return None;
        }
        MetadataValue::try_from(value).ok().map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    /// The id of the request the current task serves.
    pub static CURRENT: Option<Id>;
}

/// The id of the request the current task serves, if any.
pub fn current() -> Option<Id> {
    CURRENT.try_with(Option::clone).ok().flatten()
}

/// The current id for a log line's `request_id` field (`-` outside a request).
pub fn for_log() -> String {
    current().map_or_else(|| "-".to_string(), |id| id.as_str().to_string())
}

/// `future` with the current request's id, for a task spawned on its behalf (task-locals do
/// not cross `tokio::spawn`).
pub fn inherit<F: Future>(future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(current(), future)
}

/// A failure of the service's own machinery as the `Status` its caller gets: `code` with
/// `public`, a short message that names what failed in stable words ("the orders store is
/// unavailable"); `cause` (a driver's error, with its hosts, users and queries) is logged here
/// with the request id, at warn for `UNAVAILABLE` (it passes) and at error otherwise.
pub fn hidden(code: Code, public: &'static str, cause: impl Display) -> Status {
    let request_id = for_log();
    if code == Code::Unavailable {
        tracing::warn!(request_id, ?code, "{public}: {cause}");
    } else {
        tracing::error!(request_id, ?code, "{public}: {cause}");
    }
    Status::new(code, public)
}

/// A gRPC client interceptor: `inner`'s work, then the current request's id as
/// `x-request-id` metadata (nothing outside a request).
#[derive(Clone)]
pub struct WithRequestId<I>(pub I);

impl<I: Interceptor> Interceptor for WithRequestId<I> {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let mut request = self.0.call(request)?;
        if let Some(id) = current() {
            request.metadata_mut().insert(REQUEST_ID_HEADER, id.0);
        }
        Ok(request)
    }
}

/// A tower layer for tonic servers: each call runs with its `x-request-id` metadata (when
/// valid) as [`CURRENT`]. [`crate::grpc::serve`] puts it on every service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = WithCurrentId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithCurrentId(inner)
    }
}

/// The service [`RequestIdLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct WithCurrentId<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for WithCurrentId<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<Option<Id>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| Id::new(v.as_bytes()));
        CURRENT.scope(id, self.0.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_layer::Layer;
    use tower_service::Service;

    #[test]
    fn ids_are_checked_and_read_back() {
        let id = Id::new(b"abc-123").expect("valid");
        assert_eq!(
            (id.as_str(), id.to_string().as_str()),
            ("abc-123", "abc-123")
        );
        assert_eq!(Id::new(b"a b"), None);
        assert_eq!(Id::new(&[b'x'; 129]), None);
    }

    #[tokio::test]
    async fn the_current_id_is_the_scopes_and_crosses_spawn_only_when_inherited() {
        assert_eq!((current(), for_log()), (None, "-".to_string()));
        let id = Id::new(b"r-1");
        let (inside, inherited, lost) = CURRENT
            .scope(id.clone(), async {
                let inherited = tokio::spawn(inherit(async { current() }));
                let lost = tokio::spawn(async { current() });
                (
                    current(),
                    inherited.await.expect("joins"),
                    lost.await.expect("joins"),
                )
            })
            .await;
        assert_eq!((inside, inherited, lost), (id.clone(), id, None));
    }

    struct Pass;
    impl Interceptor for Pass {
        fn call(&mut self, r: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
            Ok(r)
        }
    }

    #[test]
    fn the_interceptor_sends_the_current_id_only_inside_a_request() {
        let mut attach = WithRequestId(Pass);
        let outside = attach.call(tonic::Request::new(())).expect("passes");
        assert!(outside.metadata().get(REQUEST_ID_HEADER).is_none());
        let inside = CURRENT
            .sync_scope(Id::new(b"r-2"), || attach.call(tonic::Request::new(())))
            .expect("passes");
        let sent = inside.metadata().get(REQUEST_ID_HEADER);
        assert_eq!(sent.and_then(|v| v.to_str().ok()), Some("r-2"));
    }

    /// Answers with the current id as its response.
    struct Echo;
    impl Service<http::Request<()>> for Echo {
        type Response = Option<Id>;
        type Error = std::convert::Infallible;
        type Future = std::pin::Pin<
            Box<dyn Future<Output = Result<Option<Id>, std::convert::Infallible>> + Send>,
        >;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(async { Ok(current()) })
        }
    }

    #[tokio::test]
    async fn a_server_call_runs_with_its_valid_metadata_id() {
        let mut server = RequestIdLayer.layer(Echo);
        let call = |id: Option<&str>| {
            let mut request = http::Request::new(());
            if let Some(id) = id {
                request
                    .headers_mut()
                    .insert(REQUEST_ID_HEADER, id.parse().expect("header"));
            }
            request
        };
        let got = server.call(call(Some("r-3"))).await.expect("answers");
        assert_eq!(got.as_ref().map(Id::as_str), Some("r-3"));
        assert_eq!(server.call(call(None)).await.expect("answers"), None);
        let bad = server.call(call(Some("has space"))).await.expect("answers");
        assert_eq!(bad, None, "an invalid id is not believed");
    }

    #[test]
    fn a_hidden_failure_keeps_its_cause_out_of_the_status() {
        let cause =
            "error returned from database: password authentication failed for user \"orders\"";
        let status = hidden(Code::Unavailable, "the orders store is unavailable", cause);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "the orders store is unavailable");
    }
}
