//! Tokens: Ed25519 key material, and issuing and verifying user and service JWTs.
//!
//! Who holds which key (the operator's layout of `JWT_KEYS_DIR`, see [`KeySet::load_dir`]):
//!
//! ```text
//!  user key     private.pem  auth only: signs user tokens
//!               public.pem   everyone: verifies them
//!  service key  service.pem  each service its own: signs the tokens it calls others with
//!               services/<service>.pem  everyone: every service's public key
//! ```
//!
//! A verifier picks the key by the token's `kid` from the set that matches the token it
//! expects (a user token is checked against user keys only) and refuses a service token whose
//! caller (`sub`) is not the owner of the key that signed it: the gateway's key signs tokens
//! from `gateway` and nothing else, and no service but auth can mint a user token. A `kid` it
//! does not know makes it read the directory again (at most every [`RELOAD_EVERY`]), so a key
//! added to the Secrets is trusted without a restart, and a removed one stops being trusted.
//! A directory with only `private.pem` (a binary run by hand, the tests) is one key for
//! everything ([`KeySet::single`]).

use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
        spki::der::pem::LineEnding,
    },
};
use jsonwebtoken::{
    DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind as JwtErrorKind,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The audience of user tokens: the public API.
pub const USER_AUDIENCE: &str = "storefront";
/// Clock skew tolerated when checking expiry, in seconds.
pub const LEEWAY_SECS: i64 = 5;
/// How often at most a verifier reads its key directory again for a `kid` it does not know
/// (a flood of made-up kids costs one directory read per period, not one per token).
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Files of the operator's key layout in `JWT_KEYS_DIR`.
pub const USER_PRIVATE_FILE: &str = "private.pem";
pub const USER_PUBLIC_FILE: &str = "public.pem";
pub const SERVICE_PRIVATE_FILE: &str = "service.pem";
pub const SERVICE_PUBLIC_DIR: &str = "services";

/// Which kind of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    User,
    Service,
}

/// The claims of every Storefront token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub kind: TokenKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A signed token and when it expires (unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// Why a key could not be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("failed to read the Ed25519 private key (PKCS#8 PEM expected): {0}")]
    Private(String),
    #[error("failed to read the Ed25519 public key (SPKI PEM expected): {0}")]
    Public(String),
    #[error("failed to encode the key: {0}")]
    Encode(String),
    #[error("failed to read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// Why a token was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token is signed with an unexpected algorithm")]
    BadAlgorithm,
    #[error("the token expired at {expired_at} (now {now})")]
    Expired { expired_at: i64, now: i64 },
    #[error("the token was issued by {0:?}, not this Storefront")]
    WrongIssuer(String),
    #[error("the token is for {got:?}, not {expected:?}")]
    WrongAudience { expected: String, got: String },
    #[error("a {got:?} token where a {expected:?} token is needed")]
    WrongKind { expected: TokenKind, got: TokenKind },
    #[error("failed to sign the token: {0}")]
    Sign(String),
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("no trusted {kind:?} key has id {kid:?}")]
    UnknownKey { kind: TokenKind, kid: String },
    #[error("a token from {sub:?} signed with the key of {owner:?}")]
    WrongSigner { sub: String, owner: String },
}

impl TokenError {
    /// A short label for metrics (`reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::BadAlgorithm => "bad_algorithm",
            Self::Expired { .. } => "expired",
            Self::WrongIssuer(_) => "wrong_issuer",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::WrongKind { .. } => "wrong_kind",
            Self::Sign(_) => "sign",
            Self::NoKeyId => "no_kid",
            Self::UnknownKey { .. } => "unknown_kid",
            Self::WrongSigner { .. } => "wrong_signer",
        }
    }
}

/// The key material: an Ed25519 key pair and its key id (the first 8 bytes of the SHA-256 of
/// the public key, hex), which goes into every token header for rotation.
#[derive(Clone)]
pub struct SigningKeys {
    encoding: EncodingKey,
    signing: SigningKey,
    public: VerifyingKey,
    kid: String,
}

fn key_id(public: &VerifyingKey) -> String {
    Sha256::digest(public.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl SigningKeys {
    /// Reads a PKCS#8 PEM Ed25519 private key (what `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let signing =
            SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Private(e.to_string()))?;
        Self::from_signing_key(&signing)
    }

    /// A key pair from a 32-byte secret seed (tests; key generation for a new Storefront).
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, KeyError> {
        Self::from_signing_key(&SigningKey::from_bytes(&seed))
    }

    fn from_signing_key(signing: &SigningKey) -> Result<Self, KeyError> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let public = signing.verifying_key();
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            signing: signing.clone(),
            kid: key_id(&public),
            public,
        })
    }

    /// The private key as PKCS#8 PEM, for writing a generated key into a Secret.
    pub fn seed_to_pkcs8_pem(seed: [u8; 32]) -> Result<String, KeyError> {
        SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The public key as SPKI PEM, for services that only verify.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        self.public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The public half.
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }

    /// The key id in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// An Ed25519 signature of `message` (the bus signs its events with it: `events.rs`).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.signing.sign(message).to_bytes()
    }

    /// A verifier that trusts this one key for every token ([`KeySet::single`]).
    pub fn verifier(&self, issuer: &str) -> TokenVerifier {
        TokenVerifier::new(KeySet::single(&self.public), issuer)
    }
}

/// Whose key signed a service token: a service's own key may sign only tokens from that
/// service; the key of a single-key set signs for anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Signer {
    Service(String),
    Any,
}

/// The public keys a verifier trusts, by key id: user keys (auth's) and service keys (each
/// its owner's).
#[derive(Clone, Default)]
pub struct KeySet {
    user: HashMap<String, DecodingKey>,
    service: HashMap<String, ServiceKey>,
}

/// A service key: for tokens (`decoding`), for events (`public`), and whose it is.
#[derive(Clone)]
struct ServiceKey {
    decoding: DecodingKey,
    public: VerifyingKey,
    signer: Signer,
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn public_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Public(e.to_string()))
}

impl KeySet {
    /// One key for user tokens and for every service's tokens (a hand-run binary, tests).
    pub fn single(public: &VerifyingKey) -> Self {
        let mut set = Self::default();
        set.add_user_key(public);
        set.service.insert(
            key_id(public),
            ServiceKey {
                decoding: DecodingKey::from_ed_der(public.as_bytes()),
                public: *public,
                signer: Signer::Any,
            },
        );
        set
    }

    /// Trusts `public` for user tokens.
    pub fn add_user_key(&mut self, public: &VerifyingKey) {
        self.user
            .insert(key_id(public), DecodingKey::from_ed_der(public.as_bytes()));
    }

    /// Trusts `public` for tokens from `service` (and from no one else).
    pub fn add_service_key(&mut self, service: &str, public: &VerifyingKey) {
        self.service.insert(
            key_id(public),
            ServiceKey {
                decoding: DecodingKey::from_ed_der(public.as_bytes()),
                public: *public,
                signer: Signer::Service(service.to_string()),
            },
        );
    }

    /// The operator's layout: the user key from `public.pem`, every service's key from
    /// `services/<service>.pem`. An unreadable or malformed file is an error that names it.
    pub fn load_dir(dir: &Path) -> Result<Self, KeyError> {
        let mut set = Self::default();
        set.add_user_key(&public_from_pem(&read_text(&dir.join(USER_PUBLIC_FILE))?)?);
        let services = dir.join(SERVICE_PUBLIC_DIR);
        let entries = std::fs::read_dir(&services).map_err(|e| KeyError::Read {
            path: services.clone(),
            reason: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let (Some(service), Some("pem")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue; // the kubelet's `..data` links and anything else
            };
            let public = public_from_pem(&read_text(&path)?).map_err(|e| KeyError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            set.add_service_key(service, &public);
        }
        Ok(set)
    }

    /// Whether `dir` is in the operator's layout (it has `services/`).
    pub fn is_split_dir(dir: &Path) -> bool {
        dir.join(SERVICE_PUBLIC_DIR).is_dir()
    }

    /// Key ids trusted for user tokens and for service tokens (sorted; logs, tests).
    pub fn key_ids(&self) -> (Vec<String>, Vec<String>) {
        let mut user: Vec<String> = self.user.keys().cloned().collect();
        let mut service: Vec<String> = self.service.keys().cloned().collect();
        user.sort();
        service.sort();
        (user, service)
    }
}

/// Issues user and service tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: SigningKeys,
    issuer: String,
    user_ttl_secs: i64,
    service_ttl_secs: i64,
    /// What [`TokenIssuer::verifier`] hands out: set by [`TokenIssuer::with_verifier`] (the
    /// key set of the directory), else a verifier of this issuer's own key.
    verifier: Option<TokenVerifier>,
}

impl TokenIssuer {
    pub fn new(keys: SigningKeys, issuer: &str, user_ttl_secs: i64, service_ttl_secs: i64) -> Self {
        Self {
            keys,
            issuer: issuer.to_string(),
            user_ttl_secs,
            service_ttl_secs,
            verifier: None,
        }
    }

    /// This issuer, whose [`TokenIssuer::verifier`] is `verifier` (the shop's key set)
    /// instead of one for its own key.
    pub fn with_verifier(mut self, verifier: TokenVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The verifier of the tokens this process accepts: the one given to
    /// [`TokenIssuer::with_verifier`], else one that trusts this issuer's key alone.
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier
            .clone()
            .unwrap_or_else(|| self.keys.verifier(&self.issuer))
    }

    fn sign(&self, claims: &Claims) -> Result<IssuedToken, TokenError> {
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.keys.kid.clone());
        let token = jsonwebtoken::encode(&header, claims, &self.keys.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_at: claims.exp,
        })
    }

    /// A user token for the public API, valid from `now` (unix seconds).
    pub fn issue_user(
        &self,
        user_id: &str,
        email: &str,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        self.sign(&Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: USER_AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(self.user_ttl_secs),
            kind: TokenKind::User,
            email: Some(email.to_string()),
        })
    }

    /// A short-lived token for service `from` to call service `to` (its audience).
    pub fn issue_service(&self, from: &str, to: &str, now: i64) -> Result<IssuedToken, TokenError> {
        self.sign(&Claims {
            iss: self.issuer.clone(),
            sub: from.to_string(),
            aud: to.to_string(),
            iat: now,
            exp: now.saturating_add(self.service_ttl_secs),
            kind: TokenKind::Service,
            email: None,
        })
    }
}

/// Verifies tokens: the key chosen by `kid` among the trusted ones, signature (EdDSA only),
/// issuer, kind, audience, expiry, and for a service token that its key is its caller's.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<RwLock<Arc<KeySet>>>,
    issuer: String,
    /// The directory the keys came from, read again for an unknown `kid`.
    reload: Option<Arc<Reload>>,
}

/// Where a verifier's keys come from and when it last read them.
struct Reload {
    dir: PathBuf,
    every: Duration,
    last: Mutex<Instant>,
}

impl TokenVerifier {
    /// A verifier of the tokens of `issuer` signed with a key of `keys`.
    pub fn new(keys: KeySet, issuer: &str) -> Self {
        Self {
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            issuer: issuer.to_string(),
            reload: None,
        }
    }

    /// A verifier of the keys in `dir` (the operator's layout, [`KeySet::load_dir`]), read
    /// again when a token names a key it does not know.
    pub fn from_dir(dir: &Path, issuer: &str) -> Result<Self, KeyError> {
        let mut verifier = Self::new(KeySet::load_dir(dir)?, issuer);
        verifier.reload = Some(Arc::new(Reload {
            dir: dir.to_path_buf(),
            every: RELOAD_EVERY,
            last: Mutex::new(Instant::now()),
        }));
        Ok(verifier)
    }

    /// This verifier, reading its directory again at most every `every` (tests).
    pub fn reload_every(mut self, every: Duration) -> Self {
        if let Some(reload) = &self.reload {
            self.reload = Some(Arc::new(Reload {
                dir: reload.dir.clone(),
                every,
                last: Mutex::new(Instant::now()),
            }));
        }
        self
    }

    /// A verifier that trusts one SPKI PEM public key for every token.
    pub fn from_public_pem(pem: &str, issuer: &str) -> Result<Self, KeyError> {
        Ok(Self::new(KeySet::single(&public_from_pem(pem)?), issuer))
    }

    /// The keys trusted now.
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the directory again if it was not read in the last [`RELOAD_EVERY`]; whether
    /// the keys changed. A directory that does not load keeps the keys trusted until now.
    fn reload(&self) -> bool {
        let Some(reload) = &self.reload else {
            return false;
        };
        {
            let mut last = reload.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < reload.every {
                return false;
            }
            *last = Instant::now();
        }
        match KeySet::load_dir(&reload.dir) {
            Ok(keys) => {
                let (user, service) = keys.key_ids();
                tracing::info!(?user, ?service, "token keys read again");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "token keys unreadable; keeping the ones trusted");
                false
            }
        }
    }

    /// The key for a `kind` token with id `kid`, and whose it is; reads the directory again
    /// (rate-limited) when the id is unknown.
    fn key(&self, kind: TokenKind, kid: &str) -> Result<(DecodingKey, Signer), TokenError> {
        let find = |keys: &KeySet| match kind {
            TokenKind::User => keys.user.get(kid).map(|k| (k.clone(), Signer::Any)),
            TokenKind::Service => keys
                .service
                .get(kid)
                .map(|k| (k.decoding.clone(), k.signer.clone())),
        };
        if let Some(found) = find(&self.keys()) {
            return Ok(found);
        }
        if self.reload()
            && let Some(found) = find(&self.keys())
        {
            return Ok(found);
        }
        Err(TokenError::UnknownKey {
            kind,
            kid: kid.to_string(),
        })
    }

    /// The service key with id `kid` and the service it belongs to (`None`: a single-key set,
    /// anyone's), reading the directory again (rate-limited) when the id is unknown: what the
    /// bus checks an event's signature with.
    pub fn service_key(&self, kid: &str) -> Option<(VerifyingKey, Option<String>)> {
        let find = |keys: &KeySet| {
            keys.service.get(kid).map(|k| {
                let owner = match &k.signer {
                    Signer::Service(s) => Some(s.clone()),
                    Signer::Any => None,
                };
                (k.public, owner)
            })
        };
        find(&self.keys()).or_else(|| {
            if self.reload() {
                find(&self.keys())
            } else {
                None
            }
        })
    }

    fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        audience: &str,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let (decoding, signer) = self.key(kind, &kid)?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        // Expiry and audience are checked below against the caller's `now` with typed errors.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
            .map_err(|e| match e.kind() {
                JwtErrorKind::InvalidSignature => TokenError::BadSignature,
                JwtErrorKind::InvalidAlgorithm => TokenError::BadAlgorithm,
                JwtErrorKind::InvalidIssuer => TokenError::WrongIssuer(
                    jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
                        .map(|d| d.claims.iss)
                        .unwrap_or_default(),
                ),
                _ => TokenError::Malformed(e.to_string()),
            })?
            .claims;
        if claims.kind != kind {
            return Err(TokenError::WrongKind {
                expected: kind,
                got: claims.kind,
            });
        }
        if claims.aud != audience {
            return Err(TokenError::WrongAudience {
                expected: audience.to_string(),
                got: claims.aud,
            });
        }
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired {
                expired_at: claims.exp,
                now,
            });
        }
        if let Signer::Service(owner) = signer
            && owner != claims.sub
        {
            return Err(TokenError::WrongSigner {
                sub: claims.sub,
                owner,
            });
        }
        Ok(claims)
    }

    /// Verifies a user token of the public API.
    pub fn verify_user(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        self.verify(token, TokenKind::User, USER_AUDIENCE, now)
    }

    /// Verifies a service token addressed to `audience` (the verifying service's own name).
    pub fn verify_service(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<Claims, TokenError> {
        self.verify(token, TokenKind::Service, audience, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(seed: u8) -> TokenIssuer {
        let keys = SigningKeys::from_seed([seed; 32]).expect("key");
        TokenIssuer::new(keys, "shop", 3600, 60)
    }

    #[test]
    fn user_tokens_verify_until_they_expire() {
        let issuer = issuer(7);
        let verifier = issuer.verifier();
        let t = issuer
            .issue_user("u1", "ann@example.com", 1_000)
            .expect("token");
        assert_eq!(t.expires_at, 4_600);
        let claims = verifier.verify_user(&t.token, 2_000).expect("valid");
        assert_eq!(
            (claims.sub.as_str(), claims.email.as_deref()),
            ("u1", Some("ann@example.com"))
        );
        assert!(verifier.verify_user(&t.token, 4_600 + LEEWAY_SECS).is_ok());
        assert_eq!(
            verifier.verify_user(&t.token, 4_601 + LEEWAY_SECS),
            Err(TokenError::Expired {
                expired_at: 4_600,
                now: 4_601 + LEEWAY_SECS
            })
        );
    }

    #[test]
    fn service_tokens_are_scoped_to_one_audience_and_short_lived() {
        let issuer = issuer(7);
        let verifier = issuer.verifier();
        let t = issuer
            .issue_service("gateway", "inventory", 1_000)
            .expect("token");
        assert_eq!(t.expires_at, 1_060);
        let claims = verifier
            .verify_service(&t.token, "inventory", 1_030)
            .expect("valid");
        assert_eq!(claims.sub, "gateway");
        assert_eq!(
            verifier.verify_service(&t.token, "orders", 1_030),
            Err(TokenError::WrongAudience {
                expected: "orders".into(),
                got: "inventory".into()
            })
        );
        assert!(matches!(
            verifier.verify_service(&t.token, "inventory", 1_100),
            Err(TokenError::Expired { .. })
        ));
        // A service token is not a user token, and the other way round.
        assert_eq!(
            verifier.verify_user(&t.token, 1_030),
            Err(TokenError::WrongKind {
                expected: TokenKind::User,
                got: TokenKind::Service
            })
        );
        let user = issuer.issue_user("u1", "a@b.io", 1_000).expect("token");
        assert!(matches!(
            verifier.verify_service(&user.token, USER_AUDIENCE, 1_030),
            Err(TokenError::WrongKind { .. })
        ));
    }

    #[test]
    fn foreign_tampered_and_garbage_tokens_are_refused() {
        let t = issuer(7).issue_user("u1", "a@b.io", 1_000).expect("token");
        // Another Storefront's key.
        assert!(matches!(
            issuer(8).verifier().verify_user(&t.token, 1_000),
            Err(TokenError::UnknownKey {
                kind: TokenKind::User,
                ..
            })
        ));
        // The right key id on another key's signature.
        let forged = {
            let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
            header.kid = Some(SigningKeys::from_seed([7; 32]).expect("key").kid().into());
            let other = SigningKeys::from_seed([8; 32]).expect("key");
            let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&t.token)
                .expect("decodes")
                .claims;
            jsonwebtoken::encode(&header, &claims, &other.encoding).expect("signs")
        };
        assert_eq!(
            issuer(7).verifier().verify_user(&forged, 1_000),
            Err(TokenError::BadSignature)
        );
        // No key id at all.
        let anonymous = {
            let header = Header::new(jsonwebtoken::Algorithm::EdDSA);
            let keys = SigningKeys::from_seed([7; 32]).expect("key");
            let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&t.token)
                .expect("decodes")
                .claims;
            jsonwebtoken::encode(&header, &claims, &keys.encoding).expect("signs")
        };
        assert_eq!(
            issuer(7).verifier().verify_user(&anonymous, 1_000),
            Err(TokenError::NoKeyId)
        );
        // Same key, another issuer name.
        let other = TokenIssuer::new(
            SigningKeys::from_seed([7; 32]).expect("key"),
            "other",
            60,
            60,
        );
        assert_eq!(
            other.verifier().verify_user(&t.token, 1_000),
            Err(TokenError::WrongIssuer("shop".into()))
        );
        // A flipped payload character breaks the signature.
        let mut parts: Vec<String> = t.token.split('.').map(str::to_string).collect();
        let payload = parts[1].clone();
        let flipped = if payload.ends_with('A') { "B" } else { "A" };
        parts[1] = format!("{}{flipped}", &payload[..payload.len() - 1]);
        assert!(
            issuer(7)
                .verifier()
                .verify_user(&parts.join("."), 1_000)
                .is_err()
        );
        for garbage in ["", "abc", "a.b.c", "Bearer x"] {
            assert!(matches!(
                issuer(7).verifier().verify_user(garbage, 1_000),
                Err(TokenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let pem = SigningKeys::seed_to_pkcs8_pem([3; 32]).expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let keys = SigningKeys::from_pkcs8_pem(&pem).expect("reads");
        assert_eq!(
            keys.kid(),
            SigningKeys::from_seed([3; 32]).expect("key").kid()
        );
        let issuer = TokenIssuer::new(keys.clone(), "shop", 60, 60);
        let t = issuer
            .issue_service("orders", "payments", 10)
            .expect("token");
        let public = keys.public_pem().expect("public pem");
        let verifier = TokenVerifier::from_public_pem(&public, "shop").expect("reads");
        assert!(verifier.verify_service(&t.token, "payments", 20).is_ok());
        assert!(SigningKeys::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nxx\n").is_err());
        assert!(TokenVerifier::from_public_pem("nope", "shop").is_err());
    }

    fn public(seed: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    /// The operator's split: user key 1 (auth), gateway's key 2, orders' key 3.
    fn split() -> (TokenIssuer, TokenIssuer, TokenIssuer, TokenVerifier) {
        let mut keys = KeySet::default();
        keys.add_user_key(&public(1));
        keys.add_service_key("gateway", &public(2));
        keys.add_service_key("orders", &public(3));
        let verifier = TokenVerifier::new(keys, "shop");
        (issuer(1), issuer(2), issuer(3), verifier)
    }

    #[test]
    fn a_service_key_signs_for_its_own_service_only_and_never_a_user_token() {
        let (auth, gateway, orders, verifier) = split();
        // Each service's own tokens pass.
        let t = gateway
            .issue_service("gateway", "orders", 1_000)
            .expect("token");
        assert_eq!(
            verifier
                .verify_service(&t.token, "orders", 1_000)
                .expect("valid")
                .sub,
            "gateway"
        );
        let t = orders
            .issue_service("orders", "payments", 1_000)
            .expect("token");
        assert!(verifier.verify_service(&t.token, "payments", 1_000).is_ok());
        // The gateway's key claiming to be orders.
        let t = gateway
            .issue_service("orders", "payments", 1_000)
            .expect("token");
        assert_eq!(
            verifier.verify_service(&t.token, "payments", 1_000),
            Err(TokenError::WrongSigner {
                sub: "orders".into(),
                owner: "gateway".into()
            })
        );
        // The gateway's key minting a user token.
        let t = gateway.issue_user("u1", "a@b.io", 1_000).expect("token");
        assert_eq!(
            verifier.verify_user(&t.token, 1_000),
            Err(TokenError::UnknownKey {
                kind: TokenKind::User,
                kid: SigningKeys::from_seed([2; 32]).expect("key").kid().into()
            })
        );
        // Auth's user key signs user tokens, not service tokens.
        let t = auth.issue_user("u1", "a@b.io", 1_000).expect("token");
        assert!(verifier.verify_user(&t.token, 1_000).is_ok());
        let t = auth
            .issue_service("gateway", "orders", 1_000)
            .expect("token");
        assert!(matches!(
            verifier.verify_service(&t.token, "orders", 1_000),
            Err(TokenError::UnknownKey {
                kind: TokenKind::Service,
                ..
            })
        ));
    }

    fn write_public(path: &Path, seed: u8) {
        let pem = public(seed).to_public_key_pem(LineEnding::LF).expect("pem");
        std::fs::write(path, pem).expect("write");
    }

    #[test]
    fn a_key_directory_is_read_again_for_an_unknown_kid_at_most_once_per_period() {
        let dir = std::env::temp_dir().join(format!("sf-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(SERVICE_PUBLIC_DIR)).expect("dir");
        write_public(&dir.join(USER_PUBLIC_FILE), 1);
        write_public(&dir.join("services/gateway.pem"), 2);
        std::fs::write(dir.join("services/..data"), "ignored").expect("write");
        assert!(KeySet::is_split_dir(&dir));
        let verifier = TokenVerifier::from_dir(&dir, "shop").expect("loads");
        let (user, service) = verifier.keys().key_ids();
        assert_eq!((user.len(), service.len()), (1, 1));
        let from_orders = issuer(3)
            .issue_service("orders", "payments", 1_000)
            .expect("token");
        assert!(matches!(
            verifier.verify_service(&from_orders.token, "payments", 1_000),
            Err(TokenError::UnknownKey { .. })
        ));
        // Orders' key added: not read again within the period...
        write_public(&dir.join("services/orders.pem"), 3);
        assert!(matches!(
            verifier.verify_service(&from_orders.token, "payments", 1_000),
            Err(TokenError::UnknownKey { .. })
        ));
        // ...and trusted once it has passed.
        let verifier = verifier.reload_every(Duration::ZERO);
        assert!(
            verifier
                .verify_service(&from_orders.token, "payments", 1_000)
                .is_ok()
        );
        // A broken file is an error that names it; the keys in use stay.
        std::fs::write(dir.join("services/orders.pem"), "garbage").expect("write");
        let err = KeySet::load_dir(&dir).err().expect("refused").to_string();
        assert!(err.contains("orders.pem"), "{err}");
        let t = issuer(2)
            .issue_service("gateway", "orders", 1_000)
            .expect("token");
        assert!(verifier.verify_service(&t.token, "orders", 1_000).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
