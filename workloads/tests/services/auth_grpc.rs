//! The auth service over a real gRPC socket on loopback: sign-up, sign-in, token
//! verification, gRPC health, the service-token check (none, wrong audience) and a clean
//! drain on shutdown.

use std::sync::Arc;

use storefront_workloads::{
    auth::{
        domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
        grpc::{SERVICE, serve},
        service::{Accounts, MemoryUserStore},
    },
    grpc::ServiceTokenAttacher,
    proto::auth::{SignInRequest, SignUpRequest, VerifyTokenRequest, auth_client::AuthClient},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn accounts() -> Arc<Accounts<MemoryUserStore>> {
    let passwords = Passwords::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("params");
    let keys = SigningKeys::from_seed([11; 32]).expect("key");
    let issuer = TokenIssuer::new(keys, "shop", 3600, 60);
    Arc::new(
        Accounts::new(Arc::new(MemoryUserStore::default()), passwords, issuer).expect("accounts"),
    )
}

#[tokio::test]
async fn sign_up_sign_in_and_verify_over_grpc() {
    let accounts = accounts();
    let issuer = Arc::new(accounts.issuer().clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, accounts, async {
        let _ = stopped.await;
    }));

    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");

    // Health answers without a token (kubelet and load balancers probe it).
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "storefront.auth.v1.Auth".into(),
        })
        .await
        .expect("health");
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);

    let mut client = AuthClient::with_interceptor(
        channel.clone(),
        ServiceTokenAttacher::new(issuer.clone(), "gateway", SERVICE),
    );
    let user = client
        .sign_up(SignUpRequest {
            email: "Ann@Example.com".into(),
            password: "correct horse".into(),
            name: "Ann".into(),
        })
        .await
        .expect("signed up")
        .into_inner();
    assert_eq!(user.email, "ann@example.com");

    let taken = client
        .sign_up(SignUpRequest {
            email: "ann@example.com".into(),
            password: "another password".into(),
            name: String::new(),
        })
        .await
        .expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists);

    let bad = client
        .sign_up(SignUpRequest {
            email: "not-an-email".into(),
            password: "correct horse".into(),
            name: String::new(),
        })
        .await
        .expect_err("bad email");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let wrong = client
        .sign_in(SignInRequest {
            email: "ann@example.com".into(),
            password: "wrong horse".into(),
        })
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let session = client
        .sign_in(SignInRequest {
            email: "ann@example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .expect("signed in")
        .into_inner();
    let verified = client
        .verify_token(VerifyTokenRequest {
            token: session.token.clone(),
        })
        .await
        .expect("valid token")
        .into_inner();
    assert_eq!(verified.user_id, user.user_id);
    assert_eq!(verified.expires_at, session.expires_at);

    let forged = client
        .verify_token(VerifyTokenRequest {
            token: format!("{}x", session.token),
        })
        .await
        .expect_err("tampered token");
    assert_eq!(forged.code(), Code::Unauthenticated);

    // No service token, or one addressed to another service: refused before the handler.
    let mut anonymous = AuthClient::new(channel.clone());
    let err = anonymous
        .verify_token(VerifyTokenRequest {
            token: session.token.clone(),
        })
        .await
        .expect_err("no service token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut misaddressed = AuthClient::with_interceptor(
        channel,
        ServiceTokenAttacher::new(issuer, "gateway", "orders"),
    );
    let err = misaddressed
        .verify_token(VerifyTokenRequest {
            token: session.token,
        })
        .await
        .expect_err("wrong audience");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("orders"), "{}", err.message());

    stop.send(()).expect("server running");
    server.await.expect("joins").expect("drains cleanly");
}
