use super::*;
use crate::testutil::{sale, sample_storefront, storefront, ts};

fn find(plans: &[ServicePlan], name: ServiceName) -> &ServicePlan {
    plans
        .iter()
        .find(|p| p.service == name)
        .expect("service planned")
}

#[test]
fn sample_plans_every_service_from_spec() {
    let sf = sample_storefront();
    let plans = plan(&sf.spec, &[]);
    assert_eq!(plans.len(), 7);
    let gw = find(&plans, ServiceName::Gateway);
    assert_eq!(
        gw.sizing,
        Sizing::Autoscaled {
            min: 2,
            max: 10,
            target_cpu: 70
        }
    );
    assert_eq!(gw.reason, "min 2, max 10 from spec");
    assert_eq!(gw.tier, Tier::Core);
    let inv = find(&plans, ServiceName::Inventory);
    assert_eq!(
        inv.sizing,
        Sizing::Sharded {
            shards: 4,
            replicas_per_shard: 1
        }
    );
    assert_eq!(inv.desired_pods(), 4);
    assert_eq!(find(&plans, ServiceName::Catalog).tier, Tier::Supporting);
    assert_eq!(
        find(&plans, ServiceName::Recommendations).tier,
        Tier::Supporting
    );
    assert_eq!(gw.rate_limit.as_ref().unwrap().requests_per_minute, 5000);
}

#[test]
fn disabled_and_unlisted_services_are_not_planned() {
    let sf = storefront("gateway: {}\ncatalog: {enabled: false}\n");
    let plans = plan(&sf.spec, &[]);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].sizing, Sizing::Fixed { replicas: 1 });
}

#[test]
fn stopped_scales_everything_to_zero() {
    let mut sf = sample_storefront();
    sf.spec.stopped = true;
    for p in plan(&sf.spec, &[]) {
        assert_eq!(p.desired_pods(), 0, "{}", p.service);
        assert!(
            !matches!(p.sizing, Sizing::Autoscaled { .. }),
            "no HPA while stopped"
        );
        assert_eq!(p.reason, "0 because the Storefront is stopped");
    }
}

#[test]
fn sale_raises_hpa_floor_and_ceiling_and_opens_limits_only_from_start() {
    let sf = sample_storefront();
    let bf = sale(
        "bf",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "10m",
    );
    let sales = [bf];
    // Pre-warm: capacity up, limits still the spec's.
    let warm = active_sales("acme", &sales, ts("2026-11-27T07:55:00Z"));
    assert_eq!(warm.len(), 1);
    assert_eq!(
        warm[0].effect,
        SaleEffect {
            capacity: true,
            limits: false
        }
    );
    let plans = plan(&sf.spec, &warm);
    let gw = find(&plans, ServiceName::Gateway);
    assert_eq!(
        gw.sizing,
        Sizing::Autoscaled {
            min: 6,
            max: 20,
            target_cpu: 70
        }
    );
    assert_eq!(
        gw.reason,
        "min 6, max 20 because FlashSale bf is PreWarming"
    );
    assert_eq!(gw.rate_limit.as_ref().unwrap().requests_per_minute, 5000);
    // Active: limits open too; orders (fixed 2) times factor 3.
    let active = active_sales("acme", &sales, ts("2026-11-27T08:00:00Z"));
    let plans = plan(&sf.spec, &active);
    let gw = find(&plans, ServiceName::Gateway);
    assert_eq!(gw.rate_limit.as_ref().unwrap().requests_per_minute, 20000);
    let orders = find(&plans, ServiceName::Orders);
    assert_eq!(orders.sizing, Sizing::Fixed { replicas: 6 });
    assert_eq!(orders.reason, "replicas 6 because FlashSale bf is Active");
    // Services the sale does not name are untouched.
    assert_eq!(
        find(&plans, ServiceName::Auth).reason,
        "replicas 2 from spec"
    );
    // At the end limits close at once; capacity follows after the restore grace.
    let restoring = active_sales("acme", &sales, ts("2026-11-27T20:00:00Z"));
    assert_eq!(restoring[0].phase, SalePhase::Restoring);
    let plans = plan(&sf.spec, &restoring);
    let gw = find(&plans, ServiceName::Gateway);
    assert_eq!(gw.rate_limit.as_ref().unwrap().requests_per_minute, 5000);
    assert_eq!(gw.limit_reason, "5000 rpm from spec");
    assert_eq!(gw.reason, "min 6, max 20 because FlashSale bf is Restoring");
    // After the grace: exactly the spec again.
    let after = active_sales("acme", &sales, ts("2026-11-27T20:00:10Z"));
    assert!(after.is_empty());
    assert_eq!(plan(&sf.spec, &after), plan(&sf.spec, &[]));
}

#[test]
fn limits_wait_for_the_sale_controller_to_see_capacity_ready_in_this_window() {
    let sf = sample_storefront();
    let mut bf = sale(
        "bf",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "10m",
    );
    let at_start = ts("2026-11-27T08:00:00Z");
    let gateway_rpm = |sales: &[FlashSale]| {
        let active = active_sales("acme", sales, at_start);
        let plans = plan(&sf.spec, &active);
        let gw = find(&plans, ServiceName::Gateway);
        (
            gw.rate_limit.as_ref().unwrap().requests_per_minute,
            gw.limit_reason.clone(),
        )
    };
    assert_eq!(
        gateway_rpm(std::slice::from_ref(&bf)),
        (20000, "20000 rpm from FlashSale bf".to_string())
    );
    // Capacity not Ready yet: the sale is on (capacity raised) but its limits are not.
    bf.status.as_mut().unwrap().limits_open = false;
    assert_eq!(
        gateway_rpm(std::slice::from_ref(&bf)),
        (5000, "5000 rpm from spec".to_string())
    );
    // Opened for another (earlier) window: does not count for this one.
    let st = bf.status.as_mut().unwrap();
    st.limits_open = true;
    st.window_start = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
        "2026-11-20T08:00:00Z",
    )));
    assert_eq!(gateway_rpm(std::slice::from_ref(&bf)).0, 5000);
}

#[test]
fn recurring_sales_raise_capacity_in_each_window() {
    let sf = sample_storefront();
    let mut s = sale(
        "weekly",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "1m",
    );
    s.spec.start = None;
    s.spec.end = None;
    s.spec.schedule = Some(
        serde_yaml::from_str("{cron: '0 20 * * FRI', duration: 3h, timeZone: Europe/Berlin}")
            .unwrap(),
    );
    let sales = [s];
    // Friday 20:30 Berlin (19:30Z): capacity raised.
    let active = active_sales("acme", &sales, ts("2026-11-27T19:30:00Z"));
    assert_eq!(active.len(), 1);
    let plans = plan(&sf.spec, &active);
    assert_eq!(
        find(&plans, ServiceName::Orders).sizing,
        Sizing::Fixed { replicas: 6 }
    );
    // Saturday: nothing.
    assert!(active_sales("acme", &sales, ts("2026-11-28T19:30:00Z")).is_empty());
    assert_eq!(
        next_boundary("acme", &sales, ts("2026-11-28T19:30:00Z")),
        Some(ts("2026-12-04T18:59:00Z"))
    );
}

#[test]
fn before_prewarm_and_other_storefronts_sales_do_nothing() {
    let sales = [
        sale(
            "bf",
            "acme",
            "2026-11-27T08:00:00Z",
            "2026-11-27T20:00:00Z",
            "10m",
        ),
        sale(
            "other",
            "globex",
            "2026-11-27T00:00:00Z",
            "2026-11-28T00:00:00Z",
            "1m",
        ),
    ];
    assert!(active_sales("acme", &sales, ts("2026-11-27T07:49:59Z")).is_empty());
    assert_eq!(
        active_sales("acme", &sales, ts("2026-11-27T09:00:00Z")).len(),
        1
    );
}

#[test]
fn overlapping_sales_maximum_wins() {
    let sf = sample_storefront();
    let mut small = sale(
        "a-small",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "1m",
    );
    let mut big = small.clone();
    big.metadata.name = Some("b-big".into());
    small
        .spec
        .services
        .get_mut("gateway")
        .unwrap()
        .scale
        .as_mut()
        .unwrap()
        .min_replicas = 3;
    big.spec
        .services
        .get_mut("gateway")
        .unwrap()
        .rate_limit
        .as_mut()
        .unwrap()
        .requests_per_minute = 30000;
    let sales = [small, big];
    let active = active_sales("acme", &sales, ts("2026-11-27T10:00:00Z"));
    let plans = plan(&sf.spec, &active);
    let gw = find(&plans, ServiceName::Gateway);
    assert_eq!(
        gw.sizing,
        Sizing::Autoscaled {
            min: 6,
            max: 20,
            target_cpu: 70
        }
    );
    assert_eq!(gw.rate_limit.as_ref().unwrap().requests_per_minute, 30000);
    assert_eq!(
        gw.reason,
        "min 6, max 20 because FlashSale a-small, b-big is Active"
    );
}

#[test]
fn factor_scales_shards_pods_and_caps_at_1000() {
    let sf = storefront(
        "inventory: {sharding: {shards: 4, replicasPerShard: 2}}\ngateway: {replicas: 600}\n",
    );
    let mut s = sale(
        "s",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "1m",
    );
    s.spec.services =
        serde_yaml::from_str("inventory: {factor: 1.5}\ngateway: {factor: 2}\n").unwrap();
    let sales = [s];
    let active = active_sales("acme", &sales, ts("2026-11-27T10:00:00Z"));
    let plans = plan(&sf.spec, &active);
    assert_eq!(
        find(&plans, ServiceName::Inventory).sizing,
        Sizing::Sharded {
            shards: 4,
            replicas_per_shard: 3
        }
    );
    assert_eq!(
        find(&plans, ServiceName::Gateway).sizing,
        Sizing::Fixed { replicas: 1000 }
    );
}

#[test]
fn next_boundary_is_the_next_prewarm_start_or_end() {
    let sales = [
        sale(
            "bf",
            "acme",
            "2026-11-27T08:00:00Z",
            "2026-11-27T20:00:00Z",
            "10m",
        ),
        sale(
            "late",
            "acme",
            "2026-11-28T08:00:00Z",
            "2026-11-28T09:00:00Z",
            "1m",
        ),
        sale(
            "other",
            "globex",
            "2026-11-26T00:00:00Z",
            "2026-11-26T01:00:00Z",
            "1m",
        ),
    ];
    let next = |now: &str| next_boundary("acme", &sales, ts(now));
    assert_eq!(
        next("2026-11-25T00:00:00Z"),
        Some(ts("2026-11-27T07:50:00Z"))
    );
    assert_eq!(
        next("2026-11-27T07:50:00Z"),
        Some(ts("2026-11-27T08:00:00Z"))
    );
    assert_eq!(
        next("2026-11-27T08:00:00Z"),
        Some(ts("2026-11-27T20:00:00Z"))
    );
    assert_eq!(
        next("2026-11-27T20:00:00Z"),
        Some(ts("2026-11-27T20:00:10Z"))
    );
    assert_eq!(
        next("2026-11-27T20:00:10Z"),
        Some(ts("2026-11-28T07:59:00Z"))
    );
    assert_eq!(
        next("2026-11-28T09:00:00Z"),
        Some(ts("2026-11-28T09:00:10Z"))
    );
    assert_eq!(next("2026-11-28T09:00:10Z"), None);
}

#[test]
fn order_limits_hold_exactly_while_the_sales_limits_are_open() {
    // The sample's caps: 2 of each of two SKUs per customer.
    let mut bf = sale(
        "bf",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "10m",
    );
    let caps = |sales: &[FlashSale], at: &str| order_limits(&active_sales("acme", sales, ts(at)));
    let want = vec![SaleOrderLimit {
        sale: "bf".into(),
        since: ts("2026-11-27T08:00:00Z"),
        units_per_customer: 2,
        skus: vec!["SKU-0000-000001".into(), "SKU-0000-000002".into()],
    }];
    // Pre-warming (capacity only), after the end (restoring), long after: none.
    for at in [
        "2026-11-27T07:55:00Z",
        "2026-11-27T20:00:00Z",
        "2026-11-28T00:00:00Z",
    ] {
        assert_eq!(caps(std::slice::from_ref(&bf), at), [], "{at}");
    }
    assert_eq!(
        caps(std::slice::from_ref(&bf), "2026-11-27T08:00:00Z"),
        want
    );
    assert_eq!(
        caps(std::slice::from_ref(&bf), "2026-11-27T19:59:59Z"),
        want
    );
    // Capacity late: the limits wait, and so do the caps.
    bf.status.as_mut().unwrap().limits_open = false;
    assert_eq!(caps(std::slice::from_ref(&bf), "2026-11-27T09:00:00Z"), []);
    // A cap of 0 that slipped past the schema: not rendered (the gateway would refuse the
    // whole table).
    bf.status.as_mut().unwrap().limits_open = true;
    bf.spec.order_limits.as_mut().unwrap().units_per_customer = 0;
    assert_eq!(caps(std::slice::from_ref(&bf), "2026-11-27T09:00:00Z"), []);
    // A sale without caps has none.
    bf.spec.order_limits = None;
    assert_eq!(caps(std::slice::from_ref(&bf), "2026-11-27T09:00:00Z"), []);
}

#[test]
fn a_recurring_sales_caps_count_from_the_window_in_progress() {
    let mut s = sale(
        "weekly",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "1m",
    );
    s.spec.start = None;
    s.spec.end = None;
    s.spec.schedule = Some(
        serde_yaml::from_str("{cron: '0 20 * * FRI', duration: 3h, timeZone: Europe/Berlin}")
            .unwrap(),
    );
    // The FlashSale controller opened the limits of the second Friday's window.
    s.status.as_mut().unwrap().window_start = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts("2026-12-04T19:00:00Z")),
    );
    let sales = [s];
    let caps = order_limits(&active_sales("acme", &sales, ts("2026-12-04T19:30:00Z")));
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].since, ts("2026-12-04T19:00:00Z"));
    // The week before, its limits were never recorded open: no caps.
    assert_eq!(
        order_limits(&active_sales("acme", &sales, ts("2026-11-27T19:30:00Z"))),
        []
    );
}
