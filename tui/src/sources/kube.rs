//! kube-rs watchers for the console. Each task runs `watcher(api, config).default_backoff()`,
//! keeps a store of trimmed objects keyed by `namespace/name` (a reflector of summaries), and
//! sends the full list after every burst of events. A watch error becomes
//! [`Update::ApiError`] of its kind; the watcher then backs off, re-lists, and its next list
//! clears that error.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Event, Pod},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use storefront_crds::{FlashSale, ServiceShard, Storefront};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    model::{DeploymentInfo, EventInfo, MANAGED_SELECTOR, PodInfo},
    state::Update,
};

/// Most Events kept (newest by last time).
const MAX_EVENTS: usize = 500;

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Drops what no view needs from our own kinds.
fn trim<K: Resource + Clone>(o: &K) -> Option<K> {
    let mut o = o.clone();
    o.meta_mut().managed_fields = None;
    o.meta_mut().annotations = None;
    Some(o)
}

/// Starts the six watchers.
pub fn spawn(
    client: Client,
    namespace: Option<&str>,
    tx: mpsc::Sender<Update>,
) -> Vec<JoinHandle<()>> {
    let pending = Arc::new(AtomicUsize::new(6));
    let managed = watcher::Config::default().labels(MANAGED_SELECTOR);
    let all = watcher::Config::default();
    vec![
        tokio::spawn(watch(
            api::<Storefront>(&client, namespace),
            all.clone(),
            trim,
            Update::Storefronts,
            tx.clone(),
            pending.clone(),
        )),
        tokio::spawn(watch(
            api::<ServiceShard>(&client, namespace),
            all.clone(),
            trim,
            Update::Shards,
            tx.clone(),
            pending.clone(),
        )),
        tokio::spawn(watch(
            api::<FlashSale>(&client, namespace),
            all.clone(),
            trim,
            Update::Sales,
            tx.clone(),
            pending.clone(),
        )),
        tokio::spawn(watch(
            api::<Deployment>(&client, namespace),
            managed.clone(),
            |d| Some(DeploymentInfo::from_deployment(d)),
            Update::Deployments,
            tx.clone(),
            pending.clone(),
        )),
        tokio::spawn(watch(
            api::<Pod>(&client, namespace),
            managed,
            |p| Some(PodInfo::from_pod(p)),
            Update::Pods,
            tx.clone(),
            pending.clone(),
        )),
        tokio::spawn(watch(
            api::<Event>(&client, namespace),
            all,
            EventInfo::from_event,
            |mut v: Vec<EventInfo>| {
                v.sort_by_key(|e| std::cmp::Reverse(e.last));
                v.truncate(MAX_EVENTS);
                Update::Events(v)
            },
            tx,
            pending,
        )),
    ]
}

/// One watcher: a store of summaries, the full list sent after each burst of events.
async fn watch<K, S>(
    api: Api<K>,
    config: watcher::Config,
    summarize: impl Fn(&K) -> Option<S>,
    wrap: impl Fn(Vec<S>) -> Update,
    tx: mpsc::Sender<Update>,
    pending: Arc<AtomicUsize>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    S: Clone,
{
    let events = watcher(api, config).default_backoff();
    consume(events, summarize, wrap, tx, pending).await;
}

/// Folds a watch stream into a store and sends it: the list after every burst of events, an
/// [`Update::ApiError`] per error, and [`Update::ApiSynced`] once every watcher sharing
/// `pending` has delivered its first list.
async fn consume<K, S>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    summarize: impl Fn(&K) -> Option<S>,
    wrap: impl Fn(Vec<S>) -> Update,
    tx: mpsc::Sender<Update>,
    pending: Arc<AtomicUsize>,
) where
    K: Resource + Clone + Debug + Send + 'static,
    K::DynamicType: Default,
    S: Clone,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut store: BTreeMap<String, S> = BTreeMap::new();
    let mut init: Option<BTreeMap<String, S>> = None;
    let mut synced = false;
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    let mut events = events.ready_chunks(512).boxed();
    while let Some(batch) = events.next().await {
        let mut changed = false;
        let mut first_sync = false;
        for ev in batch {
            match ev {
                Ok(watcher::Event::Init) => init = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let (Some(buf), Some(s)) = (init.as_mut(), summarize(&o)) {
                        buf.insert(key(&o), s);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(buf) = init.take() {
                        store = buf;
                    }
                    changed = true;
                    first_sync |= !synced;
                    synced = true;
                }
                Ok(watcher::Event::Apply(o)) => {
                    match summarize(&o) {
                        Some(s) => store.insert(key(&o), s),
                        None => store.remove(&key(&o)),
                    };
                    changed = true;
                }
                Ok(watcher::Event::Delete(o)) => {
                    store.remove(&key(&o));
                    changed = true;
                }
                Err(e) => {
                    if tx
                        .send(Update::ApiError(
                            kind.clone(),
                            format!("failed to watch {kind}: {e}"),
                        ))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if changed
            && tx
                .send(wrap(store.values().cloned().collect()))
                .await
                .is_err()
        {
            return;
        }
        // Synced only once every kind's first list is in the app (sent just above).
        if first_sync
            && pending.fetch_sub(1, Ordering::SeqCst) == 1
            && tx.send(Update::ApiSynced).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use watcher::Event as E;

    fn sf(name: &str) -> Storefront {
        let mut s = Storefront::new(name, Default::default());
        s.metadata.namespace = Some("shop".into());
        s
    }

    fn names(u: &Update) -> Vec<String> {
        match u {
            Update::Storefronts(v) => v.iter().map(|s| s.name_any()).collect(),
            other => panic!("expected Storefronts, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn lists_after_init_synced_after_the_list_and_errors_by_kind() {
        let (tx, mut rx) = mpsc::channel(16);
        let pending = Arc::new(AtomicUsize::new(1));
        // one burst: the initial list; then a change, a delete and an error, each on its own
        let (etx, erx) = futures::channel::mpsc::unbounded();
        for e in [
            E::Init,
            E::InitApply(sf("a")),
            E::InitApply(sf("b")),
            E::InitDone,
        ] {
            etx.unbounded_send(Ok(e)).unwrap();
        }
        let task = tokio::spawn(consume(erx, trim, Update::Storefronts, tx, pending.clone()));
        assert_eq!(names(&rx.recv().await.unwrap()), ["a", "b"]);
        assert!(
            matches!(rx.recv().await.unwrap(), Update::ApiSynced),
            "synced after the list"
        );
        etx.unbounded_send(Ok(E::Apply(sf("c")))).unwrap();
        assert_eq!(names(&rx.recv().await.unwrap()), ["a", "b", "c"]);
        etx.unbounded_send(Ok(E::Delete(sf("a")))).unwrap();
        assert_eq!(names(&rx.recv().await.unwrap()), ["b", "c"]);
        etx.unbounded_send(Err(watcher::Error::NoResourceVersion))
            .unwrap();
        match rx.recv().await.unwrap() {
            Update::ApiError(kind, msg) => {
                assert_eq!(kind, "Storefront");
                assert!(msg.starts_with("failed to watch Storefront: "), "{msg}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
        // a re-list replaces the store wholesale and does not sync twice
        for e in [E::Init, E::InitApply(sf("z")), E::InitDone] {
            etx.unbounded_send(Ok(e)).unwrap();
        }
        assert_eq!(names(&rx.recv().await.unwrap()), ["z"]);
        drop(etx);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "no second ApiSynced");
        assert_eq!(pending.load(Ordering::SeqCst), 0);
    }
}
