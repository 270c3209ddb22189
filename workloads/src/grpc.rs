//! gRPC plumbing shared by every service: the service-token check on the server side, the
//! token attachment on the client side, and serving a router on a listener until shutdown.
//!
//! ```text
//!  caller (gateway)                                  callee (auth)
//!  ServiceTokenAttacher ── authorization: Bearer <jwt aud=auth> ──▶ RequireServiceToken
//!   mints a fresh short-lived token per call          verifies signature, kind, aud=self, exp
//! ```
//!
//! Transport security (mutual TLS from mounted certificates) is a later switch on the same
//! `Server`/`Channel` builders; the token check stays either way.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

use crate::auth::domain::{TokenIssuer, TokenVerifier};

/// The gRPC port every service listens on (the operator's Services point at it).
pub const GRPC_PORT: u16 = 9090;

/// Unix seconds now (adapters only; the domain takes `now` as an argument).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The bearer token of a request's `authorization` metadata.
pub fn bearer<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Server-side interceptor: only calls with a valid service token addressed to this
/// service pass; the caller's service name is added to the request extensions.
#[derive(Clone)]
pub struct RequireServiceToken {
    verifier: Arc<TokenVerifier>,
    audience: &'static str,
}

/// The calling service, as proven by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

impl RequireServiceToken {
    pub fn new(verifier: Arc<TokenVerifier>, audience: &'static str) -> Self {
        Self { verifier, audience }
    }
}

impl Interceptor for RequireServiceToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = bearer(&request).ok_or_else(|| {
            Status::unauthenticated("missing service token (authorization: Bearer)")
        })?;
        let claims = self
            .verifier
            .verify_service(token, self.audience, unix_now())
            .map_err(|e| Status::unauthenticated(format!("service token refused: {e}")))?;
        request.extensions_mut().insert(Caller(claims.sub));
        Ok(request)
    }
}

/// Client-side interceptor: attaches a fresh service token from `from` to `to`.
#[derive(Clone)]
pub struct ServiceTokenAttacher {
    issuer: Arc<TokenIssuer>,
    from: &'static str,
    to: &'static str,
}

impl ServiceTokenAttacher {
    pub fn new(issuer: Arc<TokenIssuer>, from: &'static str, to: &'static str) -> Self {
        Self { issuer, from, to }
    }
}

impl Interceptor for ServiceTokenAttacher {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self
            .issuer
            .issue_service(self.from, self.to, unix_now())
            .map_err(|e| Status::internal(format!("failed to mint a service token: {e}")))?;
        let value = MetadataValue::try_from(format!("Bearer {}", token.token))
            .map_err(|e| Status::internal(format!("failed to encode the service token: {e}")))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}
