//! The auth service's gRPC adapter: `proto/auth.proto` over [`Accounts`], plus serving it
//! with gRPC health behind the service-token check. A sign-in or sign-up refused by the
//! hashing gate is `RESOURCE_EXHAUSTED` with a `retry-after` hint
//! ([`storefront_contracts::overload`]), which the gateway answers as 503 with `Retry-After`;
//! one refused by a throttle ([`crate::throttle`]) is the same code marked as a throttle
//! ([`overload::throttled`]), which the gateway answers as 429 with `Retry-After`.
//!
//! The client's address for the throttles is the [`client_address`] metadata, believed only
//! when the call carries the gateway's service token ([`client_address_of`]).

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::service::{Accounts, AuthError, StoreError, UserStore};
use storefront_contracts::proto::auth::{
    SignInRequest, SignInResponse, SignUpRequest, SignUpResponse, VerifyTokenRequest,
    VerifyTokenResponse,
    auth_server::{Auth, AuthServer},
};
use storefront_contracts::{
    client_address::{self, TRUSTED_CALLER},
    overload::{self, overloaded},
};
use storefront_platform::grpc::{Caller, RequireServiceToken, unix_now};
use storefront_platform::request_id::hidden;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "auth";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: the gateway, for shoppers signing up and in); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "SignUp" | "SignIn" | "VerifyToken" => &["gateway"],
        _ => &[],
    }
}

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
        AuthError::Store(e @ StoreError::Unavailable(_)) => {
            hidden(Code::Unavailable, "the account store is unavailable", e)
        }
        AuthError::WrongCredentials => Status::unauthenticated("wrong email or password"),
        AuthError::Token(e) => Status::unauthenticated(e.to_string()),
        AuthError::Hash(e) => hidden(Code::Internal, "failed to hash the password", e),
        AuthError::Busy(busy) => overloaded(busy.to_string(), busy.retry_after_seconds()),
        AuthError::Throttled(t) => overload::throttled(t.to_string(), t.retry_after_seconds()),
    }
}

/// The client's address of a call: its [`client_address`] metadata when the caller proved
/// to be the gateway, else none (another service could name any address).
pub fn client_address_of<T>(request: &Request<T>) -> Option<std::net::IpAddr> {
    let caller = request.extensions().get::<Caller>()?;
    if caller.0 != TRUSTED_CALLER {
        return None;
    }
    client_address::read(request.metadata())
}

#[tonic::async_trait]
impl<S: UserStore> Auth for AuthGrpc<S> {
    async fn sign_up(
        &self,
        request: Request<SignUpRequest>,
    ) -> Result<Response<SignUpResponse>, Status> {
        let from = client_address_of(&request);
        let r = request.into_inner();
        let name = Some(r.name).filter(|n| !n.is_empty());
        let user = self
            .accounts
            .sign_up_from(&r.email, &r.password, name, from)
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
        let from = client_address_of(&request);
        let r = request.into_inner();
        let (_, token) = self
            .accounts
            .sign_in_from(&r.email, &r.password, from, unix_now())
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
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, auth, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::throttle::Scope, throttle::Throttled};
    use storefront_contracts::client_address::attach;
    use tonic::Code;

    fn request(caller: Option<&str>, address: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(caller) = caller {
            request.extensions_mut().insert(Caller(caller.to_string()));
        }
        if let Some(address) = address {
            attach(request.metadata_mut(), address.parse().expect("address"));
        }
        request
    }

    #[test]
    fn the_client_address_is_believed_from_the_gateway_only() {
        let from_gateway = client_address_of(&request(Some("gateway"), Some("203.0.113.7")));
        assert_eq!(from_gateway, Some("203.0.113.7".parse().expect("address")));
        for (caller, address) in [
            (Some("orders"), Some("203.0.113.7")),
            (None, Some("203.0.113.7")),
            (Some("gateway"), None),
        ] {
            assert_eq!(
                client_address_of(&request(caller, address)),
                None,
                "{caller:?} {address:?}"
            );
        }
    }

    #[test]
    fn a_throttle_is_a_marked_resource_exhausted_and_a_busy_gate_is_not() {
        let throttled = status(AuthError::Throttled(Throttled {
            scope: Scope::SignInAccount,
            wait: crate::domain::throttle::Wait {
                retry_after: std::time::Duration::from_millis(1500),
            },
        }));
        assert_eq!(throttled.code(), Code::ResourceExhausted);
        assert!(overload::is_throttled(&throttled));
        assert_eq!(overload::retry_after(&throttled), Some(2));
        assert_eq!(
            throttled.message(),
            "too many sign-in attempts for this account; retry in 2 s"
        );
        let busy = status(AuthError::Busy(crate::hash_gate::Busy {
            retry_after: std::time::Duration::from_secs(1),
            concurrency: 2,
        }));
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert!(!overload::is_throttled(&busy));
    }
}
