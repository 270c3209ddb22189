//! Calls to an unsharded service spread over its pods.
//!
//! A Service's cluster IP balances connections, not calls: kube-proxy picks a pod when a
//! connection opens, and HTTP/2 then carries every call on it. One connection per gateway
//! replica would send all of a service's traffic from that replica to one pod, however far
//! the service's autoscaler scales it out. So the route table also names the service's
//! headless Service (`endpoints`, which resolves to each ready pod), and a [`Pool`] keeps
//! one channel per pod and takes them in turn:
//!
//! - the pods are looked up again every [`PodSource::refresh`](super::discovery::PodSource::refresh) on the call path (in the
//!   background: a call never waits for it, except the very first); pods that left are
//!   dropped (their connections close once their calls end), new pods join the rotation.
//!   In a cluster they come from the namespace's EndpointSlices, watched through the API
//!   ([`endpoint_slices`](super::discovery::endpoint_slices): a pod that turns ready or goes away is seen within a second);
//!   without API access, from cluster DNS ([`system_resolver`](super::discovery::system_resolver): its answers are cached for
//!   up to 30 s);
//! - a pod whose last connection attempt failed is skipped for [`SKIP_FAILED`] (a pod gone
//!   before the name says so costs one failed attempt, which the gateway retries on the
//!   next pod, not one per turn);
//! - while the name does not resolve (no pod ready, no cluster DNS), and while every pod
//!   listed has just failed, calls go to the service's own address, as without a pool: its
//!   cluster IP refuses at once when the service has no ready pod (a vanished pod's IP may
//!   not answer at all until the connect timeout) and needs no DNS.
//!
//! Every pod's channel is addressed to the service's name (`:authority`, and the name its
//! TLS certificate must carry), whatever IP it connects to.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::{Request, Response};

use super::{
    channel::{H2Channel, Keepalive, RecvBody},
    discovery::{PodSource, Resolve},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How long a pod whose connection attempt failed is left out of the rotation.
pub const SKIP_FAILED: Duration = Duration::from_secs(2);

/// The channel of an unsharded service: one connection, or one per pod.
#[derive(Clone, Debug)]
pub enum Upstream {
    One(H2Channel),
    Pool(Pool),
}

impl From<H2Channel> for Upstream {
    fn from(channel: H2Channel) -> Self {
        Self::One(channel)
    }
}

impl tower_service::Service<Request<tonic::body::Body>> for Upstream {
    type Response = Response<RecvBody>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<RecvBody>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        match self {
            Self::One(channel) => Box::pin(channel.clone().send(request)),
            Self::Pool(pool) => {
                let pool = pool.clone();
                Box::pin(async move { pool.pick().await.send(request).await })
            }
        }
    }
}

/// One channel per pod of a service, taken in turn (see the module's docs).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

struct Inner {
    /// Resolves to the pods (`host:port` of a headless Service).
    endpoints: String,
    /// The service's own address: the name every pod is spoken to as, and the channel
    /// used while `endpoints` does not resolve.
    upstream: String,
    fallback: H2Channel,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    keepalive: Keepalive,
    resolve: Resolve,
    refresh: Duration,
    pods: Mutex<Pods>,
    next: AtomicUsize,
    /// A lookup is running (so calls start at most one).
    resolving: AtomicBool,
    /// Held by the first lookup, which the first calls wait for.
    first: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Pods {
    channels: Arc<Vec<(SocketAddr, H2Channel)>>,
    resolved_at: Option<Instant>,
    /// The last lookup's error, logged once per change.
    error: Option<String>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("endpoints", &self.0.endpoints)
            .field("upstream", &self.0.upstream)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool over the pods `endpoints` resolves to, spoken to as `upstream`; looked up on
    /// the first call and every `refresh` after.
    pub fn new(
        endpoints: &str,
        upstream: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
        PodSource { resolve, refresh }: PodSource,
    ) -> Result<Self, String> {
        let keepalive = Keepalive::default();
        let fallback = H2Channel::lazy_with(upstream, tls.clone(), connect_timeout, keepalive)?;
        Ok(Self(Arc::new(Inner {
            endpoints: endpoints.to_string(),
            upstream: upstream.to_string(),
            fallback,
            tls,
            connect_timeout,
            keepalive,
            resolve,
            refresh,
            pods: Mutex::new(Pods::default()),
            next: AtomicUsize::new(0),
            resolving: AtomicBool::new(false),
            first: tokio::sync::Mutex::new(()),
        })))
    }

    /// The pods' addresses as last resolved.
    pub fn pods(&self) -> Vec<SocketAddr> {
        self.lock().channels.iter().map(|(a, _)| *a).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pods> {
        self.0.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The channel for the next call: the next pod in turn that has not just failed, or the
    /// service's own address while there is none.
    async fn pick(&self) -> H2Channel {
        let (channels, resolved_at) = {
            let pods = self.lock();
            (Arc::clone(&pods.channels), pods.resolved_at)
        };
        match resolved_at {
            None => {
                // The first calls wait for the first lookup (one lookup for all of them).
                let _first = self.0.first.lock().await;
                if self.lock().resolved_at.is_none() {
                    self.resolve().await;
                }
                let channels = Arc::clone(&self.lock().channels);
                return self.choose(&channels);
            }
            Some(at) if at.elapsed() >= self.0.refresh => self.refresh_in_background(),
            Some(_) => {}
        }
        self.choose(&channels)
    }

    fn choose(&self, channels: &[(SocketAddr, H2Channel)]) -> H2Channel {
        let start = self.0.next.fetch_add(1, Ordering::Relaxed);
        let n = channels.len();
        (0..n)
            .map(|i| &channels[(start + i) % n].1)
            .find(|c| !c.failed_within(SKIP_FAILED))
            .unwrap_or(&self.0.fallback)
            .clone()
    }

    fn refresh_in_background(&self) {
        if self.0.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            pool.resolve().await;
            pool.0.resolving.store(false, Ordering::Release);
        });
    }

    /// Looks the pods up and replaces the rotation (keeping the channels of pods that
    /// stay); after a failed lookup there are none (calls go to the service's address).
    async fn resolve(&self) {
        let found = (self.0.resolve)(self.0.endpoints.clone()).await;
        let mut pods = self.lock();
        pods.resolved_at = Some(Instant::now());
        let mut addresses = match found {
            Ok(addresses) if !addresses.is_empty() => addresses,
            failed => {
                let why = failed.map_or_else(|e| e.to_string(), |_| "no addresses".into());
                if pods.error.as_deref() != Some(why.as_str()) {
                    tracing::warn!(
                        endpoints = %self.0.endpoints,
                        "failed to look up the pods ({why}); calls go to {} meanwhile",
                        self.0.upstream
                    );
                    pods.error = Some(why);
                }
                pods.channels = Arc::default();
                return;
            }
        };
        pods.error = None;
        addresses.sort();
        addresses.dedup();
        if addresses.iter().eq(pods.channels.iter().map(|(a, _)| a)) {
            return;
        }
        let mut channels = Vec::with_capacity(addresses.len());
        for address in addresses {
            let kept = pods.channels.iter().find(|(a, _)| *a == address);
            let channel = match kept {
                Some((_, c)) => c.clone(),
                None => match H2Channel::lazy_at(
                    address,
                    &self.0.upstream,
                    self.0.tls.clone(),
                    self.0.connect_timeout,
                    self.0.keepalive,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%address, "skipping a pod: {e}");
                        continue;
                    }
                },
            };
            channels.push((address, channel));
        }
        tracing::info!(
            endpoints = %self.0.endpoints,
            pods = channels.len(),
            "spreading calls over {} pod(s)",
            channels.len()
        );
        pods.channels = Arc::new(channels);
    }
}

#[cfg(test)]
mod tests {
    use std::{io, sync::atomic::AtomicU64};

    use tokio::net::TcpListener;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    use super::{super::discovery::REFRESH, *};

    const CONNECT: Duration = Duration::from_millis(500);

    /// A health server ("pod") on a port of its own; its calls are counted.
    async fn pod() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("shop", tonic_health::ServingStatus::Serving)
            .await;
        let service = tonic::service::interceptor::InterceptedService::new(
            service,
            move |request: tonic::Request<()>| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(request)
            },
        );
        tokio::spawn(async move {
            let _reporter = reporter;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        (address, calls)
    }

    /// A resolver whose answer the test sets (`Err` when empty).
    fn answers(pods: &Arc<Mutex<Vec<SocketAddr>>>) -> Resolve {
        let pods = Arc::clone(pods);
        Arc::new(move |_name: String| {
            let found = pods.lock().expect("pods").clone();
            Box::pin(async move {
                if found.is_empty() {
                    Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
                } else {
                    Ok(found)
                }
            })
        })
    }

    async fn check(pool: &Pool) -> Result<(), tonic::Status> {
        HealthClient::new(Upstream::Pool(pool.clone()))
            .check(HealthCheckRequest {
                service: "shop".into(),
            })
            .await
            .map(drop)
    }

    fn counts(pods: &[&Arc<AtomicU64>]) -> Vec<u64> {
        pods.iter().map(|c| c.load(Ordering::SeqCst)).collect()
    }

    /// A pool over what `found` lists, spoken to (and falling back to) `service`.
    fn pool(service: SocketAddr, found: &Arc<Mutex<Vec<SocketAddr>>>, refresh: Duration) -> Pool {
        let source = PodSource {
            resolve: answers(found),
            refresh,
        };
        Pool::new("shop-pods:1", &service.to_string(), None, CONNECT, source).expect("pool")
    }

    /// An address nobody listens on.
    fn gone() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    }

    /// Lets `refresh` pass, and has a call start the lookup and the lookup end.
    async fn looked_up_again(pool: &Pool, refresh: Duration) {
        tokio::time::sleep(refresh * 2).await;
        let _ = check(pool).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn calls_take_the_pods_in_turn_and_follow_them_as_they_come_and_go() {
        let ((a, at_a), (b, at_b), (c, at_c)) = (pod().await, pod().await, pod().await);
        let found = Arc::new(Mutex::new(vec![a, b]));
        let refresh = Duration::from_millis(100);
        let pool = pool(a, &found, refresh);
        for _ in 0..100 {
            check(&pool).await.expect("answered");
        }
        assert_eq!(counts(&[&at_a, &at_b, &at_c]), [50, 50, 0], "in turn");

        // The service scales out: the new pod joins after the next lookup.
        found.lock().expect("pods").push(c);
        looked_up_again(&pool, refresh).await;
        assert_eq!(pool.pods().len(), 3, "{:?}", pool.pods());
        let before = counts(&[&at_a, &at_b, &at_c]);
        for _ in 0..90 {
            check(&pool).await.expect("answered");
        }
        let after = counts(&[&at_a, &at_b, &at_c]);
        let spread: Vec<u64> = after.iter().zip(&before).map(|(x, y)| x - y).collect();
        assert_eq!(spread, [30, 30, 30], "three pods in turn");

        // A pod leaves: it gets no more calls once the name no longer lists it.
        found.lock().expect("pods").retain(|p| *p != a);
        looked_up_again(&pool, refresh).await;
        let left = at_a.load(Ordering::SeqCst);
        for _ in 0..20 {
            check(&pool).await.expect("answered");
        }
        assert_eq!(at_a.load(Ordering::SeqCst), left, "the pod that left");
    }

    #[tokio::test]
    async fn a_dead_pod_is_skipped_after_its_first_failure() {
        let (a, at_a) = pod().await;
        let dead = gone();
        let found = Arc::new(Mutex::new(vec![a, dead]));
        let pool = pool(a, &found, REFRESH);
        let mut failed = 0;
        for _ in 0..20 {
            if let Err(status) = check(&pool).await {
                assert!(super::super::call::not_sent(&status), "{status:?}");
                failed += 1;
            }
        }
        assert_eq!(failed, 1, "one attempt on the dead pod, then it is skipped");
        assert_eq!(at_a.load(Ordering::SeqCst), 19);
    }

    #[tokio::test]
    async fn when_every_pod_has_just_failed_calls_go_to_the_service_address() {
        let (service, at_service) = pod().await;
        let dead = gone();
        let found = Arc::new(Mutex::new(vec![dead]));
        let pool = pool(service, &found, REFRESH);
        check(&pool).await.expect_err("the listed pod is gone");
        for _ in 0..5 {
            check(&pool).await.expect("answered by the service address");
        }
        assert_eq!(at_service.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn without_pods_to_find_calls_go_to_the_service_address() {
        let (service, at_service) = pod().await;
        let found = Arc::new(Mutex::new(Vec::new()));
        let refresh = Duration::from_millis(50);
        let pool = pool(service, &found, refresh);
        check(&pool).await.expect("answered by the service address");
        assert_eq!(at_service.load(Ordering::SeqCst), 1);
        assert!(pool.pods().is_empty());

        // Found once, then the lookup fails: back to the service's address.
        let (p, at_p) = pod().await;
        found.lock().expect("pods").push(p);
        looked_up_again(&pool, refresh).await;
        assert_eq!(pool.pods(), [p]);
        let by_pod = at_p.load(Ordering::SeqCst);
        found.lock().expect("pods").clear();
        looked_up_again(&pool, refresh).await;
        assert!(pool.pods().is_empty(), "{:?}", pool.pods());
        let by_service = at_service.load(Ordering::SeqCst);
        for _ in 0..5 {
            check(&pool).await.expect("answered");
        }
        assert_eq!(at_service.load(Ordering::SeqCst), by_service + 5);
        assert!(at_p.load(Ordering::SeqCst) <= by_pod + 1);
    }
}
