//! The Deployment of a service (or of one shard): one container running the workload image
//! with the service's subcommand, probes, restricted security context and backing-store wiring.
//!
//! An autoscaled service's Deployment leaves `replicas` unset: the HPA owns it.
//!
//! What every pod gets (the contract with `workloads/`):
//!
//! ```text
//!  env  STOREFRONT_NAME STOREFRONT_SERVICE STOREFRONT_TIER POD_NAMESPACE
//!       HTTP_ADDR=0.0.0.0:8080  GRPC_ADDR=0.0.0.0:50051
//!       DATABASE_SCHEMA (own schema per service / shard)
//!       DATABASE_URL DATABASE_READ_REPLICA_URL REDIS_URL NATS_URL  (from the datastores' Secrets)
//!       JWT_KEYS_DIR=/etc/storefront/jwt   ◀── the token keys this service may hold (jwt.rs):
//!            the user key (security.jwtSecretName, else <sf>-jwt): public half; auth: private too
//!            <sf>-<service>-token-key: own private key; every service's public key
//!  ports  http 8080: /healthz /readyz /metrics (probes, Prometheus), grpc 50051
//!  gateway  ports http 8080: the public API only; ops 8081 (OPS_ADDR=0.0.0.0:8081):
//!           /healthz /readyz /metrics /routes (probes, Prometheus; no Service exposes it)
//!           GATEWAY_ROUTES=/etc/storefront/routes/routes.json   ◀── ConfigMap <sf>-gateway-routes
//!           GATEWAY_CONFIGMAP=<sf>-gateway-routes (watched through the API), POD_NAME;
//!           GATEWAY_REPLICAS (planned replicas, the HPA's max: the rate limiter's fallback share)
//!           the only pod with a service account token (Role <sf>-gateway)
//!           GATEWAY_RINGS_DIR=/etc/storefront/rings; <sf>-<svc>-ring/ring.json ◀── each ring ConfigMap
//!  shards   SHARD_INDEX SHARD_COUNT RING_EPOCH (from the ServiceShard)
//! ```

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
            HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
            Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext,
            Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use storefront_crds::{ServiceName, StorefrontSpec, Tier, storefront::SecretKeyRef};

use super::Owner;
use crate::{
    decide::plan::{ServicePlan, Sizing},
    labels,
};

/// HTTP port: `/healthz`, `/readyz` and `/metrics` of a gRPC service; the gateway's public
/// API (and nothing else there).
pub const HTTP_PORT: i32 = 8080;
/// The gateway's operations port (`ops`): `/healthz`, `/readyz`, `/metrics`, `/routes`, kept
/// off its public port; no Service exposes it (Prometheus finds pods).
pub const OPS_PORT: i32 = 8081;
/// gRPC port between services.
pub const GRPC_PORT: i32 = 50051;
/// UID the workload runs as (non-root).
pub const RUN_AS_USER: i64 = 65532;
/// Where the gateway reads its route table.
pub const ROUTES_DIR: &str = "/etc/storefront/routes";
/// Where the gateway reads the rings: `<ring ConfigMap name>/ring.json` under it.
pub const RINGS_DIR: &str = "/etc/storefront/rings";
/// Where every service reads the JWT keys (`private.pem`, `public.pem`).
pub const JWT_DIR: &str = "/etc/storefront/jwt";

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

pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

pub(crate) fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
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

/// A variable from the pod's own fields (downward API).
fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_string()),
                field_path: path.to_string(),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The named ports of `service`'s container: the gateway's public API (`http`) and its
/// operations endpoints (`ops`); any other service's operations endpoints (`http`, nothing
/// public there) and its gRPC (`grpc`).
pub fn ports(service: &str) -> Vec<(&'static str, i32)> {
    if service == ServiceName::Gateway.as_str() {
        vec![("http", HTTP_PORT), ("ops", OPS_PORT)]
    } else {
        vec![("http", HTTP_PORT), ("grpc", GRPC_PORT)]
    }
}

/// The port that answers `service`'s `/healthz`, `/readyz` and `/metrics`.
pub fn ops_port_name(service: &str) -> &'static str {
    if service == ServiceName::Gateway.as_str() {
        "ops"
    } else {
        "http"
    }
}

fn http_probe(port: &str, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
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

    // The user's extra variables first: the operator's come later and win on a clash.
    let mut envs: Vec<EnvVar> = spec
        .services
        .get(c.service)
        .map(|s| s.env.iter().map(|e| env(&e.name, &e.value)).collect())
        .unwrap_or_default();
    envs.extend([
        env("STOREFRONT_NAME", owner.name),
        env("STOREFRONT_SERVICE", c.service),
        env("STOREFRONT_TIER", c.tier.as_str()),
        env("DATABASE_SCHEMA", &c.database_schema),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ]);
    envs.push(env("HTTP_ADDR", &format!("0.0.0.0:{HTTP_PORT}")));
    envs.push(env("GRPC_ADDR", &format!("0.0.0.0:{GRPC_PORT}")));
    envs.extend(c.env.iter().map(|(k, v)| env(k, v)));
    if let Some(ds) = &spec.datastores {
        for (var, r) in [
            ("DATABASE_URL", &ds.postgres),
            ("DATABASE_READ_REPLICA_URL", &ds.postgres_read_replica),
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
    let mut mount_config_map = |volume: String, config_map: String, path: String| {
        volumes.push(Volume {
            name: volume.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map,
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: path,
            read_only: Some(true),
            ..VolumeMount::default()
        });
    };
    if c.service == ServiceName::Gateway.as_str() {
        envs.push(env("OPS_ADDR", &format!("0.0.0.0:{OPS_PORT}")));
        mount_config_map(
            "routes".to_string(),
            labels::gateway_config_name(owner.name),
            ROUTES_DIR.to_string(),
        );
        envs.push(env("GATEWAY_ROUTES", &format!("{ROUTES_DIR}/routes.json")));
        // The same table watched through the API (the Role in `rbac.rs`): a mounted
        // ConfigMap updates a minute or more late, too slow for a sale's boundary. The file
        // stays as the fallback while the API is unreachable at start.
        envs.push(env(
            "GATEWAY_CONFIGMAP",
            &labels::gateway_config_name(owner.name),
        ));
        envs.push(field_env("POD_NAME", "metadata.name"));
        // The route table names each sharded service's ring ConfigMap; the gateway reads it
        // from a directory of that name.
        for (service, _) in sharded_services(spec) {
            let ring = labels::ring_name(owner.name, service.as_str());
            mount_config_map(
                format!("ring-{service}"),
                ring.clone(),
                format!("{RINGS_DIR}/{ring}"),
            );
        }
        envs.push(env("GATEWAY_RINGS_DIR", RINGS_DIR));
    }
    // The token keys (`jwt.rs`): auth alone the user key; each service its own service key;
    // everyone the public halves, to verify with.
    volumes.push(super::jwt::keys_volume("jwt", owner.name, spec, c.service));
    mounts.push(VolumeMount {
        name: "jwt".to_string(),
        mount_path: JWT_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    envs.push(env("JWT_KEYS_DIR", JWT_DIR));

    let container = Container {
        name: c.service.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![c.service.to_string()]),
        ports: Some(
            ports(c.service)
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.to_string()),
                    container_port: port,
                    protocol: Some("TCP".to_string()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        env: Some(envs),
        resources: c.resources.clone(),
        readiness_probe: Some(http_probe(ops_port_name(c.service), "/readyz", 5, 3)),
        liveness_probe: Some(http_probe(ops_port_name(c.service), "/healthz", 10, 6)),
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
                    // Only the gateway talks to the API server (`rbac.rs`).
                    automount_service_account_token: Some(
                        c.service == ServiceName::Gateway.as_str(),
                    ),
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
            env: gateway_replicas_hint(plan),
            database_schema: database_schema(owner.namespace, owner.name, service),
        },
    )
}

/// The gateway's `GATEWAY_REPLICAS`: the replicas it plans (the HPA's maximum when
/// autoscaled), which the rate limiter's fallback divides each budget by until Redis has
/// counted the live replicas — never fewer than may run, so never over the budget.
fn gateway_replicas_hint(plan: &ServicePlan) -> Vec<(String, String)> {
    if plan.service != ServiceName::Gateway {
        return Vec::new();
    }
    let replicas = match plan.sizing {
        Sizing::Fixed { replicas } => replicas,
        Sizing::Autoscaled { max, .. } => max,
        Sizing::Sharded {
            shards,
            replicas_per_shard,
        } => shards * replicas_per_shard,
    };
    vec![("GATEWAY_REPLICAS".to_string(), replicas.max(1).to_string())]
}

/// Enabled services with `sharding`, in canonical order.
fn sharded_services(spec: &StorefrontSpec) -> impl Iterator<Item = (ServiceName, i32)> + '_ {
    spec.enabled_services()
        .filter_map(|(name, s)| s.sharding.as_ref().map(|sh| (name, sh.shards)))
}

/// Database schema name of a service or shard: `<namespace>_<storefront>_<suffix>` with `-`
/// as `_` (Storefronts of the same name in two namespaces share a database server, never a
/// schema). PostgreSQL keeps 63 bytes of a name: a longer one keeps its first 54 characters
/// and ends with `_` and 8 hex digits of a hash of the whole name, so it stays unique.
pub fn database_schema(namespace: &str, storefront: &str, suffix: &str) -> String {
    let full = format!("{namespace}_{storefront}_{suffix}").replace(['-', '.'], "_");
    if full.len() <= 63 {
        return full;
    }
    let hash = storefront_crds::ring::key_hash(&full);
    format!("{}_{:08x}", &full[..54], hash >> 32)
}
