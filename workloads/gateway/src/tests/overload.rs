//! An overloaded upstream and the email rule at the edge, on real sockets: a fake auth
//! server that sheds every call with `RESOURCE_EXHAUSTED` and a retry hint is a 503 with
//! `Retry-After` (never retried, never a 500), and a sign-up whose email holds an invisible
//! character is a 422 before auth is called.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tonic::{Request, Response, Status};

use super::{error_code, fake_auth, issuer, retry_after, send, serve};
use crate::{Gateway, resilience::guard::AllowAll, upstream::Deadlines};
use storefront_contracts::{
    overload::overloaded,
    proto::auth::{
        SignInRequest, SignInResponse, SignUpRequest, SignUpResponse, VerifyTokenRequest,
        VerifyTokenResponse, auth_server::Auth,
    },
};

/// An auth server whose password hashing is always busy; counts the calls it got.
#[derive(Default)]
struct BusyAuth {
    calls: Arc<AtomicUsize>,
}

impl BusyAuth {
    fn shed<T>(&self) -> Result<Response<T>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(overloaded("all 2 password hashing slots are busy", 7))
    }
}

#[tonic::async_trait]
impl Auth for BusyAuth {
    async fn sign_up(&self, _: Request<SignUpRequest>) -> Result<Response<SignUpResponse>, Status> {
        self.shed()
    }
    async fn sign_in(&self, _: Request<SignInRequest>) -> Result<Response<SignInResponse>, Status> {
        self.shed()
    }
    async fn verify_token(
        &self,
        _: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        self.shed()
    }
}

/// The gateway in front of a [`BusyAuth`]: its address and the fake's call count.
async fn gateway_before_busy_auth() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let auth = BusyAuth::default();
    let calls = Arc::clone(&auth.calls);
    let snapshot = fake_auth(auth).await;
    let gateway = Gateway::new(issuer(8), Arc::new(AllowAll), Deadlines::default());
    let addr = serve(gateway, snapshot).await;
    (addr, calls)
}

#[tokio::test]
async fn an_overloaded_upstream_is_a_503_with_its_retry_after() {
    let (addr, calls) = gateway_before_busy_auth().await;
    let body = r#"{"email": "ann@example.com", "password": "correct horse battery"}"#;
    for path in ["/api/v1/sessions", "/api/v1/users"] {
        let before = calls.load(Ordering::SeqCst);
        let (status, head, json) = send(addr, "POST", path, &[], body).await;
        assert_eq!(
            (status, error_code(&json)),
            (503, "service_unavailable"),
            "{path}: {json}"
        );
        assert_eq!(retry_after(&head), Some("7"), "{path}: {head}");
        assert_eq!(
            json["error"]["message"], "the auth service is busy; retry in 7 s",
            "{path}: the upstream's internals stay out of the body"
        );
        // Shedding is an answer: not retried (sign-in is idempotent, yet only UNAVAILABLE
        // and unsent calls are retried), so a flood is not multiplied.
        assert_eq!(calls.load(Ordering::SeqCst), before + 1, "{path}");
    }
}

#[tokio::test]
async fn a_sign_up_email_with_an_invisible_character_is_a_422_before_any_call() {
    let (addr, calls) = gateway_before_busy_auth().await;
    for (email, code_point) in [
        ("ann\u{200D}@example.com", "U+200D"),
        ("ann\u{200F}@example.com", "U+200F"),
        ("a\u{0007}nn@example.com", "U+0007"),
    ] {
        let body = serde_json::json!({"email": email, "password": "correct horse battery"});
        let (status, _, json) = send(addr, "POST", "/api/v1/users", &[], &body.to_string()).await;
        assert_eq!(
            (status, error_code(&json)),
            (422, "invalid_request"),
            "{json}"
        );
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("email must not contain") && message.contains(code_point),
            "{message}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "auth was never called");
    // A fullwidth address is a fine address: it goes to auth (which is busy here).
    let body = r#"{"email": "Ａnn@Example.com", "password": "correct horse battery"}"#;
    let (status, _, _) = send(addr, "POST", "/api/v1/users", &[], body).await;
    assert_eq!(status, 503);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
