//! The gateway's gRPC channel to one upstream address: one HTTP/2 connection (the `h2`
//! crate), with every call opened, sent and awaited from the caller's own task; tonic's
//! generated clients and codecs run on top of it unchanged ([`H2Channel`] is a
//! `tower::Service` over `http::Request<tonic::body::Body>`).
//!
//! Why not tonic's `Channel`: it puts a buffer (a queue and a worker task) in front of
//! hyper's HTTP/2 client, which hands each call to the connection task and spawns one more
//! task per call to await its answer — four tasks and three hand-offs per call, about a
//! third of the gateway's CPU per proxied request under load (perf, docs/benchmarks.md
//! "Gateway"). Here a call costs the handler's task and the connection's I/O task only.
//!
//! What it keeps of tonic's channel:
//! - lazy connection: the gateway starts, and answers 503 for a service, while an upstream
//!   is down; concurrent callers share one connection attempt, and its failure (a blackholed
//!   address costs the callers one connect timeout, not one each); a connect timeout;
//!   `TCP_NODELAY`;
//! - a failed connection is replaced on the next call; a call that could not be sent (no
//!   connection, the connection closed or going away before the stream opened, the stream
//!   refused) fails with [`tonic::ConnectError`] in its source chain, which the gateway's
//!   retry policy reads as "never sent" ([`crate::upstream::call::not_sent`]); a connection that
//!   breaks mid-call is `UNAVAILABLE`;
//! - mutual TLS when it is installed for the process ([`storefront_platform::grpc::client_rustls`]),
//!   ALPN `h2`;
//! - HTTP/2 flow-control windows as hyper sets them (2 MiB per stream, 5 MiB per
//!   connection); a dropped call resets its stream (`RST_STREAM(CANCEL)`).
//!
//! What it adds: a connection that stops answering is found and replaced ([`Keepalive`]).
//! A peer that vanished without a FIN or a reset (its node lost power, a network
//! partition) leaves the socket open for the kernel's 15 minutes of retransmissions, and
//! every call on it would run into its deadline all that time, even after Kubernetes has
//! replaced the pod behind the Service. So the connection is pinged every
//! [`Keepalive::every`], and at once when a call is abandoned before its answer (a deadline
//! ran out); no `PING` answer within [`Keepalive::within`] closes it, and the next call
//! connects again.
//!
//! Request bodies are sent whole, so unary and server-streaming calls work (every call the
//! gateway makes is unary); a client-streaming call would wait for its whole stream.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{
    Request, Response, Uri,
    uri::{Authority, PathAndQuery, Scheme},
};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::Status;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The receive window per stream (hyper's default, which tonic's channel uses).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// The receive window of the connection (hyper's default).
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// How a connection is checked for life: an HTTP/2 `PING` every `every`, and right after a
/// call is abandoned before its answer; no answer within `within` closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub every: Duration,
    pub within: Duration,
}

impl Default for Keepalive {
    /// A `PING` every 10 s (one frame each way per upstream connection, nothing under
    /// load); 3 s for its answer, which a server's connection task sends before any
    /// application work, so only a dead or partitioned peer misses it.
    fn default() -> Self {
        Self {
            every: Duration::from_secs(10),
            within: Duration::from_secs(3),
        }
    }
}

/// A cheap-to-clone gRPC channel to one address (clones share the connection).
#[derive(Clone)]
pub struct H2Channel(Arc<Shared>);

struct Shared {
    /// `host:port`, resolved again on every (re)connection.
    address: String,
    scheme: Scheme,
    authority: Authority,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    connect_timeout: Duration,
    keepalive: Keepalive,
    current: Mutex<Option<Live>>,
    /// Held while connecting, so concurrent callers share one attempt; it keeps the last
    /// attempt's error, which the callers that waited for it get.
    connecting: tokio::sync::Mutex<Option<String>>,
    /// The count of finished attempts, readable without waiting for the lock.
    attempts: std::sync::atomic::AtomicU64,
    /// When the last attempt failed (`None` once one succeeds).
    failed_at: Mutex<Option<std::time::Instant>>,
}

/// An open connection: its request handle, whether its I/O task has ended, and the
/// signal that asks its keepalive for a `PING` now.
#[derive(Clone)]
struct Live {
    send: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
    probe: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for H2Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Channel")
            .field("address", &self.0.address)
            .field("tls", &self.0.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The error of a call that never reached the service.
fn not_sent(message: String) -> BoxError {
    Box::new(tonic::ConnectError(message.into()))
}

impl H2Channel {
    /// A channel to `address` (`host:port`, or a `http://` / `https://` URL), connecting on
    /// the first call. TLS is used when `tls` is given (then an `http://` URL is refused).
    pub fn lazy(
        address: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        Self::lazy_with(address, tls, connect_timeout, Keepalive::default())
    }

    /// [`H2Channel::lazy`] with its connections checked by `keepalive`.
    pub fn lazy_with(
        address: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
        keepalive: Keepalive,
    ) -> Result<Self, String> {
        Self::build(address, None, tls, connect_timeout, keepalive)
    }

    /// A channel to one pod of a service: connects to `pod`, and speaks to it as `address`
    /// (the service's name: the `:authority` and the name its TLS certificate must carry).
    pub fn lazy_at(
        pod: std::net::SocketAddr,
        address: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
        keepalive: Keepalive,
    ) -> Result<Self, String> {
        Self::build(address, Some(pod), tls, connect_timeout, keepalive)
    }

    fn build(
        address: &str,
        pod: Option<std::net::SocketAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
        keepalive: Keepalive,
    ) -> Result<Self, String> {
        let bad =
            |e: &dyn std::fmt::Display| format!("failed to use upstream address {address:?}: {e}");
        let (explicit, rest) = match address.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, address),
        };
        let authority: Authority = rest.trim_end_matches('/').parse().map_err(|e| bad(&e))?;
        let port = authority
            .port_u16()
            .ok_or_else(|| bad(&"the address has no port"))?;
        let scheme = match (explicit, tls.is_some()) {
            (None | Some("https"), true) => Scheme::HTTPS,
            (None | Some("http"), false) => Scheme::HTTP,
            (Some("http"), true) => return Err(bad(&"TLS is installed but the URL is http://")),
            (Some("https"), false) => {
                return Err(bad(
                    &"an https:// upstream needs TLS, which is not installed",
                ));
            }
            (Some(other), _) => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| bad(&e))?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
        };
        Ok(Self(Arc::new(Shared {
            address: pod.map_or_else(|| format!("{}:{port}", authority.host()), |p| p.to_string()),
            scheme,
            authority,
            tls,
            connect_timeout,
            keepalive,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
            attempts: std::sync::atomic::AtomicU64::new(0),
            failed_at: Mutex::new(None),
        })))
    }

    /// Whether the last connection attempt failed less than `within` ago (a balancer skips
    /// such a pod for a while rather than spend a retry on it).
    pub fn failed_within(&self, within: Duration) -> bool {
        self.0
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < within)
    }

    /// The open connection, if it is still up.
    fn live(&self) -> Option<Live> {
        self.0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|l| !l.closed.load(Ordering::Acquire))
            .cloned()
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Live, BoxError> {
        match self.live() {
            Some(live) => Ok(live),
            // Boxed: connecting (TCP, TLS, the HTTP/2 handshake) is a large future, and
            // every call's future would otherwise carry its space and copy it around.
            None => Box::pin(self.reconnect()).await,
        }
    }

    /// A new connection, or the one another caller just made.
    async fn reconnect(&self) -> Result<Live, BoxError> {
        let seen = self.0.attempts.load(Ordering::Acquire);
        let mut failed = self.0.connecting.lock().await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        if self.0.attempts.load(Ordering::Acquire) != seen
            && let Some(failed) = failed.as_ref()
        {
            // An attempt failed while this call waited for it: its error, not another wait.
            return Err(not_sent(failed.clone()));
        }
        let connected = self.connect().await;
        *failed = connected.as_ref().err().cloned();
        *self
            .0
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            connected.is_err().then(std::time::Instant::now);
        self.0.attempts.fetch_add(1, Ordering::AcqRel);
        let live = connected.map_err(not_sent)?;
        *self
            .0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(live.clone());
        Ok(live)
    }

    async fn connect(&self) -> Result<Live, String> {
        let address = &self.0.address;
        let within = self.0.connect_timeout;
        let late = || {
            format!(
                "connecting to {address} timed out after {} ms",
                within.as_millis()
            )
        };
        let tcp = tokio::time::timeout(within, TcpStream::connect(address))
            .await
            .map_err(|_| late())?
            .map_err(|e| format!("failed to connect to {address}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("failed to set TCP_NODELAY to {address}: {e}"))?;
        match &self.0.tls {
            None => handshake(tcp, address, self.0.keepalive).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(within, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| late())?
                    .map_err(|e| format!("TLS with {address} failed: {e}"))?;
                handshake(tls, address, self.0.keepalive).await
            }
        }
    }

    /// The request's URI with this channel's scheme and authority (tonic's clients give a
    /// path only).
    fn uri(&self, uri: &Uri) -> Result<Uri, BoxError> {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Uri::builder()
            .scheme(self.0.scheme.clone())
            .authority(self.0.authority.clone())
            .path_and_query(path)
            .build()?)
    }

    /// One call (what [`tower_service::Service::call`] runs, boxed).
    pub(crate) async fn send(
        self,
        request: Request<tonic::body::Body>,
    ) -> Result<Response<RecvBody>, BoxError> {
        let (mut parts, body) = request.into_parts();
        let message = body.collect().await?.to_bytes();
        parts.uri = self.uri(&parts.uri)?;
        let address = &self.0.address;
        // A connection found closed is replaced once within the call.
        let mut tries = 0;
        let (live, mut send) = loop {
            tries += 1;
            let live = self.connection().await?;
            match live.send.clone().ready().await {
                Ok(send) => break (live, send),
                Err(e) => {
                    live.closed.store(true, Ordering::Release);
                    if tries == 2 {
                        return Err(not_sent(format!("the connection to {address} closed: {e}")));
                    }
                }
            }
        };
        let eos = message.is_empty();
        let (answer, mut stream) = send
            .send_request(Request::from_parts(parts, ()), eos)
            .map_err(|e| {
                live.closed.store(true, Ordering::Release);
                not_sent(format!("failed to open a stream to {address}: {e}"))
            })?;
        // From here until the answer's end, abandoning the call asks for a `PING`.
        let probe = Probe(Some(live.probe));
        if !eos {
            stream
                .send_data(message, true)
                .map_err(|e| broken(address, e))?;
        }
        let answer = answer.await.map_err(|e| broken(address, e))?;
        Ok(answer.map(|recv| RecvBody {
            recv,
            data_done: false,
            probe,
        }))
    }
}

/// The error of a call whose stream or connection failed after the request went out.
fn broken(address: &str, e: h2::Error) -> BoxError {
    if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        // The server refused the stream before processing it (RFC 9113 §8.7).
        return not_sent(format!("{address} refused the stream: {e}"));
    }
    if e.is_io() || e.is_go_away() {
        return Box::new(Status::unavailable(format!(
            "the connection to {address} failed: {e}"
        )));
    }
    // A reset stream: tonic maps its reason to a gRPC code.
    Box::new(e)
}

/// The HTTP/2 handshake on `io`, and the connection's I/O task, which ends when the
/// connection does or when its keepalive finds it dead.
async fn handshake<T>(io: T, address: &str, keepalive: Keepalive) -> Result<Live, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| format!("the HTTP/2 handshake with {address} failed: {e}"))?;
    let pings = connection
        .ping_pong()
        .ok_or_else(|| format!("the HTTP/2 connection to {address} gave no PING handle"))?;
    let closed = Arc::new(AtomicBool::new(false));
    let probe = Arc::new(tokio::sync::Notify::new());
    let (flag, asked) = (Arc::clone(&closed), Arc::clone(&probe));
    let address = address.to_string();
    tokio::spawn(async move {
        let io = Coalesce {
            inner: connection,
            deferred: false,
            last: None,
        };
        tokio::select! {
            ended = io => if let Err(e) = ended {
                tracing::debug!(%address, "gRPC connection ended: {e}");
            },
            dead = check_life(pings, asked, keepalive) => {
                // Dropping the connection closes the socket; its calls fail UNAVAILABLE.
                tracing::warn!(%address, "closing the gRPC connection: {dead}");
            }
        }
        flag.store(true, Ordering::Release);
    });
    Ok(Live {
        send,
        closed,
        probe,
    })
}

/// Pings the connection every [`Keepalive::every`] and when `asked`; returns why it is
/// dead (no answer in time, or the `PING` could not be sent).
async fn check_life(
    mut pings: h2::PingPong,
    asked: Arc<tokio::sync::Notify>,
    keepalive: Keepalive,
) -> String {
    loop {
        tokio::select! {
            () = tokio::time::sleep(keepalive.every) => {}
            () = asked.notified() => {}
        }
        match tokio::time::timeout(keepalive.within, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return format!("a PING failed: {e}"),
            Err(_) => {
                return format!(
                    "no answer to a PING within {} ms",
                    keepalive.within.as_millis()
                );
            }
        }
    }
}

/// Held by a call from its request until its answer's end: dropped before that (the
/// caller gave up, most often at its deadline), it asks the connection for a `PING`.
struct Probe(Option<Arc<tokio::sync::Notify>>);

impl Probe {
    /// The call got its whole answer: nothing to check.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(asked) = self.0.take() {
            asked.notify_one();
        }
    }
}

/// Under load, runs the connection's I/O a turn later than it was woken: the callers that
/// become ready in the same turn of the scheduler queue their streams first, and one write
/// carries all their frames (and one read brings their answers), instead of a write and a
/// read per call — under load most of the upstream socket's cost. "Under load" means the
/// task was last polled less than [`COALESCE_WITHIN`] ago; a call after a quiet moment is
/// written at once (no scheduling turn added to its latency).
struct Coalesce<F> {
    inner: F,
    deferred: bool,
    last: Option<std::time::Instant>,
}

/// Polls closer together than this mean calls are arriving faster than one per poll.
const COALESCE_WITHIN: Duration = Duration::from_micros(50);

impl<F: Future + Unpin> Future for Coalesce<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let now = std::time::Instant::now();
        let busy = self
            .last
            .is_some_and(|last| now.duration_since(last) < COALESCE_WITHIN);
        if busy && !self.deferred {
            self.deferred = true;
            // Woken by itself while running, the task goes to the back of the run queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.deferred = false;
        self.last = Some(now);
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl tower_service::Service<Request<tonic::body::Body>> for H2Channel {
    type Response = Response<RecvBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness (the server's stream limit) is awaited inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// An answer's body: its data, then its trailers (where gRPC puts the status); received
/// bytes are given back to the flow-control window as they are read.
pub struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
    probe: Probe,
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    self.probe.disarm();
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.data_done = true,
            }
        }
        let end = ready!(self.recv.poll_trailers(cx));
        // The answer is complete (or its stream failed, which is not a silent peer).
        self.probe.disarm();
        Poll::Ready(match end {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

#[cfg(test)]
mod tests;
