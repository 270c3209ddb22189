//! Sign-up and sign-in: the auth service's use cases over a user store, independent of gRPC.
//!
//! Password hashing is CPU-bound (tens of milliseconds at production cost), so it runs on
//! tokio's blocking threads, never on the async workers. Sign-in of an unknown email still runs one verification
//! against a fixed hash, so response time does not tell which emails have accounts.

use std::{
    collections::HashMap,
    future::Future,
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

/// Runs CPU-bound password work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Hash(HashError::Hash(format!("the hashing task failed: {e}"))))?
        .map_err(AuthError::Hash)
}

/// Where users live (PostgreSQL in production).
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; [`StoreError::EmailTaken`] if the email exists.
    fn insert(&self, user: User) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The user with this (normalized) email.
    fn by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
}

/// An in-process user store for tests and single-process runs.
#[derive(Default)]
pub struct MemoryUserStore {
    users: Mutex<HashMap<String, User>>,
}

impl UserStore for MemoryUserStore {
    async fn insert(&self, user: User) -> Result<(), StoreError> {
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

    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
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
    pub async fn sign_up(
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
            password_hash: {
                let (passwords, password) = (self.passwords.clone(), password.to_string());
                blocking(move || passwords.hash(&password)).await?
            },
        };
        self.store.insert(user.clone()).await?;
        Ok(user)
    }

    /// Checks credentials and issues a user token valid from `now` (unix seconds).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<(User, IssuedToken), AuthError> {
        let Ok(email) = normalize_email(email) else {
            return Err(AuthError::WrongCredentials);
        };
        let user = self.store.by_email(&email).await?;
        // An unknown email costs the same work as a real check and gets the same answer as a
        // wrong password.
        let stored = user
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |u| u.password_hash.clone());
        let (passwords, password) = (self.passwords.clone(), password.to_string());
        let matches = blocking(move || passwords.verify(&password, &stored)).await?;
        match user {
            Some(user) if matches => {
                let token = self.issuer.issue_user(&user.id, &user.email, now)?;
                Ok((user, token))
            }
            _ => Err(AuthError::WrongCredentials),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{HashCost, SigningKeys};

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

    #[tokio::test]
    async fn sign_up_then_sign_in() {
        let accounts = accounts();
        let user = accounts
            .sign_up("Ann@Example.com", "correct horse", Some(" Ann ".into()))
            .await
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
            .await
            .expect("signed in");
        assert_eq!(signed_in.id, user.id);
        let claims = accounts
            .issuer()
            .verifier()
            .verify_user(&token.token, 200)
            .expect("valid");
        assert_eq!(claims.sub, user.id);
    }

    #[tokio::test]
    async fn taken_emails_bad_input_and_wrong_passwords_are_refused() {
        let accounts = accounts();
        accounts
            .sign_up("ann@example.com", "correct horse", None)
            .await
            .expect("signed up");
        assert!(matches!(
            accounts
                .sign_up("ANN@example.com", "another pass", None)
                .await,
            Err(AuthError::Store(StoreError::EmailTaken(_)))
        ));
        assert!(matches!(
            accounts.sign_up("nope", "correct horse", None).await,
            Err(AuthError::Credentials(CredentialError::BadEmail(_)))
        ));
        assert!(matches!(
            accounts.sign_up("bob@example.com", "short", None).await,
            Err(AuthError::Credentials(CredentialError::BadPassword))
        ));
        for (email, password) in [
            ("ann@example.com", "wrong horse"),
            ("nobody@example.com", "correct horse"),
            ("not an email", "correct horse"),
        ] {
            assert!(
                matches!(
                    accounts.sign_in(email, password, 0).await,
                    Err(AuthError::WrongCredentials)
                ),
                "{email}"
            );
        }
    }
}
