//! HorizontalPodAutoscaler (autoscaling/v2) of an autoscaled service. It owns `replicas`; a
//! FlashSale only moves its floor and ceiling.
//!
//! Metrics: CPU utilization always (the plan's target, 70 by default), memory utilization too
//! when the service's `autoscaling.targetMemoryUtilization` is set (the HPA then follows
//! whichever asks for more pods). `autoscaling.scaleDownStabilizationSeconds` becomes
//! `behavior.scaleDown.stabilizationWindowSeconds`; unset, Kubernetes' default (300 s) holds.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use storefront_crds::storefront::Autoscaling;

use super::Owner;
use crate::{
    decide::plan::{ServicePlan, Sizing},
    labels,
};

pub fn build(owner: &Owner<'_>, plan: &ServicePlan) -> Option<HorizontalPodAutoscaler> {
    let Sizing::Autoscaled {
        min,
        max,
        target_cpu,
    } = plan.sizing
    else {
        return None;
    };
    let service = plan.service.as_str();
    let name = labels::service_object_name(owner.name, service);
    // Sales change the bounds (the plan); the memory target and the behaviour are the spec's.
    let spec = owner
        .spec
        .services
        .get(service)
        .and_then(|s| s.autoscaling.as_ref());
    let mut metrics = vec![utilization("cpu", target_cpu)];
    metrics.extend(
        spec.and_then(|a| a.target_memory_utilization)
            .map(|t| utilization("memory", t)),
    );
    Some(HorizontalPodAutoscaler {
        metadata: owner.meta(name.clone(), service, &Default::default()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name,
            },
            min_replicas: Some(min),
            max_replicas: max,
            metrics: Some(metrics),
            behavior: spec.and_then(behavior),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

/// A Resource metric aiming at `percent` average utilization of the pods' requests.
fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".to_string(),
        resource: Some(ResourceMetricSource {
            name: resource.to_string(),
            target: MetricTarget {
                type_: "Utilization".to_string(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

/// Scale-down stabilization when the spec sets one; scale-up keeps Kubernetes' defaults.
fn behavior(a: &Autoscaling) -> Option<HorizontalPodAutoscalerBehavior> {
    let window = a.scale_down_stabilization_seconds?;
    Some(HorizontalPodAutoscalerBehavior {
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(window),
            ..HPAScalingRules::default()
        }),
        scale_up: None,
    })
}
