//! End-to-end harness: runs against whatever cluster `KUBECONFIG` points at (kind, or the local
//! cluster from `tests/e2e/cluster/up`). It installs the CRDs and the operator **in the
//! cluster** from `manifests/` (so its RBAC is tested too), gives each test its own namespace,
//! waits on conditions with timeouts, and on failure dumps the objects, events and pod logs the
//! test touched.
//!
//! Images: `E2E_OPERATOR_IMAGE` (default `storefront/operator:dev`) and `E2E_WORKLOAD_IMAGE`
//! (default `storefront/workload-stub:dev`, the stand-in; the real one is
//! `storefront/workload:dev`).
//!
//! Datastores: every test namespace gets the Secrets the samples name (`storefront-postgres`,
//! `storefront-postgres-replica`, `storefront-redis`, `storefront-nats`), pointing at the
//! cluster's real datastores when their URLs are known (see [`datastores`]).

pub mod datastores;
pub mod forward;
pub mod loadgen;
pub mod paths;
pub mod shopper;

pub use paths::repo;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ObjectMeta, Patch, PatchParams, PostParams},
    discovery::{Discovery, Scope},
};
use serde::Deserialize;
use storefront_crds::Storefront;
use tokio::sync::OnceCell;

/// Namespace the operator is installed in.
pub const OPERATOR_NAMESPACE: &str = "storefront-system";
const FIELD_MANAGER: &str = "storefront-e2e";

/// The workload image for test Storefronts.
pub fn workload_image() -> String {
    std::env::var("E2E_WORKLOAD_IMAGE").unwrap_or_else(|_| "storefront/workload-stub:dev".into())
}

/// The real commerce workload image (`E2E_REAL_WORKLOAD_IMAGE`, default
/// `storefront/workload:dev`), for tests that run the shop rather than the stand-in.
pub fn real_workload_image() -> String {
    std::env::var("E2E_REAL_WORKLOAD_IMAGE").unwrap_or_else(|_| "storefront/workload:dev".into())
}

fn operator_image() -> String {
    std::env::var("E2E_OPERATOR_IMAGE").unwrap_or_else(|_| "storefront/operator:dev".into())
}

/// A client for the cluster in `KUBECONFIG`.
pub async fn client() -> anyhow::Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!(
            "KUBECONFIG is not set: bring a cluster up with tests/e2e/cluster/up (or kind) first"
        );
    }
    Client::try_default()
        .await
        .context("failed to create a client from KUBECONFIG")
}

/// Polls `check` every 500 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            let detail = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{detail}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Server-side applies every document of a multi-document YAML string.
pub async fn apply_yaml(client: &Client, discovery: &Discovery, yaml: &str) -> anyhow::Result<()> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value)?;
        let tm = obj
            .types
            .clone()
            .context("document without apiVersion/kind")?;
        let gvk = kube::api::GroupVersionKind::try_from(&tm)?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("the API server does not serve {gvk:?}"))?;
        let api: Api<DynamicObject> = match (caps.scope, obj.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("failed to apply {} {}", tm.kind, obj.name_any()))?;
    }
    Ok(())
}

fn read_dir_yaml(dir: &str) -> anyhow::Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut all = String::new();
    for f in files {
        all.push_str(&std::fs::read_to_string(&f)?);
        all.push_str("\n---\n");
    }
    Ok(all)
}

/// Installs the CRDs (and waits until they are served).
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let discovery = api_discovery(client).await?;
    apply_yaml(client, &discovery, &read_dir_yaml("manifests/crds")?).await?;
    wait_for(
        "the Storefront CRDs to be served",
        Duration::from_secs(60),
        || async {
            let d = api_discovery(client).await?;
            Ok(d.groups()
                .any(|g| g.name() == storefront_crds::common::GROUP)
                .then_some(()))
        },
    )
    .await
}

/// API discovery for applying manifests, without the aggregated metrics API: a
/// metrics-server that is restarting must not fail every test's set-up.
async fn api_discovery(client: &Client) -> anyhow::Result<Discovery> {
    Ok(Discovery::new(client.clone())
        .exclude(&["metrics.k8s.io"])
        .run()
        .await?)
}

static INSTALLED: OnceCell<()> = OnceCell::const_new();

/// Installs the CRDs and the operator from `manifests/` once per test binary, and waits until
/// the operator is Available.
pub async fn ensure_operator(client: &Client) -> anyhow::Result<()> {
    INSTALLED
        .get_or_try_init(|| async {
            install_crds(client).await?;
            let discovery = api_discovery(client).await?;
            let manifests = read_dir_yaml("manifests/operator")?.replace(
                "image: storefront/operator:dev",
                &format!("image: {}", operator_image()),
            );
            apply_yaml(client, &discovery, &manifests).await?;
            // The image tag may be reused with new content (a fresh build loaded under the
            // same tag): roll the pods so the operator under test is the one just loaded.
            let restarted = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                "storefront.dev/e2e-started": format!("{:?}", std::time::SystemTime::now()),
            }}}}});
            Api::<Deployment>::namespaced(client.clone(), OPERATOR_NAMESPACE)
                .patch(
                    "storefront-operator",
                    &PatchParams::default(),
                    &Patch::Merge(&restarted),
                )
                .await?;
            wait_operator_available(client).await?;
            wait_operator_leading(client).await
        })
        .await
        .map(|_| ())
}

/// Waits until the operator leads (its Lease) with synced caches: a rolled operator's new pod
/// is Available while still standing by for the old pod's Lease, and a test timing the
/// operator's reactions must not time that gap.
pub async fn wait_operator_leading(client: &Client) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/namespaces/{OPERATOR_NAMESPACE}/services/storefront-operator-metrics:metrics/proxy/readyz"
    );
    wait_for(
        "the operator to lead with synced caches",
        Duration::from_secs(90),
        || async {
            let req = http::Request::get(path.as_str()).body(Vec::new())?;
            // 503 while its caches sync; "standby" while another pod holds the Lease.
            let body = client.request_text(req).await.unwrap_or_default();
            Ok(body.starts_with("leading").then_some(()))
        },
    )
    .await
}

/// Waits until the operator Deployment has an available, up-to-date pod.
pub async fn wait_operator_available(client: &Client) -> anyhow::Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    wait_for(
        "the operator to be Available",
        Duration::from_secs(180),
        || async {
            let d = deploys.get("storefront-operator").await?;
            let s = d.status.unwrap_or_default();
            let want = d.spec.and_then(|sp| sp.replicas).unwrap_or(1);
            // Rolled out: the current generation observed, every pod updated, no old pod left.
            let done = s.observed_generation == d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) >= want;
            Ok(done.then_some(()))
        },
    )
    .await
}

/// A namespace for one test; dumps what is in it when the test panics, then deletes it.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>` with the datastores' Secrets in it: the cluster's
    /// datastores when [`datastores::DatastoreUrls::discover`] finds them, else placeholders
    /// (the stand-in image never connects). A test of the real shop checks `discover` itself.
    pub async fn new(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        let ns = Self::create(client, prefix).await?;
        let urls = datastores::DatastoreUrls::discover()
            .unwrap_or_else(|_| datastores::DatastoreUrls::placeholders());
        datastores::write_secrets(client, &ns.name, &urls).await?;
        Ok(ns)
    }

    /// Writes the datastores' Secrets for `urls` into this namespace (replacing what is there).
    pub async fn write_datastore_secrets(
        &self,
        urls: &datastores::DatastoreUrls,
    ) -> anyhow::Result<()> {
        datastores::write_secrets(&self.client, &self.name, urls).await
    }

    /// Creates `e2e-<prefix>-<random>` and nothing in it.
    pub async fn create(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("e2e-{prefix}-{:04x}", rand_suffix());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("storefront.dev/e2e".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("failed to create namespace {name}"))?;
        Ok(TestNamespace {
            name,
            client: client.clone(),
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Prints objects, events and logs of this namespace (and the operator's logs) to stderr.
    pub fn dump(&self) {
        let kubectl =
            |args: &[&str]| match std::process::Command::new("kubectl").args(args).output() {
                Ok(o) => eprintln!(
                    "$ kubectl {}\n{}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("(kubectl not available for the failure dump: {e})"),
            };
        eprintln!("===== dump of namespace {} =====", self.name);
        kubectl(&[
            "get",
            "storefronts,serviceshards,flashsales",
            "-n",
            &self.name,
            "-o",
            "yaml",
        ]);
        kubectl(&[
            "get",
            "deploy,rs,pods,svc,sa,cm,secrets,hpa,pdb",
            "-n",
            &self.name,
            "-o",
            "wide",
        ]);
        kubectl(&[
            "get",
            "events",
            "-n",
            &self.name,
            "--sort-by=.lastTimestamp",
        ]);
        kubectl(&[
            "logs",
            "-n",
            &self.name,
            "--all-containers",
            "--prefix",
            "--tail=50",
            "-l",
            "app.kubernetes.io/managed-by=storefront-operator",
        ]);
        kubectl(&[
            "logs",
            "-n",
            OPERATOR_NAMESPACE,
            "deploy/storefront-operator",
            "--tail=100",
        ]);
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .output();
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(16)) & 0xffff
}

/// A Storefront from YAML with the test image and namespace.
pub fn storefront_from(yaml: &str, ns: &str) -> anyhow::Result<Storefront> {
    let mut sf: Storefront = serde_yaml::from_str(yaml)?;
    sf.spec.image = workload_image();
    sf.metadata.namespace = Some(ns.to_string());
    Ok(sf)
}

/// The committed sample `manifests/samples/<file>`.
pub fn sample(file: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(
        repo().join("manifests/samples").join(file),
    )?)
}

/// Status of condition `type_` of a Storefront (`None` if absent).
pub fn condition<'a>(
    sf: &'a Storefront,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    sf.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the Storefront's `Ready` condition is `status` for its current generation;
/// returns the Storefront.
pub async fn wait_ready(
    api: &Api<Storefront>,
    name: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<Storefront> {
    wait_for(
        &format!("Storefront {name} Ready={status}"),
        timeout,
        || async {
            let sf = api.get(name).await?;
            let ok = condition(&sf, "Ready").is_some_and(|c| {
                c.status == status && c.observed_generation == sf.metadata.generation
            }) && sf.status.as_ref().and_then(|s| s.observed_generation)
                == sf.metadata.generation;
            Ok(ok.then_some(sf))
        },
    )
    .await
}

/// `http://<ip>:8080` of a pod of Storefront `instance`'s gateway (the first with an IP),
/// for loadgen runs that must reach the gateway directly (no Service in between).
pub async fn gateway_target(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    instance: &str,
) -> anyhow::Result<String> {
    let selector =
        format!("app.kubernetes.io/instance={instance},app.kubernetes.io/component=gateway");
    let ip = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .find_map(|p| p.status?.pod_ip)
        .with_context(|| format!("no pod of {selector} has an IP"))?;
    Ok(format!("http://{ip}:8080"))
}

/// The operator's `/metrics`, fetched through the API server's service proxy.
pub async fn operator_metrics(client: &Client) -> anyhow::Result<String> {
    let path = format!(
        "/api/v1/namespaces/{OPERATOR_NAMESPACE}/services/storefront-operator-metrics:metrics/proxy/metrics"
    );
    let req = http::Request::get(path).body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// The gateway pods' operations port (`ops`): `/metrics`, `/routes`, `/healthz`, `/readyz`.
/// Its public port (8080, the `http` of its Service) answers the public API only.
pub const GATEWAY_OPS_PORT: u16 = 8081;

/// `GET path` on port `port` of the Service `service` in `namespace`, through the API server's
/// service proxy: the status and body the Service's pod answered (a 404 is an answer here,
/// not an error).
pub async fn service_get(
    client: &Client,
    namespace: &str,
    service: &str,
    port: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt as _;
    let uri = format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy{path}");
    let req = http::Request::get(&uri).body(kube::client::Body::from(Vec::new()))?;
    let res = client
        .send(req)
        .await
        .with_context(|| format!("failed to GET {uri}"))?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sum of a counter's samples whose line starts with `prefix` (e.g.
/// `storefront_operator_writes_total{`).
pub fn counter_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
