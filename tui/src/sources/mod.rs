//! I/O: the tasks that feed the app over a tokio channel. Nothing here renders or decides.
//!
//! * [`kube`]: one watcher per kind (Storefront, ServiceShard, FlashSale, Deployment, Pod,
//!   Event) — list+watch streams, no polling of the API server; each keeps its own trimmed
//!   store and sends the whole list on change (coalesced per burst).
//! * [`prometheus`]: polls the console's PromQL on an interval with prometheus-http-query.
//!
//! Failures are reported as [`crate::state::Update`]s (`ApiError`, `Prometheus(Err)`), never
//! panics; watchers back off and re-list by themselves, the poller simply tries again.

pub mod kube;
pub mod prometheus;

use std::time::Duration;

use tokio::{sync::mpsc, task::JoinHandle};

use crate::state::Update;

/// What to watch and poll.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Watch one namespace; `None` watches all.
    pub namespace: Option<String>,
    pub prometheus_url: Option<String>,
    /// Extra CA certificates (PEM) for an HTTPS Prometheus.
    pub prometheus_ca: Option<std::path::PathBuf>,
    pub prometheus_interval: Duration,
}

/// Starts every source; they run until the receiver is dropped.
pub fn spawn(
    client: ::kube::Client,
    cfg: &SourceConfig,
    tx: mpsc::Sender<Update>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = kube::spawn(client, cfg.namespace.as_deref(), tx.clone());
    if let Some(url) = &cfg.prometheus_url {
        tasks.push(tokio::spawn(prometheus::poll(
            url.clone(),
            cfg.prometheus_ca.clone(),
            cfg.prometheus_interval,
            tx,
        )));
    }
    tasks
}
