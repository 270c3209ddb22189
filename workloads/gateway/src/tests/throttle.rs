//! Auth's throttle at the edge, on real sockets: a fake auth server that throttles every
//! sign-in and sign-up (`RESOURCE_EXHAUSTED` marked as a throttle, with a retry hint) is a
//! 429 `rate_limited` with `Retry-After` and the gateway's own words, called once (never
//! retried); and the client's address reaches auth as `x-client-address` when the server
//! keeps peer addresses (`run::serve`), and not at all when it does not.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::{error_code, fake_auth, issuer, retry_after, send};
use crate::{Gateway, resilience::guard::AllowAll, upstream::Deadlines};
use storefront_contracts::{
    client_address,
    overload::throttled,
    proto::auth::{
        SignInRequest, SignInResponse, SignUpRequest, SignUpResponse, VerifyTokenRequest,
        VerifyTokenResponse, auth_server::Auth,
    },
};

/// The client address of every call an auth server got (`None`: no metadata).
type Seen = Arc<Mutex<Vec<Option<std::net::IpAddr>>>>;

/// An auth server that throttles every attempt for `seconds`, recording each call's client
/// address.
struct ThrottlingAuth {
    seconds: u64,
    seen: Seen,
}

impl ThrottlingAuth {
    fn refuse<T, M>(&self, request: &Request<M>) -> Result<Response<T>, Status> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(client_address::read(request.metadata()));
        }
        Err(throttled(
            "too many sign-in attempts for this account; retry later",
            self.seconds,
        ))
    }
}

#[tonic::async_trait]
impl Auth for ThrottlingAuth {
    async fn sign_up(
        &self,
        request: Request<SignUpRequest>,
    ) -> Result<Response<SignUpResponse>, Status> {
        self.refuse(&request)
    }
    async fn sign_in(
        &self,
        request: Request<SignInRequest>,
    ) -> Result<Response<SignInResponse>, Status> {
        self.refuse(&request)
    }
    async fn verify_token(
        &self,
        request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        self.refuse(&request)
    }
}

/// The gateway in front of a [`ThrottlingAuth`], served with peer addresses
/// (`connect_info`, as `run` does) or without (as the other tests): its address and what
/// the fake saw.
async fn gateway_before_throttling_auth(seconds: u64, connect_info: bool) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let auth = ThrottlingAuth {
        seconds,
        seen: Arc::clone(&seen),
    };
    let snapshot = fake_auth(auth).await;
    let gateway = Gateway::new(issuer(8), Arc::new(AllowAll), Deadlines::default());
    gateway.apply(snapshot).expect("applies");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = gateway.router();
    if connect_info {
        tokio::spawn(crate::run::serve(listener, router, std::future::pending()));
    } else {
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    (addr, seen)
}

#[tokio::test]
async fn a_throttled_sign_in_or_sign_up_is_a_429_with_retry_after_and_the_client_address_goes_to_auth()
 {
    // 900 s: a throttle's block may be longer than the 300 s a busy service may ask for.
    let (addr, seen) = gateway_before_throttling_auth(900, true).await;
    let body = r#"{"email": "ann@example.com", "password": "correct horse battery"}"#;
    for path in ["/api/v1/sessions", "/api/v1/users"] {
        let before = seen.lock().expect("lock").len();
        let (status, head, json) = send(addr, "POST", path, &[], body).await;
        assert_eq!(
            (status, error_code(&json)),
            (429, "rate_limited"),
            "{path}: {json}"
        );
        assert_eq!(retry_after(&head), Some("900"), "{path}: {head}");
        assert_eq!(
            json["error"]["message"], "too many attempts; retry in 900 s",
            "{path}: auth's words (which allowance) stay out of the body"
        );
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), before + 1, "{path}: called once, not retried");
        assert_eq!(
            seen.last().copied().flatten(),
            Some("127.0.0.1".parse().expect("ip")),
            "{path}: the connection's peer is the client address"
        );
    }
    // A forwarded header does not change the address auth is given.
    let (status, _, _) = send(
        addr,
        "POST",
        "/api/v1/sessions",
        &[("x-forwarded-for", "198.51.100.23")],
        body,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(
        seen.lock().expect("lock").last().copied().flatten(),
        Some("127.0.0.1".parse().expect("ip"))
    );
}

#[tokio::test]
async fn without_peer_addresses_auth_gets_no_client_address() {
    let (addr, seen) = gateway_before_throttling_auth(3, false).await;
    let body = r#"{"email": "ann@example.com", "password": "correct horse battery"}"#;
    let (status, head, json) = send(addr, "POST", "/api/v1/sessions", &[], body).await;
    assert_eq!((status, error_code(&json)), (429, "rate_limited"), "{json}");
    assert_eq!(retry_after(&head), Some("3"));
    assert_eq!(*seen.lock().expect("lock"), vec![None]);
}
