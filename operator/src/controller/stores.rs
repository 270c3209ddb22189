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
            ConfigMap, ContainerState, ContainerStatus, Pod, PodCondition, PodStatus, Secret,
            Service, ServiceAccount,
        },
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt, predicates,
        reflector::{self, ObjectRef, Store, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::{decide::status::WORKLOAD_CONDITION_PREFIX, labels};

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
    pub roles: Store<Role>,
    pub role_bindings: Store<RoleBinding>,
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
    pub roles: SharedWatch<Role>,
    pub role_bindings: SharedWatch<RoleBinding>,
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
            roles: SharedWatch::new(api(client, namespace), m),
            role_bindings: SharedWatch::new(api(client, namespace), m),
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
            roles: self.roles.store.clone(),
            role_bindings: self.role_bindings.store.clone(),
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
            self.roles.start(deleted.clone()),
            self.role_bindings.start(deleted.clone()),
        ]
    }
}

impl Stores {
    /// The FlashSales of namespace `ns` (a sale targets a Storefront of its own namespace).
    pub fn sales_in(&self, ns: &str) -> Vec<FlashSale> {
        self.sales
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns))
            .map(|s| (**s).clone())
            .collect()
    }

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
        self.roles.wait_until_ready().await?;
        self.role_bindings.wait_until_ready().await?;
        self.pods.wait_until_ready().await
    }
}

/// Keeps of a pod only what failure detection reads: metadata (labels), per container its
/// name, readiness, restart count and waiting reason, and the workload's own conditions
/// ([`WORKLOAD_CONDITION_PREFIX`]). Pods are the most numerous objects the operator watches;
/// this keeps each to a few hundred bytes.
fn trim_pod(p: &mut Pod) {
    trim(p);
    p.spec = None;
    let Some(st) = p.status.as_mut() else { return };
    let conditions = st.conditions.take().map(|cs| {
        cs.into_iter()
            .filter(|c| c.type_.starts_with(WORKLOAD_CONDITION_PREFIX))
            .map(|c| PodCondition {
                last_probe_time: None,
                ..c
            })
            .collect::<Vec<_>>()
    });
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
        conditions: conditions.filter(|c| !c.is_empty()),
        ..PodStatus::default()
    };
}

/// What of a (trimmed) pod's own conditions matters to its Storefront's status.
type EdgeState = Vec<(String, String, Option<String>, Option<String>)>;

fn edge_state(p: &Pod) -> EdgeState {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect()
}

/// Remembers each pod's own conditions and says which Storefront to reconcile when they
/// changed (a gateway's breaker opened, its limiter degraded or recovered): pod events
/// trigger nothing else.
#[derive(Default)]
struct EdgeChanges(std::collections::HashMap<(String, String), EdgeState>);

impl EdgeChanges {
    fn on_event(&mut self, event: &watcher::Event<Pod>) -> Option<ObjectRef<Storefront>> {
        let (pod, state) = match event {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, Some(edge_state(p))),
            watcher::Event::Delete(p) => (p, None),
            watcher::Event::Init | watcher::Event::InitDone => return None,
        };
        let ns = pod.namespace()?;
        let key = (ns.clone(), pod.name_any());
        let before = match state.clone() {
            Some(s) => self.0.insert(key, s),
            None => self.0.remove(&key),
        };
        if before.unwrap_or_default() == state.unwrap_or_default() {
            return None;
        }
        let storefront = pod.labels().get(labels::INSTANCE)?;
        Some(ObjectRef::new(storefront).within(&ns))
    }
}

/// Watches the pods of managed workloads (trimmed) into a store. Deployment and shard status
/// changes already trigger reconciles; pod events do only when a pod's own conditions
/// changed (sent to `edge`: the gateway's edge health, see [`EdgeChanges`]).
pub fn pods(
    client: &Client,
    namespace: Option<&str>,
    edge: mpsc::UnboundedSender<ObjectRef<Storefront>>,
) -> (Store<Pod>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default()
        .any_semantic()
        .labels(&labels::managed_selector());
    let mut changes = EdgeChanges::default();
    let task = watcher(api::<Pod>(client, namespace), config)
        .default_backoff()
        .modify(trim_pod)
        .inspect(move |ev| {
            if let Some(sf) = ev.as_ref().ok().and_then(|e| changes.on_event(e)) {
                let _ = edge.unbounded_send(sf);
            }
        })
        .reflect(writer)
        .for_each(|r| {
            if let Err(e) = r {
                tracing::warn!(error = %e, kind = "Pod", "watch failed; retrying");
            }
            ready(())
        });
    (reader, tokio::spawn(task))
}

/// The Storefronts in `namespace` that name Secret `secret` (datastores, JWT keys).
fn naming_secret(
    storefronts: &Store<Storefront>,
    namespace: &str,
    secret: &str,
) -> Vec<ObjectRef<Storefront>> {
    storefronts
        .state()
        .iter()
        .filter(|sf| sf.namespace().as_deref() == Some(namespace))
        .filter(|sf| {
            crate::references::secret_refs(&sf.spec)
                .iter()
                .any(|r| r.secret == secret)
        })
        .map(|sf| ObjectRef::from_obj(sf.as_ref()))
        .collect()
}

/// Watches Secrets' metadata only (no data is ever held: a list of names and versions), and
/// sends to `trigger` the Storefronts that name a Secret when it is created, changed or
/// deleted, so a shop waiting for its Secrets starts the moment they exist (no polling).
/// The initial list triggers nothing: every Storefront is reconciled at start anyway.
pub fn secret_triggers(
    client: &Client,
    namespace: Option<&str>,
    storefronts: Store<Storefront>,
    trigger: mpsc::UnboundedSender<ObjectRef<Storefront>>,
) -> tokio::task::JoinHandle<()> {
    // An `Api` of `PartialObjectMeta` makes metadata-only list and watch requests.
    let secrets: Api<PartialObjectMeta<Secret>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let task = watcher(secrets, watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |ev| {
            let obj = match &ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => Some(o),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, kind = "Secret", "watch failed; retrying");
                    None
                }
            };
            if let Some(o) = obj
                && let Some(ns) = o.namespace()
            {
                for sf in naming_secret(&storefronts, &ns, &o.name_any()) {
                    let _ = trigger.unbounded_send(sf);
                }
            }
            ready(())
        });
    tokio::spawn(task)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, conditions: &[(&str, &str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some([(labels::INSTANCE.to_string(), "acme".to_string())].into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s, r)| PodCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            reason: Some((*r).into()),
                            ..PodCondition::default()
                        })
                        .collect(),
                ),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn trimming_keeps_only_the_workloads_own_conditions() {
        let mut p = pod(
            "gw",
            &[
                ("Ready", "True", "x"),
                ("storefront.dev/CircuitsClosed", "False", "CircuitOpen"),
            ],
        );
        trim_pod(&mut p);
        assert_eq!(
            edge_state(&p),
            [(
                "storefront.dev/CircuitsClosed".to_string(),
                "False".to_string(),
                Some("CircuitOpen".to_string()),
                None
            )]
        );
    }

    #[test]
    fn only_changes_of_a_pods_own_conditions_trigger_its_storefront() {
        let mut changes = EdgeChanges::default();
        let healthy = pod(
            "gw",
            &[("storefront.dev/CircuitsClosed", "True", "AllClosed")],
        );
        let open = pod(
            "gw",
            &[("storefront.dev/CircuitsClosed", "False", "CircuitOpen")],
        );
        let sf = Some(ObjectRef::new("acme").within("shop"));
        assert_eq!(
            changes.on_event(&watcher::Event::InitApply(healthy.clone())),
            sf
        );
        assert_eq!(
            changes.on_event(&watcher::Event::Apply(healthy.clone())),
            None
        );
        assert_eq!(changes.on_event(&watcher::Event::Apply(open.clone())), sf);
        assert_eq!(changes.on_event(&watcher::Event::Apply(open.clone())), None);
        assert_eq!(changes.on_event(&watcher::Event::Delete(open)), sf);
        // A pod without conditions of its own comes and goes unnoticed.
        let plain = pod("auth", &[]);
        assert_eq!(
            changes.on_event(&watcher::Event::Apply(plain.clone())),
            None
        );
        assert_eq!(changes.on_event(&watcher::Event::Delete(plain)), None);
    }
}
