//! Per-client limits at the gateway (`spec.clientLimits`): how much one client may ask of the
//! shop, beside the shop-wide and per-service budgets (which hold for everyone together).
//!
//! A request's client is the signed-in user when it carries a valid Bearer token, else its
//! address (the connection's peer, or the address a trusted proxy forwarded). Signed-in
//! requests spend the user's budget (`perUser`); requests without a valid token — anonymous
//! or with a bad token — spend their address's (`perAddress`) *before* they can spend the
//! shop's. A route may have a tighter per-client limit (`routes`), spent as well.
//!
//! A shop that writes nothing gets [`ClientLimits::default`]'s limits ([`DEFAULT_PER_USER`],
//! [`DEFAULT_PER_ADDRESS`]): enough for a person shopping by hand or a browser's bursts, far
//! below what one script can offer. `enabled: false` turns them off; [`ClientLimits::effective`]
//! resolves the defaults for the operator to render into the gateway's route table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::RateLimit;

/// What one signed-in user may ask when the spec says nothing: 10 requests a second, 100 at
/// once.
pub const DEFAULT_PER_USER: RateLimit = RateLimit {
    requests_per_minute: 600,
    burst: Some(100),
};

/// What one address may ask without a valid token when the spec says nothing: 20 a second,
/// 200 at once (an address may be a household's or an office's shared one).
pub const DEFAULT_PER_ADDRESS: RateLimit = RateLimit {
    requests_per_minute: 1_200,
    burst: Some(200),
};

/// Per-client limits (see the module docs).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientLimits {
    /// Per-client limits on (the default) or off. Off, only the shop-wide and per-service
    /// budgets apply.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Each signed-in user's budget over all routes. Default 600 per minute, burst 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<RateLimit>,
    /// Each client address's budget for requests without a valid token (anonymous or a bad
    /// token), spent before the shop's. IPv6 addresses count by their /64. Default 1,200 per
    /// minute, burst 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_address: Option<RateLimit>,
    /// Tighter per-client limits on single routes (each client: the user when signed in,
    /// else the address), spent beside `perUser`/`perAddress`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["route"]))]
    pub routes: Vec<RouteClientLimit>,
    /// Proxies (CIDRs, e.g. `10.0.0.0/8`) in front of the gateway whose `X-Forwarded-For`
    /// is believed: the client is the rightmost forwarded address that is not itself a
    /// trusted proxy. From any other peer the header is ignored (anyone can write it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "must be a CIDR such as 10.0.0.0/8 or fd00::/8"}]}))]
    pub trusted_proxies: Vec<String>,
}

fn enabled() -> bool {
    true
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_user: None,
            per_address: None,
            routes: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A tighter per-client limit on one public route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteClientLimit {
    /// The route, as `METHOD path` with the API's path template.
    pub route: PublicRoute,
    /// Requests per minute one client may send to this route.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub requests_per_minute: u32,
    /// Requests one client may send at once. Defaults to a tenth of a minute's (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub burst: Option<u32>,
}

impl RouteClientLimit {
    /// The limit as a [`RateLimit`].
    pub fn limit(&self) -> RateLimit {
        RateLimit {
            requests_per_minute: self.requests_per_minute,
            burst: self.burst,
        }
    }
}

/// The public API's routes that can carry a per-client limit (the gateway's route table, the
/// API document excepted; a gateway test keeps the two lists equal).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum PublicRoute {
    #[serde(rename = "POST /api/v1/users")]
    CreateUser,
    #[serde(rename = "POST /api/v1/sessions")]
    CreateSession,
    #[serde(rename = "GET /api/v1/products")]
    ListProducts,
    #[serde(rename = "GET /api/v1/products/{sku}")]
    GetProduct,
    #[serde(rename = "GET /api/v1/products/{sku}/recommendations")]
    Recommendations,
    #[serde(rename = "GET /api/v1/orders")]
    ListOrders,
    #[serde(rename = "POST /api/v1/orders")]
    CreateOrder,
    #[serde(rename = "GET /api/v1/orders/{id}")]
    GetOrder,
    #[serde(rename = "GET /api/v1/inventory/{sku}")]
    GetInventory,
}

impl PublicRoute {
    pub const ALL: [PublicRoute; 9] = [
        Self::CreateUser,
        Self::CreateSession,
        Self::ListProducts,
        Self::GetProduct,
        Self::Recommendations,
        Self::ListOrders,
        Self::CreateOrder,
        Self::GetOrder,
        Self::GetInventory,
    ];

    /// The method and path template, as the spec spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateUser => "POST /api/v1/users",
            Self::CreateSession => "POST /api/v1/sessions",
            Self::ListProducts => "GET /api/v1/products",
            Self::GetProduct => "GET /api/v1/products/{sku}",
            Self::Recommendations => "GET /api/v1/products/{sku}/recommendations",
            Self::ListOrders => "GET /api/v1/orders",
            Self::CreateOrder => "POST /api/v1/orders",
            Self::GetOrder => "GET /api/v1/orders/{id}",
            Self::GetInventory => "GET /api/v1/inventory/{sku}",
        }
    }
}

/// The limits in force, defaults resolved: what the gateway's route table carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveClientLimits {
    pub per_user: RateLimit,
    pub per_address: RateLimit,
    pub routes: Vec<(PublicRoute, RateLimit)>,
    pub trusted_proxies: Vec<String>,
}

impl ClientLimits {
    /// The limits in force (`None` when turned off), defaults filled in, routes in a fixed
    /// order.
    pub fn effective(&self) -> Option<EffectiveClientLimits> {
        if !self.enabled {
            return None;
        }
        let mut routes: Vec<_> = self.routes.iter().map(|r| (r.route, r.limit())).collect();
        routes.sort_by_key(|(route, _)| *route);
        routes.dedup_by_key(|(route, _)| *route);
        Some(EffectiveClientLimits {
            per_user: self.per_user.clone().unwrap_or(DEFAULT_PER_USER),
            per_address: self.per_address.clone().unwrap_or(DEFAULT_PER_ADDRESS),
            routes,
            trusted_proxies: self.trusted_proxies.clone(),
        })
    }
}

/// Whether `s` is a CIDR (`address/prefix`, the prefix within the address's length), as the
/// schema's `isCIDR` accepts.
pub fn is_cidr(s: &str) -> bool {
    let Some((address, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_that_writes_nothing_gets_the_defaults() {
        let limits: ClientLimits = serde_json::from_str("{}").expect("parses");
        assert_eq!(limits, ClientLimits::default());
        let effective = limits.effective().expect("on by default");
        assert_eq!(effective.per_user, DEFAULT_PER_USER);
        assert_eq!(effective.per_address, DEFAULT_PER_ADDRESS);
        assert!(effective.routes.is_empty());
    }

    #[test]
    fn routes_parse_by_method_and_template_and_resolve_in_order() {
        let limits: ClientLimits = serde_json::from_str(
            r#"{"routes": [
                {"route": "POST /api/v1/orders", "requestsPerMinute": 30},
                {"route": "GET /api/v1/products", "requestsPerMinute": 600, "burst": 50}
            ], "perUser": {"requestsPerMinute": 60}}"#,
        )
        .expect("parses");
        let effective = limits.effective().expect("on");
        assert_eq!(effective.per_user.requests_per_minute, 60);
        assert_eq!(
            effective.routes,
            vec![
                (
                    PublicRoute::ListProducts,
                    RateLimit {
                        requests_per_minute: 600,
                        burst: Some(50)
                    }
                ),
                (
                    PublicRoute::CreateOrder,
                    RateLimit {
                        requests_per_minute: 30,
                        burst: None
                    }
                ),
            ]
        );
        for route in PublicRoute::ALL {
            let json = serde_json::to_string(&route).expect("serializes");
            assert_eq!(json, format!("\"{}\"", route.as_str()));
        }
        let unknown = serde_json::from_str::<RouteClientLimit>(
            r#"{"route": "DELETE /api/v1/orders", "requestsPerMinute": 1}"#,
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn turned_off_means_no_limits() {
        let limits: ClientLimits = serde_json::from_str(r#"{"enabled": false}"#).expect("parses");
        assert_eq!(limits.effective(), None);
    }

    #[test]
    fn cidrs_are_told_from_other_text() {
        for ok in [
            "10.0.0.0/8",
            "192.168.1.7/32",
            "fd00::/8",
            "::/0",
            "2001:db8::/64",
        ] {
            assert!(is_cidr(ok), "{ok}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "proxy/8",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }
}
