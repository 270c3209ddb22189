//! The no-op reconcile (no writes when nothing changed) and pruning, decided without a client.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde_json::json;

use super::*;
use crate::{build::desired, testutil::sample_storefront};

/// What the API server returns for an applied object: ours plus uid, defaults and status.
fn as_live(d: &Deployment) -> Arc<Deployment> {
    let mut v = serde_json::to_value(d).unwrap();
    v["metadata"]["uid"] = json!("uid-child");
    v["metadata"]["resourceVersion"] = json!("42");
    v["metadata"]["labels"]["extra"] = json!("someone-else");
    let spec = v["spec"].as_object_mut().unwrap();
    spec.insert("revisionHistoryLimit".into(), json!(10));
    spec.insert("progressDeadlineSeconds".into(), json!(600));
    if !spec.contains_key("replicas") {
        spec.insert("replicas".into(), json!(4)); // set by the HPA
    }
    let c = &mut v["spec"]["template"]["spec"]["containers"][0];
    c["terminationMessagePath"] = json!("/dev/termination-log");
    c["readinessProbe"]["successThreshold"] = json!(1);
    v["status"] = json!({"readyReplicas": 2, "replicas": 2});
    Arc::new(serde_json::from_value(v).unwrap())
}

fn sample() -> Vec<Deployment> {
    desired(
        &sample_storefront(),
        &[],
        "2026-11-25T12:00:00Z".parse::<Timestamp>().unwrap(),
        &Default::default(),
    )
    .unwrap()
    .deployments
}

#[test]
fn nothing_changed_means_no_writes() {
    let want = sample();
    let live: Vec<_> = want.iter().map(as_live).collect();
    let plan = plan_sync(&live, "shop", "acme", "uid-acme", &want).unwrap();
    assert!(
        plan.apply.is_empty(),
        "would write {:?}",
        plan.apply.iter().map(|d| d.name_any()).collect::<Vec<_>>()
    );
    assert!(plan.prune.is_empty());
}

#[test]
fn a_hand_edited_or_deleted_child_is_applied_again() {
    let want = sample();
    let mut live: Vec<_> = want.iter().map(as_live).collect();
    let mut edited = (*live[1]).clone();
    edited.spec.as_mut().unwrap().replicas = Some(7);
    live[1] = Arc::new(edited);
    live.remove(2);
    let plan = plan_sync(&live, "shop", "acme", "uid-acme", &want).unwrap();
    assert_eq!(
        plan.apply.iter().map(|d| d.name_any()).collect::<Vec<_>>(),
        ["acme-auth", "acme-catalog"]
    );
}

#[test]
fn children_no_longer_desired_are_pruned_and_only_ours() {
    let all = sample();
    let live: Vec<_> = all.iter().map(as_live).collect();
    let want: Vec<_> = all
        .iter()
        .filter(|d| d.name_any() != "acme-recommendations")
        .cloned()
        .collect();
    let plan = plan_sync(&live, "shop", "acme", "uid-acme", &want).unwrap();
    assert_eq!(plan.prune, ["acme-recommendations"]);
    // Another owner, another namespace, or being deleted already: left alone.
    assert!(
        plan_sync(&live, "shop", "acme", "uid-other", &want)
            .unwrap()
            .prune
            .is_empty()
    );
    assert!(
        plan_sync(&live, "elsewhere", "acme", "uid-acme", &want)
            .unwrap()
            .prune
            .is_empty()
    );
    let mut deleting = (*live[5]).clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
    );
    let mut live2 = live.clone();
    live2[5] = Arc::new(deleting);
    assert!(
        plan_sync(&live2, "shop", "acme", "uid-acme", &want)
            .unwrap()
            .prune
            .is_empty()
    );
}
