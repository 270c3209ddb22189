//! Passwords: the credential checks (the email rule itself is `storefront_contracts::email`,
//! shared with the gateway; [`legacy_email`] is the form addresses were stored in before it),
//! and argon2id hashing (PHC strings that carry their own parameters, so raising the cost
//! later keeps old hashes verifiable).

use argon2::{Algorithm, Argon2, ParamsBuilder, PasswordHasher, PasswordVerifier, Version};
use thiserror::Error;

/// The shortest and longest password accepted (the upper bound keeps hashing cheap to refuse).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

pub use storefront_contracts::email::{EmailError, MAX_EMAIL_BYTES, canonical_email};

/// Why credentials were refused before any hashing.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    /// The address breaks the one email rule ([`canonical_email`]); the message says how.
    #[error(transparent)]
    BadEmail(#[from] EmailError),
    #[error("password must be {min} to {max} characters", min = PASSWORD_LEN.start(), max = PASSWORD_LEN.end())]
    BadPassword,
    #[error("name must be at most 200 characters")]
    BadName,
}

/// The form the rule before [`canonical_email`] stored an address in (trimmed, ASCII letters
/// lower-cased, anything else kept as typed), or `None` where that rule refused it. Only for
/// finding accounts stored then: for ASCII input it equals [`canonical_email`]'s form (see
/// `storefront_contracts::email`), so only a non-ASCII sign-in whose two forms differ costs a
/// second lookup.
pub fn legacy_email(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    valid.then_some(email)
}

/// Checks a new password's length (in characters).
pub fn check_password(password: &str) -> Result<(), CredentialError> {
    if PASSWORD_LEN.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(CredentialError::BadPassword)
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane), argon2's own default.
    pub const PRODUCTION: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
}

/// Failures of password hashing that are not "wrong password".
#[derive(Debug, Error)]
pub enum HashError {
    #[error("failed to set up argon2id: {0}")]
    Params(String),
    #[error("failed to hash the password: {0}")]
    Hash(String),
    #[error("failed to read a stored password hash: {0}")]
    Stored(String),
}

/// Hashes and verifies passwords with argon2id; hashes are PHC strings that carry their own
/// parameters, so raising the cost later keeps old hashes verifiable.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
}

impl Passwords {
    pub fn new(cost: HashCost) -> Result<Self, HashError> {
        let params = ParamsBuilder::new()
            .m_cost(cost.memory_kib)
            .t_cost(cost.iterations)
            .p_cost(cost.parallelism)
            .build()
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    }

    /// Whether `password` matches the stored PHC hash; an unreadable hash is an error, not a
    /// mismatch.
    pub fn verify(&self, password: &str, stored: &str) -> Result<bool, HashError> {
        match self.argon.verify_password(password.as_bytes(), stored) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(HashError::Stored(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check behaviour, not cost.
    const TEST_COST: HashCost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn passwords_are_checked() {
        assert!(check_password("correct horse").is_ok());
        assert_eq!(check_password("short"), Err(CredentialError::BadPassword));
        assert_eq!(
            check_password(&"x".repeat(129)),
            Err(CredentialError::BadPassword)
        );
    }

    #[test]
    fn the_legacy_form_is_the_canonical_one_for_ascii_and_kept_otherwise() {
        for raw in [
            "  Ann@Example.COM ",
            "bob+x@mail.example.org",
            "o'neil@x.io",
        ] {
            assert_eq!(legacy_email(raw), canonical_email(raw).ok(), "{raw:?}");
        }
        // What the old rule stored as typed, and the new rule folds or refuses.
        assert_eq!(
            legacy_email("ÄNNE@Example.de").as_deref(),
            Some("Änne@example.de")
        );
        assert_eq!(
            canonical_email("ÄNNE@Example.de").as_deref(),
            Ok("änne@example.de")
        );
        assert_eq!(
            legacy_email("a\u{200D}b@example.com").as_deref(),
            Some("a\u{200D}b@example.com")
        );
        assert!(canonical_email("a\u{200D}b@example.com").is_err());
        for bad in ["", "ann", "a b@x.io", "a@b@c.io", "a@.io"] {
            assert_eq!(legacy_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let passwords = Passwords::new(TEST_COST).expect("params");
        let a = passwords.hash("correct horse").expect("hash");
        let b = passwords.hash("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert_eq!(passwords.verify("correct horse", &a).ok(), Some(true));
        assert_eq!(passwords.verify("correct horsf", &a).ok(), Some(false));
        assert!(passwords.verify("x", "not a phc string").is_err());
        // Hashes carry their parameters: a costlier hasher still verifies old hashes.
        let costlier = Passwords::new(HashCost {
            memory_kib: 128,
            ..TEST_COST
        })
        .expect("params");
        assert_eq!(costlier.verify("correct horse", &a).ok(), Some(true));
        assert!(
            Passwords::new(HashCost {
                memory_kib: 0,
                ..TEST_COST
            })
            .is_err()
        );
    }
}
