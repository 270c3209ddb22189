//! The client's address, passed by the gateway to the services it calls as gRPC metadata
//! ([`CLIENT_ADDRESS`]), so that auth can throttle sign-ins and sign-ups per address. It is
//! the peer address of the client's connection to the gateway; `X-Forwarded-For` is not
//! used (anyone can write it; believing it needs the trusted proxies of the per-client
//! limits). A service believes the metadata only from [`TRUSTED_CALLER`]'s service token:
//! any other caller could name any address.

use std::net::IpAddr;

use tonic::metadata::{MetadataMap, MetadataValue};

/// The metadata key (an IP address in its usual text form, no port).
pub const CLIENT_ADDRESS: &str = "x-client-address";

/// The only caller whose [`CLIENT_ADDRESS`] is believed: the gateway (its service tokens'
/// subject).
pub const TRUSTED_CALLER: &str = "gateway";

/// Sets `address` as the client address of an outgoing call.
pub fn attach(metadata: &mut MetadataMap, address: IpAddr) {
    if let Ok(value) = MetadataValue::try_from(address.to_string()) {
        metadata.insert(CLIENT_ADDRESS, value);
    }
}

/// The client address in `metadata`, if present and an IP address (a port or anything else
/// is ignored: no address rather than a wrong one).
pub fn read(metadata: &MetadataMap) -> Option<IpAddr> {
    metadata
        .get(CLIENT_ADDRESS)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_goes_out_and_comes_back_and_anything_else_is_none() {
        for address in ["203.0.113.7", "2001:db8::1"] {
            let mut metadata = MetadataMap::new();
            attach(&mut metadata, address.parse().expect("address"));
            assert_eq!(
                read(&metadata).map(|a| a.to_string()).as_deref(),
                Some(address)
            );
        }
        assert_eq!(read(&MetadataMap::new()), None);
        for odd in ["203.0.113.7:443", "localhost", "", "1.2.3.4, 5.6.7.8"] {
            let mut metadata = MetadataMap::new();
            metadata.insert(CLIENT_ADDRESS, MetadataValue::try_from(odd).expect("ascii"));
            assert_eq!(read(&metadata), None, "{odd:?}");
        }
    }
}
