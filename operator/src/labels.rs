//! Standard `app.kubernetes.io/*` labels and names of everything the operator creates.
//!
//! Every child carries `name`, `instance`, `component`, `managed-by` and `part-of`, so that
//! children can be found (and pruned) by label, never by guessing names.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by` value of every child.
pub const MANAGER: &str = "storefront-operator";
/// Field manager for server-side apply of Storefront children.
pub const FIELD_MANAGER: &str = "storefront-operator";
/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "storefront";

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Shard ordinal of a shard's pods.
pub const SHARD: &str = "commerce.storefront.dev/shard";
/// The sharded service a resharding Job works on.
pub const SERVICE_LABEL: &str = "commerce.storefront.dev/service";
/// Key of the PKCS#8 PEM private key in a JWT keys Secret (generated or named by the spec).
pub const JWT_PRIVATE_KEY: &str = "private.pem";
/// Key of the SPKI PEM public key in a JWT keys Secret.
pub const JWT_PUBLIC_KEY: &str = "public.pem";
/// Tier (`core` or `supporting`) of a service's pods.
pub const TIER: &str = "commerce.storefront.dev/tier";

/// Labels selecting one component of one Storefront (the selector of its Deployment).
pub fn selector(storefront: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), APP_NAME.to_string()),
        (INSTANCE.to_string(), storefront.to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}

/// All standard labels of a child of `storefront` for `component`.
pub fn labels(storefront: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector(storefront, component);
    l.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    l.insert(PART_OF.to_string(), storefront.to_string());
    l
}

/// Label selector matching every child the operator manages for `storefront`.
pub fn children_selector(storefront: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{INSTANCE}={storefront}")
}

/// Label selector matching every child the operator manages, in any Storefront.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// Name of a service's workload, Service and ServiceAccount: `<storefront>-<service>`.
pub fn service_object_name(storefront: &str, service: &str) -> String {
    format!("{storefront}-{service}")
}

/// Name of a service's headless Service (its ready pods' addresses, for the gateway's
/// balancing): `<storefront>-<service>-pods`.
pub fn pods_service_name(storefront: &str, service: &str) -> String {
    format!("{storefront}-{service}-pods")
}

/// The headless Service of a shard's pods: `<shard name>-pods`.
pub fn shard_pods_name(shard: &str) -> String {
    format!("{shard}-pods")
}

/// Name of a shard: `<storefront>-<service>-<index>`.
pub fn shard_name(storefront: &str, service: &str, index: i32) -> String {
    format!("{storefront}-{service}-{index}")
}

/// Name of the gateway's route table ConfigMap.
pub fn gateway_config_name(storefront: &str) -> String {
    format!("{storefront}-gateway-routes")
}

/// Name of the JWT keys Secret the operator generates when the spec names none.
pub fn jwt_secret_name(storefront: &str) -> String {
    format!("{storefront}-jwt")
}

/// Name of the generated Secret with `service`'s own token-signing key.
pub fn service_key_secret_name(storefront: &str, service: &str) -> String {
    format!("{storefront}-{service}-token-key")
}

/// Name of a sharded service's ring ConfigMap.
pub fn ring_name(storefront: &str, service: &str) -> String {
    format!("{storefront}-{service}-ring")
}
