//! The Deployment of a service (or of one shard): one container running the workload image
//! with the service's subcommand, probes, restricted security context and backing-store wiring.
//!
//! An autoscaled service's Deployment leaves `replicas` unset: the HPA owns it.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
            HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
            Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource,
            SecurityContext, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use storefront_crds::{Tier, storefront::SecretKeyRef};

use super::Owner;
use crate::{
    labels,
    plan::{ServicePlan, Sizing},
};

/// HTTP port: `/healthz`, `/readyz`, `/metrics`, and the gateway's public API.
pub const HTTP_PORT: i32 = 8080;
/// gRPC port between services.
pub const GRPC_PORT: i32 = 50051;
/// UID the workload runs as (non-root).
pub const RUN_AS_USER: i64 = 65532;
/// Where the gateway reads its route table.
pub const ROUTES_DIR: &str = "/etc/storefront/routes";

/// What differs between the workloads the operator runs.
pub struct ContainerSpec<'a> {
    /// Object name of the Deployment.
    pub name: String,
    /// Service (subcommand and component label).
    pub service: &'a str,
    pub tier: Tier,
    /// `None` when an HPA owns replicas.
    pub replicas: Option<i32>,
    pub resources: Option<ResourceRequirements>,
    /// Extra labels for the object, its selector and its pods (e.g. the shard ordinal).
    pub extra_labels: BTreeMap<String, String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The database schema of this service (or shard): each gets its own.
    pub database_schema: String,
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.secret_name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Builds a workload Deployment for `c` owned as described by `owner`.
pub fn workload(owner: &Owner<'_>, c: ContainerSpec<'_>) -> Deployment {
    let spec = owner.spec;
    let mut selector = labels::selector(owner.name, c.service);
    selector.extend(c.extra_labels.clone());
    let mut pod_labels = labels::labels(owner.name, c.service);
    pod_labels.extend(c.extra_labels.clone());
    pod_labels.insert(labels::TIER.to_string(), c.tier.as_str().to_string());

    let mut envs = vec![
        env("STOREFRONT_NAME", owner.name),
        env("STOREFRONT_SERVICE", c.service),
        env("STOREFRONT_TIER", c.tier.as_str()),
        env("DATABASE_SCHEMA", &c.database_schema),
        EnvVar {
            name: "POD_NAMESPACE".to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".to_string()),
                    field_path: "metadata.namespace".to_string(),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    envs.extend(c.env.iter().map(|(k, v)| env(k, v)));
    if let Some(ds) = &spec.datastores {
        for (var, r) in [
            ("DATABASE_URL", &ds.postgres),
            ("REDIS_URL", &ds.redis),
            ("NATS_URL", &ds.broker),
        ] {
            if let Some(r) = r {
                envs.push(secret_env(var, r));
            }
        }
    }

    let mut volumes = vec![Volume {
        name: "tmp".to_string(),
        empty_dir: Some(Default::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".to_string(),
        mount_path: "/tmp".to_string(),
        ..VolumeMount::default()
    }];
    if c.service == "gateway" {
        volumes.push(Volume {
            name: "routes".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: labels::gateway_config_name(owner.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "routes".to_string(),
            mount_path: ROUTES_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        envs.push(env("GATEWAY_ROUTES", &format!("{ROUTES_DIR}/routes.json")));
    }
    if let Some(jwt) = spec
        .security
        .as_ref()
        .and_then(|s| s.jwt_secret_name.as_ref())
    {
        volumes.push(Volume {
            name: "jwt".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(jwt.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "jwt".to_string(),
            mount_path: "/etc/storefront/jwt".to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        envs.push(env("JWT_KEYS_DIR", "/etc/storefront/jwt"));
    }

    let container = Container {
        name: c.service.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![c.service.to_string()]),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_string()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("grpc".to_string()),
                container_port: GRPC_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(envs),
        resources: c.resources.clone(),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    Deployment {
        metadata: owner.meta(c.name.clone(), c.service, &c.extra_labels),
        spec: Some(DeploymentSpec {
            replicas: c.replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_string())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(labels::service_object_name(owner.name, c.service)),
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(30),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Deployment of an unsharded service.
pub fn build(owner: &Owner<'_>, plan: &ServicePlan) -> Deployment {
    let service = plan.service.as_str();
    workload(
        owner,
        ContainerSpec {
            name: labels::service_object_name(owner.name, service),
            service,
            tier: plan.tier,
            replicas: match plan.sizing {
                Sizing::Fixed { replicas } => Some(replicas),
                _ => None,
            },
            resources: plan.resources.clone(),
            extra_labels: BTreeMap::new(),
            env: Vec::new(),
            database_schema: database_schema(owner.name, service),
        },
    )
}

/// Database schema name of a service or shard: `<storefront>_<suffix>` with `-` as `_`.
pub fn database_schema(storefront: &str, suffix: &str) -> String {
    format!("{storefront}_{suffix}").replace('-', "_")
}
