//! `storefront-workloads gateway`: the public API on `HTTP_ADDR` (8080) and the operations
//! endpoints (`/healthz`, `/readyz`, `/metrics`, `/routes`) on `OPS_ADDR` (8081), a port the
//! gateway's Service does not expose ([`crate::ops_port`]); the route table watched through the
//! API (`GATEWAY_CONFIGMAP`, see [`crate::routing::source`]) or read from its file, the rings
//! re-read every second, ready once a route table loaded, edge health reported on the pod
//! ([`crate::edge_health`], with `POD_NAME`), and a bounded drain on SIGTERM.
//!
//! Settings (flag / variable): `--ops-addr` / `OPS_ADDR`, `--routes-file` / `GATEWAY_ROUTES`
//! (the operator's `routes.json`), `--rings-dir` / `GATEWAY_RINGS_DIR` (holds
//! `<ring ConfigMap>/ring.json`), `--jwt-keys-dir` / `JWT_KEYS_DIR` (user tokens are verified
//! with its key, service tokens signed with it), `--storefront` / `STOREFRONT_NAME` (the
//! tokens' issuer), and deadlines.
//!
//! The public server keeps each connection's peer address ([`serve`]): the client address that
//! sign-ins and sign-ups pass to auth for its per-address throttles
//! ([`crate::http::client_address`]).

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use clap::Args;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::{
    edge_health as report,
    http::Gateway,
    ops_port::{self, OpsServer, Routers},
    ratelimit::cluster::ClusterLimiter,
    resilience::{BreakerGuard, breaker::BreakerConfig},
    routing::{
        reload::{self, Loaded},
        source,
        table::{Loader, Sources},
    },
    upstream::{Deadlines, discovery},
};
use storefront_platform::config::{CommonArgs, ConfigError, required};
use storefront_platform::ops::{self, Readiness};
use storefront_platform::token::TokenIssuer;

/// Lifetime of the service tokens the gateway mints per call.
const SERVICE_TOKEN_TTL_SECS: i64 = 60;

/// `gateway` settings.
#[derive(Args, Clone, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the operations endpoints answer (`/healthz`, `/readyz`, `/metrics`, `/routes`):
    /// never on `HTTP_ADDR`, the public API's port.
    #[arg(long, env = "OPS_ADDR", default_value = "0.0.0.0:8081")]
    pub ops_addr: SocketAddr,
    /// The route table (`routes.json` of the gateway's ConfigMap).
    #[arg(long, env = "GATEWAY_ROUTES")]
    pub routes_file: Option<PathBuf>,
    /// The directory of the ring ConfigMaps, one subdirectory per ring name.
    #[arg(
        long,
        env = "GATEWAY_RINGS_DIR",
        default_value = "/etc/storefront/rings"
    )]
    pub rings_dir: PathBuf,
    /// Deadline of a call to a core service, in milliseconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 2000)]
    pub upstream_timeout_ms: u64,
    /// Deadline of a call to a supporting service (recommendations), in milliseconds.
    #[arg(long, env = "SUPPORTING_TIMEOUT_MS", default_value_t = 300)]
    pub supporting_timeout_ms: u64,
    /// Deadline to connect to a service, in milliseconds.
    #[arg(long, env = "CONNECT_TIMEOUT_MS", default_value_t = 500)]
    pub connect_timeout_ms: u64,
    /// Time for a client to send its request body, in milliseconds (then 408).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// How often the route table and rings are re-read, in milliseconds.
    #[arg(long, env = "GATEWAY_RELOAD_MS", default_value_t = 1000)]
    pub reload_ms: u64,
    /// The route table's ConfigMap, watched through the API (in `POD_NAMESPACE`); without
    /// it, only the routes file is read.
    #[arg(long, env = "GATEWAY_CONFIGMAP")]
    pub routes_configmap: Option<String>,
    /// This pod's name: its edge health is reported as conditions on it.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How often edge health is checked (and written when it changed), in milliseconds.
    #[arg(long, env = "GATEWAY_REPORT_MS", default_value_t = 1000)]
    pub report_ms: u64,
    /// Gateway replicas the operator plans (the HPA's maximum when autoscaled): the rate
    /// limiter's fallback divides each budget by it until Redis has counted the live ones.
    #[arg(long, env = "GATEWAY_REPLICAS", default_value_t = 1)]
    pub replicas_hint: u64,
}

impl GatewayArgs {
    /// The checked deadlines (each 1 ms .. 60 s).
    pub fn deadlines(&self) -> Result<Deadlines, ConfigError> {
        let check = |flag: &'static str, ms: u64| {
            if (1..=60_000).contains(&ms) {
                Ok(Duration::from_millis(ms))
            } else {
                Err(ConfigError::Invalid {
                    flag,
                    reason: format!("must be between 1 and 60000 ms, got {ms}"),
                })
            }
        };
        Ok(Deadlines {
            call: check("--upstream-timeout-ms", self.upstream_timeout_ms)?,
            supporting: check("--supporting-timeout-ms", self.supporting_timeout_ms)?,
            connect: check("--connect-timeout-ms", self.connect_timeout_ms)?,
            body: check("--body-timeout-ms", self.body_timeout_ms)?,
        })
    }

    /// The operations endpoints' address, checked to differ from the public one (`HTTP_ADDR`):
    /// they must not be served where the public API is.
    pub fn ops_addr(&self) -> Result<SocketAddr, ConfigError> {
        let public = self.common.http_addr;
        if self.ops_addr.port() != 0 && self.ops_addr.port() == public.port() {
            return Err(ConfigError::Invalid {
                flag: "--ops-addr",
                reason: format!(
                    "{} shares its port with the public API's --http-addr {public}",
                    self.ops_addr
                ),
            });
        }
        Ok(self.ops_addr)
    }

    /// Where the route table and rings are.
    pub fn sources(&self) -> Result<Sources, ConfigError> {
        Ok(Sources {
            routes_file: required(self.routes_file.clone(), "--routes-file", "GATEWAY_ROUTES")?,
            rings_dir: self.rings_dir.clone(),
        })
    }
}

/// Re-reads the files every `every` and applies changes, until the task is dropped (no API
/// watch: [`reload::reload`] with one).
pub async fn watch(gateway: Gateway, loader: Loader, ready: Readiness, every: Duration) {
    reload::reload(gateway, loader, ready, every, None, Loaded::default()).await;
}

/// A client for the API server (in-cluster config, or a kubeconfig), or `None` with the
/// reason logged once: the gateway then reads files only and reports nothing.
async fn api_client(wanted: bool) -> Option<kube::Client> {
    if !wanted {
        tracing::info!(
            "no GATEWAY_CONFIGMAP/POD_NAME: reading the mounted route table only, no edge health reports"
        );
        return None;
    }
    match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(
                "no API server client ({e}): reading the mounted route table only, no edge health reports"
            );
            None
        }
    }
}

// ---- route table watch and edge health (see `source` and `report`) ----

/// Starts the API watch of the route table (when configured) and the edge health reporter
/// (when the pod's name is known). Returns the watch's receiver for [`reload::reload`].
async fn start_api_side(
    args: &GatewayArgs,
    check: report::Check,
    gateway: &Gateway,
) -> Option<tokio::sync::watch::Receiver<Option<source::Fetched>>> {
    let namespace = args.common.namespace.as_deref();
    let api_source = source::ApiSource::from_settings(args.routes_configmap.as_deref(), namespace);
    let pod = args.pod_name.clone().filter(|p| !p.is_empty());
    let client = api_client(api_source.is_some() || pod.is_some()).await?;
    if let Some(ns) = namespace {
        gateway.find_pods_with(discovery::endpoint_slices(client.clone(), ns));
    }
    if let (Some(pod), Some(ns)) = (pod, namespace) {
        let every = Duration::from_millis(args.report_ms.max(100));
        let rings = report::rings_check(gateway.clone());
        report::spawn_reporter(client.clone(), ns.to_string(), pod, check, rings, every);
    }
    let api_source = api_source?;
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(source::watch_routes(client, api_source, tx));
    Some(rx)
}

/// Serves `router` on `listener` until `shutdown` completes, as [`ops::serve`] does (Nagle
/// off), with each connection's peer address as the requests' `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("failed to set TCP_NODELAY: {e}");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Runs the gateway until SIGTERM and the drain are over.
pub async fn run(args: GatewayArgs) -> Result<()> {
    let common = &args.common;
    let storefront = common.storefront()?.to_string();
    let deadlines = args.deadlines()?;
    let ops_addr = args.ops_addr()?;
    let sources = args.sources()?;
    let every = Duration::from_millis(args.reload_ms.max(100));
    common.install_tls()?;
    // The gateway's own key mints its service tokens; user tokens are checked against the
    // shop's key set (auth's public key: the gateway cannot mint one).
    let keys = common.token_keys(&storefront)?;
    let issuer = Arc::new(
        TokenIssuer::new(
            keys.service,
            &storefront,
            SERVICE_TOKEN_TTL_SECS,
            SERVICE_TOKEN_TTL_SECS,
        )
        .with_verifier(keys.verifier),
    );
    let mut registry = Registry::default();
    // Its Redis calls (the limiter's leases and heartbeats): the console's gateway → Redis edge.
    storefront_platform::datastore_metrics::install(&mut registry, "gateway");
    // A breaker per upstream: a failing service is refused at once (503, Retry-After).
    let guard = Arc::new(BreakerGuard::new(BreakerConfig::default(), &mut registry));
    // Cluster-wide budgets through Redis; the local share while it is unreachable.
    let member = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("gateway-{}", std::process::id()));
    let limiter = ClusterLimiter::new(
        common.redis_url.as_deref(),
        common.namespace.as_deref().unwrap_or("default"),
        &storefront,
        &member,
        args.replicas_hint,
    )
    .context("failed to set up the rate limiter's Redis client (REDIS_URL)")?;
    limiter.heartbeat().await;
    let heartbeats = tokio::spawn(limiter.clone().run_heartbeats());
    let gateway = Gateway::with_limiter(issuer, guard.clone(), deadlines, limiter.clone());
    let loader = Loader::new(sources);

    // Edge health: open breakers of core routes, and the rate limiter's degraded state.
    let limiter_degraded: Option<report::LimiterCheck> = Some(Arc::new(move || {
        limiter
            .degraded_reason()
            .map(report::EdgeProblem::rate_limiter_degraded)
    }));
    let check = report::edge_check(guard, gateway.clone(), limiter_degraded);
    let routes_watch = start_api_side(&args, check, &gateway).await;
    let loaded_table = Loaded::register(&mut registry);

    let ready = Readiness::default();
    let routers = Routers::new(
        gateway.clone(),
        ready.clone(),
        registry,
        loaded_table.clone(),
    );
    let listener = ops_port::bind(common.http_addr, "the public API").await?;
    let ops_listener = ops_port::bind(ops_addr, "the operations endpoints").await?;
    // The first table (the mounted file until the watch lists) loads on the first tick.
    let watcher = tokio::spawn(reload::reload(
        gateway,
        loader,
        ready.clone(),
        every,
        routes_watch,
        loaded_table,
    ));
    // Up before the public server, and until after its drain: probes see "not ready" meanwhile.
    let mut ops_server = OpsServer::spawn(ops_listener, routers.ops);
    tracing::info!(%storefront, addr = %common.http_addr, ops = %ops_addr, "gateway serving");

    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let draining = ready.clone();
    let server = serve(listener, routers.public, async move {
        ops::shutdown_signal().await;
        draining.set(false);
        let _ = signalled.send(());
    });
    let drain = common.drain();
    let deadline = async move {
        if on_signal.await.is_ok() {
            tracing::info!(seconds = drain.as_secs(), "draining");
            tokio::time::sleep(drain).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = server => result.context("failed to serve HTTP"),
        () = deadline => {
            tracing::warn!("in-flight requests outlived the {drain:?} drain; stopping");
            Ok(())
        }
        e = ops_server.failed() => Err(e),
    };
    watcher.abort();
    heartbeats.abort();
    ops_server.stop().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_platform::token::SigningKeys;

    fn ring(epoch: i64, shards: usize) -> String {
        let shards: Vec<String> = (0..shards)
            .map(|i| {
                format!(
                    r#"{{"index": {i}, "name": "s{i}", "address": "127.0.0.1:{}"}}"#,
                    1000 + i
                )
            })
            .collect();
        format!(
            r#"{{"service": "inventory", "epoch": {epoch}, "algorithm": "jump", "shards": [{}]}}"#,
            shards.join(",")
        )
    }

    fn args(flags: &[&str]) -> GatewayArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            gateway: GatewayArgs,
        }
        let argv = std::iter::once("gateway").chain(flags.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("parses")
            .gateway
    }

    #[test]
    fn the_ops_endpoints_get_a_port_of_their_own() {
        let default = args(&[]);
        assert_eq!(default.common.http_addr.port(), 8080);
        assert_eq!(
            default.ops_addr().expect("valid").to_string(),
            "0.0.0.0:8081"
        );
        let moved = args(&[
            "--http-addr",
            "127.0.0.1:9000",
            "--ops-addr",
            "127.0.0.1:9001",
        ]);
        assert_eq!(moved.ops_addr().expect("valid").port(), 9001);
        let err = args(&["--ops-addr", "127.0.0.1:8080"])
            .ops_addr()
            .expect_err("the public port");
        assert_eq!(
            err.to_string(),
            "invalid setting --ops-addr: 127.0.0.1:8080 shares its port with the public API's --http-addr 0.0.0.0:8080"
        );
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_watcher_reloads_without_restart_and_keeps_the_last_good_ring() {
        let dir = std::env::temp_dir().join(format!("sf-gw-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rings/r")).expect("dirs");
        let sources = Sources {
            routes_file: dir.join("routes.json"),
            rings_dir: dir.join("rings"),
        };
        let ring_file = sources.ring_file("r");
        let issuer = Arc::new(TokenIssuer::new(
            SigningKeys::from_seed([2; 32]).expect("key"),
            "shop",
            60,
            60,
        ));
        let gateway = Gateway::new(
            issuer,
            Arc::new(crate::resilience::guard::AllowAll),
            Deadlines::default(),
        );
        let ready = Readiness::default();
        let watcher = tokio::spawn(watch(
            gateway.clone(),
            Loader::new(sources.clone()),
            ready.clone(),
            Duration::from_millis(20),
        ));
        let epoch = |g: &Gateway| {
            g.upstreams()
                .sharded("inventory")
                .map(|s| (s.ring.epoch(), s.ring.shard_count()))
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!ready.get(), "not ready without a route table");

        std::fs::write(&ring_file, ring(1, 2)).expect("write");
        std::fs::write(
            &sources.routes_file,
            r#"{"storefront": "shop", "routes": [{"service": "inventory", "ring": "r"}]}"#,
        )
        .expect("write");
        until("the first table", || ready.get()).await;
        assert_eq!(epoch(&gateway), Some((1, 2)));

        std::fs::write(&ring_file, ring(2, 3)).expect("write");
        until("the new ring", || epoch(&gateway) == Some((2, 3))).await;

        std::fs::write(&ring_file, "{ not json").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            epoch(&gateway),
            Some((2, 3)),
            "a malformed ring keeps the last good one"
        );
        assert!(ready.get());

        std::fs::write(&ring_file, ring(3, 1)).expect("write");
        until("the fixed ring", || epoch(&gateway) == Some((3, 1))).await;
        watcher.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
