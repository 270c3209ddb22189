//! What a user types: `kubectl get|describe|delete|explain` with each kind's singular, plural
//! and short name must resolve to that kind alone, and the `commerce` category lists all three.
//! (A category spelled like a kind's name shadows it: `kubectl describe storefront acme` then
//! fails with "you must specify only one resource".)
//!
//! kubectl runs with a fresh discovery cache, as on a new machine; the CRDs are installed
//! without the operator (name resolution does not need it).

// Tests may unwrap: a failure is a panic with the dump of what the test touched.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use storefront_e2e::{TestNamespace, client, install_crds};

struct Kind {
    kind: &'static str,
    names: [&'static str; 3],
    object: &'static str,
}

const KINDS: [Kind; 3] = [
    Kind {
        kind: "Storefront",
        names: ["storefront", "storefronts", "sf"],
        object: "apiVersion: commerce.storefront.dev/v1alpha1\nkind: Storefront\nmetadata: {name: acme}\nspec:\n  image: storefront/workload:dev\n  stopped: true\n  services:\n    gateway: {}\n",
    },
    Kind {
        kind: "ServiceShard",
        names: ["serviceshard", "serviceshards", "ssh"],
        object: "apiVersion: commerce.storefront.dev/v1alpha1\nkind: ServiceShard\nmetadata: {name: acme-inventory-0}\nspec: {storefront: acme, service: inventory, index: 0, shardCount: 1, replicas: 0, ringEpoch: 1}\n",
    },
    Kind {
        kind: "FlashSale",
        names: ["flashsale", "flashsales", "fsale"],
        object: "apiVersion: commerce.storefront.dev/v1alpha1\nkind: FlashSale\nmetadata: {name: black-friday}\nspec:\n  storefrontRef: acme\n  start: \"2030-11-29T19:00:00Z\"\n  end: \"2030-11-29T22:00:00Z\"\n",
    },
];

/// Runs kubectl with its own discovery cache; returns stdout, or panics with what it printed.
fn kubectl(cache: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`kubectl {}` failed: {}{}",
        args.join(" "),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The values of unindented `Field:   value` lines (kubectl's describe and explain layout).
fn field_values<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(field))
        .map(str::trim)
        .collect()
}

#[tokio::test]
async fn every_name_of_every_kind_resolves_to_that_kind_alone() {
    let client = client().await.unwrap();
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "names").await.unwrap();
    let cache = std::env::temp_dir().join(format!("kubectl-cache-{}", ns.name));
    let n = ns.name.as_str();
    for k in &KINDS {
        kubectl(&cache, &["apply", "-n", n, "-f", "-"], Some(k.object));
    }

    for k in &KINDS {
        let obj_name = k
            .object
            .split("name: ")
            .nth(1)
            .and_then(|s| s.split('}').next())
            .unwrap();
        // kubectl names objects `<kind>.<group>/<name>`, the kind in lower case.
        let qualified = format!(
            "{}.commerce.storefront.dev/{obj_name}",
            k.kind.to_lowercase()
        );
        for name in k.names {
            // `get NAME-OF-KIND` lists only objects of that kind.
            let list = kubectl(&cache, &["get", name, "-n", n, "-o", "name"], None);
            assert_eq!(
                list.trim(),
                qualified,
                "`kubectl get {name}` listed something else"
            );
            // The table form works too (printer columns).
            let table = kubectl(&cache, &["get", name, "-n", n], None);
            assert!(table.contains(obj_name), "`kubectl get {name}`: {table}");

            let one = kubectl(
                &cache,
                &["get", name, obj_name, "-n", n, "-o", "name"],
                None,
            );
            assert_eq!(one.trim(), qualified, "`kubectl get {name} {obj_name}`");

            let described = kubectl(&cache, &["describe", name, obj_name, "-n", n], None);
            assert_eq!(
                field_values(&described, "Kind:"),
                [k.kind],
                "`kubectl describe {name} {obj_name}` did not describe one {}: {described}",
                k.kind
            );
            assert_eq!(
                field_values(&described, "Name:"),
                [obj_name],
                "`kubectl describe {name} {obj_name}`: {described}"
            );

            let yaml = kubectl(
                &cache,
                &["get", name, obj_name, "-n", n, "-o", "yaml"],
                None,
            );
            assert!(
                yaml.contains(&format!("kind: {}\n", k.kind)),
                "`kubectl get {name} {obj_name} -o yaml`: {yaml}"
            );

            let deleted = kubectl(
                &cache,
                &["delete", name, obj_name, "-n", n, "--dry-run=server"],
                None,
            );
            // kubectl words it `<kind>.<group> "<name>" deleted (server dry run)`.
            assert!(
                deleted.lines().count() == 1
                    && deleted.starts_with(&format!(
                        "{}.commerce.storefront.dev \"{obj_name}\" deleted",
                        k.kind.to_lowercase()
                    ))
                    && deleted.contains("dry run"),
                "`kubectl delete {name} {obj_name} --dry-run=server`: {deleted}"
            );

            let explained = kubectl(&cache, &["explain", name], None);
            assert_eq!(
                field_values(&explained, "KIND:"),
                [k.kind],
                "`kubectl explain {name}`: {explained}"
            );
        }
    }

    // The category lists all three kinds, and only ours.
    let all = kubectl(&cache, &["get", "commerce", "-n", n, "-o", "name"], None);
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "flashsale.commerce.storefront.dev/black-friday",
            "serviceshard.commerce.storefront.dev/acme-inventory-0",
            "storefront.commerce.storefront.dev/acme",
        ],
        "`kubectl get commerce`"
    );
    // The objects were not deleted by the dry runs.
    assert_eq!(
        kubectl(&cache, &["get", "sf", "acme", "-n", n, "-o", "name"], None).trim(),
        "storefront.commerce.storefront.dev/acme"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
