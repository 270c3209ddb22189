//! What every pod gets: datastores, JWT keys, ports, database schemas, extra env.

use super::*;

#[test]
fn every_service_gets_the_datastores_jwt_keys_and_its_ports() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    for dep in &d.deployments {
        let env = env_of(dep);
        let name = dep.name_any();
        for (var, want) in [
            ("DATABASE_URL", "secret:storefront-postgres/url"),
            (
                "DATABASE_READ_REPLICA_URL",
                "secret:storefront-postgres-replica/url",
            ),
            ("REDIS_URL", "secret:storefront-redis/url"),
            ("NATS_URL", "secret:storefront-nats/url"),
            ("JWT_KEYS_DIR", "/etc/storefront/jwt"),
            ("HTTP_ADDR", "0.0.0.0:8080"),
            ("GRPC_ADDR", "0.0.0.0:50051"),
        ] {
            assert_eq!(env.get(var).map(String::as_str), Some(want), "{name} {var}");
        }
        assert_eq!(mounts_of(dep)["/etc/storefront/jwt"], "projected", "{name}");
        let probe = pod_spec(dep).containers[0]
            .readiness_probe
            .as_ref()
            .unwrap();
        assert_eq!(
            probe.http_get.as_ref().unwrap().path.as_deref(),
            Some("/readyz")
        );
    }
    assert_eq!(d.generated_jwt_secret.as_deref(), Some("acme-jwt"));
}

#[test]
fn only_auth_holds_the_user_key_and_each_service_only_its_own_service_key() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    let services = storefront_crds::ServiceName::ALL;
    assert_eq!(
        d.service_key_secrets,
        services
            .iter()
            .map(|s| (s.to_string(), format!("acme-{s}-token-key")))
            .collect::<Vec<_>>()
    );
    let mut seen = std::collections::BTreeSet::new();
    for dep in &d.deployments {
        let service = env_of(dep)["STOREFRONT_SERVICE"].clone();
        seen.insert(service.clone());
        let files = projected_files(dep, "/etc/storefront/jwt");
        let mut want: BTreeMap<String, String> = services
            .iter()
            .map(|s| {
                (
                    format!("services/{s}.pem"),
                    format!("acme-{s}-token-key/public.pem"),
                )
            })
            .collect();
        want.insert("public.pem".into(), "acme-jwt/public.pem".into());
        want.insert(
            "service.pem".into(),
            format!("acme-{service}-token-key/private.pem"),
        );
        if service == "auth" {
            want.insert("private.pem".into(), "acme-jwt/private.pem".into());
        }
        assert_eq!(files, want, "{}", dep.name_any());
        // No private key but its own service key (and auth's user key) in any pod.
        for source in files.values().filter(|s| s.ends_with("/private.pem")) {
            assert!(
                *source == format!("acme-{service}-token-key/private.pem")
                    || (service == "auth" && source == "acme-jwt/private.pem"),
                "{service} holds {source}"
            );
        }
    }
    // Inventory's pods are its shards' (`shards.rs` checks their keys).
    assert_eq!(
        seen.len(),
        services.len() - 1,
        "every service has pods: {seen:?}"
    );
    assert!(!seen.contains("inventory") && !d.shards.is_empty());
}

/// `(name, number)` of a Service's or a container's ports, and a probe's port name.
fn port_names<'a>(
    ports: impl IntoIterator<Item = (&'a Option<String>, i32)>,
) -> Vec<(String, i32)> {
    ports
        .into_iter()
        .map(|(name, n)| (name.clone().unwrap_or_default(), n))
        .collect()
}

fn probe_port(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> String {
    match &probe.and_then(|p| p.http_get.as_ref()).unwrap().port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        other => panic!("a named port, not {other:?}"),
    }
}

/// The gateway's `/metrics`, `/routes` and health answer on `ops` (8081), which its public
/// Service does not expose; the others serve them on `http` (nothing public there).
#[test]
fn the_gateways_ops_port_is_in_no_service_and_its_probes_use_it() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    for dep in &d.deployments {
        let name = dep.name_any();
        let container = &pod_spec(dep).containers[0];
        let ports = port_names(
            container
                .ports
                .iter()
                .flatten()
                .map(|p| (&p.name, p.container_port)),
        );
        let ops = if name == "acme-gateway" {
            assert_eq!(
                ports,
                [("http".into(), 8080), ("ops".into(), 8081)],
                "{name}"
            );
            assert_eq!(env_of(dep)["OPS_ADDR"], "0.0.0.0:8081");
            "ops"
        } else {
            assert_eq!(
                ports,
                [("http".into(), 8080), ("grpc".into(), 50051)],
                "{name}"
            );
            assert!(!env_of(dep).contains_key("OPS_ADDR"), "{name}");
            "http"
        };
        assert_eq!(
            probe_port(container.readiness_probe.as_ref()),
            ops,
            "{name}"
        );
        assert_eq!(probe_port(container.liveness_probe.as_ref()), ops, "{name}");
    }
    for svc in &d.services {
        let name = svc.name_any();
        let ports = port_names(
            svc.spec
                .iter()
                .flat_map(|s| s.ports.iter().flatten())
                .map(|p| (&p.name, p.port)),
        );
        let want: &[(&str, i32)] = match name.as_str() {
            "acme-gateway" => &[("http", 8080)],
            n if n.ends_with("-pods") => &[("grpc", 50051)],
            _ => &[("http", 8080), ("grpc", 50051)],
        };
        let want: Vec<(String, i32)> = want.iter().map(|(n, p)| ((*n).into(), *p)).collect();
        assert_eq!(ports, want, "{name}");
    }
}

#[test]
fn a_named_jwt_secret_is_mounted_and_none_generated() {
    let mut sf = sample_storefront();
    sf.spec.security = Some(storefront_crds::storefront::Security {
        jwt_secret_name: Some("platform-jwt".into()),
        ..Default::default()
    });
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    assert_eq!(d.generated_jwt_secret, None);
    for dep in &d.deployments {
        let files = projected_files(dep, "/etc/storefront/jwt");
        assert_eq!(files["public.pem"], "platform-jwt/public.pem");
        let auth = env_of(dep)["STOREFRONT_SERVICE"] == "auth";
        assert_eq!(files.contains_key("private.pem"), auth);
    }
}

#[test]
fn database_schemas_are_per_namespace_and_fit_postgres() {
    use super::database_schema;
    assert_eq!(
        database_schema("shop", "acme", "orders"),
        "shop_acme_orders"
    );
    assert_eq!(
        database_schema("e2e-x", "acme.eu", "inventory_3"),
        "e2e_x_acme_eu_inventory_3"
    );
    assert_ne!(
        database_schema("a", "acme", "orders"),
        database_schema("b", "acme", "orders")
    );
    let long_ns = "n".repeat(63);
    let a = database_schema(&long_ns, "acme", "inventory_1");
    let b = database_schema(&long_ns, "acme", "inventory_2");
    assert_eq!((a.len(), b.len()), (63, 63));
    assert_ne!(a, b, "the hash keeps long names apart");
}

#[test]
fn extra_env_comes_first_so_the_operators_own_wins() {
    let mut sf = sample_storefront();
    let svc = sf.spec.services.get_mut("payments").expect("payments");
    svc.env = vec![
        storefront_crds::storefront::EnvVarSpec {
            name: "PAYMENT_FAILURE_RATE".into(),
            value: "0".into(),
        },
        storefront_crds::storefront::EnvVarSpec {
            name: "DATABASE_SCHEMA".into(),
            value: "hijack".into(),
        },
    ];
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    let pay = d
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("acme-payments"))
        .expect("payments deployment");
    let envs = pay
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert_eq!(envs[0].name, "PAYMENT_FAILURE_RATE");
    let schema: Vec<_> = envs
        .iter()
        .filter(|e| e.name == "DATABASE_SCHEMA")
        .map(|e| e.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        schema.last().map(String::as_str),
        Some("shop_acme_payments")
    );
}
