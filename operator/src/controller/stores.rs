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

use futures::{Stream, StreamExt, channel::mpsc, future::ready};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{
            ConfigMap, ContainerState, ContainerStatus, Pod, PodStatus, Service, ServiceAccount,
        },
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt, predicates,
        reflector::{self, ObjectRef, Store, store::Writer},
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
    /// Shared streams carry only applied objects, so deletions are reported to `deleted`
    /// (the owners of a deleted child are reconciled: a deleted child is recreated at once).
    pub fn start(self, deleted: Deleted) -> tokio::task::JoinHandle<()> {
        self.start_with(move |obj: &K| deleted.notify(obj))
    }

    /// Like [`SharedWatch::start`], with what to do on a deletion.
    pub fn start_with(
        self,
        on_delete: impl Fn(&K) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let stream = watcher(self.api, self.config)
            .default_backoff()
            .modify(trim::<K>)
            .inspect(move |ev| {
                if let Ok(watcher::Event::Delete(obj)) = ev {
                    on_delete(obj);
                }
            })
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

/// Where deletions of children are reported: to the controller of their owner's kind.
#[derive(Clone)]
pub struct Deleted {
    pub storefronts: mpsc::UnboundedSender<ObjectRef<Storefront>>,
    pub shards: mpsc::UnboundedSender<ObjectRef<ServiceShard>>,
}

impl Deleted {
    fn notify<K: Resource>(&self, obj: &K) {
        let Some(ns) = obj.meta().namespace.as_deref() else {
            return;
        };
        for owner in obj
            .owner_references()
            .iter()
            .filter(|o| o.controller == Some(true))
        {
            // A closed channel only means the controller stopped; nothing to do then.
            match owner.kind.as_str() {
                "Storefront" => {
                    let _ = self
                        .storefronts
                        .unbounded_send(ObjectRef::new(&owner.name).within(ns));
                }
                "ServiceShard" => {
                    let _ = self
                        .shards
                        .unbounded_send(ObjectRef::new(&owner.name).within(ns));
                }
                _ => {}
            }
        }
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
    pub network_policies: Store<NetworkPolicy>,
    pub pods: Store<Pod>,
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
    pub network_policies: SharedWatch<NetworkPolicy>,
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
            network_policies: SharedWatch::new(api(client, namespace), m),
        }
    }

    /// The stores (with the Storefront store from [`storefronts`] and the pod store from
    /// [`pods`]).
    pub fn stores(&self, storefronts: Store<Storefront>, pods: Store<Pod>) -> Stores {
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
            network_policies: self.network_policies.store.clone(),
            pods,
        }
    }

    /// Starts every watch.
    pub fn start(self, deleted: &Deleted) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            // A deleted sale owns nothing, but its Storefront must drop it at once.
            self.sales.start_with({
                let storefronts = deleted.storefronts.clone();
                move |sale: &FlashSale| {
                    if let Some(ns) = sale.namespace() {
                        let _ = storefronts
                            .unbounded_send(ObjectRef::new(&sale.spec.storefront_ref).within(&ns));
                    }
                }
            }),
            self.shards.start(deleted.clone()),
            self.deployments.start(deleted.clone()),
            self.services.start(deleted.clone()),
            self.service_accounts.start(deleted.clone()),
            self.hpas.start(deleted.clone()),
            self.pdbs.start(deleted.clone()),
            self.config_maps.start(deleted.clone()),
            self.network_policies.start(deleted.clone()),
        ]
    }
}

impl Stores {
    /// Resolves when every store that no controller waits on has its initial list.
    ///
    /// The Storefront and ServiceShard stores are the controllers' own: each controller waits
    /// for its store itself, and a store's readiness wakes only one waiter, so they are not
    /// awaited here too.
    pub async fn wait_secondary_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.sales.wait_until_ready().await?;
        self.deployments.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.service_accounts.wait_until_ready().await?;
        self.hpas.wait_until_ready().await?;
        self.pdbs.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        self.network_policies.wait_until_ready().await?;
        self.pods.wait_until_ready().await
    }
}

/// Keeps of a pod only what failure detection reads: metadata (labels) and, per container, its
/// name, readiness, restart count and waiting reason. Pods are the most numerous objects the
/// operator watches; this keeps each to a few hundred bytes.
fn trim_pod(p: &mut Pod) {
    trim(p);
    p.spec = None;
    let Some(st) = p.status.as_mut() else { return };
    let containers = st.container_statuses.take().map(|cs| {
        cs.into_iter()
            .map(|c| ContainerStatus {
                name: c.name,
                ready: c.ready,
                restart_count: c.restart_count,
                state: c.state.map(|s| ContainerState {
                    waiting: s.waiting,
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            })
            .collect()
    });
    *st = PodStatus {
        phase: st.phase.take(),
        container_statuses: containers,
        ..PodStatus::default()
    };
}

/// Watches the pods of managed workloads (trimmed) into a store. Nothing is triggered by pod
/// events: Deployment and shard status changes already trigger reconciles.
pub fn pods(client: &Client, namespace: Option<&str>) -> (Store<Pod>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default()
        .any_semantic()
        .labels(&labels::managed_selector());
    let task = watcher(api::<Pod>(client, namespace), config)
        .default_backoff()
        .modify(trim_pod)
        .reflect(writer)
        .for_each(|r| {
            if let Err(e) = r {
                tracing::warn!(error = %e, kind = "Pod", "watch failed; retrying");
            }
            ready(())
        });
    (reader, tokio::spawn(task))
}
