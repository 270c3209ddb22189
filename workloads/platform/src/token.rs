//! Tokens: Ed25519 key material, and issuing and verifying user and service JWTs.

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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The audience of user tokens: the public API.
pub const USER_AUDIENCE: &str = "storefront";
/// Clock skew tolerated when checking expiry, in seconds.
pub const LEEWAY_SECS: i64 = 5;

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
}

/// The key material: an Ed25519 key pair and its key id (the first 8 bytes of the SHA-256 of
/// the public key, hex), which goes into every token header for rotation.
#[derive(Clone)]
pub struct SigningKeys {
    encoding: EncodingKey,
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

    /// The key id in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A verifier for tokens signed with this key.
    pub fn verifier(&self, issuer: &str) -> TokenVerifier {
        TokenVerifier::new(&self.public, issuer)
    }
}

/// Issues user and service tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: SigningKeys,
    issuer: String,
    user_ttl_secs: i64,
    service_ttl_secs: i64,
}

impl TokenIssuer {
    pub fn new(keys: SigningKeys, issuer: &str, user_ttl_secs: i64, service_ttl_secs: i64) -> Self {
        Self {
            keys,
            issuer: issuer.to_string(),
            user_ttl_secs,
            service_ttl_secs,
        }
    }

    /// A verifier for this issuer's tokens.
    pub fn verifier(&self) -> TokenVerifier {
        self.keys.verifier(&self.issuer)
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

/// Verifies tokens: signature (EdDSA only), issuer, kind, audience and expiry.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: DecodingKey,
    issuer: String,
}

impl TokenVerifier {
    fn new(public: &VerifyingKey, issuer: &str) -> Self {
        Self {
            decoding: DecodingKey::from_ed_der(public.as_bytes()),
            issuer: issuer.to_string(),
        }
    }

    /// A verifier from an SPKI PEM public key.
    pub fn from_public_pem(pem: &str, issuer: &str) -> Result<Self, KeyError> {
        let public =
            VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Public(e.to_string()))?;
        Ok(Self::new(&public, issuer))
    }

    fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        audience: &str,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        // Expiry and audience are checked below against the caller's `now` with typed errors.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
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
        assert_eq!(
            issuer(8).verifier().verify_user(&t.token, 1_000),
            Err(TokenError::BadSignature)
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
}
