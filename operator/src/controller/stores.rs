//! Shared, trimmed watches: one watch per kind the operator reads, filtered to the objects it
//! manages (by label) and with `managedFields` dropped, so memory stays small with thousands of
//! objects. Each watch fills one store that reconciles read instead of calling the API server,
//! and fans out to every controller that needs its events (shared streams).
//!
//! ```text
//!  watch(Deployment, managed-by=storefront-operator) ──► store ──► Storefront controller (owns)
//!                                                             └──► ServiceShard controller (owns)
//! ```

use std::{fmt::Debug, hash::Hash, sync::Arc};

use futures::{Stream, StreamExt, future::ready};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt, predicates,
        reflector::{self, Store, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::labels;

/// Events buffered per subscriber of a shared watch.
const BUFFER: usize = 1024;

/// A watch whose store and events are shared between controllers.
pub struct SharedWatch<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    writer: Writer<K>,
    api: Api<K>,
    config: watcher::Config,
}

fn trim<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    pub fn new(api: Api<K>, labels: Option<&str>) -> Self {
        let (store, writer) = reflector::store_shared(BUFFER);
        let mut config = watcher::Config::default().any_semantic();
        if let Some(l) = labels {
            config = config.labels(l);
        }
        SharedWatch {
            store,
            writer,
            api,
            config,
        }
    }

    /// A stream of every object the watch sees, for one controller.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        // `store_shared` always creates a dispatcher, so subscribing cannot fail.
        self.writer
            .subscribe()
            .map(StreamExt::boxed)
            .unwrap_or_else(|| futures::stream::empty().boxed())
    }

    /// Starts the watch in the background; the store fills and subscribers get events.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let stream = watcher(self.api, self.config)
            .default_backoff()
            .modify(trim::<K>)
            .reflect_shared(self.writer)
            .for_each(|r| {
                if let Err(e) = r {
                    tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                }
                ready(())
            });
        tokio::spawn(stream)
    }
}

/// Stores of every kind the controllers read.
#[derive(Clone)]
pub struct Stores {
    pub storefronts: Store<Storefront>,
    pub sales: Store<FlashSale>,
    pub shards: Store<ServiceShard>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub service_accounts: Store<ServiceAccount>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub config_maps: Store<ConfigMap>,
}

/// Every shared watch, before they are started.
pub struct Watches {
    pub sales: SharedWatch<FlashSale>,
    pub shards: SharedWatch<ServiceShard>,
    pub deployments: SharedWatch<Deployment>,
    pub services: SharedWatch<Service>,
    pub service_accounts: SharedWatch<ServiceAccount>,
    pub hpas: SharedWatch<HorizontalPodAutoscaler>,
    pub pdbs: SharedWatch<PodDisruptionBudget>,
    pub config_maps: SharedWatch<ConfigMap>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Storefront watch: its store, and its stream of spec changes only (generation
/// predicate), so status writes do not retrigger reconciles.
pub fn storefronts(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<Storefront>,
    impl Stream<Item = Result<Storefront, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let stream = watcher(
        api::<Storefront>(client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(trim::<Storefront>)
    .reflect(writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    (reader, stream)
}

impl Watches {
    /// Creates every shared watch (in `namespace`, or cluster-wide).
    pub fn new(client: &Client, namespace: Option<&str>) -> Self {
        let managed = labels::managed_selector();
        let m = Some(managed.as_str());
        Watches {
            sales: SharedWatch::new(api(client, namespace), None),
            shards: SharedWatch::new(api(client, namespace), m),
            deployments: SharedWatch::new(api(client, namespace), m),
            services: SharedWatch::new(api(client, namespace), m),
            service_accounts: SharedWatch::new(api(client, namespace), m),
            hpas: SharedWatch::new(api(client, namespace), m),
            pdbs: SharedWatch::new(api(client, namespace), m),
            config_maps: SharedWatch::new(api(client, namespace), m),
        }
    }

    /// The stores (with the Storefront store from [`storefronts`]).
    pub fn stores(&self, storefronts: Store<Storefront>) -> Stores {
        Stores {
            storefronts,
            sales: self.sales.store.clone(),
            shards: self.shards.store.clone(),
            deployments: self.deployments.store.clone(),
            services: self.services.store.clone(),
            service_accounts: self.service_accounts.store.clone(),
            hpas: self.hpas.store.clone(),
            pdbs: self.pdbs.store.clone(),
            config_maps: self.config_maps.store.clone(),
        }
    }

    /// Starts every watch.
    pub fn start(self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            self.sales.start(),
            self.shards.start(),
            self.deployments.start(),
            self.services.start(),
            self.service_accounts.start(),
            self.hpas.start(),
            self.pdbs.start(),
            self.config_maps.start(),
        ]
    }
}

impl Stores {
    /// Resolves when every store has its initial list.
    pub async fn wait_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.storefronts.wait_until_ready().await?;
        self.sales.wait_until_ready().await?;
        self.shards.wait_until_ready().await?;
        self.deployments.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.service_accounts.wait_until_ready().await?;
        self.hpas.wait_until_ready().await?;
        self.pdbs.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await
    }
}
