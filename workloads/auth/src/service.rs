//! Sign-up and sign-in: the auth service's use cases over a user store, independent of gRPC.
//!
//! Password hashing is CPU-bound (tens of milliseconds at production cost) and holds 19 MiB,
//! so it runs on tokio's blocking threads, never on the async workers, and only as many at
//! once as the [`HashGate`] has slots: a request that gets none in time is refused with
//! [`AuthError::Busy`] before any lookup or hash. Sign-in of an unknown email still runs one
//! verification against a fixed hash, so response time does not tell which emails have
//! accounts.
//!
//! Before any of that, a [`Throttle`] (when set: [`Accounts::with_throttle`]) admits the
//! attempt per account and per client address, or refuses it with [`AuthError::Throttled`]
//! (see [`crate::throttle`] for what is counted and why). A sign-up of a taken email verifies
//! the given password against the stored hash instead of hashing it (the same work, so the
//! same time): the owner re-registering is forgiven by the sign-up throttle.
//!
//! Emails are stored and looked up in their canonical form (`storefront_contracts::email`).
//! Sign-in also looks up the form the previous rule stored ([`legacy_email`]) when it differs,
//! which only a non-ASCII address can: accounts made before keep signing in.

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use rand::Rng;
use thiserror::Error;

pub use super::ports::StoreError;
use super::{
    domain::throttle::{Admission, AttemptKey, Policy, UnixMillis},
    domain::{
        CredentialError, HashError, IssuedToken, Passwords, TokenError, TokenIssuer,
        canonical_email, check_password, legacy_email,
    },
    hash_gate::{Busy, HashGate, HashLimits, HashMetrics, HashPermit},
    ports::{AttemptStore, StoreFuture},
    throttle::{MemoryAttempts, Throttle, ThrottleError, Throttled},
};

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
}

/// Runs CPU-bound password work off the async threads, in the slot of `permit`.
async fn blocking<T: Send + 'static>(
    permit: HashPermit,
    work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
) -> Result<T, AuthError> {
    permit
        .run(work)
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

/// An in-process user store for tests and single-process runs, with the throttle's
/// counters beside the users as [`crate::postgres::PgUserStore`] has them.
#[derive(Default)]
pub struct MemoryUserStore {
    users: Mutex<HashMap<String, User>>,
    attempts: MemoryAttempts,
}

impl MemoryUserStore {
    /// The throttle's counters.
    pub fn attempts(&self) -> &MemoryAttempts {
        &self.attempts
    }
}

impl AttemptStore for MemoryUserStore {
    fn admit<'a>(
        &'a self,
        key: &'a AttemptKey,
        policy: &'a Policy,
        now: UnixMillis,
    ) -> StoreFuture<'a, Admission> {
        self.attempts.admit(key, policy, now)
    }

    fn refund<'a>(&'a self, key: &'a AttemptKey, policy: &'a Policy) -> StoreFuture<'a, ()> {
        self.attempts.refund(key, policy)
    }

    fn clear<'a>(&'a self, key: &'a AttemptKey) -> StoreFuture<'a, ()> {
        self.attempts.clear(key)
    }

    fn sweep(&self, before: UnixMillis) -> StoreFuture<'_, u64> {
        self.attempts.sweep(before)
    }
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
    /// Every password hashing slot is busy: try again after the hint.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// Too many attempts for this account or from this address: try again after the hint.
    #[error(transparent)]
    Throttled(#[from] Throttled),
}

impl From<ThrottleError> for AuthError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled(t) => Self::Throttled(t),
            ThrottleError::Store(e) => Self::Store(e),
        }
    }
}

/// The auth use cases.
pub struct Accounts<S> {
    store: Arc<S>,
    passwords: Passwords,
    issuer: TokenIssuer,
    /// Verified against when the email is unknown, to keep timing uniform.
    decoy_hash: String,
    /// The cap on hashes running at once.
    gate: HashGate,
    /// The sign-in and sign-up throttles (none: every attempt goes to the gate).
    throttle: Option<Arc<Throttle>>,
}

/// A new random user id (128 bits, hex).
pub fn new_user_id() -> String {
    format!("u-{:032x}", rand::rng().random::<u128>())
}

impl<S: UserStore> Accounts<S> {
    /// The use cases with a hashing gate of one slot per core ([`HashLimits::per_core`]),
    /// its metrics unregistered; [`Accounts::with_gate`] sets another.
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
            gate: HashGate::new(HashLimits::per_core(), HashMetrics::default()),
            throttle: None,
        })
    }

    /// The same use cases behind `throttle` (the service always has one; without, as
    /// [`Accounts::new`] makes them, tests of other concerns are not throttled).
    #[must_use]
    pub fn with_throttle(self, throttle: Arc<Throttle>) -> Self {
        Self {
            throttle: Some(throttle),
            ..self
        }
    }

    /// The throttles, if any.
    pub fn throttle(&self) -> Option<&Arc<Throttle>> {
        self.throttle.as_ref()
    }

    /// The same use cases behind `gate`.
    #[must_use]
    pub fn with_gate(self, gate: HashGate) -> Self {
        Self { gate, ..self }
    }

    /// The hashing gate (its limits, and for tests its peak and refusals).
    pub fn gate(&self) -> &HashGate {
        &self.gate
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
        self.sign_up_from(email, password, name, None).await
    }

    /// Registers a user for a client at `from` (its address, when known, is throttled).
    pub async fn sign_up_from(
        &self,
        email: &str,
        password: &str,
        name: Option<String>,
        from: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        let email = canonical_email(email).map_err(CredentialError::from)?;
        check_password(password)?;
        let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(CredentialError::BadName.into());
        }
        let counted = match &self.throttle {
            Some(t) => t.admit_sign_up(from).await?,
            None => None,
        };
        let permit = self.gate.admit().await?;
        if let Some(existing) = self.store.by_email(&email).await? {
            // Taken: one verification instead of one hash (the same time), to forgive the
            // owner signing up again; the answer is the same 409 either way.
            let (passwords, password) = (self.passwords.clone(), password.to_string());
            let stored = existing.password_hash;
            let owner = blocking(permit, move || passwords.verify(&password, &stored)).await?;
            if let (true, Some(t), Some(key)) = (owner, &self.throttle, &counted) {
                t.forgive(key).await;
            }
            return Err(StoreError::EmailTaken(email).into());
        }
        let user = User {
            id: new_user_id(),
            email,
            name,
            password_hash: {
                let (passwords, password) = (self.passwords.clone(), password.to_string());
                blocking(permit, move || passwords.hash(&password)).await?
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
        self.sign_in_from(email, password, None, now).await
    }

    /// [`Accounts::sign_in`] for a client at `from` (its address, when known, is throttled
    /// beside the account).
    pub async fn sign_in_from(
        &self,
        email: &str,
        password: &str,
        from: Option<IpAddr>,
        now: i64,
    ) -> Result<(User, IssuedToken), AuthError> {
        let canonical = canonical_email(email).ok();
        let legacy = legacy_email(email).filter(|l| canonical.as_ref() != Some(l));
        let Some(account) = canonical.as_ref().or(legacy.as_ref()) else {
            // No account can have this address: refused without a slot, a lookup or a hash.
            return Err(AuthError::WrongCredentials);
        };
        // Counted before anything is spent on it; refused, whatever the password.
        let ticket = match &self.throttle {
            Some(t) => Some(t.admit_sign_in(account, from).await?),
            None => None,
        };
        // The slot is taken before the lookup, so a refused sign-in costs the database
        // nothing either; the lookup is a few milliseconds of the slot's time.
        let permit = self.gate.admit().await?;
        let mut user = None;
        for email in canonical.iter().chain(&legacy) {
            user = self.store.by_email(email).await?;
            if user.is_some() {
                break;
            }
        }
        // An unknown email costs the same work as a real check and gets the same answer as a
        // wrong password.
        let stored = user
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |u| u.password_hash.clone());
        let (passwords, password) = (self.passwords.clone(), password.to_string());
        let matches = blocking(permit, move || passwords.verify(&password, &stored)).await?;
        match user {
            Some(user) if matches => {
                let token = self.issuer.issue_user(&user.id, &user.email, now)?;
                if let (Some(t), Some(ticket)) = (&self.throttle, &ticket) {
                    t.signed_in(ticket).await;
                }
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
    #[tokio::test]
    async fn one_account_per_canonical_email_and_sign_in_folds_the_same_way() {
        let accounts = accounts();
        let user = accounts
            .sign_up("Ａlice@Example.com", "correct horse", None)
            .await
            .expect("signed up");
        assert_eq!(user.email, "alice@example.com");
        for same in [
            "alice@example.com",
            " ALICE@example.COM",
            "ａｌｉｃｅ＠example.com",
        ] {
            let (signed_in, _) = accounts
                .sign_in(same, "correct horse", 0)
                .await
                .unwrap_or_else(|e| panic!("{same:?}: {e}"));
            assert_eq!(signed_in.id, user.id, "{same:?}");
            assert!(
                matches!(
                    accounts.sign_up(same, "correct horse", None).await,
                    Err(AuthError::Store(StoreError::EmailTaken(_)))
                ),
                "{same:?} is the same account"
            );
        }
        let refused = accounts
            .sign_up("al\u{200D}ice@example.com", "correct horse", None)
            .await;
        match refused {
            Err(AuthError::Credentials(CredentialError::BadEmail(e))) => {
                assert!(e.to_string().contains("U+200D"), "{e}");
            }
            other => panic!("a zero-width joiner was {other:?}"),
        }
        assert!(matches!(
            accounts
                .sign_in("al\u{200D}ice@example.com", "correct horse", 0)
                .await,
            Err(AuthError::WrongCredentials)
        ));
    }

    #[tokio::test]
    async fn accounts_stored_by_the_old_rule_keep_signing_in() {
        let accounts = accounts();
        // As the old rule stored them: ASCII lower-cased only, invisible characters kept.
        for (stored, typed) in [
            ("Änne@example.de", "ÄNNE@Example.de"),
            ("z\u{200B}oe@example.com", "Z\u{200B}oe@example.com"),
        ] {
            let user = User {
                id: new_user_id(),
                email: stored.into(),
                name: None,
                password_hash: accounts.passwords.hash("correct horse").expect("hash"),
            };
            accounts.store.insert(user.clone()).await.expect("stored");
            let (signed_in, _) = accounts
                .sign_in(typed, "correct horse", 0)
                .await
                .unwrap_or_else(|e| panic!("{typed:?}: {e}"));
            assert_eq!(signed_in.id, user.id);
            assert!(matches!(
                accounts.sign_in(typed, "wrong horse", 0).await,
                Err(AuthError::WrongCredentials)
            ));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_sign_in_flood_runs_at_most_the_cap_of_hashes_and_refuses_the_rest() {
        let passwords = Passwords::new(HashCost {
            memory_kib: 2 * 1024,
            iterations: 2,
            parallelism: 1,
        })
        .expect("params");
        let issuer = TokenIssuer::new(
            SigningKeys::from_seed([9; 32]).expect("key"),
            "shop",
            3600,
            60,
        );
        let gate = HashGate::new(
            HashLimits {
                concurrency: 2,
                queue: 4,
                wait: std::time::Duration::from_millis(200),
            },
            HashMetrics::default(),
        );
        let accounts = Arc::new(
            Accounts::new(Arc::new(MemoryUserStore::default()), passwords, issuer)
                .expect("accounts")
                .with_gate(gate),
        );
        accounts
            .sign_up("ann@example.com", "correct horse", None)
            .await
            .expect("signed up");
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let accounts = Arc::clone(&accounts);
                tokio::spawn(async move {
                    let password = if i % 2 == 0 {
                        "correct horse"
                    } else {
                        "wrong horse"
                    };
                    accounts.sign_in("ann@example.com", password, 0).await
                })
            })
            .collect();
        let (mut ok, mut wrong, mut busy) = (0, 0, 0);
        for t in tasks {
            match t.await.expect("no panic") {
                Ok(_) => ok += 1,
                Err(AuthError::WrongCredentials) => wrong += 1,
                Err(AuthError::Busy(b)) => {
                    assert_eq!(b.retry_after_seconds(), 1);
                    busy += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let gate = accounts.gate();
        assert_eq!(ok + wrong + busy, 100);
        assert!(
            (1..=2).contains(&gate.peak()),
            "peak {} hashes at once",
            gate.peak()
        );
        assert!(
            busy > 0,
            "100 at once over 2 slots and 4 waiting: some refused"
        );
        assert_eq!(gate.refused(), busy);
        assert!(ok > 0 && wrong > 0, "{ok} ok, {wrong} wrong");
    }
}
