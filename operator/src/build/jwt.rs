//! The token keys: the user key (auth signs user tokens with it) and one key per service (it
//! signs the service tokens that service calls others with), and what each pod mounts of them
//! at `/etc/storefront/jwt` (`JWT_KEYS_DIR`, [`keys_volume`]).
//!
//! ```text
//!  user key     security.jwtSecretName set ──▶ that Secret (the platform team's; never touched)
//!               not set ──▶ Secret <storefront>-jwt, generated once
//!  service key  Secret <storefront>-<service>-token-key, generated once per service
//!  each holds   private.pem  PKCS#8 Ed25519 private key (PEM)
//!               public.pem   SPKI public key (PEM)
//!
//!  a pod's /etc/storefront/jwt (one projected volume)
//!    public.pem               ◀── user key public.pem            every service
//!    private.pem              ◀── user key private.pem           auth only
//!    service.pem              ◀── own service key private.pem    each its own
//!    services/<service>.pem   ◀── every service key's public.pem every service
//! ```
//!
//! So the internet-facing gateway (or any pod but auth) that is made to read a file or run
//! code can mint no user token, and service tokens only in its own name (verifiers check the
//! signer against the caller, `workloads/platform/src/token.rs`). The kubelet projects only
//! the listed keys of each Secret, and the workload pods have no API access to Secrets.
//!
//! Generated Secrets are created, never applied or updated: keys are stable across
//! reconciles and operator restarts (a new user key would invalidate every session). They are
//! owned by the Storefront, so they go when the shop goes. Building their content is pure,
//! from a 32-byte seed the controller draws from the OS-seeded CSPRNG; the controller only
//! checks whether each Secret exists and creates it when it does not.

use std::collections::BTreeMap;

use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use k8s_openapi::{
    ByteString,
    api::core::v1::{
        KeyToPath, ProjectedVolumeSource, Secret, SecretProjection, Volume, VolumeProjection,
    },
};
use storefront_crds::{ServiceName, StorefrontSpec};

use super::Owner;
use crate::labels;

/// Key of the PKCS#8 PEM private key in the Secret.
pub const PRIVATE_KEY: &str = labels::JWT_PRIVATE_KEY;
/// Key of the SPKI PEM public key in the Secret.
pub const PUBLIC_KEY: &str = labels::JWT_PUBLIC_KEY;
/// Component label of the generated Secret.
pub const COMPONENT: &str = "jwt";
/// Component label of a generated service key Secret.
pub const SERVICE_KEY_COMPONENT: &str = "service-key";
/// Files in a pod's key directory (the workloads' `token` module reads these names).
pub const POD_USER_PUBLIC: &str = "public.pem";
pub const POD_USER_PRIVATE: &str = "private.pem";
pub const POD_SERVICE_PRIVATE: &str = "service.pem";
pub const POD_SERVICES_DIR: &str = "services";

/// Why the keys could not be encoded (does not happen for valid Ed25519 keys).
#[derive(Debug, thiserror::Error)]
#[error("failed to encode the JWT keys: {0}")]
pub struct KeyEncodeError(String);

/// The Secret every service mounts: the one the spec names, or the generated one.
pub fn secret_name(storefront: &str, spec: &StorefrontSpec) -> String {
    spec.security
        .as_ref()
        .and_then(|s| s.jwt_secret_name.clone())
        .unwrap_or_else(|| labels::jwt_secret_name(storefront))
}

/// The name of the Secret the operator must generate, `None` when the spec names its own.
pub fn generated_name(storefront: &str, spec: &StorefrontSpec) -> Option<String> {
    let named = spec
        .security
        .as_ref()
        .is_some_and(|s| s.jwt_secret_name.is_some());
    (!named).then(|| labels::jwt_secret_name(storefront))
}

/// The service key Secrets the operator generates: one per service of the architecture.
pub fn service_key_secret_names(storefront: &str) -> Vec<String> {
    ServiceName::ALL
        .iter()
        .map(|s| labels::service_key_secret_name(storefront, s.as_str()))
        .collect()
}

/// The key directory of `service`'s pods, as one projected volume named `volume` (the
/// table in the module doc): only auth gets the user key's private half.
pub fn keys_volume(volume: &str, storefront: &str, spec: &StorefrontSpec, service: &str) -> Volume {
    let item = |key: &str, path: String| KeyToPath {
        key: key.to_string(),
        path,
        mode: None,
    };
    let project = |name: String, items: Vec<KeyToPath>| VolumeProjection {
        secret: Some(SecretProjection {
            name,
            items: Some(items),
            optional: Some(false),
        }),
        ..VolumeProjection::default()
    };
    let mut user = vec![item(PUBLIC_KEY, POD_USER_PUBLIC.to_string())];
    if service == ServiceName::Auth.as_str() {
        user.push(item(PRIVATE_KEY, POD_USER_PRIVATE.to_string()));
    }
    let mut sources = vec![
        project(secret_name(storefront, spec), user),
        project(
            labels::service_key_secret_name(storefront, service),
            vec![item(PRIVATE_KEY, POD_SERVICE_PRIVATE.to_string())],
        ),
    ];
    for other in ServiceName::ALL {
        sources.push(project(
            labels::service_key_secret_name(storefront, other.as_str()),
            vec![item(PUBLIC_KEY, format!("{POD_SERVICES_DIR}/{other}.pem"))],
        ));
    }
    Volume {
        name: volume.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    }
}

/// The generated Secret for `owner`, holding the Ed25519 key pair derived from `seed`.
pub fn generated_secret(owner: &Owner<'_>, seed: [u8; 32]) -> Result<Secret, KeyEncodeError> {
    key_pair_secret(
        owner,
        labels::jwt_secret_name(owner.name),
        COMPONENT,
        &BTreeMap::new(),
        seed,
    )
}

/// The generated Secret with `service`'s own token key, derived from `seed`.
pub fn generated_service_secret(
    owner: &Owner<'_>,
    service: &str,
    seed: [u8; 32],
) -> Result<Secret, KeyEncodeError> {
    key_pair_secret(
        owner,
        labels::service_key_secret_name(owner.name, service),
        SERVICE_KEY_COMPONENT,
        &BTreeMap::from([(labels::SERVICE_LABEL.to_string(), service.to_string())]),
        seed,
    )
}

fn key_pair_secret(
    owner: &Owner<'_>,
    name: String,
    component: &str,
    extra_labels: &BTreeMap<String, String>,
    seed: [u8; 32],
) -> Result<Secret, KeyEncodeError> {
    let signing = SigningKey::from_bytes(&seed);
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyEncodeError(e.to_string()))?;
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyEncodeError(e.to_string()))?;
    Ok(Secret {
        metadata: owner.meta(name, component, extra_labels),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([
            (
                PRIVATE_KEY.to_string(),
                ByteString(private.as_bytes().to_vec()),
            ),
            (PUBLIC_KEY.to_string(), ByteString(public.into_bytes())),
        ])),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{
        VerifyingKey,
        pkcs8::{DecodePrivateKey, DecodePublicKey},
    };

    use super::*;
    use crate::testutil::sample_storefront;

    fn text(s: &Secret, key: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn generated_keys_are_a_matching_pkcs8_ed25519_pair() {
        let sf = sample_storefront();
        let owner = Owner::of(&sf).unwrap();
        let s = generated_secret(&owner, [7; 32]).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("acme-jwt"));
        let private = text(&s, PRIVATE_KEY);
        let public = text(&s, PUBLIC_KEY);
        assert!(
            private.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{private}"
        );
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        let signing = SigningKey::from_pkcs8_pem(&private).unwrap();
        let verifying = VerifyingKey::from_public_key_pem(&public).unwrap();
        assert_eq!(signing.verifying_key(), verifying);
        assert_eq!(signing.to_bytes(), [7; 32]);
        // Owned by the Storefront and labelled like every child.
        let owners = s.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners[0].uid, "uid-acme");
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[labels::COMPONENT],
            COMPONENT
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_secret_and_another_seed_another_key() {
        let sf = sample_storefront();
        let owner = Owner::of(&sf).unwrap();
        let a = generated_secret(&owner, [1; 32]).unwrap();
        assert_eq!(a, generated_secret(&owner, [1; 32]).unwrap());
        let b = generated_secret(&owner, [2; 32]).unwrap();
        assert_ne!(text(&a, PRIVATE_KEY), text(&b, PRIVATE_KEY));
    }

    #[test]
    fn a_named_secret_is_used_and_nothing_is_generated() {
        let mut sf = sample_storefront();
        assert_eq!(secret_name("acme", &sf.spec), "acme-jwt");
        assert_eq!(
            generated_name("acme", &sf.spec).as_deref(),
            Some("acme-jwt")
        );
        sf.spec.security = Some(storefront_crds::storefront::Security {
            jwt_secret_name: Some("platform-jwt".into()),
            ..Default::default()
        });
        assert_eq!(secret_name("acme", &sf.spec), "platform-jwt");
        assert_eq!(generated_name("acme", &sf.spec), None);
    }
}
