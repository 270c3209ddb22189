//! Every bad input of the foundation issue, checked twice: by the CEL rules of the generated
//! schema (evaluated locally with kube's CEL interpreter, as the API server would) where the
//! rule is CEL, and by the Rust-side validation the operator runs.

use super::*;
use crate::{FlashSale, Storefront};

fn storefront(yaml: &str) -> Storefront {
    serde_yaml::from_str(yaml).expect("fixture parses")
}

fn sample(name: &str) -> String {
    let path = format!("{}/../manifests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("sample exists")
}

fn with_services(services: &str) -> Storefront {
    storefront(&format!(
        "apiVersion: commerce.storefront.dev/v1alpha1\nkind: Storefront\nmetadata: {{name: t}}\nspec:\n  image: img\n  services:\n{services}"
    ))
}

fn errors(sf: &Storefront) -> Vec<String> {
    match super::storefront(&sf.spec) {
        Ok(()) => vec![],
        Err(InvalidSpec(errs)) => errs.iter().map(ToString::to_string).collect(),
    }
}

fn cel_errors<K: kube::CustomResourceExt + serde::Serialize>(obj: &K) -> String {
    match kube::core::cel::validate_cel(obj) {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn samples_are_valid() {
    for name in ["storefront.yaml", "minimal.yaml"] {
        let sf = storefront(&sample(name));
        assert_eq!(errors(&sf), Vec::<String>::new(), "{name}");
        assert_eq!(cel_errors(&sf), "", "{name}");
    }
    let sale: FlashSale = serde_yaml::from_str(&sample("flashsale.yaml")).unwrap();
    assert_eq!(super::flash_sale(&sale.spec), Ok(()));
    assert_eq!(cel_errors(&sale), "");
}

#[test]
fn negative_replicas_are_refused() {
    let sf = with_services("    gateway: {replicas: -1}\n");
    assert_eq!(
        errors(&sf),
        ["spec.services.gateway.replicas: must be between 0 and 1000, got -1"]
    );
}

#[test]
fn autoscaling_min_above_max_is_refused() {
    let sf = with_services("    gateway: {autoscaling: {min: 5, max: 2}}\n");
    assert_eq!(
        errors(&sf),
        [
            "spec.services.gateway.autoscaling: autoscaling.max must be greater than or equal to autoscaling.min"
        ]
    );
    assert!(
        cel_errors(&sf)
            .contains("autoscaling.max must be greater than or equal to autoscaling.min")
    );
}

#[test]
fn memory_target_outside_a_percentage_is_refused() {
    for bad in [0, 101] {
        let sf = with_services(&format!(
            "    gateway: {{autoscaling: {{min: 1, max: 3, targetMemoryUtilization: {bad}}}}}\n"
        ));
        assert_eq!(
            errors(&sf),
            [format!(
                "spec.services.gateway.autoscaling.targetMemoryUtilization: must be between 1 and 100, got {bad}"
            )]
        );
        assert!(
            cel_errors(&sf).contains(
                "autoscaling.targetMemoryUtilization must be a percentage between 1 and 100"
            ),
            "{bad}"
        );
    }
    let sf = with_services(
        "    gateway: {autoscaling: {min: 1, max: 3, targetCPUUtilization: 50, targetMemoryUtilization: 80, scaleDownStabilizationSeconds: 0}}\n",
    );
    assert_eq!(errors(&sf), Vec::<String>::new());
    assert_eq!(cel_errors(&sf), "");
}

#[test]
fn scale_down_stabilization_beyond_an_hour_is_refused() {
    let sf = with_services(
        "    gateway: {autoscaling: {min: 1, max: 3, scaleDownStabilizationSeconds: 3601}}\n",
    );
    assert_eq!(
        errors(&sf),
        [
            "spec.services.gateway.autoscaling.scaleDownStabilizationSeconds: must be between 0 and 3600, got 3601"
        ]
    );
}

#[test]
fn unknown_service_names_are_refused() {
    let sf = with_services("    shipping: {}\n");
    assert_eq!(
        errors(&sf),
        [
            "spec.services.shipping: unknown service name: services must be among gateway, auth, catalog, orders, payments, inventory, recommendations"
        ]
    );
    assert!(cel_errors(&sf).contains("unknown service name"));
}

#[test]
fn zero_shards_are_refused() {
    let sf = with_services("    inventory: {sharding: {shards: 0}}\n");
    assert_eq!(
        errors(&sf),
        ["spec.services.inventory.sharding.shards: must be between 1 and 64, got 0"]
    );
}

#[test]
fn sharding_a_stateless_service_is_refused() {
    let sf = with_services("    catalog: {sharding: {shards: 2}}\n");
    assert_eq!(
        errors(&sf),
        [
            "spec.services.catalog.sharding: sharding is only supported for the stateful services orders and inventory"
        ]
    );
    assert!(cel_errors(&sf).contains("sharding is only supported"));
}

#[test]
fn zero_rate_limit_is_refused() {
    let sf = with_services("    gateway: {rateLimit: {requestsPerMinute: 0}}\n");
    assert_eq!(
        errors(&sf),
        ["spec.services.gateway.rateLimit.requestsPerMinute: must be at least 1"]
    );
}

#[test]
fn replicas_and_autoscaling_together_are_refused() {
    let sf = with_services("    orders: {replicas: 2, autoscaling: {min: 1, max: 3}}\n");
    assert_eq!(
        errors(&sf),
        ["spec.services.orders: set either replicas or autoscaling, not both"]
    );
    assert!(cel_errors(&sf).contains("set either replicas or autoscaling"));
}

#[test]
fn empty_image_is_refused() {
    let mut sf = with_services("    gateway: {}\n");
    sf.spec.image = " ".into();
    assert_eq!(errors(&sf), ["spec.image: must not be empty"]);
}

fn sale(spec: &str) -> FlashSale {
    serde_yaml::from_str(&format!(
        "apiVersion: commerce.storefront.dev/v1alpha1\nkind: FlashSale\nmetadata: {{name: s}}\nspec:\n  storefrontRef: acme\n{spec}"
    ))
    .expect("fixture parses")
}

fn sale_errors(s: &FlashSale) -> Vec<String> {
    match super::flash_sale(&s.spec) {
        Ok(()) => vec![],
        Err(InvalidSpec(errs)) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn sale_ending_before_it_starts_is_refused() {
    let s = sale("  start: \"2026-11-27T20:00:00Z\"\n  end: \"2026-11-27T08:00:00Z\"\n");
    assert_eq!(sale_errors(&s), ["spec.end: end must be after start"]);
    assert!(cel_errors(&s).contains("end must be after start"));
}

#[test]
fn sale_needs_exactly_one_window_kind() {
    let none = sale("  prewarm: 5m\n");
    assert_eq!(
        sale_errors(&none),
        ["spec: set either a one-off window (start and end) or a recurring schedule, exactly one"]
    );
    assert!(cel_errors(&none).contains("exactly one"));
    let half = sale("  start: \"2026-11-27T20:00:00Z\"\n");
    assert!(sale_errors(&half).contains(&"spec: start and end must be set together".to_string()));
    assert!(cel_errors(&half).contains("start and end must be set together"));
}

#[test]
fn sale_scale_min_above_max_and_both_scale_and_factor_are_refused() {
    let s = sale(
        "  schedule: {cron: \"0 20 * * FRI\", duration: 2h}\n  services:\n    gateway: {scale: {minReplicas: 9, maxReplicas: 3}}\n    orders: {factor: 2, scale: {minReplicas: 1, maxReplicas: 3}}\n",
    );
    assert_eq!(
        sale_errors(&s),
        [
            "spec.services.gateway.scale: scale.maxReplicas must be greater than or equal to scale.minReplicas",
            "spec.services.orders: set either scale or factor, not both",
        ]
    );
    let cel = cel_errors(&s);
    assert!(cel.contains("scale.maxReplicas must be greater"), "{cel}");
    assert!(cel.contains("set either scale or factor"), "{cel}");
}

#[test]
fn sale_durations_are_checked() {
    let s = sale("  schedule: {cron: \"0 20 * * FRI\", duration: 0s}\n  prewarm: soon\n");
    assert_eq!(
        sale_errors(&s),
        [
            "spec.prewarm: not a duration: \"soon\" (use e.g. 10m, 1h30m)",
            "spec.schedule.duration: not a positive duration: \"0s\" (use e.g. 2h)",
        ]
    );
    assert_eq!(
        parse_duration("1h30m"),
        Some(std::time::Duration::from_secs(5400))
    );
}

fn with_client_limits(limits: &str) -> Storefront {
    storefront(&format!(
        "{}\n  clientLimits:\n{limits}",
        sample("minimal.yaml").trim_end()
    ))
}

#[test]
fn client_limits_are_checked() {
    let sf = with_client_limits(
        "    perUser: {requestsPerMinute: 0}\n    routes:\n      - {route: \"POST /api/v1/orders\", requestsPerMinute: 30}\n      - {route: \"POST /api/v1/orders\", requestsPerMinute: 60}\n    trustedProxies: [\"10.0.0.0/8\", \"the load balancer\"]\n",
    );
    assert_eq!(
        errors(&sf),
        [
            "spec.clientLimits.perUser.requestsPerMinute: must be at least 1",
            "spec.clientLimits.routes[1].route: POST /api/v1/orders is listed twice; keep one limit per route",
            "spec.clientLimits.trustedProxies[1]: \"the load balancer\" is not a CIDR; write one such as 10.0.0.0/8 or fd00::/8",
        ]
    );
    let cel = cel_errors(&sf);
    assert!(cel.contains("must be a CIDR"), "{cel}");
    let fine = with_client_limits(
        "    perAddress: {requestsPerMinute: 120, burst: 20}\n    trustedProxies: [\"10.0.0.0/8\", \"fd00::/8\"]\n",
    );
    assert_eq!(errors(&fine), Vec::<String>::new());
    assert_eq!(cel_errors(&fine), "");
}

#[test]
fn sale_order_limits_are_checked() {
    let window = "  start: \"2026-11-27T08:00:00Z\"\n  end: \"2026-11-27T20:00:00Z\"\n";
    let s = sale(&format!(
        "{window}  orderLimits: {{unitsPerCustomer: 0, skus: [SKU-1, \"bad sku\", SKU-1, \"\"]}}\n"
    ));
    assert_eq!(
        sale_errors(&s),
        [
            "spec.orderLimits.unitsPerCustomer: must be between 1 and 10000, got 0",
            "spec.orderLimits.skus[1]: \"bad sku\": a SKU may contain only letters, digits, '-' and '_'",
            "spec.orderLimits.skus[2]: \"SKU-1\" is listed twice; list each SKU once",
            "spec.orderLimits.skus[3]: \"\" must be 1 to 64 characters long",
        ]
    );
    let cel = cel_errors(&s);
    assert!(
        cel.contains("a SKU may contain only letters, digits, '-' and '_'"),
        "{cel}"
    );
    let many = sale(&format!(
        "{window}  orderLimits: {{unitsPerCustomer: 10001, skus: [{}]}}\n",
        (0..1001)
            .map(|i| format!("S{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert_eq!(
        sale_errors(&many),
        [
            "spec.orderLimits.unitsPerCustomer: must be between 1 and 10000, got 10001",
            "spec.orderLimits.skus: lists 1001 SKUs; at most 1000 (leave it empty to cap every SKU)",
        ]
    );
    // Every SKU (no list), and a list at the limits: fine.
    for fine in [
        format!("{window}  orderLimits: {{unitsPerCustomer: 2}}\n"),
        format!(
            "{window}  orderLimits: {{unitsPerCustomer: 10000, skus: [{}, {}]}}\n",
            "A".repeat(64),
            "sku_2-x"
        ),
    ] {
        let s = sale(&fine);
        assert_eq!(sale_errors(&s), Vec::<String>::new(), "{fine}");
        assert_eq!(cel_errors(&s), "", "{fine}");
    }
    let limits = sale(&format!("{window}  orderLimits: {{unitsPerCustomer: 2}}\n"))
        .spec
        .order_limits
        .expect("set");
    assert!(limits.covers("ANY-SKU"));
    let some = sale(&format!(
        "{window}  orderLimits: {{unitsPerCustomer: 2, skus: [SKU-1]}}\n"
    ))
    .spec
    .order_limits
    .expect("set");
    assert!(some.covers("SKU-1") && !some.covers("SKU-2"));
}
