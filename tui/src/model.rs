//! The cluster as the console sees it: our three custom resources as they are, and trimmed
//! summaries of Deployments, Pods and Events (only the fields a view shows).
//!
//! The summaries are built by pure `from_*` functions so that the watchers in
//! [`crate::sources`] stay thin and the views can be fed from fixtures in tests.

use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Event, Pod},
};
use storefront_crds::{FlashSale, ServiceShard, Storefront};

/// `app.kubernetes.io/instance`: the Storefront a child belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: the service (or shard) a child runs.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label selector of everything the operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=storefront-operator";
/// Shard ordinal label of a shard's pods.
pub const SHARD_LABEL: &str = "commerce.storefront.dev/shard";

/// Container waiting reasons that mean a pod will not become ready by itself.
pub const BAD_WAITING_REASONS: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// Everything the kube watchers know, one list per kind.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub storefronts: Vec<Storefront>,
    pub shards: Vec<ServiceShard>,
    pub sales: Vec<FlashSale>,
    pub deployments: Vec<DeploymentInfo>,
    pub pods: Vec<PodInfo>,
    pub events: Vec<EventInfo>,
}

impl Cluster {
    /// Sorts the per-Storefront lists by namespace and Storefront so that the `*_of` lookups
    /// are binary searches (a thousand Storefronts must not make every frame quadratic).
    /// The app calls it after every update of those lists.
    pub fn index(&mut self) {
        self.deployments.sort_by(|a, b| {
            (&a.namespace, &a.storefront, &a.name).cmp(&(&b.namespace, &b.storefront, &b.name))
        });
        self.pods.sort_by(|a, b| {
            (&a.namespace, &a.storefront, &a.name).cmp(&(&b.namespace, &b.storefront, &b.name))
        });
        self.shards.sort_by(|a, b| shard_key(a).cmp(&shard_key(b)));
    }

    /// Deployments of one Storefront (after [`Cluster::index`]).
    pub fn deployments_of(&self, namespace: &str, storefront: &str) -> &[DeploymentInfo] {
        slice_of(&self.deployments, (namespace, storefront), |d| {
            (d.namespace.as_str(), d.storefront.as_deref().unwrap_or(""))
        })
    }

    /// Pods of one Storefront (after [`Cluster::index`]).
    pub fn pods_of(&self, namespace: &str, storefront: &str) -> &[PodInfo] {
        slice_of(&self.pods, (namespace, storefront), |p| {
            (p.namespace.as_str(), p.storefront.as_deref().unwrap_or(""))
        })
    }

    /// ServiceShards of one Storefront (after [`Cluster::index`]).
    pub fn shards_of(&self, namespace: &str, storefront: &str) -> &[ServiceShard] {
        slice_of(&self.shards, (namespace, storefront), |s| {
            let (ns, sf, _) = shard_key(s);
            (ns, sf)
        })
    }
}

fn shard_key(s: &ServiceShard) -> (&str, &str, i32) {
    (
        s.metadata.namespace.as_deref().unwrap_or(""),
        s.spec.storefront.as_str(),
        s.spec.index,
    )
}

/// The run of `v` (sorted by `key`) whose key is `want`.
fn slice_of<'a, T>(v: &'a [T], want: (&str, &str), key: impl Fn(&T) -> (&str, &str)) -> &'a [T] {
    let start = v.partition_point(|x| key(x) < want);
    let len = v[start..].partition_point(|x| key(x) == want);
    &v[start..start + len]
}

/// A Deployment of a Storefront child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentInfo {
    pub namespace: String,
    pub name: String,
    pub storefront: Option<String>,
    pub component: Option<String>,
    pub shard: Option<String>,
    /// When the Deployment was created.
    pub created: Option<Timestamp>,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
}

/// A pod of a Storefront child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub storefront: Option<String>,
    pub component: Option<String>,
    /// Shard ordinal (`commerce.storefront.dev/shard`) of a shard's pod.
    pub shard: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Waiting reason of the first container that waits (e.g. `CrashLoopBackOff`).
    pub waiting_reason: Option<String>,
    pub message: String,
    /// When the pod was created.
    pub created: Option<Timestamp>,
}

impl PodInfo {
    /// The topology node the pod belongs to: its shard (`<storefront>-<service>-<index>`) or
    /// its service.
    pub fn node(&self) -> Option<String> {
        let component = self.component.clone()?;
        match (&self.shard, &self.storefront) {
            (Some(idx), Some(sf)) => Some(format!("{sf}-{component}-{idx}")),
            _ => Some(component),
        }
    }

    /// Whether the pod is stuck in a state it will not leave by itself.
    pub fn is_broken(&self) -> bool {
        self.waiting_reason
            .as_deref()
            .is_some_and(|r| BAD_WAITING_REASONS.contains(&r))
    }
}

/// An Event about one of our objects or their children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub namespace: String,
    /// Involved object kind and name.
    pub kind: String,
    pub object: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last: Option<Timestamp>,
}

/// Kinds whose Events the console shows.
pub const EVENT_KINDS: [&str; 8] = [
    "Storefront",
    "ServiceShard",
    "FlashSale",
    "Deployment",
    "ReplicaSet",
    "Pod",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
];

fn label(labels: Option<&std::collections::BTreeMap<String, String>>, key: &str) -> Option<String> {
    labels.and_then(|l| l.get(key)).cloned()
}

impl DeploymentInfo {
    /// The topology node the Deployment runs: a shard (by its name) or a service.
    pub fn node(&self) -> Option<String> {
        if self.shard.is_some() {
            Some(self.name.clone())
        } else {
            self.component.clone()
        }
    }

    pub fn from_deployment(d: &Deployment) -> Self {
        let labels = d.metadata.labels.as_ref();
        let status = d.status.clone().unwrap_or_default();
        DeploymentInfo {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            storefront: label(labels, INSTANCE_LABEL),
            component: label(labels, COMPONENT_LABEL),
            shard: label(labels, SHARD_LABEL),
            created: d.metadata.creation_timestamp.as_ref().map(|t| t.0),
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
        }
    }
}

impl PodInfo {
    pub fn from_pod(p: &Pod) -> Self {
        let labels = p.metadata.labels.as_ref();
        let status = p.status.clone().unwrap_or_default();
        let containers = status.container_statuses.unwrap_or_default();
        let waiting = containers
            .iter()
            .find_map(|c| c.state.as_ref()?.waiting.as_ref());
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        PodInfo {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            storefront: label(labels, INSTANCE_LABEL),
            component: label(labels, COMPONENT_LABEL),
            shard: label(labels, SHARD_LABEL),
            phase: status.phase.unwrap_or_default(),
            ready,
            restarts: containers.iter().map(|c| c.restart_count).sum(),
            waiting_reason: waiting.and_then(|w| w.reason.clone()),
            message: waiting.and_then(|w| w.message.clone()).unwrap_or_default(),
            created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

impl EventInfo {
    /// The event, if it is about a kind the console shows.
    pub fn from_event(e: &Event) -> Option<Self> {
        let kind = e.involved_object.kind.clone().unwrap_or_default();
        if !EVENT_KINDS.contains(&kind.as_str()) {
            return None;
        }
        let last = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        Some(EventInfo {
            namespace: e.metadata.namespace.clone().unwrap_or_default(),
            kind,
            object: e.involved_object.name.clone().unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
            last,
        })
    }

    /// Whether the event is about `storefront` or one of its children (named
    /// `<storefront>-…` by the operator).
    pub fn concerns(&self, storefront: &str) -> bool {
        self.object == storefront
            || self
                .object
                .strip_prefix(storefront)
                .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// Namespace and name of a Storefront, `("", "")` when unset.
pub fn sf_key(sf: &Storefront) -> (String, String) {
    (
        sf.metadata.namespace.clone().unwrap_or_default(),
        sf.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn per_storefront_lookups_find_exactly_their_objects() {
        let dep = |ns: &str, sf: Option<&str>, name: &str| DeploymentInfo {
            namespace: ns.into(),
            storefront: sf.map(Into::into),
            name: name.into(),
            ..DeploymentInfo::default()
        };
        let mut c = Cluster {
            deployments: vec![
                dep("b", Some("acme"), "acme-gateway"),
                dep("a", Some("acme"), "acme-orders"),
                dep("a", None, "stray"),
                dep("a", Some("acme"), "acme-auth"),
                dep("a", Some("acme-eu"), "acme-eu-auth"),
            ],
            ..Cluster::default()
        };
        c.index();
        let names = |v: &[DeploymentInfo]| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(c.deployments_of("a", "acme")),
            ["acme-auth", "acme-orders"]
        );
        assert_eq!(names(c.deployments_of("a", "acme-eu")), ["acme-eu-auth"]);
        assert_eq!(names(c.deployments_of("b", "acme")), ["acme-gateway"]);
        assert!(c.deployments_of("c", "acme").is_empty());
        assert!(c.pods_of("a", "acme").is_empty());
    }

    #[test]
    fn crash_looping_pod_is_broken_and_counts_restarts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "acme-orders-1", "namespace": "shop",
                "labels": {INSTANCE_LABEL: "acme", COMPONENT_LABEL: "orders"}},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "orders", "image": "x", "imageID": "", "ready": false, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}
            }]}
        }))
        .unwrap();
        let info = PodInfo::from_pod(&pod);
        assert!(info.is_broken());
        assert!(!info.ready);
        assert_eq!(info.restarts, 7);
        assert_eq!(info.storefront.as_deref(), Some("acme"));
        assert_eq!(info.component.as_deref(), Some("orders"));
    }

    #[test]
    fn events_of_other_kinds_are_dropped_and_children_match_by_prefix() {
        let mut e = Event::default();
        e.involved_object.kind = Some("Secret".into());
        assert!(EventInfo::from_event(&e).is_none());
        e.involved_object.kind = Some("Pod".into());
        e.involved_object.name = Some("acme-gateway-5d9c".into());
        let info = EventInfo::from_event(&e).unwrap();
        assert!(info.concerns("acme"));
        assert!(!info.concerns("acm"));
        assert!(!info.concerns("acme-gateway-5d9c-x"));
    }
}
