//! Where a service's pods are found, for the [`super::pool::Pool`] that spreads calls over
//! them: the namespace's EndpointSlices watched through the API ([`endpoint_slices`]; a pod
//! that turns ready or goes away is seen within a second), or cluster DNS
//! ([`system_resolver`]; its answers are cached for up to 30 s) without API access. A
//! [`PodSource`] is the lookup and how often a pool repeats it.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How often the pods are looked up again in DNS (which caches answers for up to 30 s).
pub const REFRESH: Duration = Duration::from_secs(5);
/// How often they are read again from the watched EndpointSlices (a local read).
pub const REFRESH_WATCHED: Duration = Duration::from_secs(1);
/// Looks up the addresses of a `host:port`.
pub type Resolve = Arc<dyn Fn(String) -> BoxFuture<io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The system resolver (cluster DNS in a pod).
pub fn system_resolver() -> Resolve {
    Arc::new(|name: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host(name).await?.collect()) })
    })
}

/// Where a pool finds its pods, and how often it looks again.
#[derive(Clone)]
pub struct PodSource {
    pub resolve: Resolve,
    pub refresh: Duration,
}

impl Default for PodSource {
    /// Cluster DNS, every [`REFRESH`].
    fn default() -> Self {
        Self {
            resolve: system_resolver(),
            refresh: REFRESH,
        }
    }
}

impl std::fmt::Debug for PodSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSource")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// The label EndpointSlices carry with their Service's name.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Pods from `namespace`'s EndpointSlices, watched through the API (one list, then events)
/// and read every [`REFRESH_WATCHED`]. A name of another namespace, and every name until
/// the watch has listed (no access to EndpointSlices yet: an older operator's Role), is
/// looked up in DNS instead.
pub fn endpoint_slices(client: kube::Client, namespace: &str) -> PodSource {
    use futures::StreamExt;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::runtime::{WatchStreamExt, reflector, watcher};

    let api: kube::Api<EndpointSlice> = kube::Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&listed);
    let watched = namespace.to_string();
    tokio::spawn(async move {
        let events = reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        futures::pin_mut!(events);
        let mut last_error = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    flag.store(true, Ordering::Release);
                    last_error = None;
                }
                Ok(_) => {}
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!(
                            namespace = %watched,
                            "failed to watch EndpointSlices ({e}); finding pods by DNS meanwhile"
                        );
                        last_error = Some(e);
                    }
                }
            }
        }
    });
    let dns = system_resolver();
    let namespace = namespace.to_string();
    PodSource {
        refresh: REFRESH_WATCHED,
        resolve: Arc::new(move |name: String| {
            let service = in_namespace(&name, &namespace);
            match service {
                Some((service, port)) if listed.load(Ordering::Acquire) => {
                    let pods = ready_pods(&store.state(), service, port);
                    Box::pin(async move {
                        if pods.is_empty() {
                            Err(io::Error::new(
                                io::ErrorKind::NotFound,
                                "no ready pod in the Service's EndpointSlices",
                            ))
                        } else {
                            Ok(pods)
                        }
                    })
                }
                _ => dns(name),
            }
        }),
    }
}

/// The Service and port of `name` (`<service>.<namespace>.svc[...]:<port>`) when it is a
/// Service of `namespace`.
pub fn in_namespace<'a>(name: &'a str, namespace: &str) -> Option<(&'a str, u16)> {
    let (host, port) = name.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let mut labels = host.split('.');
    let service = labels.next().filter(|s| !s.is_empty())?;
    (labels.next() == Some(namespace) && labels.next() == Some("svc")).then_some((service, port))
}

/// The addresses of `service`'s ready endpoints in `slices` (its `grpc` port, else `port`).
pub fn ready_pods<S>(slices: &[S], service: &str, port: u16) -> Vec<SocketAddr>
where
    S: std::ops::Deref<Target = k8s_openapi::api::discovery::v1::EndpointSlice>,
{
    let mut pods: Vec<SocketAddr> = slices
        .iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|n| n == service)
        })
        .flat_map(|s| {
            let port = s
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("grpc"))
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(port);
            s.endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .flat_map(|e| e.addresses.iter())
                .filter_map(move |a| {
                    a.parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| (ip, port).into())
                })
        })
        .collect();
    pods.sort();
    pods.dedup();
    pods
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn services_of_the_namespace_are_read_from_their_names() {
        assert_eq!(
            in_namespace("acme-catalog-pods.shop.svc:50051", "shop"),
            Some(("acme-catalog-pods", 50051))
        );
        assert_eq!(
            in_namespace("acme-catalog-pods.shop.svc.cluster.local:50051", "shop"),
            Some(("acme-catalog-pods", 50051))
        );
        for other in [
            "acme-catalog-pods.other.svc:50051",
            "acme-catalog-pods:50051",
            "acme-catalog-pods.shop.svc",
            "10.0.0.7:50051",
            ".shop.svc:1",
            "acme.shop.svc:port",
        ] {
            assert_eq!(in_namespace(other, "shop"), None, "{other}");
        }
    }

    #[test]
    fn ready_pods_come_from_the_services_slices() {
        use k8s_openapi::api::discovery::v1::{
            Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
        };
        let endpoint = |ip: &str, ready: Option<bool>| Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        };
        let slice = |service: &str, port: Option<i32>, endpoints: Vec<Endpoint>| {
            Arc::new(EndpointSlice {
                metadata: kube::api::ObjectMeta {
                    labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints,
                ports: port.map(|p| {
                    vec![EndpointPort {
                        name: Some("grpc".into()),
                        port: Some(p),
                        ..EndpointPort::default()
                    }]
                }),
            })
        };
        let slices = vec![
            slice(
                "acme-catalog-pods",
                Some(50051),
                vec![
                    endpoint("10.1.0.7", Some(true)),
                    endpoint("10.1.0.8", None), // nil means ready
                    endpoint("10.1.0.9", Some(false)),
                ],
            ),
            slice(
                "acme-catalog-pods",
                None,
                vec![endpoint("10.1.0.3", Some(true))],
            ),
            slice(
                "acme-orders-pods",
                Some(50051),
                vec![endpoint("10.1.0.4", Some(true))],
            ),
        ];
        let pods: Vec<String> = ready_pods(&slices, "acme-catalog-pods", 7)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(pods, ["10.1.0.3:7", "10.1.0.7:50051", "10.1.0.8:50051"]);
        assert!(ready_pods(&slices, "acme-auth-pods", 50051).is_empty());
    }
}
