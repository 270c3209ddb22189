//! The operations endpoints every service serves: `/healthz` (the process is alive),
//! `/readyz` (its datastores are reachable and migrations are done; false again while
//! draining) and `/metrics` (Prometheus text format). A gRPC service serves them on its HTTP
//! port (`HTTP_ADDR`, 8080), which carries nothing else; the gateway, whose HTTP port is the
//! public API, on a port of its own (`OPS_ADDR`, 8081: `storefront_gateway::ops_port`).
//!
//! Also the shutdown signal (SIGTERM from Kubernetes, or Ctrl-C) and [`Lifecycle`]: the
//! start-ready-serve-drain sequence every gRPC service follows.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use prometheus_client::{encoding::text::encode, metrics::gauge::Gauge, registry::Registry};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

/// Whether the service is ready, shared by the service (which flips it) and `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Ops {
    ready: Readiness,
    registry: Arc<Registry>,
    ready_gauge: Gauge,
}

/// The router of the operations endpoints. `storefront_ready` (1 or 0) is registered in
/// `registry` next to whatever the service registered.
pub fn router(ready: Readiness, mut registry: Registry) -> Router {
    let ready_gauge = Gauge::default();
    registry.register(
        "storefront_ready",
        "1 when the service is ready to serve",
        ready_gauge.clone(),
    );
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops {
            ready,
            registry: Arc::new(registry),
            ready_gauge,
        })
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if ops.ready.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(
    State(ops): State<Ops>,
) -> Result<([(&'static str, &'static str); 1], String), StatusCode> {
    ops.ready_gauge.set(i64::from(ops.ready.get()));
    let mut body = String::new();
    encode(&mut body, &ops.registry).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok((
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    ))
}

/// Serves `router` on `listener` until `shutdown` completes (Nagle off on every accepted
/// connection, as for the gRPC servers: see [`crate::grpc::incoming`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("failed to set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A service's life: the operations endpoints start first (not ready), the service becomes
/// ready once its datastores answer and migrations ran, serves until SIGTERM, then reports
/// not ready and drains in-flight requests for at most the drain period. The operations
/// endpoints outlive the drain, so probes see "not ready" meanwhile.
pub struct Lifecycle {
    ready: Readiness,
    drain: Duration,
    stop_ops: oneshot::Sender<()>,
    ops_server: JoinHandle<std::io::Result<()>>,
}

/// The future a gRPC server is handed as its shutdown signal.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Lifecycle {
    /// Starts the operations endpoints on `http_addr`.
    pub async fn start(http_addr: SocketAddr, drain: Duration, registry: Registry) -> Result<Self> {
        let ready = Readiness::default();
        let http = TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("failed to listen on {http_addr}"))?;
        let (stop_ops, ops_stopped) = oneshot::channel::<()>();
        let ops_server = tokio::spawn(serve(http, router(ready.clone(), registry), async {
            let _ = ops_stopped.await;
        }));
        Ok(Self {
            ready,
            drain,
            stop_ops,
            ops_server,
        })
    }

    /// The start every gRPC service shares: its gRPC listener (`GRPC_ADDR`), a registry with
    /// its request metrics ([`crate::metrics::install`]) and whatever `register` adds, then the
    /// operations endpoints (`HTTP_ADDR`) serving it. Returns `register`'s value.
    pub async fn start_service<T>(
        common: &crate::config::CommonArgs,
        service: &'static str,
        register: impl FnOnce(&mut Registry) -> Result<T>,
    ) -> Result<(TcpListener, Self, T)> {
        let grpc = TcpListener::bind(common.grpc_addr)
            .await
            .with_context(|| format!("failed to listen on {}", common.grpc_addr))?;
        let mut registry = Registry::default();
        crate::metrics::install(&mut registry, service);
        let value = register(&mut registry)?;
        let life = Self::start(common.http_addr, common.drain(), registry).await?;
        Ok((grpc, life, value))
    }

    /// Marks the service ready and serves with `serve` until SIGTERM and the drain are over.
    pub async fn serve<F>(self, serve: impl FnOnce(ShutdownSignal) -> F) -> Result<()>
    where
        F: Future<Output = Result<(), tonic::transport::Error>>,
    {
        let (signalled, mut on_signal) = watch::channel(false);
        let (draining, drain) = (self.ready.clone(), self.drain);
        let served = serve(Box::pin(async move {
            shutdown_signal().await;
            draining.set(false);
            tracing::info!(seconds = drain.as_secs(), "draining");
            let _ = signalled.send(true);
        }));
        let deadline = async move {
            if on_signal.wait_for(|s| *s).await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        self.ready.set(true);
        let result = tokio::select! {
            result = served => result.context("failed to serve gRPC"),
            () = deadline => {
                tracing::warn!("in-flight requests outlived the {drain:?} drain; stopping");
                Ok(())
            }
        };
        let _ = self.stop_ops.send(());
        let _ = self.ops_server.await;
        result
    }
}

/// Background work beside a server (an outbox relay, bus consumers): spawned when the
/// server starts and dropped when it stops. Workers run forever; one that ends (an error, or
/// a consumer whose subscription closed) stops the service with that error so the pod
/// restarts instead of serving half a service.
pub type Worker = (
    &'static str,
    Pin<Box<dyn Future<Output = Result<()>> + Send>>,
);

impl Lifecycle {
    /// [`Lifecycle::serve`] with `workers` running beside the server.
    pub async fn serve_with_workers<F>(
        self,
        workers: Vec<Worker>,
        serve: impl FnOnce(ShutdownSignal) -> F,
    ) -> Result<()>
    where
        F: Future<Output = Result<(), tonic::transport::Error>>,
    {
        let mut set = tokio::task::JoinSet::new();
        for (name, work) in workers {
            set.spawn(async move { (name, work.await) });
        }
        let failed = async {
            match set.join_next().await {
                Some(Ok((name, Ok(())))) => anyhow::anyhow!("{name} stopped"),
                Some(Ok((name, Err(e)))) => e.context(format!("{name} failed")),
                Some(Err(e)) => anyhow::anyhow!("a worker panicked: {e}"),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = self.serve(serve) => result,
            e = failed => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_readiness_and_metrics_answer_over_http() {
        let ready = Readiness::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            router(ready.clone(), Registry::default()),
            async {
                let _ = stopped.await;
            },
        ));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        assert!(get("/metrics").await.contains("storefront_ready 0"));
        ready.set(true);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("storefront_ready 1"));
        stop.send(()).expect("running");
        server.await.expect("joins").expect("stops");
    }
}
