//! ClusterIP Service of a service (or of one shard): `http` 8080 and `grpc` 50051; and the
//! headless Service beside an unsharded service's, whose name resolves to each ready pod
//! (the gateway spreads its calls over them: one HTTP/2 connection through the cluster IP
//! would reach one pod only).
//!
//! The gateway's Service is the shop's public one (what an Ingress, a LoadBalancer or a
//! port-forward points at): `http` 8080 only, the public API. Its pods' `ops` port
//! (`/metrics`, `/routes`, health) is in no Service: probes and Prometheus reach pods.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    Owner,
    deployment::{GRPC_PORT, HTTP_PORT},
};
use crate::labels;
use storefront_crds::ServiceName;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// A Service named `name` selecting `selector`, labelled for `component` (`http` and `grpc`).
pub fn service_for(
    owner: &Owner<'_>,
    name: String,
    component: &str,
    selector: BTreeMap<String, String>,
    extra_labels: &BTreeMap<String, String>,
) -> Service {
    with_ports(
        owner.meta(name, component, extra_labels),
        selector,
        vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT)],
    )
}

fn with_ports(
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The headless Service of `service`'s pods (`grpc` only; ready pods only).
pub fn pods(owner: &Owner<'_>, service: &str) -> Service {
    headless(
        owner,
        labels::pods_service_name(owner.name, service),
        service,
        labels::selector(owner.name, service),
    )
}

/// A headless Service `name` of the pods `selector` picks (`grpc` only; ready pods only).
pub fn headless(
    owner: &Owner<'_>,
    name: String,
    component: &str,
    selector: BTreeMap<String, String>,
) -> Service {
    Service {
        metadata: owner.meta(name, component, &BTreeMap::new()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some("None".to_string()),
            selector: Some(selector),
            ports: Some(vec![port("grpc", GRPC_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service of an unsharded service; the gateway's is its public API only (`http`).
pub fn build(owner: &Owner<'_>, service: &str) -> Service {
    if service == ServiceName::Gateway.as_str() {
        return with_ports(
            owner.meta(
                labels::service_object_name(owner.name, service),
                service,
                &BTreeMap::new(),
            ),
            labels::selector(owner.name, service),
            vec![port("http", HTTP_PORT)],
        );
    }
    service_for(
        owner,
        labels::service_object_name(owner.name, service),
        service,
        labels::selector(owner.name, service),
        &BTreeMap::new(),
    )
}
