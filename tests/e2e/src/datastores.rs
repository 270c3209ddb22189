//! The datastores' Secrets a Storefront names (`manifests/samples/storefront.yaml`):
//! `storefront-postgres`, `storefront-postgres-replica`, `storefront-redis`, `storefront-nats`,
//! each with the key `url`, written into every test namespace by `TestNamespace::new` (the crate root).
//!
//! Where the URLs come from, first match wins:
//! 1. `E2E_POSTGRES_URL`, `E2E_POSTGRES_REPLICA_URL`, `E2E_REDIS_URL`, `E2E_NATS_URL`
//!    (`tests/e2e/run` exports them: `eval "$(tests/e2e/cluster/datastores env)"`);
//! 2. the output of `tests/e2e/cluster/datastores env` (the local cluster's host datastores,
//!    reached by pods at the node address);
//! 3. otherwise placeholders under `.invalid` — enough for the stand-in workload image, which
//!    never connects; a test that runs the real shop calls [`DatastoreUrls::discover`] and fails
//!    with its error instead.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};

/// Field manager of the Secrets the suite writes.
const FIELD_MANAGER: &str = "storefront-e2e-datastores";

/// Connection URLs of the datastores, as pods reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatastoreUrls {
    pub postgres: String,
    pub postgres_replica: String,
    pub redis: String,
    pub nats: String,
}

/// Secret name, environment variable and URL of each datastore.
const SECRETS: [(&str, &str); 4] = [
    ("storefront-postgres", "E2E_POSTGRES_URL"),
    ("storefront-postgres-replica", "E2E_POSTGRES_REPLICA_URL"),
    ("storefront-redis", "E2E_REDIS_URL"),
    ("storefront-nats", "E2E_NATS_URL"),
];

impl DatastoreUrls {
    /// The URLs from the environment, else from `tests/e2e/cluster/datastores env`.
    pub fn discover() -> anyhow::Result<Self> {
        let from_env: BTreeMap<String, String> = SECRETS
            .iter()
            .filter_map(|(_, var)| Some((var.to_string(), std::env::var(var).ok()?)))
            .collect();
        if from_env.len() == SECRETS.len() {
            return Self::from_vars(&from_env);
        }
        let script = crate::paths::repo().join("tests/e2e/cluster/datastores");
        let out = std::process::Command::new(&script)
            .arg("env")
            .output()
            .with_context(|| format!("failed to run {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "no datastore URLs: set {} or start the local cluster's datastores ({} env: {})",
                SECRETS.map(|(_, v)| v).join(", "),
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Self::from_vars(&parse_env(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Placeholders for the stand-in image, which never connects.
    pub fn placeholders() -> Self {
        Self {
            postgres: "postgres://storefront@postgres.invalid:5432/storefront".into(),
            postgres_replica: "postgres://storefront@postgres-replica.invalid:5432/storefront"
                .into(),
            redis: "redis://redis.invalid:6379".into(),
            nats: "nats://nats.invalid:4222".into(),
        }
    }

    fn from_vars(vars: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |var: &str| {
            vars.get(var)
                .cloned()
                .with_context(|| format!("no {var} among the datastore URLs"))
        };
        Ok(Self {
            postgres: get("E2E_POSTGRES_URL")?,
            postgres_replica: get("E2E_POSTGRES_REPLICA_URL")?,
            redis: get("E2E_REDIS_URL")?,
            nats: get("E2E_NATS_URL")?,
        })
    }

    /// `(Secret name, URL)` of each datastore.
    pub fn secrets(&self) -> [(&'static str, &str); 4] {
        [
            (SECRETS[0].0, &self.postgres),
            (SECRETS[1].0, &self.postgres_replica),
            (SECRETS[2].0, &self.redis),
            (SECRETS[3].0, &self.nats),
        ]
    }
}

/// `export NAME=value` lines (the datastores script's `env`) as a map.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect()
}

/// Creates or updates the four Secrets (key `url`) in `namespace`.
pub async fn write_secrets(
    client: &Client,
    namespace: &str,
    urls: &DatastoreUrls,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, url) in urls.secrets() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (
                        "app.kubernetes.io/part-of".to_string(),
                        "storefront".to_string(),
                    ),
                    (
                        "app.kubernetes.io/component".to_string(),
                        "datastore".to_string(),
                    ),
                ])),
                ..ObjectMeta::default()
            },
            string_data: Some(BTreeMap::from([("url".to_string(), url.to_string())])),
            ..Secret::default()
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("failed to write Secret {name} in {namespace}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_env_output() {
        let vars = parse_env(
            "export E2E_POSTGRES_URL=postgres://u:p@10.250.0.1:45432/storefront\n\
             export E2E_POSTGRES_REPLICA_URL=postgres://u:p@10.250.0.1:45433/storefront\n\
             export E2E_REDIS_URL=redis://:p@10.250.0.1:46379\n\
             export E2E_NATS_URL=nats://10.250.0.1:44222\n",
        );
        let urls = DatastoreUrls::from_vars(&vars).unwrap();
        assert_eq!(urls.redis, "redis://:p@10.250.0.1:46379");
        assert_eq!(urls.secrets()[1].0, "storefront-postgres-replica");
        assert!(DatastoreUrls::from_vars(&BTreeMap::new()).is_err());
    }
}
