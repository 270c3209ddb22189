//! What a Storefront names that must exist before its pods can start: the datastores'
//! Secrets (with the key that holds each URL) and a JWT keys Secret it names itself. Pure: the
//! controller fetches the Secrets and passes what it found; this module says which are
//! missing and what to do about it, in one message a person can act on.
//!
//! ```text
//!  spec ──► secret_refs() ──► controller: GET each Secret ──► check(found) ──► None: apply
//!                                                                        └──► Some(Unresolved):
//!                                                   Ready=False <reason>: <what is missing, what to do>
//! ```
//!
//! Without this, a shop whose Secrets are missing creates its pods anyway and reports a dozen
//! `CreateContainerConfigError` failure points, the cause only in the pods' Events.

use std::collections::{BTreeMap, BTreeSet};

use storefront_crds::{StorefrontSpec, storefront::SecretKeyRef};

use crate::labels;

/// Reason when a datastore's Secret (or its key) is missing.
pub const DATASTORE_SECRET_MISSING: &str = "DatastoreSecretMissing";
/// Reason when the JWT keys Secret named in `spec.security.jwtSecretName` (or a key of it) is
/// missing.
pub const JWT_SECRET_MISSING: &str = "JWTSecretMissing";

/// One Secret the spec names, and the keys it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The spec field that names it, e.g. `spec.datastores.postgres`.
    pub field: &'static str,
    pub secret: String,
    pub keys: Vec<String>,
    /// A datastore's connection Secret (else the JWT keys).
    pub datastore: bool,
}

/// Every Secret the spec names, in the order of the spec.
pub fn secret_refs(spec: &StorefrontSpec) -> Vec<SecretRef> {
    let mut refs = Vec::new();
    if let Some(ds) = &spec.datastores {
        let stores: [(&'static str, &Option<SecretKeyRef>); 4] = [
            ("spec.datastores.postgres", &ds.postgres),
            (
                "spec.datastores.postgresReadReplica",
                &ds.postgres_read_replica,
            ),
            ("spec.datastores.redis", &ds.redis),
            ("spec.datastores.broker", &ds.broker),
        ];
        for (field, r) in stores {
            if let Some(r) = r {
                refs.push(SecretRef {
                    field,
                    secret: r.secret_name.clone(),
                    keys: vec![r.key.clone()],
                    datastore: true,
                });
            }
        }
    }
    if let Some(name) = spec
        .security
        .as_ref()
        .and_then(|s| s.jwt_secret_name.as_ref())
    {
        refs.push(SecretRef {
            field: "spec.security.jwtSecretName",
            secret: name.clone(),
            keys: vec![
                labels::JWT_PRIVATE_KEY.to_string(),
                labels::JWT_PUBLIC_KEY.to_string(),
            ],
            datastore: false,
        });
    }
    refs
}

/// Names of the Secrets to fetch (each once).
pub fn secret_names(refs: &[SecretRef]) -> BTreeSet<&str> {
    refs.iter().map(|r| r.secret.as_str()).collect()
}

/// What the controller found of a Secret: `None` when it does not exist, else its keys.
pub type Found = BTreeMap<String, Option<BTreeSet<String>>>;

/// Why the Storefront waits, for its `Ready` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    /// Every problem and its remedy, one sentence each.
    pub message: String,
    /// `(Secret, what is wrong with it)`, for a failure point per Secret.
    pub secrets: Vec<(String, String)>,
}

/// `None` when every named Secret exists with its keys; else one message naming every
/// missing Secret and key, and what to do. A Secret absent from `found` counts as missing.
pub fn check(namespace: &str, refs: &[SecretRef], found: &Found) -> Option<Unresolved> {
    let mut problems = Vec::new();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut datastore = false;
    for r in refs {
        let keys = found.get(&r.secret).and_then(Option::as_ref);
        let problem = match keys {
            None => Some(format!(
                "Secret {} (key {}) not found in namespace {namespace}",
                r.secret,
                r.keys.join(", ")
            )),
            Some(have) => {
                let lacking: Vec<_> = r
                    .keys
                    .iter()
                    .filter(|k| !have.contains(*k))
                    .map(String::as_str)
                    .collect();
                (!lacking.is_empty()).then(|| {
                    let have: Vec<_> = have.iter().map(String::as_str).collect();
                    format!(
                        "Secret {} in namespace {namespace} has no key {} (it has: {})",
                        r.secret,
                        lacking.join(", "),
                        if have.is_empty() {
                            "none".to_string()
                        } else {
                            have.join(", ")
                        }
                    )
                })
            }
        };
        if let Some(p) = problem {
            datastore |= r.datastore;
            problems.push(format!("{p}; {}", remedy(r)));
            match secrets.iter_mut().find(|(n, _)| *n == r.secret) {
                Some((_, text)) => {
                    text.push_str("; ");
                    text.push_str(&p);
                }
                None => secrets.push((r.secret.clone(), p)),
            }
        }
    }
    if problems.is_empty() {
        return None;
    }
    Some(Unresolved {
        reason: if datastore {
            DATASTORE_SECRET_MISSING
        } else {
            JWT_SECRET_MISSING
        },
        message: problems.join(". "),
        secrets,
    })
}

/// What a person does about a missing Secret.
fn remedy(r: &SecretRef) -> String {
    if r.datastore {
        format!(
            "create it (see README \"Datastores\") or point {}.secretName (and .key) at yours",
            r.field
        )
    } else {
        format!(
            "create it with {} (PKCS#8 Ed25519 private key and its public key, PEM), or unset \
             {} and the operator generates one",
            r.keys.join(" and "),
            r.field
        )
    }
}

#[cfg(test)]
mod tests;
