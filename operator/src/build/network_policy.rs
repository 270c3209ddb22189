//! NetworkPolicies when `spec.security.networkPolicies` is on: each service's pods accept gRPC
//! only from pods of the same Storefront, and HTTP (the gateway's public API, every service's
//! `/metrics`: the gateway's on its `ops` port) from anywhere in the cluster, where Prometheus
//! runs. Everything else to the shop's pods is refused.

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Owner, deployment};
use crate::{decide::plan::ServicePlan, labels};

fn port(name: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..NetworkPolicyPort::default()
    }
}

pub fn build(owner: &Owner<'_>, plan: &ServicePlan) -> Option<NetworkPolicy> {
    if !owner
        .spec
        .security
        .as_ref()
        .is_some_and(|s| s.network_policies)
    {
        return None;
    }
    let service = plan.service.as_str();
    let same_shop = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(
                [
                    (labels::NAME.to_string(), labels::APP_NAME.to_string()),
                    (labels::INSTANCE.to_string(), owner.name.to_string()),
                ]
                .into(),
            ),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    // `http`, and the gateway's `ops` (its metrics): what the pods serve over HTTP.
    let mut cluster_wide = vec![port("http")];
    if deployment::ops_port_name(service) != "http" {
        cluster_wide.push(port(deployment::ops_port_name(service)));
    }
    let any_pod_in_cluster = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    Some(NetworkPolicy {
        metadata: owner.meta(
            labels::service_object_name(owner.name, service),
            service,
            &Default::default(),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(owner.name, service)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![same_shop]),
                    ports: Some(vec![port("grpc"), port("http")]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![any_pod_in_cluster]),
                    ports: Some(cluster_wide),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}
