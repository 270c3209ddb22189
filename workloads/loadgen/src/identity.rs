//! Who the gateway sees. Its per-client limits (issue 21) key a request on the signed-in user
//! when it carries a valid Bearer token, else on the client's address: the connection's peer,
//! or — only when that peer is a proxy the Storefront trusts — the rightmost address of
//! `X-Forwarded-For` that is not itself a trusted proxy. A load generator on one machine is
//! one address; these flags make it many clients, or one bad one.
//!
//! - **Shoppers** (the default): shopper `i` of `--users` is the account
//!   `loadgen-<i>@example.com` (created when the mix signs in or orders, or with
//!   `--signed-in`) and, with `--forwarded-for <CIDR>`, the address `i` of that range
//!   ([`Addresses::nth`]), sent as `X-Forwarded-For: <address>` — what a proxy in front of the
//!   shop appends — on its set-up and every request. An arrival is one shopper's, drawn from
//!   the run's generator.
//! - `--signed-in`: the catalog requests (browse, search, product, recommendations) carry
//!   the shopper's token too, as a signed-in shopper's browser does; orders always do, sign-ins
//!   never.
//! - `--abusive`: every arrival is one misbehaving client's ([`Face`]): the account
//!   [`ABUSER_EMAIL`], and with `--forwarded-for` the range's first address. Each request
//!   shows one of three faces, drawn evenly: no token, a forged token (a JWT of the right
//!   shape with a made-up signature, new every request: [`forged_token`]) and its own valid
//!   token; the kind comes from `--mix` as for shoppers. Behind `--forwarded-for` it also forges
//!   the header: `X-Forwarded-For: <random address>, <its address>` — a client may write any
//!   address, the proxy appends the real one, so a gateway that believed the leftmost entry
//!   would see a new client every request. As the gateway should count it: the address's
//!   budget for the first two faces, the user's for the third.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use anyhow::{Context, Result, bail};
use rand::Rng;

/// The abusive client's account.
pub const ABUSER_EMAIL: &str = "loadgen-abuser@example.com";

/// A forged token's header and claims (`{"alg":"EdDSA","typ":"JWT","kid":"loadgen-forged"}`,
/// `{"sub":"loadgen-forged","exp":4102444800}`), base64url; the signature is made up per request.
const FORGED_HEADER_AND_CLAIMS: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImxvYWRnZW4tZm9yZ2VkIn0.eyJzdWIiOiJsb2FkZ2VuLWZvcmdlZCIsImV4cCI6NDEwMjQ0NDgwMH0";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// An Ed25519 signature is 64 bytes: 86 base64url characters.
const SIGNATURE_CHARS: usize = 86;

/// A `--forwarded-for` range: the shoppers' addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    network: IpAddr,
    prefix: u8,
}

impl Addresses {
    /// How many shoppers the range holds: its IPv4 addresses (without the network and
    /// broadcast addresses when it has them), or its IPv6 /64s (the gateway counts an IPv6
    /// client by its /64, so two shoppers in one /64 would be one client).
    pub fn len(&self) -> u128 {
        match self.network {
            IpAddr::V4(_) if self.prefix >= 31 => 1 << (32 - self.prefix),
            IpAddr::V4(_) => (1 << (32 - self.prefix)) - 2,
            IpAddr::V6(_) => 1 << (64 - self.prefix),
        }
    }

    /// Whether the range holds no shopper (never: parsing refuses that).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shopper `i`'s address (`i < len()`, else it wraps): the `i`-th host of an IPv4 range,
    /// `::1` of the `i`-th /64 of an IPv6 one.
    pub fn nth(&self, i: usize) -> IpAddr {
        let i = i as u128 % self.len();
        match self.network {
            IpAddr::V4(n) => {
                let first = u32::from(self.prefix < 31);
                // i < len ≤ 2^32: fits.
                let offset = u32::try_from(i).unwrap_or(u32::MAX);
                IpAddr::V4(Ipv4Addr::from(u32::from(n) + first + offset))
            }
            IpAddr::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n) + (i << 64) + 1)),
        }
    }
}

impl FromStr for Addresses {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (address, prefix) = s.trim().split_once('/').with_context(|| {
            format!("invalid --forwarded-for {s:?}: a CIDR such as 198.51.100.0/24")
        })?;
        let address: IpAddr = address.parse().with_context(|| {
            format!("invalid --forwarded-for {s:?}: {address:?} is not an IP address")
        })?;
        let max = if address.is_ipv4() { 32 } else { 64 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .with_context(|| match address {
                IpAddr::V4(_) => format!("invalid --forwarded-for {s:?}: the prefix must be 0 to 32"),
                IpAddr::V6(_) => format!(
                    "invalid --forwarded-for {s:?}: an IPv6 range must be a /64 or wider (the gateway counts an IPv6 client by its /64)"
                ),
            })?;
        let network = match address {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// How one request of the abusive client presents itself (a row of its report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Face {
    /// No token: counted by its address.
    Anonymous,
    /// A forged token: invalid, so counted by its address too.
    ForgedToken,
    /// Its own account's valid token: counted by the user.
    SignedIn,
}

impl Face {
    pub const ALL: [Face; 3] = [Face::Anonymous, Face::ForgedToken, Face::SignedIn];

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Face::Anonymous => "anonymous",
            Face::ForgedToken => "forged-token",
            Face::SignedIn => "signed-in",
        }
    }

    /// What the gateway should count it against, for the report.
    pub fn counted_as(self) -> &'static str {
        match self {
            Face::Anonymous => "its address (no token)",
            Face::ForgedToken => "its address (a bad token)",
            Face::SignedIn => "its user (a valid token)",
        }
    }

    /// One of the three, evenly.
    pub fn pick(rng: &mut impl Rng) -> Face {
        Face::ALL[rng.random_range(0..Face::ALL.len())]
    }
}

impl fmt::Display for Face {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWT of the right shape that no key signed: a made-up signature every time.
pub fn forged_token(rng: &mut impl Rng) -> String {
    let mut token = String::with_capacity(FORGED_HEADER_AND_CLAIMS.len() + 1 + SIGNATURE_CHARS);
    token.push_str(FORGED_HEADER_AND_CLAIMS);
    token.push('.');
    for _ in 0..SIGNATURE_CHARS {
        token.push(char::from(BASE64URL[rng.random_range(0..BASE64URL.len())]));
    }
    token
}

/// The abusive client's `X-Forwarded-For`: a made-up address it wrote, then its own (what the
/// proxy appends).
pub fn forged_forwarded_for(rng: &mut impl Rng, own: IpAddr) -> String {
    let forged = Ipv4Addr::from(rng.random::<u32>());
    format!("{forged}, {own}")
}

/// Checks that a range holds every shopper.
pub fn check_room(addresses: &Addresses, shoppers: u32) -> Result<()> {
    if u128::from(shoppers) > addresses.len() {
        bail!(
            "invalid --forwarded-for {addresses}: it holds {} shopper addresses, fewer than --users {shoppers} (use a wider range)",
            addresses.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::rng;

    fn parse(s: &str) -> Addresses {
        s.parse().expect(s)
    }

    #[test]
    fn shoppers_get_distinct_addresses_of_the_range() {
        let r = parse("198.51.100.77/24");
        assert_eq!(r.to_string(), "198.51.100.0/24");
        assert_eq!(r.len(), 254);
        assert_eq!(r.nth(0).to_string(), "198.51.100.1");
        assert_eq!(r.nth(253).to_string(), "198.51.100.254");
        let all: std::collections::BTreeSet<_> = (0..254).map(|i| r.nth(i)).collect();
        assert_eq!(all.len(), 254);
        // A single address and a /31 have no network or broadcast address to skip.
        assert_eq!(parse("203.0.113.9/32").nth(0).to_string(), "203.0.113.9");
        assert_eq!(parse("203.0.113.8/31").nth(1).to_string(), "203.0.113.9");
        assert_eq!(parse("0.0.0.0/0").len(), (1 << 32) - 2);
    }

    #[test]
    fn ipv6_shoppers_get_a_64_each() {
        let r = parse("2001:db8:7::/48");
        assert_eq!(r.len(), 1 << 16);
        assert_eq!(r.nth(0).to_string(), "2001:db8:7::1");
        assert_eq!(r.nth(1).to_string(), "2001:db8:7:1::1");
        assert_eq!(parse("2001:db8::/64").len(), 1);
    }

    #[test]
    fn bad_ranges_are_clear_errors() {
        for (bad, wanted) in [
            ("198.51.100.0", "a CIDR such as"),
            ("shop/24", "is not an IP address"),
            ("198.51.100.0/33", "the prefix must be 0 to 32"),
            ("198.51.100.0/x", "the prefix must be 0 to 32"),
            ("2001:db8::/96", "a /64 or wider"),
        ] {
            let err = format!("{:#}", bad.parse::<Addresses>().expect_err(bad));
            assert!(err.contains(wanted), "{bad}: {err}");
        }
        let err = check_room(&parse("198.51.100.0/29"), 7).expect_err("6 addresses");
        assert!(
            err.to_string().contains("holds 6 shopper addresses"),
            "{err}"
        );
        check_room(&parse("198.51.100.0/29"), 6).expect("room for 6");
    }

    #[test]
    fn forged_tokens_look_like_tokens_and_never_repeat() {
        let mut r = rng(5);
        let a = forged_token(&mut r);
        let b = forged_token(&mut r);
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].len(), SIGNATURE_CHARS);
        assert!(a.bytes().all(|c| c == b'.' || BASE64URL.contains(&c)));
    }

    #[test]
    fn the_abuser_writes_a_forged_hop_before_its_own_address() {
        let own = parse("203.0.113.0/24").nth(0);
        let mut r = rng(1);
        let a = forged_forwarded_for(&mut r, own);
        let b = forged_forwarded_for(&mut r, own);
        assert_ne!(a, b);
        assert!(a.ends_with(", 203.0.113.1"), "{a}");
        let faces: std::collections::BTreeSet<_> = (0..100).map(|_| Face::pick(&mut r)).collect();
        assert_eq!(faces.len(), 3);
    }
}
