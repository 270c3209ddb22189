//! Operator metrics in Prometheus text format: reconciles, their duration, errors by kind,
//! and writes (applies, prunes, status updates). Durations are recorded by a drop guard.

use std::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub service: String,
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub op: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabels, Histogram>,
    pub writes: Family<WriteLabels, Counter>,
    /// How long each resharding step took (from its start to the next step).
    pub reshard_steps: Family<StepLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("storefront_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let reshard_steps = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0])
        });
        registry.register(
            "reshard_step_seconds",
            "Time a resharding step took, by sharded service and step",
            reshard_steps.clone(),
        );
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind and error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "writes",
            "API writes (apply, delete, status) by kind of object",
            writes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            reshard_steps,
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and records its duration when the guard drops.
    pub fn reconcile(&self, kind: &str) -> ReconcileTimer<'_> {
        let labels = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            labels,
            start: Instant::now(),
        }
    }

    pub fn error(&self, kind: &str, error: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                error: error.to_string(),
            })
            .inc();
    }

    pub fn write(&self, kind: &str, op: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
                op: op.to_string(),
            })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records a reconcile's duration on drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: KindLabels,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_errors_and_writes_are_exported() {
        let m = Metrics::default();
        drop(m.reconcile("Storefront"));
        m.error("Storefront", "Kube");
        m.write("Deployment", "apply");
        let text = m.encode();
        assert!(
            text.contains("storefront_operator_reconciles_total{kind=\"Storefront\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "storefront_operator_reconcile_duration_seconds_count{kind=\"Storefront\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "storefront_operator_reconcile_errors_total{kind=\"Storefront\",error=\"Kube\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("storefront_operator_writes_total{kind=\"Deployment\",op=\"apply\"} 1"),
            "{text}"
        );
    }
}
