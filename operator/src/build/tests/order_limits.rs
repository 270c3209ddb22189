//! The sales' per-customer caps in the gateway's route table: rendered while the sale's limits
//! are open, from the window's start, in sale name order, and gone afterwards (the table is
//! then byte for byte the spec's).

use super::*;

fn routes_json(d: &Desired) -> String {
    d.config_maps
        .iter()
        .find(|c| c.name_any() == "acme-gateway-routes")
        .and_then(|c| c.data.as_ref())
        .map(|data| data["routes.json"].clone())
        .expect("a route table")
}

fn routes_at(sales: &[FlashSale], at: &str) -> String {
    routes_json(&desired(&sample_storefront(), sales, ts(at), &Default::default()).unwrap())
}

fn order_limits(routes: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(routes).expect("JSON");
    doc["orderLimits"].clone()
}

fn bf() -> FlashSale {
    sale(
        "bf",
        "acme",
        "2026-11-27T08:00:00Z",
        "2026-11-27T20:00:00Z",
        "10m",
    )
}

#[test]
fn a_sales_caps_are_in_the_route_table_while_its_limits_are_open() {
    let sales = [bf()];
    let during = routes_at(&sales, "2026-11-27T12:00:00Z");
    assert_eq!(
        order_limits(&during),
        serde_json::json!([{
            "sale": "bf",
            "since": ts("2026-11-27T08:00:00Z").as_second(),
            "unitsPerCustomer": 2,
            "skus": ["SKU-0000-000001", "SKU-0000-000002"],
        }])
    );
    // Nothing changes during the window: the same bytes (no write).
    assert_eq!(routes_at(&sales, "2026-11-27T19:59:59Z"), during);
    // Before the start and after the end: no caps, and the table is the spec's own.
    let spec_only = routes_at(&[], "2026-11-27T12:00:00Z");
    assert!(!spec_only.contains("orderLimits"), "{spec_only}");
    for at in ["2026-11-27T07:55:00Z", "2026-11-27T20:00:00Z"] {
        assert_eq!(routes_at(&sales, at), spec_only, "{at}");
    }
}

#[test]
fn caps_of_every_sku_and_of_overlapping_sales_render_in_name_order() {
    let mut every = sale(
        "a-every",
        "acme",
        "2026-11-27T10:00:00Z",
        "2026-11-27T14:00:00Z",
        "1m",
    );
    every.spec.order_limits = Some(storefront_crds::flashsale::OrderLimits {
        units_per_customer: 5,
        skus: vec![],
    });
    let mut none = bf();
    none.metadata.name = Some("c-no-caps".into());
    none.spec.order_limits = None;
    let at = "2026-11-27T12:00:00Z";
    let listed = routes_at(&[bf(), none.clone(), every.clone()], at);
    assert_eq!(
        order_limits(&listed),
        serde_json::json!([
            {"sale": "a-every", "since": ts("2026-11-27T10:00:00Z").as_second(), "unitsPerCustomer": 5},
            {"sale": "bf", "since": ts("2026-11-27T08:00:00Z").as_second(), "unitsPerCustomer": 2,
             "skus": ["SKU-0000-000001", "SKU-0000-000002"]},
        ])
    );
    // Listed in another order, the same bytes.
    assert_eq!(routes_at(&[every, none, bf()], at), listed);
}

#[test]
fn caps_wait_for_the_limits_when_capacity_is_late() {
    let mut late = bf();
    late.status.as_mut().unwrap().limits_open = false;
    let routes = routes_at(&[late], "2026-11-27T08:00:05Z");
    assert!(!routes.contains("orderLimits"), "{routes}");
}
