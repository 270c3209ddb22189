//! gRPC plumbing shared by every service: the service-token check on the server side, the
//! token attachment on the client side, and serving a service (with gRPC health, metrics and
//! mutual TLS when installed) on a listener until shutdown ([`serve`]).
//!
//! ```text
//!  caller (gateway)                                  callee (auth)
//!  ServiceTokenAttacher ── storefront-service-token: <jwt aud=auth> ──▶ RequireServiceToken
//!   mints a fresh short-lived token per call          verifies signature, kind, aud=self, exp
//! ```
//!
//! Signing and verifying Ed25519 tokens costs CPU on every call, so both ends cache: a
//! caller reuses its token to a callee for the first half of its lifetime, and a callee
//! remembers the tokens it verified (until they expire, in a bounded cache) — a repeated
//! token costs a cache lookup, a new or tampered one the full check.
//!
//! Who may call what: a server's [`RequireServiceToken`] takes an allow-list, the services
//! that may call each of its methods (the architecture's call graph, in each service's
//! `grpc` module); a caller proven by its token but not on the list is refused with
//! `PERMISSION_DENIED`. Every refusal is logged with its reason and counted in
//! `storefront_service_token_refusals_total{service,reason}`.
//!
//! Transport security is a switch: with `GRPC_TLS_DIR` set (a mounted Secret with `ca.crt`,
//! `tls.crt`, `tls.key`, the layout cert-manager writes), every server requires a client
//! certificate signed by that CA ([`server`]) and every client presents its own and checks
//! the server's ([`client_tls`]). Issuing and rotating the certificates is not built yet, so
//! the operator does not set it (the Storefront says `MTLSEnforced=False`). The token check
//! stays either way.

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig},
};

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::token::{Claims, IssuedToken, TokenIssuer, TokenVerifier};

/// Verified tokens a server remembers at most.
const VERIFIED_CACHE: usize = 1024;

/// The gRPC port every service listens on (the operator's Services point at it).
pub const GRPC_PORT: u16 = 50051;

/// The certificates of mutual TLS between services.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signs every service's certificate (PEM).
    pub ca: String,
    /// This service's certificate chain (PEM).
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
}

impl TlsFiles {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`.
    pub fn read(dir: &std::path::Path) -> Result<Self, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("failed to read {}: {e}", dir.join(name).display()))
        };
        Ok(Self {
            ca: read("ca.crt")?,
            cert: read("tls.crt")?,
            key: read("tls.key")?,
        })
    }
}

static TLS: std::sync::OnceLock<TlsFiles> = std::sync::OnceLock::new();

/// Turns mutual TLS on for every gRPC server and client of this process (the first call
/// wins; a process runs one service).
pub fn install_tls(files: TlsFiles) {
    let _ = TLS.set(files);
}

/// A server builder: plain, or requiring client certificates when TLS is installed.
pub fn server() -> Result<Server, tonic::transport::Error> {
    let builder = Server::builder();
    match TLS.get() {
        None => Ok(builder),
        Some(tls) => builder.tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.cert, &tls.key))
                .client_ca_root(Certificate::from_pem(&tls.ca)),
        ),
    }
}

/// The client side of mutual TLS for a call to `host`, when TLS is installed.
pub fn client_tls(host: &str) -> Option<ClientTlsConfig> {
    TLS.get().map(|tls| {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca))
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .domain_name(host)
    })
}

/// The client side of mutual TLS as a rustls configuration (for the gateway's own HTTP/2
/// channel, the gateway's `channel` module): trusts the installed CA, presents this service's
/// certificate, offers ALPN `h2`. `None` without TLS; an error names a bad certificate file.
pub fn client_rustls() -> Option<Result<Arc<rustls::ClientConfig>, String>> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    let tls = TLS.get()?;
    Some(CONFIG.get_or_init(|| rustls_config(tls)).clone())
}

fn rustls_config(tls: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = |pem: &str, what: &str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the {what} is not a PEM certificate: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(&tls.ca, "CA (ca.crt)")? {
        roots
            .add(ca)
            .map_err(|e| format!("the CA (ca.crt) is not usable: {e}"))?;
    }
    let chain = certs(&tls.cert, "certificate (tls.crt)")?;
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes())
        .map_err(|e| format!("the key (tls.key) is not a PEM private key: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("failed to set up TLS: {e}"))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| format!("the certificate (tls.crt) and key (tls.key) are not usable: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The connections a gRPC server accepts on `listener`, with Nagle's algorithm off. tonic's
/// `tcp_nodelay` does not apply to a server given its own incoming stream, and without it a
/// reply of more than one frame waits for the client's delayed ACK: latency then tracks the
/// gap between requests (22 ms at 50 requests/s, measured by `tests/e2e/bench/shop`).
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Serves one gRPC service and gRPC health (reporting it serving) on `listener`, with the
/// request metrics layer, each call's request id ([`crate::request_id::RequestIdLayer`]) and
/// mutual TLS when it is installed, until `shutdown` completes; then drains the calls in
/// flight. Every service's `serve` is this with its own service.
pub async fn serve<S>(
    listener: tokio::net::TcpListener,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    S: tower_service::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<S>().await;
    server()?
        .layer(crate::metrics::GrpcMetricsLayer::installed())
        .layer(crate::request_id::RequestIdLayer)
        .layer(CalledMethodLayer)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}

/// Unix seconds now (adapters only; the domain takes `now` as an argument).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The metadata key a caller sends its service token under (`storefront-service-token:
/// <jwt>`). Not `authorization`: HTTP/2 never adds an `authorization` value to the HPACK
/// table (nghttp2's rule, which h2 follows, against compression-oracle attacks), so a token
/// sent there is Huffman-coded into every call; under this name it is sent once per
/// connection and then as a one-byte index. The oracle needs an attacker's values in the same
/// header block, and the gateway forwards no client header to its upstreams (user input
/// travels in the protobuf message, which HPACK does not compress).
pub const SERVICE_TOKEN: &str = "storefront-service-token";

/// A request's service token: its `storefront-service-token` metadata, else its
/// `authorization: Bearer` (what other gRPC clients send).
pub fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let metadata = request.metadata();
    if let Some(token) = metadata.get(SERVICE_TOKEN) {
        return token.to_str().ok();
    }
    metadata
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Tokens verified before, with their claims, until they expire: a repeated token costs a
/// cache lookup instead of a signature check. Bounded by quick_cache (S3-FIFO eviction: a
/// burst of one-off tokens does not push out the tokens in steady use); only valid tokens
/// are remembered, and an expired one is checked again (and refused). quick_cache hashes with
/// foldhash, not SipHash: only verified tokens are inserted, so nobody can fill it with
/// colliding keys, and a token is ~250 bytes to hash on every request.
#[derive(Clone, Debug)]
pub struct VerifiedTokens {
    cache: Arc<quick_cache::sync::Cache<String, Arc<Claims>>>,
}

impl Default for VerifiedTokens {
    /// Room for [`VERIFIED_CACHE`] tokens (a service's callers: a handful).
    fn default() -> Self {
        Self::with_capacity(VERIFIED_CACHE)
    }
}

impl VerifiedTokens {
    /// Room for about `capacity` tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            cache: Arc::new(quick_cache::sync::Cache::new(capacity.max(1))),
        }
    }

    /// The claims of `token`: remembered, or from `verify` (and then remembered).
    pub fn get_or_verify<E>(
        &self,
        token: &str,
        now: i64,
        verify: impl FnOnce() -> Result<Claims, E>,
    ) -> Result<Arc<Claims>, E> {
        if let Some(claims) = self.cache.get(token)
            && now <= claims.exp.saturating_add(crate::token::LEEWAY_SECS)
        {
            return Ok(claims);
        }
        let claims = Arc::new(verify()?);
        self.cache.insert(token.to_string(), Arc::clone(&claims));
        Ok(claims)
    }

    /// Tokens remembered.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The method of the gRPC call being served (`CreateOrder` of
/// `/storefront.orders.v1.Orders/CreateOrder`), put into the request's extensions by
/// [`CalledMethodLayer`] ([`serve`] adds it): tonic's interceptors do not see the URI, and
/// [`RequireServiceToken`]'s allow-list is per method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalledMethod(pub String);

/// A tower layer that puts [`CalledMethod`] into every request's extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct CalledMethodLayer;

impl<S> tower_layer::Layer<S> for CalledMethodLayer {
    type Service = WithCalledMethod<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithCalledMethod(inner)
    }
}

/// The service [`CalledMethodLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct WithCalledMethod<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for WithCalledMethod<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let method = CalledMethod(method.to_string());
        request.extensions_mut().insert(method);
        self.0.call(request)
    }
}

/// Who may call a service: for a method's name, the services allowed to call it.
pub type Callers = fn(method: &str) -> &'static [&'static str];

type RefusalLabels = Vec<(&'static str, String)>;
static REFUSALS: std::sync::OnceLock<Family<RefusalLabels, Counter>> = std::sync::OnceLock::new();

/// Registers `storefront_service_token_refusals_total{service,reason}` in `registry` (the
/// first call wins; [`crate::metrics::install`] calls it).
pub fn install_refusal_metrics(registry: &mut Registry) {
    if REFUSALS.get().is_none() {
        let family = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "storefront_service_token_refusals",
            "gRPC calls refused for their service token (missing, forged, another service's key, expired) or their caller (not allowed to call the method), by reason",
            family.clone(),
        );
        let _ = REFUSALS.set(family);
    }
}

fn refused(service: &'static str, reason: &'static str) {
    if let Some(family) = REFUSALS.get() {
        family
            .get_or_create(&vec![
                ("service", service.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }
}

/// Server-side interceptor: only calls with a valid service token addressed to this
/// service, from a service its allow-list names for the method, pass; the caller's service
/// name is added to the request extensions.
#[derive(Clone)]
pub struct RequireServiceToken {
    verifier: Arc<TokenVerifier>,
    audience: &'static str,
    callers: Callers,
    verified: VerifiedTokens,
}

/// The calling service, as proven by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

impl RequireServiceToken {
    /// Calls to service `audience` with tokens `verifier` trusts, from the `callers` of
    /// each method.
    pub fn new(verifier: Arc<TokenVerifier>, audience: &'static str, callers: Callers) -> Self {
        Self {
            verifier,
            audience,
            callers,
            verified: VerifiedTokens::default(),
        }
    }

    /// The claims of a valid token, from the cache when it was verified before.
    fn check(&self, token: &str, now: i64) -> Result<Arc<Claims>, crate::token::TokenError> {
        self.verified.get_or_verify(token, now, || {
            self.verifier.verify_service(token, self.audience, now)
        })
    }

    /// Whether `caller` may call `method` (the allow-list).
    pub fn allows(&self, caller: &str, method: &str) -> bool {
        (self.callers)(method).contains(&caller)
    }
}

impl Interceptor for RequireServiceToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = bearer(&request) else {
            refused(self.audience, "missing");
            tracing::warn!(service = self.audience, "call refused: no service token");
            return Err(Status::unauthenticated(format!(
                "missing service token ({SERVICE_TOKEN} or authorization: Bearer)"
            )));
        };
        let claims = self.check(token, unix_now()).map_err(|e| {
            refused(self.audience, e.reason());
            tracing::warn!(service = self.audience, reason = %e, "call refused: service token");
            Status::unauthenticated(format!("service token refused: {e}"))
        })?;
        let method = request
            .extensions()
            .get::<CalledMethod>()
            .map(|m| m.0.as_str())
            .unwrap_or_default();
        if !self.allows(&claims.sub, method) {
            refused(self.audience, "not_allowed");
            tracing::warn!(
                service = self.audience,
                caller = %claims.sub,
                method,
                "call refused: the caller is not allowed to call this method"
            );
            return Err(Status::permission_denied(format!(
                "{} may not call {}'s {method:?}",
                claims.sub, self.audience
            )));
        }
        request.extensions_mut().insert(Caller(claims.sub.clone()));
        Ok(request)
    }
}

/// Client-side interceptor: attaches a fresh service token from `from` to `to` (as
/// [`SERVICE_TOKEN`] metadata).
#[derive(Clone)]
pub struct ServiceTokenAttacher {
    issuer: Arc<TokenIssuer>,
    from: &'static str,
    to: &'static str,
    /// The token in use, when it was minted, and it as metadata (cloned per call: a
    /// reference count, not a copy).
    current: Arc<Mutex<Option<CurrentToken>>>,
}

/// A minted token, the unix second it was minted, and it as metadata.
type CurrentToken = (IssuedToken, i64, MetadataValue<Ascii>);

impl ServiceTokenAttacher {
    pub fn new(issuer: Arc<TokenIssuer>, from: &'static str, to: &'static str) -> Self {
        Self {
            issuer,
            from,
            to,
            current: Arc::default(),
        }
    }

    /// The token to send at `now`, as metadata: the current one for the first half of its
    /// lifetime, then a fresh one.
    fn value(&self, now: i64) -> Result<MetadataValue<Ascii>, Status> {
        if let Ok(current) = self.current.lock()
            && let Some((token, minted, value)) = current.as_ref()
            && now < minted + (token.expires_at - minted) / 2
        {
            return Ok(value.clone());
        }
        let token = self
            .issuer
            .issue_service(self.from, self.to, now)
            .map_err(|e| Status::internal(format!("failed to mint a service token: {e}")))?;
        let value = MetadataValue::try_from(token.token.as_str())
            .map_err(|e| Status::internal(format!("failed to encode the service token: {e}")))?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some((token, now, value.clone()));
        }
        Ok(value)
    }
}

impl Interceptor for ServiceTokenAttacher {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = self.value(unix_now())?;
        request.metadata_mut().insert(SERVICE_TOKEN, value);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verified_token_cache_is_bounded_and_keeps_a_token_in_use_through_a_flood() {
        let claims = |sub: &str| Claims {
            iss: "storefront".into(),
            sub: sub.into(),
            aud: "orders".into(),
            iat: 0,
            exp: 100,
            kind: crate::token::TokenKind::Service,
            email: None,
        };
        let cache = VerifiedTokens::with_capacity(64);
        let mut hot_checks = 0;
        for i in 0..2_000 {
            cache
                .get_or_verify("hot", 10, || {
                    hot_checks += 1;
                    Ok::<_, ()>(claims("gateway"))
                })
                .expect("valid");
            let once = format!("one-off-{i}");
            cache
                .get_or_verify(&once, 10, || Ok::<_, ()>(claims(&once)))
                .expect("valid");
            assert!(cache.len() <= 128, "{} tokens held", cache.len());
        }
        assert_eq!(hot_checks, 1, "the token in use was verified again");
        // Expired: checked again.
        let again = cache.get_or_verify("hot", 10_000, || Err::<Claims, _>("expired"));
        assert_eq!(again, Err("expired"));
    }
    use crate::token::SigningKeys;

    fn issuer(seed: u8) -> Arc<TokenIssuer> {
        Arc::new(TokenIssuer::new(
            SigningKeys::from_seed([seed; 32]).expect("key"),
            "shop",
            3600,
            60,
        ))
    }

    #[test]
    fn a_caller_reuses_its_token_for_half_its_lifetime() {
        let attacher = ServiceTokenAttacher::new(issuer(1), "gateway", "orders");
        let first = attacher.value(1_000).expect("mints");
        assert_eq!(attacher.value(1_029).expect("reuses"), first);
        assert_ne!(attacher.value(1_030).expect("mints again"), first);
    }

    #[test]
    fn the_token_travels_as_indexable_metadata_and_authorization_still_works() {
        let issuer = issuer(4);
        let mut attacher = ServiceTokenAttacher::new(Arc::clone(&issuer), "gateway", "orders");
        let mut guard =
            RequireServiceToken::new(Arc::new(issuer.verifier()), "orders", |_| &["gateway"]);
        let sent = attacher.call(Request::new(())).expect("attached");
        assert!(sent.metadata().get("authorization").is_none());
        let token = sent
            .metadata()
            .get(SERVICE_TOKEN)
            .expect("under its own key")
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let admitted = guard.call(sent).expect("the callee accepts it");
        assert_eq!(
            admitted.extensions().get::<Caller>().map(|c| c.0.as_str()),
            Some("gateway")
        );
        // The same value on the next call (shared, not re-encoded).
        let again = attacher.call(Request::new(())).expect("attached");
        assert_eq!(
            again
                .metadata()
                .get(SERVICE_TOKEN)
                .expect("sent")
                .to_str()
                .ok(),
            Some(token.as_str())
        );

        // Other gRPC clients send `authorization: Bearer`: accepted too.
        let mut standard = Request::new(());
        standard.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
        );
        assert!(guard.call(standard).is_ok());
        let missing = guard.call(Request::new(())).expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains(SERVICE_TOKEN), "{missing:?}");
        let mut bad = Request::new(());
        bad.metadata_mut()
            .insert(SERVICE_TOKEN, MetadataValue::from_static("not.a.jwt"));
        assert_eq!(
            guard.call(bad).expect_err("refused").code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn a_callee_remembers_valid_tokens_only_until_they_expire() {
        let issuer = issuer(2);
        let guard =
            RequireServiceToken::new(Arc::new(issuer.verifier()), "orders", |_| &["gateway"]);
        let token = issuer
            .issue_service("gateway", "orders", 1_000)
            .expect("mints")
            .token;
        assert_eq!(guard.check(&token, 1_000).expect("valid").sub, "gateway");
        assert_eq!(guard.verified.len(), 1);
        assert!(guard.check(&token, 1_010).is_ok(), "cached");
        assert!(
            guard.check(&token, 10_000).is_err(),
            "expired, cached or not"
        );
        // Wrong audience and another key's token are refused and not remembered.
        let other = issuer
            .issue_service("gateway", "payments", 1_000)
            .expect("mints")
            .token;
        assert!(guard.check(&other, 1_000).is_err());
        let forged = self::issuer(3)
            .issue_service("gateway", "orders", 1_000)
            .expect("mints")
            .token;
        assert!(guard.check(&forged, 1_000).is_err());
        assert_eq!(guard.verified.len(), 1);
    }

    #[test]
    fn a_caller_not_on_the_methods_allow_list_is_refused_with_permission_denied() {
        use tower_layer::Layer;
        use tower_service::Service;
        fn callers(method: &str) -> &'static [&'static str] {
            match method {
                "GetCharge" => &["orders"],
                _ => &[],
            }
        }
        let issuer = issuer(5);
        let guard = RequireServiceToken::new(Arc::new(issuer.verifier()), "payments", callers);
        let call = |from: &'static str, method: Option<&str>| {
            let mut attacher = ServiceTokenAttacher::new(Arc::clone(&issuer), from, "payments");
            let mut request = attacher.call(Request::new(())).expect("attached");
            if let Some(m) = method {
                request.extensions_mut().insert(CalledMethod(m.into()));
            }
            guard.clone().call(request)
        };
        assert!(call("orders", Some("GetCharge")).is_ok());
        let denied = call("gateway", Some("GetCharge")).expect_err("not on the list");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("gateway may not call payments"),
            "{denied:?}"
        );
        // A method nobody is listed for, and a call whose method is unknown: refused.
        assert_eq!(
            call("orders", Some("Refund")).expect_err("no one").code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            call("orders", None).expect_err("unknown method").code(),
            tonic::Code::PermissionDenied
        );

        // The layer names the method from the request's path.
        #[derive(Clone)]
        struct Seen;
        impl tower_service::Service<http::Request<()>> for Seen {
            type Response = Option<CalledMethod>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn call(&mut self, r: http::Request<()>) -> Self::Future {
                std::future::ready(Ok(r.extensions().get::<CalledMethod>().cloned()))
            }
        }
        let request = http::Request::builder()
            .uri("/storefront.payments.v1.Payments/GetCharge")
            .body(())
            .expect("request");
        let seen = CalledMethodLayer.layer(Seen).call(request).into_inner();
        assert_eq!(seen, Ok(Some(CalledMethod("GetCharge".into()))));
    }
}
