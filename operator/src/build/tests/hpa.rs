//! HorizontalPodAutoscalers: who owns the replicas, the bounds a sale raises, memory and the
//! scale-in window.

use super::*;

#[test]
fn hpa_managed_deployments_leave_replicas_to_the_hpa() {
    let d = desired(&sample_storefront(), &[], now(), &Default::default()).unwrap();
    for dep in &d.deployments {
        let replicas = dep.spec.as_ref().unwrap().replicas;
        let autoscaled = d.hpas.iter().any(|h| h.name_any() == dep.name_any());
        assert_eq!(replicas.is_none(), autoscaled, "{}", dep.name_any());
    }
    let auth = d
        .deployments
        .iter()
        .find(|x| x.name_any() == "acme-auth")
        .unwrap();
    assert_eq!(auth.spec.as_ref().unwrap().replicas, Some(2));
    let gw = &d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((gw.min_replicas, gw.max_replicas), (Some(2), 10));
}

#[test]
fn active_sale_raises_hpa_floor_and_gateway_limits() {
    let sales = [sale(
        "bf",
        "acme",
        "2026-11-25T11:00:00Z",
        "2026-11-25T13:00:00Z",
        "5m",
    )];
    let d = desired(&sample_storefront(), &sales, now(), &Default::default()).unwrap();
    assert_eq!(d.active_sales, ["bf"]);
    let gw = d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((gw.min_replicas, gw.max_replicas), (Some(6), 20));
    let routes = &d.config_maps[1].data.as_ref().unwrap()["routes.json"];
    assert!(routes.contains("\"requestsPerMinute\": 20000"), "{routes}");
}

#[test]
fn hpa_follows_memory_and_scales_in_after_the_window_when_asked() {
    let sf = storefront(
        "gateway: {autoscaling: {min: 1, max: 3, targetCPUUtilization: 20, targetMemoryUtilization: 80, scaleDownStabilizationSeconds: 15}}",
    );
    let d = desired(&sf, &[], now(), &Default::default()).unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    let targets: Vec<_> = spec
        .metrics
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| {
            let r = m.resource.as_ref().unwrap();
            (r.name.as_str(), r.target.average_utilization)
        })
        .collect();
    assert_eq!(targets, [("cpu", Some(20)), ("memory", Some(80))]);
    let down = spec.behavior.as_ref().unwrap().scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(15));
    insta::assert_yaml_snapshot!("gateway_hpa_memory_and_window", d.hpas[0]);
}

#[test]
fn hpa_without_memory_target_or_window_is_cpu_only_with_default_behavior() {
    let d = desired(
        &storefront("gateway: {autoscaling: {min: 1, max: 3}}"),
        &[],
        now(),
        &Default::default(),
    )
    .unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    let metrics = spec.metrics.as_ref().unwrap();
    assert_eq!(metrics.len(), 1);
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.target.average_utilization),
        ("cpu", Some(plan::DEFAULT_TARGET_CPU))
    );
    assert_eq!(spec.behavior, None);
}

#[test]
fn a_sale_raises_the_bounds_and_keeps_the_memory_target() {
    let mut sf = sample_storefront();
    let gw = sf.spec.services.get_mut("gateway").unwrap();
    let a = gw.autoscaling.as_mut().unwrap();
    a.target_memory_utilization = Some(75);
    a.scale_down_stabilization_seconds = Some(60);
    let sales = [sale(
        "bf",
        "acme",
        "2026-11-25T11:00:00Z",
        "2026-11-25T13:00:00Z",
        "5m",
    )];
    let d = desired(&sf, &sales, now(), &Default::default()).unwrap();
    let spec = d.hpas[0].spec.as_ref().unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(6), 20));
    let names: Vec<_> = spec
        .metrics
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.resource.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["cpu", "memory"]);
    let down = spec.behavior.as_ref().unwrap().scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(60));
}
