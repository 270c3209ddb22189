//! The gateway's two HTTP listeners: the public API on `HTTP_ADDR` (8080, the port the
//! gateway's Service exposes) and the operations endpoints on `OPS_ADDR` (8081, a pod port
//! named `ops` that no Service exposes).
//!
//! ```text
//!  shopper ──▶ Service <sf>-gateway :8080 `http` ──▶ public router: /api/v1/…   (else 404 JSON)
//!  kubelet probes, Prometheus (pod `ops` port),
//!  kubectl port-forward ─────────────▶ pod :8081 `ops` ──▶ /healthz /readyz /metrics /routes
//! ```
//!
//! Why two: `/metrics` and `/routes` tell a stranger the shop's routes, upstreams, limits and
//! failure counts, and a scrape through the public port would spend the shop's budget like a
//! shopper; on their own port they are reachable from inside the cluster only (Prometheus
//! finds pods, not Services). The ops server keeps answering through the drain, so probes see
//! "not ready" while in-flight requests finish (as [`storefront_platform::ops::Lifecycle`]
//! does for the gRPC services).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{Gateway, routing::reload::Loaded};
use storefront_platform::ops::{self, Readiness};

/// The public router and the operations router of one gateway.
pub struct Routers {
    /// The public API only ([`Gateway::router`]): anything else is its 404 JSON.
    pub public: Router,
    /// `/healthz`, `/readyz`, `/metrics` (everything `registry` holds, the public request
    /// metrics included) and `/routes` (the table in force, from `loaded`).
    pub ops: Router,
}

impl Routers {
    /// The two routers of `gateway`; its request metrics are registered in `registry`, which
    /// the operations router then serves.
    pub fn new(gateway: Gateway, ready: Readiness, mut registry: Registry, loaded: Loaded) -> Self {
        let public = gateway.router_with_metrics(&mut registry);
        let ops = ops::router(ready, registry).merge(loaded.router());
        Self { public, ops }
    }
}

/// Binds `addr`, naming what it is for in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr} ({what})"))
}

/// The operations server, running until [`OpsServer::stop`].
pub struct OpsServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// The task was awaited to its end (by [`OpsServer::failed`]): not to be awaited again.
    ended: bool,
}

impl OpsServer {
    /// Serves `router` on `listener` until stopped.
    pub fn spawn(listener: TcpListener, router: Router) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ops::serve(listener, router, async {
            let _ = stopped.await;
        }));
        Self {
            stop,
            task,
            ended: false,
        }
    }

    /// Completes if the server stops by itself (it should not: the caller then stops the
    /// gateway, so the pod restarts instead of running without probes or metrics).
    pub async fn failed(&mut self) -> anyhow::Error {
        let ended = (&mut self.task).await;
        self.ended = true;
        match ended {
            Ok(Ok(())) => anyhow::anyhow!("the operations server stopped"),
            Ok(Err(e)) => anyhow::Error::new(e).context("failed to serve the operations endpoints"),
            Err(e) => anyhow::anyhow!("the operations server panicked: {e}"),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if self.ended {
            return;
        }
        if let Err(e) = self.task.await {
            tracing::warn!("the operations server panicked: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{resilience::guard::AllowAll, upstream::Deadlines};
    use storefront_platform::token::{SigningKeys, TokenIssuer};

    /// A gateway with no route table, its two listeners on loopback ports: `(public, ops)`.
    async fn two_listeners() -> (SocketAddr, SocketAddr, Readiness, OpsServer) {
        let issuer = Arc::new(TokenIssuer::new(
            SigningKeys::from_seed([7; 32]).expect("key"),
            "shop",
            60,
            60,
        ));
        let gateway = Gateway::new(issuer, Arc::new(AllowAll), Deadlines::default());
        let mut registry = Registry::default();
        let loaded = Loaded::register(&mut registry);
        let ready = Readiness::default();
        let routers = Routers::new(gateway, ready.clone(), registry, loaded);
        let local = "127.0.0.1:0".parse().expect("addr");
        let public = bind(local, "public").await.expect("binds");
        let ops = bind(local, "ops").await.expect("binds");
        let (public_addr, ops_addr) = (
            public.local_addr().expect("addr"),
            ops.local_addr().expect("addr"),
        );
        tokio::spawn(crate::run::serve(
            public,
            routers.public,
            std::future::pending(),
        ));
        (
            public_addr,
            ops_addr,
            ready,
            OpsServer::spawn(ops, routers.ops),
        )
    }

    /// `(status, body)` of a GET (the body as text: `/metrics` is not JSON).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(raw.as_bytes()).await.expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        (status, body.to_string())
    }

    #[tokio::test]
    async fn ops_endpoints_answer_on_the_ops_port_only() {
        let (public, ops, ready, server) = two_listeners().await;
        ready.set(true);

        let (status, body) = get(ops, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("storefront_ready 1"), "{body}");
        assert!(
            body.contains("storefront_ratelimit_replicas"),
            "the gateway's own metrics are there too: {body}"
        );
        let (status, body) = get(ops, "/routes").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""generation":0"#), "{body}");
        assert_eq!(get(ops, "/healthz").await.0, 200);
        assert_eq!(get(ops, "/readyz").await.0, 200);
        assert_eq!(
            get(ops, "/api/v1/openapi.json").await.0,
            404,
            "the public API is not on the ops port"
        );

        for path in ["/metrics", "/routes", "/healthz", "/readyz"] {
            let (status, body) = get(public, path).await;
            assert_eq!(status, 404, "{path} on the public port: {body}");
            assert!(body.contains(r#""code":"not_found""#), "{path}: {body}");
        }
        let (status, body) = get(public, "/api/v1/openapi.json").await;
        assert_eq!(status, 200, "{body}");

        // The public requests are counted where Prometheus reads them.
        let (_, metrics) = get(ops, "/metrics").await;
        assert!(
            metrics.contains(r#"storefront_requests_total{service="gateway",route="/api/v1/openapi.json",code="200"} 1"#),
            "{metrics}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn the_ops_server_answers_until_stopped() {
        let (_, ops, ready, server) = two_listeners().await;
        assert_eq!(get(ops, "/readyz").await.0, 503, "not ready yet");
        ready.set(true);
        assert_eq!(get(ops, "/readyz").await.0, 200);
        server.stop().await;
        let refused =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(ops))
                .await
                .expect("connect answers at once");
        assert!(refused.is_err(), "nothing listens once stopped");
    }
}
