//! Sign-up and sign-in: the auth service's use cases over a user store, independent of gRPC.
//!
//! Password hashing is CPU-bound (tens of milliseconds at production cost), so adapters call
//! these from a blocking thread. Sign-in of an unknown email still runs one verification
//! against a fixed hash, so response time does not tell which emails have accounts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use rand::Rng;
use thiserror::Error;

use super::domain::{
    CredentialError, HashError, IssuedToken, Passwords, TokenError, TokenIssuer, check_password,
    normalize_email,
};

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
}

/// Storage failures.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("email {0} is already registered")]
    EmailTaken(String),
    #[error("failed to reach the user store: {0}")]
    Unavailable(String),
}

/// Where users live (PostgreSQL in production).
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; [`StoreError::EmailTaken`] if the email exists.
    fn insert(&self, user: User) -> Result<(), StoreError>;
    /// The user with this (normalized) email.
    fn by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
}

/// An in-process user store for tests and single-process runs.
#[derive(Default)]
pub struct MemoryUserStore {
    users: Mutex<HashMap<String, User>>,
}

impl UserStore for MemoryUserStore {
    fn insert(&self, user: User) -> Result<(), StoreError> {
        let mut users = self
            .users
            .lock()
            .map_err(|_| StoreError::Unavailable("the user map lock is poisoned".into()))?;
        if users.contains_key(&user.email) {
            return Err(StoreError::EmailTaken(user.email));
        }
        users.insert(user.email.clone(), user);
        Ok(())
    }

    fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let users = self
            .users
            .lock()
            .map_err(|_| StoreError::Unavailable("the user map lock is poisoned".into()))?;
        Ok(users.get(email).cloned())
    }
}

/// Why a sign-up or sign-in failed.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("wrong email or password")]
    WrongCredentials,
}

/// The auth use cases.
pub struct Accounts<S> {
    store: Arc<S>,
    passwords: Passwords,
    issuer: TokenIssuer,
    /// Verified against when the email is unknown, to keep timing uniform.
    decoy_hash: String,
}

/// A new random user id (128 bits, hex).
pub fn new_user_id() -> String {
    format!("u-{:032x}", rand::rng().random::<u128>())
}

impl<S: UserStore> Accounts<S> {
    pub fn new(
        store: Arc<S>,
        passwords: Passwords,
        issuer: TokenIssuer,
    ) -> Result<Self, AuthError> {
        let decoy_hash = passwords.hash("decoy password for unknown emails")?;
        Ok(Self {
            store,
            passwords,
            issuer,
            decoy_hash,
        })
    }

    /// The token issuer (for verifiers).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Registers a user.
    pub fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: Option<String>,
    ) -> Result<User, AuthError> {
        let email = normalize_email(email)?;
        check_password(password)?;
        let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(CredentialError::BadName.into());
        }
        let user = User {
            id: new_user_id(),
            email,
            name,
            password_hash: self.passwords.hash(password)?,
        };
        self.store.insert(user.clone())?;
        Ok(user)
    }

    /// Checks credentials and issues a user token valid from `now` (unix seconds).
    pub fn sign_in(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<(User, IssuedToken), AuthError> {
        let Ok(email) = normalize_email(email) else {
            return Err(AuthError::WrongCredentials);
        };
        match self.store.by_email(&email)? {
            Some(user) if self.passwords.verify(password, &user.password_hash)? => {
                let token = self.issuer.issue_user(&user.id, &user.email, now)?;
                Ok((user, token))
            }
            Some(_) => Err(AuthError::WrongCredentials),
            None => {
                // Same work as a real check, same answer as a wrong password.
                let _ = self.passwords.verify(password, &self.decoy_hash)?;
                Err(AuthError::WrongCredentials)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::domain::{HashCost, SigningKeys};

    pub(crate) fn accounts() -> Accounts<MemoryUserStore> {
        let passwords = Passwords::new(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("params");
        let issuer = TokenIssuer::new(
            SigningKeys::from_seed([9; 32]).expect("key"),
            "shop",
            3600,
            60,
        );
        Accounts::new(Arc::new(MemoryUserStore::default()), passwords, issuer).expect("accounts")
    }

    #[test]
    fn sign_up_then_sign_in() {
        let accounts = accounts();
        let user = accounts
            .sign_up("Ann@Example.com", "correct horse", Some(" Ann ".into()))
            .expect("signed up");
        assert_eq!(
            (user.email.as_str(), user.name.as_deref()),
            ("ann@example.com", Some("Ann"))
        );
        assert!(
            user.id.starts_with("u-") && user.id.len() == 34,
            "{}",
            user.id
        );
        assert!(!user.password_hash.contains("correct horse"));
        let (signed_in, token) = accounts
            .sign_in("ann@example.com", "correct horse", 100)
            .expect("signed in");
        assert_eq!(signed_in.id, user.id);
        let claims = accounts
            .issuer()
            .verifier()
            .verify_user(&token.token, 200)
            .expect("valid");
        assert_eq!(claims.sub, user.id);
    }

    #[test]
    fn taken_emails_bad_input_and_wrong_passwords_are_refused() {
        let accounts = accounts();
        accounts
            .sign_up("ann@example.com", "correct horse", None)
            .expect("signed up");
        assert!(matches!(
            accounts.sign_up("ANN@example.com", "another pass", None),
            Err(AuthError::Store(StoreError::EmailTaken(_)))
        ));
        assert!(matches!(
            accounts.sign_up("nope", "correct horse", None),
            Err(AuthError::Credentials(CredentialError::BadEmail(_)))
        ));
        assert!(matches!(
            accounts.sign_up("bob@example.com", "short", None),
            Err(AuthError::Credentials(CredentialError::BadPassword))
        ));
        for (email, password) in [
            ("ann@example.com", "wrong horse"),
            ("nobody@example.com", "correct horse"),
            ("not an email", "correct horse"),
        ] {
            assert!(
                matches!(
                    accounts.sign_in(email, password, 0),
                    Err(AuthError::WrongCredentials)
                ),
                "{email}"
            );
        }
    }
}
