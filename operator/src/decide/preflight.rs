//! Preflight of a FlashSale, pure: the extra pods (and the CPU and memory they request) that
//! the sale's raised floors need, against what the cluster's schedulable nodes have left
//! (allocatable minus what running pods request) and the namespace's ResourceQuotas.
//!
//! Computed when a sale is created or edited and again when it starts pre-warming; a sale that
//! does not fit gets `CapacityAtRisk` and a Warning Event before its doors open. Only the floor
//! is required to fit; the autoscalers' raised ceilings are reported as the peak.

use jiff::Timestamp;
use k8s_openapi::{
    api::core::v1::{Node, Pod, ResourceQuota, ResourceRequirements},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
};
use storefront_crds::{FlashSale, Storefront, flashsale::SalePlan};

use super::plan;

/// CPU (millicores), memory (MiB) and pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub cpu_millis: i64,
    pub memory_mib: i64,
    pub pods: i64,
}

/// Parses a CPU quantity (`250m`, `2`, `1.5`) into millicores; `None` if unreadable.
pub fn cpu_millis(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| v.ceil() as i64);
    }
    s.parse::<f64>().ok().map(|v| (v * 1000.0).ceil() as i64)
}

/// Parses a memory quantity (`512Mi`, `1Gi`, `1G`, `1048576`) into MiB (rounded up).
pub fn memory_mib(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    const UNITS: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    let (num, mult) = UNITS
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
    num.parse::<f64>()
        .ok()
        .map(|v| (v * mult / 1048576.0).ceil() as i64)
}

fn requests(r: Option<&ResourceRequirements>) -> Amount {
    let req = r.and_then(|r| r.requests.as_ref());
    Amount {
        cpu_millis: req
            .and_then(|m| m.get("cpu"))
            .and_then(cpu_millis)
            .unwrap_or(0),
        memory_mib: req
            .and_then(|m| m.get("memory"))
            .and_then(memory_mib)
            .unwrap_or(0),
        pods: 1,
    }
}

/// What the sale adds at its floor and at its peak (pods beyond the spec's).
pub fn need(sale: &FlashSale, sf: &Storefront) -> (Amount, i64) {
    let mut floor = Amount::default();
    let mut peak = 0i64;
    for (name, svc) in sf.spec.enabled_services() {
        let Some(change) = sale.spec.services.get(name.as_str()) else {
            continue;
        };
        let base = plan::base_sizing(svc);
        let raised = plan::raise(base, change);
        let extra = i64::from((raised.floor_pods() - base.floor_pods()).max(0));
        let per_pod = requests(svc.resources.as_ref());
        floor.pods += extra;
        floor.cpu_millis += extra * per_pod.cpu_millis;
        floor.memory_mib += extra * per_pod.memory_mib;
        peak += i64::from((raised.ceiling_pods() - base.ceiling_pods()).max(0));
    }
    (floor, peak)
}

/// Allocatable minus requested on nodes that take new pods (Ready, not cordoned).
pub fn free_on_nodes(nodes: &[Node], pods: &[Pod]) -> Amount {
    let mut free = Amount::default();
    for n in nodes {
        let schedulable = !n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let status = n.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !schedulable || !ready {
            continue;
        }
        let alloc = status.allocatable.unwrap_or_default();
        free.cpu_millis += alloc.get("cpu").and_then(cpu_millis).unwrap_or(0);
        free.memory_mib += alloc.get("memory").and_then(memory_mib).unwrap_or(0);
        free.pods += alloc
            .get("pods")
            .and_then(|q| q.0.parse::<i64>().ok())
            .unwrap_or(0);
        let name = n.metadata.name.as_deref();
        for p in pods {
            let spec = p.spec.as_ref();
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if spec.and_then(|s| s.node_name.as_deref()) != name
                || matches!(phase, Some("Succeeded" | "Failed"))
            {
                continue;
            }
            free.pods -= 1;
            for c in spec.map(|s| &s.containers[..]).unwrap_or_default() {
                let r = requests(c.resources.as_ref());
                free.cpu_millis -= r.cpu_millis;
                free.memory_mib -= r.memory_mib;
            }
        }
    }
    free
}

/// Room left under the namespace's quotas (the tightest of each), where a quota sets a limit.
pub fn quota_room(quotas: &[ResourceQuota]) -> (Option<i64>, Option<i64>, Option<i64>) {
    let mut room = (None, None, None);
    let tighter = |cur: Option<i64>, v: i64| Some(cur.map_or(v, |c: i64| c.min(v)));
    for q in quotas {
        let st = q.status.clone().unwrap_or_default();
        let (hard, used) = (st.hard.unwrap_or_default(), st.used.unwrap_or_default());
        for (key, slot) in [
            ("requests.cpu", 0),
            ("cpu", 0),
            ("requests.memory", 1),
            ("memory", 1),
            ("pods", 2),
        ] {
            let Some(h) = hard.get(key) else { continue };
            let u = used.get(key);
            let left = match slot {
                0 => cpu_millis(h).unwrap_or(0) - u.and_then(cpu_millis).unwrap_or(0),
                1 => memory_mib(h).unwrap_or(0) - u.and_then(memory_mib).unwrap_or(0),
                _ => {
                    h.0.parse::<i64>().unwrap_or(0)
                        - u.and_then(|q| q.0.parse::<i64>().ok()).unwrap_or(0)
                }
            };
            match slot {
                0 => room.0 = tighter(room.0, left),
                1 => room.1 = tighter(room.1, left),
                _ => room.2 = tighter(room.2, left),
            }
        }
    }
    room
}

/// The preflight verdict.
pub fn check(
    need: Amount,
    peak_pods: i64,
    free: Amount,
    quota: (Option<i64>, Option<i64>, Option<i64>),
    now: Timestamp,
) -> SalePlan {
    let mut short = Vec::new();
    if need.pods > free.pods {
        short.push(format!(
            "{} pods but the nodes take {} more",
            need.pods,
            free.pods.max(0)
        ));
    }
    if need.cpu_millis > free.cpu_millis {
        short.push(format!(
            "{}m CPU but {}m is free on the nodes",
            need.cpu_millis,
            free.cpu_millis.max(0)
        ));
    }
    if need.memory_mib > free.memory_mib {
        short.push(format!(
            "{} MiB memory but {} MiB is free on the nodes",
            need.memory_mib,
            free.memory_mib.max(0)
        ));
    }
    for (what, needed, room) in [
        ("CPU (m)", need.cpu_millis, quota.0),
        ("memory (MiB)", need.memory_mib, quota.1),
        ("pods", need.pods, quota.2),
    ] {
        if let Some(r) = room.filter(|r| needed > *r) {
            short.push(format!(
                "{needed} {what} but the namespace quota leaves {}",
                r.max(0)
            ));
        }
    }
    let fits = short.is_empty();
    let message = if fits {
        format!(
            "{} extra pods ({}m CPU, {} MiB) fit: {} pods, {}m CPU, {} MiB free; up to {} extra pods at the peak",
            need.pods,
            need.cpu_millis,
            need.memory_mib,
            free.pods.max(0),
            free.cpu_millis.max(0),
            free.memory_mib.max(0),
            peak_pods
        )
    } else {
        format!("the sale needs {}", short.join("; "))
    };
    SalePlan {
        additional_pods: i32::try_from(need.pods).unwrap_or(i32::MAX),
        peak_additional_pods: i32::try_from(peak_pods).unwrap_or(i32::MAX),
        additional_cpu_millis: need.cpu_millis,
        additional_memory_mib: need.memory_mib,
        free_cpu_millis: free.cpu_millis.max(0),
        free_memory_mib: free.memory_mib.max(0),
        fits,
        message,
        checked_at: Some(Time(now)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testutil::{sale, sample_storefront, ts};

    fn node(cpu: &str, mem: &str, pods: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap()
    }

    fn pod(cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis(&Quantity("250m".into())), Some(250));
        assert_eq!(cpu_millis(&Quantity("1.5".into())), Some(1500));
        assert_eq!(memory_mib(&Quantity("1Gi".into())), Some(1024));
        assert_eq!(memory_mib(&Quantity("128974848".into())), Some(123));
        assert_eq!(memory_mib(&Quantity("1G".into())), Some(954));
        assert_eq!(cpu_millis(&Quantity("lots".into())), None);
    }

    #[test]
    fn free_capacity_subtracts_running_pods_and_skips_cordoned_nodes() {
        let pods = [pod("500m", "256Mi"), pod("250m", "256Mi")];
        let free = free_on_nodes(&[node("2", "4Gi", "110")], &pods);
        assert_eq!(
            free,
            Amount {
                cpu_millis: 1250,
                memory_mib: 3584,
                pods: 108
            }
        );
        let mut cordoned = node("2", "4Gi", "110");
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        assert_eq!(free_on_nodes(&[cordoned], &pods), Amount::default());
    }

    #[test]
    fn the_sample_sale_needs_its_extra_floor_pods() {
        let sf = sample_storefront();
        let bf = sale(
            "bf",
            "acme",
            "2026-11-27T08:00:00Z",
            "2026-11-27T20:00:00Z",
            "10m",
        );
        let (floor, peak) = need(&bf, &sf);
        // gateway min 2→6, orders 2→6 (factor 3), payments 2→4 (factor 2), catalog min 2→3.
        assert!(floor.pods > 0, "{floor:?}");
        assert!(peak >= floor.pods);
        let fits = check(
            floor,
            peak,
            Amount {
                cpu_millis: 100_000,
                memory_mib: 100_000,
                pods: 100,
            },
            (None, None, None),
            ts("2026-11-27T07:00:00Z"),
        );
        assert!(fits.fits, "{}", fits.message);
        let short = check(
            floor,
            peak,
            Amount {
                cpu_millis: 100_000,
                memory_mib: 100_000,
                pods: 2,
            },
            (None, None, None),
            ts("2026-11-27T07:00:00Z"),
        );
        assert!(!short.fits);
        assert!(
            short.message.contains("but the nodes take 2 more"),
            "{}",
            short.message
        );
        let quota = check(
            floor,
            peak,
            Amount {
                cpu_millis: 100_000,
                memory_mib: 100_000,
                pods: 100,
            },
            (None, None, Some(1)),
            ts("2026-11-27T07:00:00Z"),
        );
        assert!(!quota.fits);
        assert!(
            quota.message.contains("namespace quota leaves 1"),
            "{}",
            quota.message
        );
    }
}
