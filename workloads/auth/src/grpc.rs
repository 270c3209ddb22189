//! The auth service's gRPC adapter: `proto/auth.proto` over [`Accounts`], plus serving it
//! with gRPC health behind the service-token check. A sign-in or sign-up refused by the
//! hashing gate is `RESOURCE_EXHAUSTED` with a `retry-after` hint
//! ([`storefront_contracts::overload`]), which the gateway answers as 503 with `Retry-After`.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::service::{Accounts, AuthError, StoreError, UserStore};
use storefront_contracts::overload::overloaded;
use storefront_contracts::proto::auth::{
    SignInRequest, SignInResponse, SignUpRequest, SignUpResponse, VerifyTokenRequest,
    VerifyTokenResponse,
    auth_server::{Auth, AuthServer},
};
use storefront_platform::grpc::{RequireServiceToken, unix_now};

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "auth";

/// The tonic implementation.
pub struct AuthGrpc<S> {
    accounts: Arc<Accounts<S>>,
}

impl<S> AuthGrpc<S> {
    pub fn new(accounts: Arc<Accounts<S>>) -> Self {
        Self { accounts }
    }
}

fn status(err: AuthError) -> Status {
    match err {
        AuthError::Credentials(e) => Status::invalid_argument(e.to_string()),
        AuthError::Store(StoreError::EmailTaken(email)) => {
            Status::already_exists(format!("email {email} is already registered"))
        }
        AuthError::Store(e @ StoreError::Unavailable(_)) => Status::unavailable(e.to_string()),
        AuthError::WrongCredentials => Status::unauthenticated("wrong email or password"),
        AuthError::Token(e) => Status::unauthenticated(e.to_string()),
        AuthError::Hash(e) => Status::internal(e.to_string()),
        AuthError::Busy(busy) => overloaded(busy.to_string(), busy.retry_after_seconds()),
    }
}

#[tonic::async_trait]
impl<S: UserStore> Auth for AuthGrpc<S> {
    async fn sign_up(
        &self,
        request: Request<SignUpRequest>,
    ) -> Result<Response<SignUpResponse>, Status> {
        let r = request.into_inner();
        let name = Some(r.name).filter(|n| !n.is_empty());
        let user = self
            .accounts
            .sign_up(&r.email, &r.password, name)
            .await
            .map_err(status)?;
        Ok(Response::new(SignUpResponse {
            user_id: user.id,
            email: user.email,
        }))
    }

    async fn sign_in(
        &self,
        request: Request<SignInRequest>,
    ) -> Result<Response<SignInResponse>, Status> {
        let r = request.into_inner();
        let (_, token) = self
            .accounts
            .sign_in(&r.email, &r.password, unix_now())
            .await
            .map_err(status)?;
        Ok(Response::new(SignInResponse {
            token: token.token,
            expires_at: token.expires_at,
        }))
    }

    async fn verify_token(
        &self,
        request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        let token = request.into_inner().token;
        let claims = self
            .accounts
            .issuer()
            .verifier()
            .verify_user(&token, unix_now())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        Ok(Response::new(VerifyTokenResponse {
            user_id: claims.sub,
            email: claims.email.unwrap_or_default(),
            expires_at: claims.exp,
        }))
    }
}

/// Serves auth and gRPC health on `listener` until `shutdown` completes, then drains.
pub async fn serve<S: UserStore>(
    listener: TcpListener,
    accounts: Arc<Accounts<S>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let verifier = Arc::new(accounts.issuer().verifier());
    let auth = AuthServer::with_interceptor(
        AuthGrpc::new(accounts),
        RequireServiceToken::new(verifier, SERVICE),
    );
    storefront_platform::grpc::serve(listener, auth, shutdown).await
}
