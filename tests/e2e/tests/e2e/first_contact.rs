//! First contact, as a platform engineer trying the product on their own cluster meets it:
//! 1. The sample Storefront applied into a namespace without the datastores' Secrets says,
//!    within 5 s, which Secret is missing and what to do, in its `Ready` condition and in
//!    `kubectl get sf -o wide`; it creates no pods meanwhile. Creating the Secrets brings the
//!    shop to Ready without touching the Storefront (the operator watches Secrets' metadata).
//! 2. `kubectl get fsale` shows a sale scheduled in the future with a readable `NEXT` (a `date`
//!    column prints future times as `<invalid>`).
//!
//! Timings are printed as `figure:` lines.

#![allow(clippy::unwrap_used)]

use std::{
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use storefront_crds::{FlashSale, Storefront};
use storefront_e2e::{
    TestNamespace, client, condition, datastores::DatastoreUrls, ensure_operator, sample,
    storefront_from, wait_for, wait_ready,
};

fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`kubectl {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_shop_without_its_secrets_names_them_then_starts_when_they_appear() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "first-contact")
        .await
        .unwrap();
    let sfs = ns.api::<Storefront>();
    let sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    let t0 = Instant::now();
    sfs.create(&PostParams::default(), &sf).await.unwrap();

    let expected = format!(
        "Secret storefront-postgres (key url) not found in namespace {}; create it",
        ns.name
    );
    let waiting = wait_for(
        "the Storefront to name its missing Secret",
        Duration::from_secs(5),
        || async {
            let sf = sfs.get("acme").await?;
            Ok(condition(&sf, "Ready")
                .filter(|c| {
                    c.status == "False"
                        && c.reason == "DatastoreSecretMissing"
                        && c.message.starts_with(&expected)
                })
                .map(|c| c.message.clone()))
        },
    )
    .await;
    let message = match waiting {
        Ok(m) => m,
        Err(e) => {
            ns.dump();
            panic!("{e:#}");
        }
    };
    println!(
        "figure: first contact: missing Secret named {:.1}s after apply",
        t0.elapsed().as_secs_f64()
    );
    for secret in [
        "storefront-postgres-replica",
        "storefront-redis",
        "storefront-nats",
    ] {
        assert!(message.contains(secret), "{secret} not named: {message}");
    }

    let wide = kubectl(&["get", "sf", "acme", "-n", &ns.name, "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    assert!(
        header.contains("REASON") && header.contains("MESSAGE"),
        "kubectl get sf -o wide: {wide}"
    );
    assert!(
        wide.contains("DatastoreSecretMissing") && wide.contains(&expected),
        "kubectl get sf -o wide does not name the Secret: {wide}"
    );
    // Nothing is started while it waits: no pod fails on the missing Secret.
    let deployments = ns
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        deployments.items.is_empty(),
        "Deployments created while the Secrets are missing: {:?}",
        deployments
            .items
            .iter()
            .map(|d| d.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let failures = sfs
        .get("acme")
        .await
        .unwrap()
        .status
        .unwrap()
        .failure_points;
    assert_eq!(
        failures
            .iter()
            .map(|f| (f.kind.as_str(), f.name.as_str()))
            .collect::<Vec<_>>(),
        [
            ("Secret", "storefront-postgres"),
            ("Secret", "storefront-postgres-replica"),
            ("Secret", "storefront-redis"),
            ("Secret", "storefront-nats"),
        ]
    );

    // The Secrets appear; the Storefront is not touched.
    let generation = sfs.get("acme").await.unwrap().metadata.generation;
    let urls = DatastoreUrls::discover().unwrap_or_else(|_| DatastoreUrls::placeholders());
    let t1 = Instant::now();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let started = wait_for(
        "the operator to create the shop's Deployments",
        Duration::from_secs(10),
        || async {
            let d = ns.api::<Deployment>().list(&ListParams::default()).await?;
            Ok((!d.items.is_empty()).then_some(()))
        },
    )
    .await;
    if let Err(e) = started {
        ns.dump();
        panic!("{e:#}");
    }
    println!(
        "figure: first contact: Secrets created -> Deployments created in {:.1}s",
        t1.elapsed().as_secs_f64()
    );
    match wait_ready(&sfs, "acme", "True", Duration::from_secs(300)).await {
        Ok(sf) => assert_eq!(
            sf.metadata.generation, generation,
            "the Storefront was changed"
        ),
        Err(e) => {
            ns.dump();
            panic!("{e:#}");
        }
    }
    println!(
        "figure: first contact: Secrets created -> Ready in {:.1}s",
        t1.elapsed().as_secs_f64()
    );
}

/// Whitespace-separated cells of each line of a kubectl table, AGE (the last) dropped.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            let mut c: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            c.pop();
            c
        })
        .collect()
}

#[tokio::test]
async fn kubectl_get_fsale_shows_when_a_future_sale_changes_next() {
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "fsale-columns").await.unwrap();
    let mut sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    sf.spec.stopped = true;
    ns.api::<Storefront>()
        .create(&PostParams::default(), &sf)
        .await
        .unwrap();
    let sale: FlashSale = serde_json::from_value(json!({
        "apiVersion": "commerce.storefront.dev/v1alpha1",
        "kind": "FlashSale",
        "metadata": {"name": "black-friday", "namespace": ns.name},
        "spec": {
            "storefrontRef": "acme",
            "start": "2030-11-29T19:00:00Z",
            "end": "2030-11-29T22:00:00Z",
            "prewarm": "10m",
            "services": {"gateway": {"scale": {"minReplicas": 4, "maxReplicas": 8}}}
        }
    }))
    .unwrap();
    let sales = ns.api::<FlashSale>();
    sales.create(&PostParams::default(), &sale).await.unwrap();
    let scheduled = wait_for(
        "the sale to be Scheduled with its next transition",
        Duration::from_secs(30),
        || async {
            let s = sales.get("black-friday").await?;
            Ok(s.status
                .as_ref()
                .filter(|st| st.next_transition_time.is_some())
                .map(|_| ()))
        },
    )
    .await;
    if let Err(e) = scheduled {
        ns.dump();
        panic!("{e:#}");
    }

    let table = kubectl(&["get", "fsale", "-n", &ns.name]);
    println!("figure: kubectl get fsale:\n{table}");
    assert!(!table.contains("<invalid>"), "{table}");
    assert_eq!(
        cells(&table),
        [
            vec!["NAME", "STOREFRONT", "PHASE", "NEXT"],
            vec!["black-friday", "acme", "Scheduled", "2030-11-29T18:50:00Z"],
        ]
    );
    let wide = kubectl(&["get", "fsale", "-n", &ns.name, "-o", "wide"]);
    assert_eq!(
        cells(&wide),
        [
            vec!["NAME", "STOREFRONT", "PHASE", "NEXT", "START", "END"],
            vec![
                "black-friday",
                "acme",
                "Scheduled",
                "2030-11-29T18:50:00Z",
                "2030-11-29T19:00:00Z",
                "2030-11-29T22:00:00Z"
            ],
        ],
        "{wide}"
    );
}
