//! Fixtures for unit tests: the committed samples, small Storefronts from YAML, sales.

use jiff::Timestamp;
use storefront_crds::{FlashSale, ReshardPhase, ReshardStatus, Storefront};

/// The sample file `manifests/samples/<name>`.
pub fn sample(name: &str) -> String {
    let path = format!("{}/../manifests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("sample exists")
}

fn as_stored(mut sf: Storefront) -> Storefront {
    sf.metadata.namespace = Some("shop".into());
    sf.metadata.uid = Some("uid-acme".into());
    sf.metadata.generation = Some(3);
    sf
}

/// `manifests/samples/storefront.yaml` as the API server would return it.
pub fn sample_storefront() -> Storefront {
    as_stored(serde_yaml::from_str(&sample("storefront.yaml")).expect("sample parses"))
}

/// A Storefront `acme` in namespace `shop` with the given `spec.services` YAML.
pub fn storefront(services: &str) -> Storefront {
    let indented: String = services.lines().map(|l| format!("    {l}\n")).collect();
    as_stored(
        serde_yaml::from_str(&format!(
            "apiVersion: commerce.storefront.dev/v1alpha1\nkind: Storefront\nmetadata: {{name: acme}}\nspec:\n  image: img:1\n  services:\n{indented}"
        ))
        .expect("fixture parses"),
    )
}

/// The sample sale's services with another name, storefront and window.
pub fn sale(name: &str, storefront: &str, start: &str, end: &str, prewarm: &str) -> FlashSale {
    let mut s: FlashSale = serde_yaml::from_str(&sample("flashsale.yaml")).expect("sample parses");
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some("shop".into());
    s.spec.storefront_ref = storefront.into();
    s.spec.start = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
        start,
    )));
    s.spec.end = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
        end,
    )));
    s.spec.prewarm = Some(prewarm.into());
    // As the FlashSale controller leaves it once the window's capacity is Ready.
    s.status = Some(storefront_crds::FlashSaleStatus {
        limits_open: true,
        window_start: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
            start,
        ))),
        ..Default::default()
    });
    s
}

/// An RFC 3339 timestamp.
pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}

/// A reshard `from` → `to` at `epoch` in `phase`, `progress` % of 400 keys copied.
pub fn reshard_status(
    phase: ReshardPhase,
    from: i32,
    to: i32,
    epoch: i64,
    progress: i32,
) -> ReshardStatus {
    ReshardStatus {
        phase,
        from,
        to,
        epoch,
        attempt: 1,
        sources: String::new(),
        targets: String::new(),
        keys_to_move: 400,
        keys_copied: i64::from(progress) * 4,
        keys_verified: 0,
        mismatched_keys: 0,
        copy_progress: progress,
        started_at: String::new(),
        phase_since: String::new(),
        queued: None,
        message: String::new(),
    }
}
