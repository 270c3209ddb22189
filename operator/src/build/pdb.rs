//! PodDisruptionBudget for services that run at least two pods: voluntary disruptions (node
//! drains) take at most one pod at a time.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::Owner;
use crate::{decide::plan::ServicePlan, labels};

pub fn build(owner: &Owner<'_>, plan: &ServicePlan) -> Option<PodDisruptionBudget> {
    if plan.desired_pods() < 2 {
        return None;
    }
    let service = plan.service.as_str();
    Some(PodDisruptionBudget {
        metadata: owner.meta(
            labels::service_object_name(owner.name, service),
            service,
            &Default::default(),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(owner.name, service)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
