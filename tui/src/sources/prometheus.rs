//! The Prometheus poller: runs the console's PromQL ([`crate::metrics::queries`]) every
//! interval through prometheus-http-query and turns the answers into a [`PromSnapshot`].
//! Absent series are absent values (`–` on screen), never zeros; a failed poll sends the error
//! and the app keeps the last snapshot with its age.
//!
//! Plain HTTP or HTTPS: the server's certificate is checked against the system's roots and,
//! for a Prometheus behind a private CA, the PEM bundle of `--prometheus-ca` ([`client`]).

use std::{collections::HashMap, path::Path, time::Duration};

use jiff::Timestamp;
use prometheus_http_query::{Client, response::Data};
use tokio::sync::mpsc;

use crate::{
    metrics::{
        Circuit, ClientTraffic, EdgeTraffic, OperatorMetrics, PromSnapshot, ServiceKey,
        ServiceMetrics, StoreTraffic, queries,
    },
    state::Update,
};

/// How long one poll may take before it counts as failed.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// One query's samples: labels and value.
pub type Samples = Vec<(HashMap<String, String>, f64)>;

/// Reads a PEM bundle of CA certificates (`--prometheus-ca`): at least one certificate.
pub fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("failed to read the CA bundle {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "{} is not a PEM bundle of certificates: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM blocks of CERTIFICATE)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A Prometheus client for `url` (`http://` or `https://`); an HTTPS server's certificate
/// must chain to the system's roots or to one of `ca` (a PEM bundle).
pub fn client(url: &str, ca: Option<&Path>) -> Result<Client, String> {
    // One process-wide rustls provider (ring, as kube's); a second install is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = reqwest::Client::builder();
    if let Some(ca) = ca {
        for cert in load_ca(ca)? {
            http = http.add_root_certificate(cert);
        }
    }
    let http = http
        .build()
        .map_err(|e| format!("failed to set up the HTTP client: {}", chain(&e)))?;
    Client::from(http, url).map_err(|e| format!("invalid Prometheus URL {url}: {}", chain(&e)))
}

/// An error with its causes (`a: b: c`): a TLS refusal is in the source chain, not the top.
/// Causes that only repeat the request's URL (reqwest's "error sending request for url
/// (...)", hundreds of characters of PromQL) are left out, so the reason fits the banner.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) && !text.contains(" for url (") {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Polls until the receiver is dropped.
pub async fn poll(
    url: String,
    ca: Option<std::path::PathBuf>,
    interval: Duration,
    tx: mpsc::Sender<Update>,
) {
    let client = match client(&url, ca.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Update::Prometheus(Err(e))).await;
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(POLL_TIMEOUT, poll_once(&client)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from {url} within {}s",
                POLL_TIMEOUT.as_secs()
            )),
        };
        if tx.send(Update::Prometheus(result)).await.is_err() {
            return;
        }
    }
}

async fn query(client: &Client, q: &str) -> Result<Samples, String> {
    let r = client
        .query(q)
        .get()
        .await
        .map_err(|e| format!("failed to query Prometheus: {}", chain(&e)))?;
    Ok(match r.data() {
        Data::Vector(v) => v
            .iter()
            .map(|s| (s.metric().clone(), s.sample().value()))
            .collect(),
        Data::Scalar(s) => vec![(HashMap::new(), s.value())],
        Data::Matrix(_) => Vec::new(),
    })
}

/// One poll: every query, concurrently.
pub async fn poll_once(client: &Client) -> Result<PromSnapshot, String> {
    let at = Timestamp::now();
    let recorded: Vec<String> = queries::RECORDED
        .iter()
        .map(|(r, q)| queries::recorded_or_raw(r, q))
        .collect();
    let edges: Vec<String> = queries::EDGES
        .iter()
        .map(|(r, q)| queries::recorded_or_raw(r, q))
        .collect();
    let service = futures::future::try_join_all(recorded.iter().map(|q| query(client, q)));
    let edges = futures::future::try_join_all(edges.iter().map(|q| query(client, q)));
    let operator = futures::future::try_join_all(queries::OPERATOR.map(|q| query(client, q)));
    let limits = futures::future::try_join_all(queries::LIMITS.map(|q| query(client, q)));
    let (service, edges, operator, limits) =
        futures::future::try_join4(service, edges, operator, limits).await?;
    let mut snap = snapshot(at, &service, &operator);
    add_edges(&mut snap, &edges);
    add_limits(&mut snap, &limits);
    Ok(snap)
}

fn key(labels: &HashMap<String, String>, service: &str) -> ServiceKey {
    ServiceKey {
        namespace: labels.get("namespace").cloned().unwrap_or_default(),
        storefront: labels.get("storefront").cloned(),
        service: service.to_string(),
    }
}

/// Adds the edge answers, in the order of [`queries::EDGES`]: the gateway's calls per
/// `upstream` (into that service's [`ServiceMetrics::upstream`]), each service's calls per
/// `datastore`, and its broker consumption.
pub fn add_edges(snap: &mut PromSnapshot, edges: &[Samples]) {
    for (i, samples) in edges.iter().enumerate() {
        for (labels, v) in samples {
            let v = Some(*v).filter(|v| v.is_finite());
            let service = if i < 3 { "upstream" } else { "service" };
            let Some(name) = labels.get(service) else {
                continue;
            };
            let m: &mut ServiceMetrics = snap.services.entry(key(labels, name)).or_default();
            if i < 3 {
                let up = m.upstream.get_or_insert_with(EdgeTraffic::default);
                match i {
                    0 => up.rps = v,
                    1 => up.throttled_rps = v,
                    _ => up.p99_seconds = v,
                }
                continue;
            }
            if i == 6 {
                m.consumed_rps = v;
                continue;
            }
            let Some(store) = labels.get("datastore") else {
                continue;
            };
            let st: &mut StoreTraffic = m.stores.entry(store.clone()).or_default();
            match i {
                3 => st.rps = v,
                4 => st.error_ratio = v,
                _ => st.p99_seconds = v,
            }
        }
    }
}

/// Adds the rate-limit answers, in the order of [`queries::LIMITS`]: refusals per budget
/// (into that service's [`ServiceMetrics::limited_rps`]; `gateway` is the shop-wide budget),
/// and the per-client decisions, clients tracked and pods into the gateway's
/// [`ServiceMetrics::clients`].
pub fn add_limits(snap: &mut PromSnapshot, limits: &[Samples]) {
    for (i, samples) in limits.iter().enumerate() {
        for (labels, v) in samples {
            let v = Some(*v).filter(|v| v.is_finite());
            if i == 0 {
                if let Some(name) = labels.get("service") {
                    snap.services
                        .entry(key(labels, name))
                        .or_default()
                        .limited_rps = v;
                }
                continue;
            }
            let m: &mut ServiceMetrics = snap.services.entry(key(labels, "gateway")).or_default();
            let clients = m.clients.get_or_insert_with(ClientTraffic::default);
            match i {
                1 => {
                    let (Some(budget), Some(decision)) =
                        (labels.get("budget"), labels.get("decision"))
                    else {
                        continue;
                    };
                    let d = clients.budgets.entry(budget.clone()).or_default();
                    match decision.as_str() {
                        "allowed" => d.allowed = v,
                        "limited" => d.limited = v,
                        _ => {}
                    }
                }
                2 => clients.tracked = v,
                _ => clients.pods = v,
            }
        }
    }
}

/// Builds a snapshot from the answers, in the order of [`queries::RECORDED`] and of
/// [`queries::OPERATOR`].
pub fn snapshot(at: Timestamp, service: &[Samples], operator: &[Samples]) -> PromSnapshot {
    let mut snap = PromSnapshot::empty(at);
    for (i, samples) in service.iter().enumerate() {
        for (labels, v) in samples {
            let Some(name) = labels.get("service") else {
                continue;
            };
            let m: &mut ServiceMetrics = snap.services.entry(key(labels, name)).or_default();
            let v = Some(*v).filter(|v| v.is_finite());
            match i {
                0 => m.rps = v,
                1 => m.error_ratio = v,
                2 => m.throttled_rps = v,
                3 => m.p99_seconds = v,
                4 => m.admitted_rps = v,
                _ => m.circuit = v.map(Circuit::from_value),
            }
        }
    }
    let first = |i: usize| {
        operator
            .get(i)
            .and_then(|s| s.first())
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite())
    };
    snap.operator = OperatorMetrics {
        reconciles: first(0),
        errors: first(1),
        writes: first(2),
        p99_seconds: first(3),
        reconciles_rate: first(4),
        errors_rate: first(5),
        writes_rate: first(6),
    };
    snap
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metrics::Decisions;

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("sf-console-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let Err(e) = client("https://prometheus:9090", Some(&missing)) else {
            panic!("a missing CA file must be refused");
        };
        assert!(
            e.contains("failed to read the CA bundle") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_ca(&empty).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn http_and_https_urls_make_clients_and_others_are_refused() {
        assert!(client("http://127.0.0.1:9090", None).is_ok());
        assert!(client("https://prometheus.example:9090", None).is_ok());
        let Err(e) = client("not a url", None) else {
            panic!("not a URL must be refused");
        };
        assert!(e.contains("invalid Prometheus URL"), "{e}");
    }

    fn sample(labels: &[(&str, &str)], v: f64) -> (HashMap<String, String>, f64) {
        (
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            v,
        )
    }

    #[test]
    fn answers_become_per_service_metrics_and_nan_is_absent() {
        let l = [
            ("namespace", "shop"),
            ("storefront", "acme"),
            ("service", "orders"),
        ];
        let service = vec![
            vec![sample(&l, 12.5)],
            vec![sample(&l, f64::NAN)],
            vec![],
            vec![sample(&l, 0.045)],
            vec![],
            vec![sample(&l, 2.0), sample(&[("namespace", "shop")], 1.0)],
        ];
        let operator = vec![
            vec![sample(&[], 40.0)],
            vec![],
            vec![sample(&[], 7.0)],
            vec![],
            vec![sample(&[], 0.25)],
            vec![sample(&[], 0.0)],
            vec![],
        ];
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let snap = snapshot(at, &service, &operator);
        assert_eq!(
            snap.services.len(),
            1,
            "a series without a service label is skipped"
        );
        let m = snap.service("shop", "acme", "orders").unwrap();
        assert_eq!(m.rps, Some(12.5));
        assert_eq!(m.error_ratio, None, "0/0 is no traffic, not 0% errors");
        assert_eq!(m.throttled_rps, None);
        assert_eq!(m.p99_seconds, Some(0.045));
        assert_eq!(m.circuit, Some(Circuit::Open));
        assert_eq!(snap.operator.reconciles, Some(40.0));
        assert_eq!(snap.operator.errors, None);
        assert_eq!(snap.operator.writes, Some(7.0));
        assert_eq!(snap.operator.reconciles_rate, Some(0.25));
        assert_eq!(snap.operator.errors_rate, Some(0.0));
        assert_eq!(snap.operator.writes_rate, None);
    }

    #[test]
    fn rate_limit_answers_land_on_the_budgets_service_and_the_gateways_clients() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let mut snap = snapshot(at, &[], &[]);
        let sf = [("namespace", "shop"), ("storefront", "acme")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut l = sf.to_vec();
            l.extend_from_slice(extra);
            l
        };
        let limits = vec![
            vec![
                sample(&with(&[("service", "gateway")]), 0.0),
                sample(&with(&[("service", "orders")]), 1.5),
            ],
            vec![
                sample(
                    &with(&[("budget", "address"), ("decision", "allowed")]),
                    20.0,
                ),
                sample(
                    &with(&[("budget", "address"), ("decision", "limited")]),
                    180.0,
                ),
                sample(&with(&[("budget", "user"), ("decision", "limited")]), 0.0),
                sample(
                    &with(&[
                        ("budget", "route:POST /api/v1/sessions"),
                        ("decision", "limited"),
                    ]),
                    f64::NAN,
                ),
                sample(&with(&[("budget", "user")]), 9.0),
            ],
            vec![sample(&sf, 1234.0)],
            vec![sample(&sf, 2.0)],
        ];
        add_limits(&mut snap, &limits);
        let gateway = snap.service("shop", "acme", "gateway").unwrap();
        assert_eq!(gateway.limited_rps, Some(0.0), "the shop-wide budget");
        let clients = gateway.clients.as_ref().unwrap();
        assert_eq!(
            clients.budgets["address"],
            Decisions {
                allowed: Some(20.0),
                limited: Some(180.0)
            }
        );
        assert_eq!(
            clients.budgets["user"].allowed, None,
            "no decision label: skipped"
        );
        assert_eq!(clients.budgets["user"].limited, Some(0.0));
        assert_eq!(
            clients.budgets["route:POST /api/v1/sessions"].limited, None,
            "NaN is absent"
        );
        assert_eq!(clients.limited_rps(), Some(180.0));
        assert_eq!((clients.tracked, clients.pods), (Some(1234.0), Some(2.0)));
        let orders = snap.service("shop", "acme", "orders").unwrap();
        assert_eq!(orders.limited_rps, Some(1.5));
        assert_eq!(orders.clients, None, "per-client numbers are the gateway's");
    }

    #[test]
    fn edge_answers_land_on_the_upstream_and_per_datastore() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let mut snap = snapshot(at, &[], &[]);
        let up = [
            ("namespace", "shop"),
            ("storefront", "acme"),
            ("upstream", "catalog"),
        ];
        let pg = [
            ("namespace", "shop"),
            ("storefront", "acme"),
            ("service", "catalog"),
            ("datastore", "postgres-replica"),
        ];
        let nats = [
            ("namespace", "shop"),
            ("storefront", "acme"),
            ("service", "payments"),
            ("datastore", "nats"),
        ];
        let edges = vec![
            vec![sample(&up, 240.0)],
            vec![sample(&up, 0.0)],
            vec![sample(&up, 0.004)],
            vec![sample(&pg, 180.0), sample(&nats, 12.0)],
            vec![sample(&pg, 0.01), sample(&nats, f64::NAN)],
            vec![sample(&pg, 0.002)],
            vec![
                sample(&nats[..3], 6.0),
                sample(&[("namespace", "shop")], 1.0),
            ],
        ];
        add_edges(&mut snap, &edges);
        let catalog = snap.service("shop", "acme", "catalog").unwrap();
        assert_eq!(
            catalog.upstream,
            Some(EdgeTraffic {
                rps: Some(240.0),
                p99_seconds: Some(0.004),
                throttled_rps: Some(0.0)
            })
        );
        assert_eq!(catalog.rps, None, "the served rate is another query's");
        assert_eq!(
            catalog.stores["postgres-replica"],
            StoreTraffic {
                rps: Some(180.0),
                error_ratio: Some(0.01),
                p99_seconds: Some(0.002)
            }
        );
        let payments = snap.service("shop", "acme", "payments").unwrap();
        assert_eq!(payments.consumed_rps, Some(6.0));
        assert_eq!(payments.upstream, None);
        assert_eq!(
            payments.stores["nats"],
            StoreTraffic {
                rps: Some(12.0),
                error_ratio: None,
                p99_seconds: None
            },
            "NaN is absent"
        );
        assert_eq!(
            snap.services.len(),
            2,
            "a series without its key label is skipped"
        );
    }
}
