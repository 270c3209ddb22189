//! The gateway's own API access: a Role `<sf>-gateway` and its RoleBinding to the gateway's
//! ServiceAccount. Nothing else in a shop talks to the API server (their pods mount no
//! token).
//!
//! ```text
//!  Role <sf>-gateway
//!    configmaps  get list watch   resourceNames [<sf>-gateway-routes]   the route table, watched
//!                                                                       (a sale's limits in ~1 s)
//!    pods/status patch            (any pod of the namespace: pod names are not known in
//!                                  advance)                             edge health conditions
//!    endpointslices list watch    (discovery.k8s.io; the namespace's)   the pods to spread calls
//!                                                                       over, seen within ~1 s
//!  RoleBinding <sf>-gateway ──▶ ServiceAccount <sf>-gateway
//! ```
//!
//! The rings stay mounted ConfigMaps (see `workloads/gateway/src/source.rs`), so they are not
//! in the Role. The operator must hold every permission it grants here (RBAC's escalation
//! check): `manifests/operator/10-rbac.yaml` gives it `patch` on `pods/status` and
//! `list`/`watch` on `endpointslices` for that.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::Owner;
use crate::labels;

const GATEWAY: &str = "gateway";

fn rule(resources: &str, names: Option<Vec<String>>, verbs: &[&str]) -> PolicyRule {
    rule_in("", resources, names, verbs)
}

fn rule_in(group: &str, resources: &str, names: Option<Vec<String>>, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resources.to_string()]),
        resource_names: names,
        verbs: verbs.iter().map(|v| (*v).to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// The gateway's Role.
pub fn role(owner: &Owner<'_>) -> Role {
    Role {
        metadata: owner.meta(
            labels::service_object_name(owner.name, GATEWAY),
            GATEWAY,
            &Default::default(),
        ),
        rules: Some(vec![
            rule(
                "configmaps",
                Some(vec![labels::gateway_config_name(owner.name)]),
                &["get", "list", "watch"],
            ),
            rule("pods/status", None, &["patch"]),
            rule_in(
                "discovery.k8s.io",
                "endpointslices",
                None,
                &["list", "watch"],
            ),
        ]),
    }
}

/// Binds the gateway's Role to its ServiceAccount.
pub fn role_binding(owner: &Owner<'_>) -> RoleBinding {
    let name = labels::service_object_name(owner.name, GATEWAY);
    RoleBinding {
        metadata: owner.meta(name.clone(), GATEWAY, &Default::default()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name,
            namespace: Some(owner.namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use crate::{build::desired, testutil::sample_storefront};

    fn now() -> jiff::Timestamp {
        crate::testutil::ts("2026-11-25T12:00:00Z")
    }

    #[test]
    fn gateway_role() {
        let d = desired(&sample_storefront(), &[], now(), &Default::default()).expect("builds");
        insta::assert_yaml_snapshot!("gateway_role", d.roles);
        insta::assert_yaml_snapshot!("gateway_role_binding", d.role_bindings);
    }

    #[test]
    fn the_role_names_only_the_route_configmap_and_binds_the_gateways_account() {
        let d = desired(&sample_storefront(), &[], now(), &Default::default()).expect("builds");
        let rules = d.roles[0].rules.clone().unwrap_or_default();
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["acme-gateway-routes".to_string()][..])
        );
        assert!(!rules[0].verbs.iter().any(|v| v == "update" || v == "patch"));
        let slices = rules
            .iter()
            .find(|r| r.resources.as_deref() == Some(&["endpointslices".to_string()][..]))
            .expect("endpointslices");
        assert_eq!(
            slices.api_groups.as_deref(),
            Some(&["discovery.k8s.io".to_string()][..])
        );
        assert_eq!(slices.verbs, ["list", "watch"], "read only");
        let subject = &d.role_bindings[0].subjects.as_ref().expect("subjects")[0];
        let account = d
            .service_accounts
            .iter()
            .find(|a| a.metadata.name.as_deref() == Some("acme-gateway"))
            .expect("the gateway's ServiceAccount");
        assert_eq!(Some(&subject.name), account.metadata.name.as_ref());
        assert_eq!(subject.namespace, account.metadata.namespace);
        assert_eq!(d.role_bindings[0].role_ref.name, "acme-gateway");
    }

    #[test]
    fn no_gateway_no_role() {
        let mut sf = sample_storefront();
        if let Some(g) = sf.spec.services.get_mut("gateway") {
            g.enabled = false;
        }
        let d = desired(&sf, &[], now(), &Default::default()).expect("builds");
        assert!(d.roles.is_empty() && d.role_bindings.is_empty());
        assert!(
            !d.services.iter().any(|s| s
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-pods"))),
            "no headless Services without a gateway to use them"
        );
    }
}
