//! The Prometheus poller: runs the console's PromQL ([`crate::metrics::queries`]) every
//! interval through prometheus-http-query and turns the answers into a [`PromSnapshot`].
//! Absent series are absent values (`–` on screen), never zeros; a failed poll sends the error
//! and the app keeps the last snapshot with its age.

use std::{collections::HashMap, time::Duration};

use jiff::Timestamp;
use prometheus_http_query::{Client, response::Data};
use tokio::sync::mpsc;

use crate::{
    app::Update,
    metrics::{Circuit, OperatorMetrics, PromSnapshot, ServiceKey, ServiceMetrics, queries},
};

/// How long one poll may take before it counts as failed.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// One query's samples: labels and value.
pub type Samples = Vec<(HashMap<String, String>, f64)>;

/// Polls until the receiver is dropped.
pub async fn poll(url: String, interval: Duration, tx: mpsc::Sender<Update>) {
    let client = match Client::try_from(url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(Update::Prometheus(Err(format!(
                    "failed to parse the Prometheus URL {url}: {e}"
                ))))
                .await;
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
        .map_err(|e| format!("failed to query Prometheus: {e}"))?;
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
    let service = futures::future::try_join_all(recorded.iter().map(|q| query(client, q)));
    let operator = futures::future::try_join_all(queries::OPERATOR.map(|q| query(client, q)));
    let (service, operator) = futures::future::try_join(service, operator).await?;
    Ok(snapshot(at, &service, &operator))
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
            let key = ServiceKey {
                namespace: labels.get("namespace").cloned().unwrap_or_default(),
                storefront: labels.get("storefront").cloned(),
                service: name.clone(),
            };
            let m: &mut ServiceMetrics = snap.services.entry(key).or_default();
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
}
