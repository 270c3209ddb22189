use std::collections::BTreeSet;

use super::*;
use crate::testutil::sample_storefront;

fn keys(ks: &[&str]) -> Option<BTreeSet<String>> {
    Some(ks.iter().map(|k| (*k).to_string()).collect())
}

fn all_present() -> Found {
    [
        ("storefront-postgres", keys(&["url"])),
        ("storefront-postgres-replica", keys(&["url"])),
        ("storefront-redis", keys(&["url"])),
        ("storefront-nats", keys(&["url", "extra"])),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect()
}

#[test]
fn the_sample_names_its_four_datastore_secrets_and_no_jwt_secret() {
    let refs = secret_refs(&sample_storefront().spec);
    let names: Vec<_> = refs
        .iter()
        .map(|r| (r.field, r.secret.as_str(), r.keys.join(",")))
        .collect();
    assert_eq!(
        names,
        [
            (
                "spec.datastores.postgres",
                "storefront-postgres",
                "url".into()
            ),
            (
                "spec.datastores.postgresReadReplica",
                "storefront-postgres-replica",
                "url".into()
            ),
            ("spec.datastores.redis", "storefront-redis", "url".into()),
            ("spec.datastores.broker", "storefront-nats", "url".into()),
        ]
    );
    assert_eq!(secret_names(&refs).len(), 4);
}

#[test]
fn every_secret_present_with_its_key_resolves() {
    let refs = secret_refs(&sample_storefront().spec);
    assert_eq!(check("probe-x", &refs, &all_present()), None);
}

#[test]
fn a_missing_secret_is_named_with_its_key_namespace_and_remedy() {
    let refs = secret_refs(&sample_storefront().spec);
    let mut found = all_present();
    found.insert("storefront-postgres".into(), None);
    let u = check("probe-x", &refs, &found).expect("missing");
    assert_eq!(u.reason, DATASTORE_SECRET_MISSING);
    assert_eq!(
        u.message,
        "Secret storefront-postgres (key url) not found in namespace probe-x; create it (see \
         README \"Datastores\") or point spec.datastores.postgres.secretName (and .key) at yours"
    );
}

#[test]
fn nothing_fetched_names_every_secret() {
    let refs = secret_refs(&sample_storefront().spec);
    let u = check("probe-x", &refs, &Found::new()).expect("missing");
    for name in [
        "storefront-postgres ",
        "storefront-postgres-replica",
        "storefront-redis",
        "storefront-nats",
    ] {
        assert!(u.message.contains(name), "{name} in {}", u.message);
    }
    assert_eq!(
        u.message.matches("not found in namespace probe-x").count(),
        4
    );
}

#[test]
fn a_secret_without_the_named_key_says_which_keys_it_has() {
    let mut sf = sample_storefront();
    let ds = sf.spec.datastores.as_mut().expect("datastores");
    ds.redis.as_mut().expect("redis").key = "REDIS_URL".into();
    let refs = secret_refs(&sf.spec);
    let u = check("shop", &refs, &all_present()).expect("missing key");
    assert_eq!(u.reason, DATASTORE_SECRET_MISSING);
    assert!(
        u.message.starts_with(
            "Secret storefront-redis in namespace shop has no key REDIS_URL (it has: url); "
        ),
        "{}",
        u.message
    );
}

#[test]
fn a_named_jwt_secret_needs_both_keys() {
    let mut sf = sample_storefront();
    sf.spec.security.get_or_insert_default().jwt_secret_name = Some("platform-jwt".into());
    let refs = secret_refs(&sf.spec);
    assert_eq!(
        refs.last().map(|r| r.field),
        Some("spec.security.jwtSecretName")
    );
    let mut found = all_present();
    found.insert("platform-jwt".into(), keys(&["private.pem"]));
    let u = check("shop", &refs, &found).expect("missing key");
    assert_eq!(u.reason, JWT_SECRET_MISSING);
    assert!(
        u.message
            .contains("has no key public.pem (it has: private.pem)"),
        "{}",
        u.message
    );
    found.insert("platform-jwt".into(), keys(&["private.pem", "public.pem"]));
    assert_eq!(check("shop", &refs, &found), None);
}

#[test]
fn datastores_outrank_the_jwt_secret_in_the_reason() {
    let mut sf = sample_storefront();
    sf.spec.security.get_or_insert_default().jwt_secret_name = Some("platform-jwt".into());
    let refs = secret_refs(&sf.spec);
    let mut found = all_present();
    found.insert("storefront-nats".into(), None);
    let u = check("shop", &refs, &found).expect("missing");
    assert_eq!(u.reason, DATASTORE_SECRET_MISSING);
    assert!(u.message.contains("storefront-nats"));
    assert!(u.message.contains("platform-jwt"));
}

#[test]
fn a_shop_without_datastores_names_nothing() {
    let mut sf = sample_storefront();
    sf.spec.datastores = None;
    assert!(secret_refs(&sf.spec).is_empty());
    assert_eq!(check("shop", &[], &Found::new()), None);
}
