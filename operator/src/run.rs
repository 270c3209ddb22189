//! `storefront-operator run`: checks the CRDs are installed, waits to lead (Lease), starts the
//! shared watches and both controllers, serves `/metrics`, `/healthz` and `/readyz`, and shuts
//! down gracefully on SIGTERM.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context as _, bail};
use axum::{Router, extract::State, http::StatusCode, routing::get};
use futures::StreamExt;
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{Controller, events::Reporter, watcher},
};
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::{
    controller::{Context, sale, shard, storefront, stores},
    metrics::Metrics,
};

/// Settings of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "STOREFRONT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "STOREFRONT_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "storefront-system")]
    pub lease_namespace: String,
    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "storefront-operator-local")]
    pub identity: String,
    /// Do not elect a leader (one replica only, e.g. when run outside the cluster).
    #[arg(long)]
    pub no_leader_election: bool,
}

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    /// This replica holds the Lease (or runs without leader election).
    leading: Arc<AtomicBool>,
    /// The child caches have their initial lists.
    synced: Arc<AtomicBool>,
}

async fn metrics(
    State(h): State<Health>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

/// A standby replica is ready (it must be, for rolling updates to proceed while another
/// replica holds the Lease); a leader is ready once its caches are synced.
async fn readyz(State(h): State<Health>) -> (StatusCode, &'static str) {
    let leading = h.leading.load(Ordering::Relaxed);
    if !leading {
        (StatusCode::OK, "standby\n")
    } else if h.synced.load(Ordering::Relaxed) {
        (StatusCode::OK, "leading\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "leading, caches not synced yet\n",
        )
    }
}

async fn serve(addr: SocketAddr, health: Health) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    axum::serve(listener, app)
        .await
        .context("metrics server failed")
}

/// Fails with a clear message when the CRDs are missing.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let probe = |r: Result<_, kube::Error>, plural: &str| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => bail!(
            "the {plural}.commerce.storefront.dev CRD is not installed: run `kubectl apply -f manifests/crds/` first"
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("failed to list {plural}"))),
    };
    let lp = ListParams::default().limit(1);
    probe(
        Api::<Storefront>::all(client.clone())
            .list_metadata(&lp)
            .await
            .map(|_| ()),
        "storefronts",
    )?;
    probe(
        Api::<ServiceShard>::all(client.clone())
            .list_metadata(&lp)
            .await
            .map(|_| ()),
        "serviceshards",
    )?;
    probe(
        Api::<storefront_crds::FlashSale>::all(client.clone())
            .list_metadata(&lp)
            .await
            .map(|_| ()),
        "flashsales",
    )
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// Runs the operator until SIGTERM or loss of leadership.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("failed to create a Kubernetes client (KUBECONFIG or in-cluster config)")?;
    check_crds(&client).await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let leading = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        leading: leading.clone(),
        synced: ready.clone(),
    };
    let server = tokio::spawn(serve(args.metrics_addr, health));

    // Leader election: only the holder of the Lease reconciles.
    let mut leadership = None;
    if !args.no_leader_election {
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "storefront-operator")
                .with_namespace(&args.lease_namespace)
                .with_identity(&args.identity)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await
                .context("failed to set up leader election")?;
        let (mut channel, task) = manager.watch().await;
        tracing::info!(identity = %args.identity, "waiting to lead");
        tokio::select! {
            r = async { while !*channel.borrow_and_update() { channel.changed().await?; } Ok::<_, anyhow::Error>(()) } => r.context("leader election stopped")?,
            _ = shutdown_signal() => return Ok(()),
        }
        tracing::info!(identity = %args.identity, "leading");
        leading.store(true, Ordering::Relaxed);
        leadership = Some((channel, task));
    }

    leading.store(true, Ordering::Relaxed);
    let ns = args.namespace.as_deref();
    let (sf_store, sf_stream) = stores::storefronts(&client, ns);
    let watches = stores::Watches::new(&client, ns);
    // Storefronts to reconcile now: a child was deleted, or a pod's own conditions changed.
    let (sf_deleted, sf_deleted_rx) = futures::channel::mpsc::unbounded();
    let (pod_store, _pod_task) = stores::pods(&client, ns, sf_deleted.clone());
    // A Storefront waiting for a Secret it names is reconciled when that Secret appears.
    let _secret_task = stores::secret_triggers(&client, ns, sf_store.clone(), sf_deleted.clone());
    let stores = watches.stores(sf_store.clone(), pod_store);
    let reporter = Reporter {
        controller: "storefront-operator".into(),
        instance: Some(args.identity.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        stores: stores.clone(),
        metrics,
        reporter,
        synced: ready.clone(),
    });

    let (shard_deleted, shard_deleted_rx) = futures::channel::mpsc::unbounded();
    let deleted = stores::Deleted {
        storefronts: sf_deleted,
        shards: shard_deleted,
    };
    let sf_controller = Controller::for_stream(sf_stream, sf_store)
        .reconcile_on(sf_deleted_rx)
        .owns_shared_stream(watches.deployments.subscribe())
        .owns_shared_stream(watches.services.subscribe())
        .owns_shared_stream(watches.service_accounts.subscribe())
        .owns_shared_stream(watches.hpas.subscribe())
        .owns_shared_stream(watches.pdbs.subscribe())
        .owns_shared_stream(watches.config_maps.subscribe())
        .owns_shared_stream(watches.shards.subscribe())
        .owns_shared_stream(watches.network_policies.subscribe())
        .owns_shared_stream(watches.roles.subscribe())
        .owns_shared_stream(watches.role_bindings.subscribe())
        .watches_shared_stream(watches.sales.subscribe(), storefront::sale_to_storefront)
        .graceful_shutdown_on(shutdown_signal())
        .run(storefront::reconcile, storefront::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let shard_controller =
        Controller::for_shared_stream(watches.shards.subscribe(), stores.shards.clone())
            .owns_shared_stream(watches.deployments.subscribe())
            .owns_shared_stream(watches.services.subscribe())
            .reconcile_on(shard_deleted_rx)
            .graceful_shutdown_on(shutdown_signal())
            .run(shard::reconcile, shard::error_policy, ctx.clone())
            .for_each(|_| futures::future::ready(()));
    // The sale controller has a watch of its own: the shared sales store is already awaited by
    // `wait_secondary_ready`, and a store's readiness wakes only one waiter. Sales are few.
    let sales_api: Api<FlashSale> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let sale_controller = Controller::new(sales_api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(shutdown_signal())
        .run(sale::reconcile, sale::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let _watch_tasks = watches.start(&deleted);
    let ready_flag = ready.clone();
    let stores_ready = stores.clone();
    tokio::spawn(async move {
        if stores_ready.wait_secondary_ready().await.is_ok() {
            ready_flag.store(true, Ordering::Relaxed);
            tracing::info!("caches synced");
        }
    });

    let lost = async {
        match &mut leadership {
            Some((channel, _)) => {
                while *channel.borrow_and_update() {
                    if channel.changed().await.is_err() {
                        break;
                    }
                }
            }
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = futures::future::join3(sf_controller, shard_controller, sale_controller) => tracing::info!("controllers stopped"),
        _ = lost => {
            ready.store(false, Ordering::Relaxed);
            bail!("lost leadership; exiting so that a fresh process can campaign again");
        }
        r = server => match r {
            Ok(Err(e)) => return Err(e),
            _ => bail!("metrics server stopped"),
        },
    }
    if let Some((channel, task)) = leadership {
        drop(channel);
        if let Ok(Ok(manager)) = task.await {
            let _ = manager.release().await;
        }
    }
    Ok(())
}
