//! The client's address, for the services that throttle per address (auth's sign-in and
//! sign-up): the peer address of the client's connection, as axum's [`ConnectInfo`] gives
//! it when the server was started with it (`run` does:
//! `into_make_service_with_connect_info`). A router served without it — tests — has no
//! address, and the services then apply no per-address throttle.
//!
//! `X-Forwarded-For` is believed only from the proxies the Storefront names as trusted
//! (`clientLimits.trustedProxies`): the per-client limits resolve the address
//! ([`crate::ratelimit::client::ClientRules::client_address`]) and leave it in the request,
//! and this extractor takes it from there. Any client can write the header, so believing it
//! from anyone else would let one client spread its attempts over any addresses it names;
//! with the per-client limits turned off it is not read at all (the peer is the client).
//!
//! The address travels as the `x-client-address` metadata
//! ([`storefront_contracts::client_address`]), which auth believes only from the gateway's
//! service token.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::{extract::ConnectInfo, http::request::Parts};
use storefront_contracts::client_address;

/// The client's address, if the server knows it (an extractor; never rejects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        if let Some(super::limits::ResolvedAddress(address)) = parts.extensions.get() {
            return Ok(Self(Some(*address)));
        }
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip().to_canonical()),
        ))
    }
}

impl ClientAddress {
    /// `message` as a gRPC request carrying this address (none: no metadata).
    pub fn request<T>(self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(address) = self.0 {
            client_address::attach(request.metadata_mut(), address);
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequestParts;

    async fn extract(connect: Option<&str>) -> ClientAddress {
        let mut request = axum::http::Request::new(());
        if let Some(peer) = connect {
            let peer: SocketAddr = peer.parse().expect("socket address");
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        // A forwarded header is never believed.
        request.headers_mut().insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("198.51.100.1"),
        );
        let (mut parts, ()) = request.into_parts();
        let Ok(address) = ClientAddress::from_request_parts(&mut parts, &()).await;
        address
    }

    #[tokio::test]
    async fn the_peer_address_is_the_client_and_forwarded_headers_are_not() {
        assert_eq!(
            extract(Some("203.0.113.7:51234")).await,
            ClientAddress(Some("203.0.113.7".parse().expect("ip")))
        );
        assert_eq!(
            extract(Some("[::ffff:203.0.113.7]:51234")).await,
            ClientAddress(Some("203.0.113.7".parse().expect("ip"))),
            "an IPv4 client on a dual-stack socket is its IPv4 address"
        );
        assert_eq!(extract(None).await, ClientAddress(None));
        let with = ClientAddress(Some("2001:db8::1".parse().expect("ip"))).request(());
        assert_eq!(
            client_address::read(with.metadata()),
            Some("2001:db8::1".parse().expect("ip"))
        );
        let without = ClientAddress(None).request(());
        assert!(client_address::read(without.metadata()).is_none());
    }
}
