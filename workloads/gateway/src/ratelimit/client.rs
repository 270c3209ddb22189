//! Who a request's client is, and which per-client budgets it spends (pure): the rules of
//! the route table's `clientLimits` ([`ClientRules`]), the client's key ([`ClientKey`]: the
//! signed-in user, else the address), and the address behind trusted proxies
//! ([`ClientRules::client_address`]).
//!
//! - A request with a valid Bearer token is its user's (`perUser`); any other — anonymous,
//!   or a token that does not verify — is its address's (`perAddress`), so forged tokens
//!   are limited per address before they spend the shop's budget.
//! - IPv6 addresses count by their /64: one host is given a /64 and can pick any address in
//!   it, so counting single addresses would give it 2^64 budgets. IPv4 counts by address.
//! - `X-Forwarded-For` is believed only when the connection's peer is a trusted proxy; the
//!   client is then the rightmost address that is not itself trusted (each proxy appends
//!   the address it saw, so everything left of that is the client's own writing). A header
//!   that does not parse leaves the peer as the client.
//! - A route's own limit (`routes`) is spent beside the user's or address's, keyed by the
//!   same client.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv6Addr},
};

use ipnet::IpNet;

use super::gcra::Rate;
use crate::routing::table::ClientLimitsTable;

/// The client a budget is kept for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A signed-in user (the token's subject).
    User(Box<str>),
    /// An IPv4 address, or an IPv6 /64 (the host part zeroed).
    Address(IpAddr),
}

impl ClientKey {
    /// The key of a user.
    pub fn user(subject: &str) -> Self {
        Self::User(subject.into())
    }

    /// The key of an address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
    pub fn address(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self::Address(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Self::Address(v4),
        }
    }

    /// Appends the key's text to a Redis key (`u:<subject>` or `a:<address>`).
    pub fn write_to(&self, out: &mut String) {
        let _ = match self {
            Self::User(subject) => write!(out, "u:{subject}"),
            Self::Address(address) => write!(out, "a:{address}"),
        };
    }
}

/// Which budget of the rules a check spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    PerUser,
    PerAddress,
    /// The per-client limit of route `n` of [`ClientRules::routes`].
    Route(u8),
}

/// One per-client budget in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientBudget {
    /// The name in the `RateLimit-Policy` header and the metrics: `user`, `address`, or
    /// `route:<METHOD path>`.
    pub name: std::sync::Arc<str>,
    pub rate: Rate,
    pub requests_per_minute: u32,
}

/// The per-client rules of a route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRules {
    pub per_user: ClientBudget,
    pub per_address: ClientBudget,
    /// `(method, path template, budget)`: the route's own per-client limit.
    pub routes: Vec<(http::Method, String, ClientBudget)>,
    pub trusted_proxies: Vec<IpNet>,
}

fn budget(name: &str, rpm: u32, burst: u32) -> Result<ClientBudget, String> {
    let rate = Rate::per_minute(u64::from(rpm), u64::from(burst))
        .map_err(|e| format!("the per-client limit {name} is invalid: {e}"))?;
    Ok(ClientBudget {
        name: name.into(),
        rate,
        requests_per_minute: rpm,
    })
}

impl ClientRules {
    /// The rules of a table's `clientLimits`; a bad limit, route or CIDR is an error naming
    /// it (the whole table is refused, as for the other limits).
    pub fn from_table(table: &ClientLimitsTable) -> Result<Self, String> {
        let per_user = budget(
            "user",
            table.per_user.requests_per_minute,
            table.per_user.burst,
        )?;
        let per_address = budget(
            "address",
            table.per_address.requests_per_minute,
            table.per_address.burst,
        )?;
        if table.routes.len() > usize::from(u8::MAX) {
            return Err("clientLimits: more than 255 route limits".into());
        }
        let mut routes = Vec::with_capacity(table.routes.len());
        for r in &table.routes {
            let (method, path) = r
                .route
                .split_once(' ')
                .ok_or_else(|| format!("clientLimits: route {:?} is not `METHOD path`", r.route))?;
            let method = method
                .parse::<http::Method>()
                .map_err(|_| format!("clientLimits: route {:?} has a bad method", r.route))?;
            let b = budget(
                &format!("route:{}", r.route),
                r.limit.requests_per_minute,
                r.limit.burst,
            )?;
            routes.push((method, path.to_string(), b));
        }
        let trusted_proxies = table
            .trusted_proxies
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .map_err(|_| format!("clientLimits: trusted proxy {c:?} is not a CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            per_user,
            per_address,
            routes,
            trusted_proxies,
        })
    }

    /// The budget of `rule`.
    pub fn budget(&self, rule: Rule) -> Option<&ClientBudget> {
        match rule {
            Rule::PerUser => Some(&self.per_user),
            Rule::PerAddress => Some(&self.per_address),
            Rule::Route(n) => self.routes.get(usize::from(n)).map(|(_, _, b)| b),
        }
    }

    /// The route limit of `method` on path template `path`, if it has one.
    pub fn route_rule(&self, method: &http::Method, path: &str) -> Option<Rule> {
        self.routes
            .iter()
            .position(|(m, p, _)| m == method && p == path)
            .and_then(|n| u8::try_from(n).ok())
            .map(Rule::Route)
    }

    fn trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the
    /// rightmost address of `X-Forwarded-For` (every value of the header, in order) that is
    /// not trusted (the leftmost one when all are).
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in forwarded_for {
            for hop in value.split(',') {
                match parse_hop(hop.trim()) {
                    Some(address) => hops.push(address),
                    // Unreadable: the proxy chain cannot be followed; the peer stays.
                    None => return peer,
                }
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.trusted(hop) {
                break;
            }
        }
        client.to_canonical()
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::table::{ClientLimitsTable, RateLimit, RouteClientLimit};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn table(proxies: &[&str]) -> ClientLimitsTable {
        ClientLimitsTable {
            per_user: RateLimit {
                requests_per_minute: 600,
                burst: 100,
            },
            per_address: RateLimit {
                requests_per_minute: 1200,
                burst: 200,
            },
            routes: vec![RouteClientLimit {
                route: "POST /api/v1/orders".into(),
                limit: RateLimit {
                    requests_per_minute: 30,
                    burst: 3,
                },
            }],
            trusted_proxies: proxies.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_by_address() {
        assert_eq!(
            ClientKey::address(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::address(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::address(ip("2001:db8:1:2::1")),
            ClientKey::address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::address(ip("::ffff:203.0.113.7")),
            ClientKey::address(ip("203.0.113.7"))
        );
        assert_ne!(
            ClientKey::address(ip("203.0.113.7")),
            ClientKey::address(ip("203.0.113.8"))
        );
        let mut key = String::new();
        ClientKey::address(ip("2001:db8:1:2:aaaa::1")).write_to(&mut key);
        key.push('|');
        ClientKey::user("u-1").write_to(&mut key);
        assert_eq!(key, "a:2001:db8:1:2::|u:u-1");
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let rules = ClientRules::from_table(&table(&["10.0.0.0/8", "fd00::/8"])).expect("rules");
        let one = |peer: &str, xff: &[&str]| rules.client_address(ip(peer), xff.iter().copied());
        // An untrusted peer is the client, whatever it writes.
        assert_eq!(one("198.51.100.9", &["203.0.113.7"]), ip("198.51.100.9"));
        // A trusted proxy: the rightmost untrusted hop.
        assert_eq!(one("10.1.2.3", &["203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(
            one("10.1.2.3", &["6.6.6.6, 203.0.113.7, 10.9.9.9"]),
            ip("203.0.113.7"),
            "a forged leftmost entry is ignored"
        );
        assert_eq!(
            one("10.1.2.3", &["6.6.6.6", "203.0.113.7:4431"]),
            ip("203.0.113.7"),
            "several headers, a port"
        );
        assert_eq!(one("fd00::1", &["[2001:db8::5]:80"]), ip("2001:db8::5"));
        // All trusted: the leftmost (the farthest the chain goes).
        assert_eq!(one("10.1.2.3", &["10.7.7.7, 10.8.8.8"]), ip("10.7.7.7"));
        // No header, or garbage: the proxy itself.
        assert_eq!(one("10.1.2.3", &[]), ip("10.1.2.3"));
        assert_eq!(one("10.1.2.3", &["unknown, 203.0.113.7"]), ip("10.1.2.3"));
        // No trusted proxies: never believed.
        let none = ClientRules::from_table(&table(&[])).expect("rules");
        assert_eq!(
            none.client_address(ip("10.1.2.3"), ["203.0.113.7"].into_iter()),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn route_limits_are_found_by_method_and_template() {
        let rules = ClientRules::from_table(&table(&[])).expect("rules");
        assert_eq!(
            rules.route_rule(&http::Method::POST, "/api/v1/orders"),
            Some(Rule::Route(0))
        );
        assert_eq!(rules.route_rule(&http::Method::GET, "/api/v1/orders"), None);
        let b = rules.budget(Rule::Route(0)).expect("budget");
        assert_eq!(&*b.name, "route:POST /api/v1/orders");
        assert_eq!(b.rate, Rate::per_minute(30, 3).expect("rate"));
        assert_eq!(rules.budget(Rule::Route(1)), None);
        assert_eq!(&*rules.budget(Rule::PerUser).expect("user").name, "user");
    }

    #[test]
    fn bad_rules_are_named() {
        let mut t = table(&["10.0.0.0/8", "the balancer"]);
        let err = ClientRules::from_table(&t).expect_err("bad cidr");
        assert!(err.contains("the balancer"), "{err}");
        t.trusted_proxies.clear();
        t.routes[0].route = "/api/v1/orders".into();
        let err = ClientRules::from_table(&t).expect_err("bad route");
        assert!(err.contains("METHOD path"), "{err}");
        t.routes[0].route = "POST /api/v1/orders".into();
        t.per_user.requests_per_minute = 70_000_000;
        let err = ClientRules::from_table(&t).expect_err("absurd");
        assert!(err.contains("user"), "{err}");
    }
}
