//! The builders' tests, by topic: the children a Storefront gets (`children.rs`), HPAs
//! (`hpa.rs`), what every pod gets (`pods.rs`), sharded services and rings (`shards.rs`), the
//! sales' per-customer caps in the route table (`order_limits.rs`). The helpers below are
//! shared.

use kube::ResourceExt;
use storefront_crds::{ServiceName, ShardedService};

use super::*;
use crate::testutil::{sale, sample_storefront, storefront, ts};

fn now() -> Timestamp {
    ts("2026-11-25T12:00:00Z")
}

fn names<K: Resource>(objs: &[K]) -> Vec<String> {
    objs.iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

fn deployment<'a>(d: &'a Desired, name: &str) -> &'a Deployment {
    d.deployments
        .iter()
        .find(|x| x.name_any() == name)
        .unwrap_or_else(|| panic!("no deployment {name}"))
}

fn pod_spec(dep: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// `(name, value or "secret:<name>/<key>")` of the first container's env.
fn env_of(dep: &Deployment) -> BTreeMap<String, String> {
    pod_spec(dep).containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(f)) => match &f.secret_key_ref {
                    Some(s) => format!("secret:{}/{}", s.name, s.key),
                    None => "field".to_string(),
                },
                _ => String::new(),
            };
            (e.name.clone(), v)
        })
        .collect()
}

/// Mount path → (volume name, ConfigMap or Secret it comes from).
fn mounts_of(dep: &Deployment) -> BTreeMap<String, String> {
    let spec = pod_spec(dep);
    let volumes = spec.volumes.as_ref().unwrap();
    spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name).unwrap();
            let source = match (&v.config_map, &v.secret, &v.projected) {
                (Some(c), _, _) => format!("configmap:{}", c.name),
                (_, Some(s), _) => format!("secret:{}", s.secret_name.clone().unwrap_or_default()),
                (_, _, Some(_)) => "projected".to_string(),
                _ => "emptyDir".to_string(),
            };
            (m.mount_path.clone(), source)
        })
        .collect()
}

/// The files of the projected volume mounted at `path`: file → `secret/key`.
fn projected_files(dep: &Deployment, path: &str) -> BTreeMap<String, String> {
    let spec = pod_spec(dep);
    let mount = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
        .unwrap();
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let mut files = BTreeMap::new();
    for source in volume.projected.as_ref().unwrap().sources.iter().flatten() {
        let secret = source.secret.as_ref().expect("secrets only");
        assert_eq!(secret.optional, Some(false), "{}", secret.name);
        for item in secret.items.iter().flatten() {
            let previous = files.insert(item.path.clone(), format!("{}/{}", secret.name, item.key));
            assert!(previous.is_none(), "{} projected twice", item.path);
        }
    }
    files
}

mod children;
mod hpa;
mod order_limits;
mod pods;
mod shards;
