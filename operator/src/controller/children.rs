//! Apply and prune the children of one owner, generically over kinds.
//!
//! For each desired object: skip it when the live object (from the shared store) already
//! contains it ([`crate::decide::subset`]), otherwise server-side apply it with our field manager and
//! `force`. Then delete every labelled child of the owner that is no longer desired. A reconcile
//! with nothing to change therefore makes no writes.
//!
//! An owner's children are a list of [`Child`] entries, one per kind (a store and the desired
//! objects of that kind, see [`of`]), synced in the list's order by [`sync_all`]:
//!
//! ```text
//!  [of(&stores.config_maps, &desired.config_maps), of(&stores.deployments, …), …]
//!      └─► sync_all(target, list) ─► sync::<ConfigMap>, then sync::<Deployment>, …
//! ```

use std::{borrow::Cow, collections::HashSet, fmt::Debug};

use futures::{FutureExt, future::BoxFuture};

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::reflector::Store,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{decide::subset, error::Error, labels, metrics::Metrics};

/// What one sync changed, by object name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub applied: Vec<String>,
    pub pruned: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.pruned.is_empty()
    }
}

/// Whether the live object already says everything `desired` says.
pub fn up_to_date<K: Serialize>(live: Option<&K>, desired: &K) -> Result<bool, Error> {
    let Some(live) = live else { return Ok(false) };
    let live = serde_json::to_value(live).map_err(|e| Error::Serialize("live object", e))?;
    let want = serde_json::to_value(desired).map_err(|e| Error::Serialize("desired object", e))?;
    Ok(subset::contains(&live, &want))
}

/// What a sync must do: which desired objects to apply, which live children to delete.
#[derive(Debug)]
pub struct SyncPlan<'a, K> {
    pub apply: Vec<&'a K>,
    pub prune: Vec<String>,
}

/// Decides a sync without calling the API server: apply what is missing or different, prune
/// what is labelled for `instance`, controlled by `owner_uid`, in `namespace`, and not desired.
pub fn plan_sync<'a, K>(
    live: &[std::sync::Arc<K>],
    namespace: &str,
    instance: &str,
    owner_uid: &str,
    desired: &'a [K],
) -> Result<SyncPlan<'a, K>, Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut plan = SyncPlan {
        apply: Vec::new(),
        prune: Vec::new(),
    };
    let mut keep = HashSet::new();
    for obj in desired {
        let name = obj
            .meta()
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name"))?;
        let current = live.iter().find(|l| {
            l.meta().name.as_deref() == Some(name.as_str())
                && l.meta().namespace.as_deref() == Some(namespace)
        });
        if !up_to_date(current.map(|c| c.as_ref()), obj)? {
            plan.apply.push(obj);
        }
        keep.insert(name);
    }
    for l in live {
        let owned = l
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid && o.controller == Some(true));
        let labelled = l.labels().get(labels::INSTANCE).map(String::as_str) == Some(instance)
            && l.labels().get(labels::MANAGED_BY).map(String::as_str) == Some(labels::MANAGER);
        let name = l.name_any();
        if l.meta().namespace.as_deref() == Some(namespace)
            && owned
            && labelled
            && !keep.contains(&name)
            && l.meta().deletion_timestamp.is_none()
        {
            plan.prune.push(name);
        }
    }
    Ok(plan)
}

/// Applies `desired` children of `owner_uid` in `namespace` and prunes the rest of its children
/// of this kind (those labelled for `instance` and owned by `owner_uid`).
#[allow(clippy::too_many_arguments)]
pub async fn sync<K>(
    client: &Client,
    metrics: &Metrics,
    store: &Store<K>,
    namespace: &str,
    instance: &str,
    owner_uid: &str,
    field_manager: &str,
    desired: &[K],
) -> Result<Changes, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    let plan = plan_sync(&store.state(), namespace, instance, owner_uid, desired)?;
    let mut changes = Changes::default();
    for obj in plan.apply {
        let name = obj.name_any();
        api.patch(
            &name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(obj),
        )
        .await?;
        metrics.write(&kind, "apply");
        changes.applied.push(name);
    }
    for name in plan.prune {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        metrics.write(&kind, "delete");
        changes.pruned.push(name);
    }
    Ok(changes)
}

/// Who owns a list of children and how they are written: the owner's namespace, the
/// `instance` label of its children, its uid, and our field manager.
pub struct Target<'a> {
    pub client: &'a Client,
    pub metrics: &'a Metrics,
    pub namespace: &'a str,
    pub instance: &'a str,
    pub owner_uid: &'a str,
    pub field_manager: &'a str,
}

/// One kind of child in a list: what [`sync_all`] syncs, whatever the kind.
pub trait Child: Send + Sync {
    /// The kind's name (`Deployment`), as events say it.
    fn kind(&self) -> Cow<'static, str>;
    /// [`sync`] of this kind's desired objects against its store.
    fn sync<'a>(&'a self, target: &'a Target<'a>) -> BoxFuture<'a, Result<Changes, Error>>;
}

/// The desired objects of one kind and the store of the live ones.
struct Kind<'a, K: Resource<DynamicType = ()> + Clone + 'static> {
    store: &'a Store<K>,
    desired: &'a [K],
}

/// What a kind of child must be to sit in the list: a namespaced resource that [`sync`] can
/// apply and prune, shareable across the controller's tasks.
pub trait ChildKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> ChildKind for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// A list entry: the children of kind `K` in `desired`, the live ones in `store`.
pub fn of<'a, K: ChildKind>(store: &'a Store<K>, desired: &'a [K]) -> Box<dyn Child + 'a> {
    Box::new(Kind { store, desired })
}

impl<K: ChildKind> Child for Kind<'_, K> {
    fn kind(&self) -> Cow<'static, str> {
        K::kind(&())
    }

    fn sync<'a>(&'a self, t: &'a Target<'a>) -> BoxFuture<'a, Result<Changes, Error>> {
        sync(
            t.client,
            t.metrics,
            self.store,
            t.namespace,
            t.instance,
            t.owner_uid,
            t.field_manager,
            self.desired,
        )
        .boxed()
    }
}

/// Syncs every kind of `children` in the list's order, one after the other; the first error
/// stops it (the kinds after it are not applied). Each kind's name with what its sync changed.
pub async fn sync_all(
    target: &Target<'_>,
    children: &[Box<dyn Child + '_>],
) -> Result<Vec<(Cow<'static, str>, Changes)>, Error> {
    let mut changes = Vec::with_capacity(children.len());
    for child in children {
        changes.push((child.kind(), child.sync(target).await?));
    }
    Ok(changes)
}

/// Server-side applies `status` to the status subresource of `obj` with `field_manager`
/// (entries no longer in `status` are removed), and counts the write.
pub async fn apply_status<K, S>(
    client: &Client,
    metrics: &Metrics,
    obj: &K,
    field_manager: &str,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Serialize,
{
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    metrics.write(&K::kind(&()), "status");
    Ok(())
}

#[cfg(test)]
mod tests;
