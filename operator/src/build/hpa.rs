//! HorizontalPodAutoscaler (autoscaling/v2) of an autoscaled service. It owns `replicas`; a
//! FlashSale only moves its floor and ceiling.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::Owner;
use crate::{
    labels,
    plan::{ServicePlan, Sizing},
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
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: Some(target_cpu),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
