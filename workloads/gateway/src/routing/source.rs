//! The route table straight from the API server: a watch on the gateway's one ConfigMap
//! (`GATEWAY_CONFIGMAP`, in `POD_NAMESPACE`), so that a FlashSale's limits apply within
//! about a second instead of the minute or more a mounted ConfigMap takes to update.
//!
//! ```text
//!  kube-apiserver ──watch configmaps?fieldSelector=metadata.name=<shop>-gateway-routes──▶ watch_routes
//!        (Role <shop>-gateway: get/list/watch on that name only)                 │ Fetched {routes.json bytes | why none,
//!                                                                                 ▼         resourceVersion}
//!                                        run::watch ── Loader::poll_routes ── Gateway::apply
//!                                          ▲ rings: still the mounted files (GATEWAY_RINGS_DIR), re-read every second
//! ```
//!
//! - **Rings stay mounted files.** Only the route table carries what a sale changes (the
//!   limits); a ring changes with resharding, whose epochs and draining tolerate a mount's
//!   delay. So the Role names the route ConfigMap alone.
//! - **Fallback.** Without `GATEWAY_CONFIGMAP`, or without a client (no in-cluster config and
//!   no kubeconfig: tests, local runs), the gateway reads the mounted file only, and says so
//!   once. Until the watch has listed once (API server down at start, RBAC not there yet),
//!   the mounted file serves too; from the first list on, the watch is the source.
//! - **Bad input.** A deleted ConfigMap, one without `routes.json` or one with garbage in it
//!   is refused by the loader like a bad file: the last good table stays, and each distinct
//!   failure is logged once. Watch errors (connection lost, forbidden) are retried with
//!   backoff by kube's watcher and logged once per distinct message.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;

/// The key of the route table in the ConfigMap.
pub const ROUTES_KEY: &str = "routes.json";

/// What the API server says the route table is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The bytes of `routes.json`, or why there are none.
    pub routes: Result<Vec<u8>, String>,
    /// The ConfigMap's `resourceVersion` (none when it is missing).
    pub resource_version: Option<String>,
}

/// Where the route table comes from in a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSource {
    pub namespace: String,
    pub name: String,
}

impl ApiSource {
    /// `Some` when both the ConfigMap's name and the namespace are set and not empty.
    pub fn from_settings(name: Option<&str>, namespace: Option<&str>) -> Option<Self> {
        match (name, namespace) {
            (Some(name), Some(ns)) if !name.is_empty() && !ns.is_empty() => Some(Self {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => None,
        }
    }

    /// `<namespace>/<name>`, for logs.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What `cm` (or its absence) means for the route table. Pure.
pub fn fetched(source: &ApiSource, cm: Option<&ConfigMap>) -> Fetched {
    let Some(cm) = cm else {
        return Fetched {
            routes: Err(format!("the ConfigMap {} is missing", source.describe())),
            resource_version: None,
        };
    };
    let text = cm.data.as_ref().and_then(|d| d.get(ROUTES_KEY));
    let binary = cm.binary_data.as_ref().and_then(|d| d.get(ROUTES_KEY));
    let routes = match (text, binary) {
        (Some(t), _) => Ok(t.as_bytes().to_vec()),
        (None, Some(b)) => Ok(b.0.clone()),
        (None, None) => Err(format!(
            "the ConfigMap {} has no {ROUTES_KEY}",
            source.describe()
        )),
    };
    Fetched {
        routes,
        resource_version: cm.metadata.resource_version.clone(),
    }
}

/// Folds watcher events into the ConfigMap's current state: `Some(Some(cm))` when it is
/// there, `Some(None)` when it is gone (deleted, or not found by a fresh list), `None` when
/// the event does not settle it yet (a relist in progress). Pure.
#[derive(Debug, Default)]
pub struct Fold {
    relisting: Option<Option<ConfigMap>>,
}

impl Fold {
    /// The state after `event`, when it is known.
    pub fn apply(&mut self, event: watcher::Event<ConfigMap>) -> Option<Option<ConfigMap>> {
        match event {
            watcher::Event::Apply(cm) => Some(Some(cm)),
            watcher::Event::Delete(_) => Some(None),
            watcher::Event::Init => {
                self.relisting = Some(None);
                None
            }
            watcher::Event::InitApply(cm) => {
                self.relisting = Some(Some(cm));
                None
            }
            watcher::Event::InitDone => Some(self.relisting.take().flatten()),
        }
    }
}

/// Logs each distinct message once (until another one comes).
#[derive(Debug, Default)]
pub struct Once(Option<String>);

impl Once {
    /// Whether `message` differs from the last one (and so should be logged).
    pub fn changed(&mut self, message: &str) -> bool {
        if self.0.as_deref() == Some(message) {
            return false;
        }
        self.0 = Some(message.to_string());
        true
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }
}

/// Watches `source` and publishes every change of its route table to `tx` (a new value only
/// when bytes, reason or resourceVersion changed). Runs until `tx` has no receiver.
pub async fn watch_routes(client: Client, source: ApiSource, tx: watch::Sender<Option<Fetched>>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &source.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", source.name));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut fold = Fold::default();
    let mut errors = Once::default();
    tracing::info!(configmap = %source.describe(), "watching the route table through the API");
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => {
                errors.clear();
                e
            }
            Err(e) => {
                let message = e.to_string();
                if errors.changed(&message) {
                    tracing::warn!(
                        configmap = %source.describe(),
                        "failed to watch the route table (retrying; the last good table stays): {message}"
                    );
                }
                continue;
            }
        };
        let Some(state) = fold.apply(event) else {
            continue;
        };
        let next = fetched(&source, state.as_ref());
        tx.send_if_modified(|current| {
            if current.as_ref() == Some(&next) {
                return false;
            }
            *current = Some(next);
            true
        });
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::ObjectMeta};

    use super::*;

    fn source() -> ApiSource {
        ApiSource {
            namespace: "shop".into(),
            name: "acme-gateway-routes".into(),
        }
    }

    fn cm(rv: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("acme-gateway-routes".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn settings_need_both_names() {
        assert_eq!(
            ApiSource::from_settings(Some("acme-gateway-routes"), Some("shop")),
            Some(source())
        );
        assert_eq!(ApiSource::from_settings(None, Some("shop")), None);
        assert_eq!(ApiSource::from_settings(Some("x"), None), None);
        assert_eq!(ApiSource::from_settings(Some(""), Some("shop")), None);
    }

    #[test]
    fn a_configmap_gives_its_routes_or_says_why_not() {
        let good = fetched(&source(), Some(&cm("7", &[(ROUTES_KEY, "{}")])));
        assert_eq!(good.routes, Ok(b"{}".to_vec()));
        assert_eq!(good.resource_version.as_deref(), Some("7"));

        let other = fetched(&source(), Some(&cm("8", &[("other", "x")])));
        let e = other.routes.expect_err("no routes.json");
        assert!(
            e.contains("shop/acme-gateway-routes has no routes.json"),
            "{e}"
        );

        let missing = fetched(&source(), None);
        assert!(missing.routes.expect_err("gone").contains("is missing"));
        assert_eq!(missing.resource_version, None);

        let mut binary = cm("9", &[]);
        binary.binary_data = Some(BTreeMap::from([(
            ROUTES_KEY.to_string(),
            ByteString(b"{\"b\":1}".to_vec()),
        )]));
        assert_eq!(
            fetched(&source(), Some(&binary)).routes,
            Ok(b"{\"b\":1}".to_vec())
        );
    }

    #[test]
    fn events_fold_into_present_or_gone() {
        let mut fold = Fold::default();
        // A first list that finds it.
        assert_eq!(fold.apply(watcher::Event::Init), None);
        assert_eq!(fold.apply(watcher::Event::InitApply(cm("1", &[]))), None);
        let listed = fold.apply(watcher::Event::InitDone).expect("settled");
        assert_eq!(
            listed.and_then(|c| c.metadata.resource_version),
            Some("1".into())
        );
        // Updates and a deletion.
        let updated = fold.apply(watcher::Event::Apply(cm("2", &[])));
        assert!(matches!(updated, Some(Some(_))));
        assert!(matches!(
            fold.apply(watcher::Event::Delete(cm("2", &[]))),
            Some(None)
        ));
        // A relist that finds nothing: gone.
        assert_eq!(fold.apply(watcher::Event::Init), None);
        assert!(matches!(fold.apply(watcher::Event::InitDone), Some(None)));
    }

    #[test]
    fn each_distinct_message_is_logged_once() {
        let mut once = Once::default();
        assert!(once.changed("forbidden"));
        assert!(!once.changed("forbidden"));
        assert!(once.changed("connection refused"));
        once.clear();
        assert!(once.changed("connection refused"));
    }
}
