//! The gateway's route table and rings, as the operator renders them, and their reload.
//!
//! ```text
//!  GATEWAY_ROUTES (routes.json, ConfigMap <shop>-gateway-routes)
//!    {storefront, routes: [{service, prefix, tier, (upstream, endpoints?) | ring, rateLimit?}],
//!     gatewayRateLimit?, clientLimits?, orderLimits?}            │ ring: "<shop>-inventory-ring"
//!  GATEWAY_RINGS_DIR/<ring name>/ring.json  ◀─────────────────────┘   (storefront_crds::ring)
//! ```
//!
//! [`Loader::poll`] reads the routes file and every ring it names (small files; a second's
//! poll reads a few KiB) and reports a new [`Snapshot`] only when the bytes changed. A file
//! that is missing or malformed is refused as a whole: the caller keeps serving the last good
//! snapshot, and the loader reports the same failure once, not every second. Comparing bytes,
//! not modification times, also catches a ConfigMap update within the same second and the
//! atomic `..data` symlink swap of mounted ConfigMaps.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use storefront_crds::ring::{RING_DATA_KEY, Ring};

/// A cluster-wide rate limit of one service (the next issue's limiter reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub requests_per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    /// Accepted values of both fields: the CRD's range (`storefront_crds::RateLimit`).
    pub const RANGE: std::ops::RangeInclusive<u32> = 1..=100_000_000;

    fn check(&self, what: &str) -> Result<(), String> {
        for (field, value) in [
            ("requestsPerMinute", self.requests_per_minute),
            ("burst", self.burst),
        ] {
            if !Self::RANGE.contains(&value) {
                return Err(format!(
                    "{what}: {field} {value} is outside {}..={}",
                    Self::RANGE.start(),
                    Self::RANGE.end()
                ));
            }
        }
        Ok(())
    }
}

/// One service's route.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `auth`, `catalog`, `orders`, `inventory`, `recommendations`, `payments`.
    pub service: String,
    #[serde(default)]
    pub prefix: String,
    /// `core` or `supporting`.
    #[serde(default)]
    pub tier: String,
    /// `host:port` of an unsharded service.
    #[serde(default)]
    pub upstream: Option<String>,
    /// `host:port` that resolves to each ready pod of the unsharded service (a headless
    /// Service): calls are spread over them ([`crate::upstream::pool`]), still addressed to
    /// `upstream`; without it, or while it does not resolve, calls go to `upstream`.
    #[serde(default)]
    pub endpoints: Option<String>,
    /// The ring ConfigMap of a sharded service.
    #[serde(default)]
    pub ring: Option<String>,
    /// The same ring inline (the operator writes both): it comes with the table through the
    /// API watch in about a second, where the mounted ring file takes a minute or more.
    /// Preferred when present; the file is the fallback.
    #[serde(default)]
    pub ring_document: Option<storefront_crds::ring::RingDocument>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// The per-client limits (`clientLimits`, the Storefront's `spec.clientLimits` with its
/// defaults filled in by the operator; absent: none).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientLimitsTable {
    pub per_user: RateLimit,
    pub per_address: RateLimit,
    #[serde(default)]
    pub routes: Vec<RouteClientLimit>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A route's own per-client limit.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteClientLimit {
    /// `METHOD path-template`, e.g. `POST /api/v1/orders`.
    pub route: String,
    #[serde(flatten)]
    pub limit: RateLimit,
}

/// A flash sale's per-customer caps (`orderLimits`: the FlashSale's `spec.orderLimits`,
/// present while the sale's limits are open). The gateway passes them to orders with every
/// new order; orders counts and refuses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLimit {
    /// The FlashSale's name.
    pub sale: String,
    /// Unix seconds of the start of the sale's window: orders created before it do not count.
    pub since: i64,
    /// Units of each covered SKU one customer may buy during the sale; at least 1.
    pub units_per_customer: u32,
    /// The SKUs covered; empty: every SKU.
    #[serde(default)]
    pub skus: Vec<String>,
}

/// The route table document (`routes.json`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub storefront: String,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub gateway_rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub client_limits: Option<ClientLimitsTable>,
    #[serde(default)]
    pub order_limits: Vec<OrderLimit>,
}

impl RouteTable {
    /// Parses and checks a table: every route has exactly one of `upstream` and `ring`, no
    /// service twice, no empty names, every rate limit within [`RateLimit::RANGE`], every
    /// sale's cap named and at least 1 (a zero or absurd limit refuses the whole table: the
    /// last good one stays).
    pub fn parse(json: &str) -> Result<Self, String> {
        let table: RouteTable = serde_json::from_str(json)
            .map_err(|e| format!("failed to parse the route table: {e}"))?;
        if let Some(limit) = &table.gateway_rate_limit {
            limit.check("gatewayRateLimit")?;
        }
        if let Some(c) = &table.client_limits {
            c.per_user.check("clientLimits.perUser")?;
            c.per_address.check("clientLimits.perAddress")?;
            for r in &c.routes {
                r.limit
                    .check(&format!("clientLimits route {:?}", r.route))?;
            }
        }
        for limit in &table.order_limits {
            if limit.sale.is_empty() || limit.units_per_customer == 0 {
                return Err(format!(
                    "orderLimits: sale {:?} needs a name and unitsPerCustomer of at least 1",
                    limit.sale
                ));
            }
        }
        let mut seen = BTreeMap::new();
        for route in &table.routes {
            if route.service.is_empty() {
                return Err("a route has an empty service name".into());
            }
            if let Some(limit) = &route.rate_limit {
                limit.check(&format!("the rate limit of {:?}", route.service))?;
            }
            if seen.insert(route.service.as_str(), ()).is_some() {
                return Err(format!("service {:?} is routed twice", route.service));
            }
            if route
                .endpoints
                .as_ref()
                .is_some_and(|e| e.is_empty() || route.upstream.is_none())
            {
                return Err(format!(
                    "route {:?}: endpoints must be non-empty and go with an upstream",
                    route.service
                ));
            }
            match (&route.upstream, &route.ring) {
                (Some(u), None) if !u.is_empty() => {}
                (None, Some(r)) if !r.is_empty() => {}
                _ => {
                    return Err(format!(
                        "route {:?} needs exactly one non-empty upstream or ring",
                        route.service
                    ));
                }
            }
        }
        Ok(table)
    }

    /// The route of `service`.
    pub fn route(&self, service: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.service == service)
    }
}

/// A consistent view: the table and the ring of each sharded service, by service name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub table: RouteTable,
    pub rings: BTreeMap<String, Ring>,
}

/// Where the files are.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `routes.json`.
    pub routes_file: PathBuf,
    /// The directory holding `<ring ConfigMap name>/ring.json`.
    pub rings_dir: PathBuf,
}

impl Sources {
    /// The file of ring ConfigMap `name`.
    pub fn ring_file(&self, name: &str) -> PathBuf {
        self.rings_dir.join(name).join(RING_DATA_KEY)
    }
}

/// Reads the files and reports changes (see the module docs).
#[derive(Debug)]
pub struct Loader {
    sources: Sources,
    /// The bytes of every file read for the last reported outcome, good or bad.
    last_bytes: Option<Vec<(PathBuf, Option<Vec<u8>>)>>,
}

/// What one poll found.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing changed since the last poll.
    Unchanged,
    /// A new good snapshot to switch to.
    Changed(Box<Snapshot>),
    /// The files changed and are not usable; keep the last good snapshot. Reported once
    /// per distinct content.
    Refused(String),
}

impl Loader {
    pub fn new(sources: Sources) -> Self {
        Self {
            sources,
            last_bytes: None,
        }
    }

    fn read(path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    /// Reads the files; see [`Poll`].
    pub fn poll(&mut self) -> Poll {
        let routes_path = self.sources.routes_file.clone();
        let routes = Self::read(&routes_path)
            .ok_or_else(|| format!("failed to read the route table {}", routes_path.display()));
        self.poll_routes(routes)
    }

    /// Like [`Loader::poll`], with the route table's bytes given by the caller (the API
    /// watch, [`super::source`]) instead of read from the routes file: `Err` says why there
    /// is none (the ConfigMap is missing, or has no `routes.json`). Rings are still read
    /// from the rings directory. The same table from either source compares equal, so a
    /// switch of source alone reports [`Poll::Unchanged`].
    pub fn poll_routes(&mut self, routes: Result<Vec<u8>, String>) -> Poll {
        let routes_path = self.sources.routes_file.clone();
        let mut bytes = vec![(routes_path, routes.as_ref().ok().cloned())];
        let outcome = match routes {
            Err(e) => Err(e),
            Ok(raw) => self.snapshot(&raw, &mut bytes),
        };
        if self.last_bytes.as_ref() == Some(&bytes) {
            return Poll::Unchanged;
        }
        self.last_bytes = Some(bytes);
        match outcome {
            Ok(snapshot) => Poll::Changed(Box::new(snapshot)),
            Err(e) => Poll::Refused(e),
        }
    }

    fn snapshot(
        &self,
        raw: &[u8],
        bytes: &mut Vec<(PathBuf, Option<Vec<u8>>)>,
    ) -> Result<Snapshot, String> {
        let text = std::str::from_utf8(raw)
            .map_err(|e| format!("failed to read the route table: not UTF-8: {e}"))?;
        let table = RouteTable::parse(text)?;
        let mut rings = BTreeMap::new();
        let mut failure = None;
        for route in &table.routes {
            if let Some(doc) = &route.ring_document {
                match Ring::from_document(doc.clone()) {
                    Ok(ring) if ring.service() == route.service => {
                        rings.insert(route.service.clone(), ring);
                        continue;
                    }
                    // A bad inline ring: the file decides (and says what is wrong with it).
                    _ => {}
                }
            }
            let Some(name) = &route.ring else { continue };
            let path = self.sources.ring_file(name);
            let raw = Self::read(&path);
            bytes.push((path.clone(), raw.clone()));
            // Keep reading the other rings so that their bytes are compared too.
            if failure.is_some() {
                continue;
            }
            let parsed = match raw {
                None => Err(format!("failed to read the ring {}", path.display())),
                Some(raw) => String::from_utf8(raw)
                    .map_err(|e| format!("failed to read the ring {}: {e}", path.display()))
                    .and_then(|s| Ring::parse(&s).map_err(|e| format!("{}: {e}", path.display()))),
            };
            match parsed {
                Ok(ring) if ring.service() == route.service => {
                    rings.insert(route.service.clone(), ring);
                }
                Ok(ring) => {
                    failure = Some(format!(
                        "{} is the ring of {:?}, not {:?}",
                        path.display(),
                        ring.service(),
                        route.service
                    ));
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(Snapshot { table, rings }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = r#"{
      "storefront": "acme",
      "routes": [
        {"service": "auth", "prefix": "/api/auth", "tier": "core",
         "upstream": "acme-auth.shop.svc:50051",
         "rateLimit": {"requestsPerMinute": 5000, "burst": 500}},
        {"service": "inventory", "prefix": "/api/inventory", "tier": "core",
         "ring": "acme-inventory-ring"}
      ],
      "gatewayRateLimit": {"requestsPerMinute": 6000, "burst": 600}
    }"#;

    fn ring(epoch: i64, shards: usize) -> String {
        let shards: Vec<String> = (0..shards)
            .map(|i| {
                format!(
                    r#"{{"index": {i}, "name": "acme-inventory-{i}", "address": "inv-{i}:50051"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"service": "inventory", "epoch": {epoch}, "algorithm": "jump", "shards": [{}]}}"#,
            shards.join(",")
        )
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(name: &str) -> (Dir, Sources) {
        let dir = std::env::temp_dir().join(format!("sf-gw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rings/acme-inventory-ring")).expect("dirs");
        let sources = Sources {
            routes_file: dir.join("routes.json"),
            rings_dir: dir.join("rings"),
        };
        (Dir(dir), sources)
    }

    #[test]
    fn parses_the_operators_table() {
        let table = RouteTable::parse(ROUTES).expect("parses");
        assert_eq!(table.storefront, "acme");
        let auth = table.route("auth").expect("auth");
        assert_eq!(auth.upstream.as_deref(), Some("acme-auth.shop.svc:50051"));
        assert_eq!(
            auth.rate_limit,
            Some(RateLimit {
                requests_per_minute: 5000,
                burst: 500
            })
        );
        assert_eq!(
            table.route("inventory").and_then(|r| r.ring.as_deref()),
            Some("acme-inventory-ring")
        );
        assert!(RouteTable::parse("{").is_err());
        let pods = r#"{"storefront": "a", "routes": [{"service": "auth", "upstream": "a:1", "endpoints": "a-pods:1"}]}"#;
        assert_eq!(
            RouteTable::parse(pods)
                .expect("endpoints with an upstream")
                .routes[0]
                .endpoints
                .as_deref(),
            Some("a-pods:1")
        );
        for bad in [
            r#"{"storefront": "a", "routes": [{"service": "auth", "upstream": "a:1", "endpoints": ""}]}"#,
            r#"{"storefront": "a", "routes": [{"service": "auth", "ring": "r", "endpoints": "a-pods:1"}]}"#,
        ] {
            let e = RouteTable::parse(bad).expect_err(bad);
            assert!(e.contains("endpoints"), "{e}");
        }
        let both = r#"{"storefront": "a", "routes": [{"service": "auth", "upstream": "a:1", "ring": "r"}]}"#;
        assert!(
            RouteTable::parse(both)
                .expect_err("both")
                .contains("exactly one")
        );
        for (limit, field) in [
            (
                r#"{"requestsPerMinute": 0, "burst": 10}"#,
                "requestsPerMinute 0",
            ),
            (r#"{"requestsPerMinute": 60, "burst": 0}"#, "burst 0"),
            (
                r#"{"requestsPerMinute": 4000000000, "burst": 1}"#,
                "requestsPerMinute 4000000000",
            ),
        ] {
            let bad = format!(
                r#"{{"storefront": "a", "routes": [{{"service": "auth", "upstream": "a:1", "rateLimit": {limit}}}]}}"#
            );
            let e = RouteTable::parse(&bad).expect_err("a zero or absurd limit is refused");
            assert!(e.contains(field) && e.contains("\"auth\""), "{e}");
            let gateway =
                format!(r#"{{"storefront": "a", "routes": [], "gatewayRateLimit": {limit}}}"#);
            let e = RouteTable::parse(&gateway).expect_err("on the gateway too");
            assert!(e.contains("gatewayRateLimit"), "{e}");
        }
        assert_eq!(table.order_limits, []);
        let caps = r#"{"storefront": "a", "routes": [], "orderLimits": [
            {"sale": "bf", "since": 1795766400, "unitsPerCustomer": 2, "skus": ["SKU-1"]},
            {"sale": "every", "since": 1795770000, "unitsPerCustomer": 5}]}"#;
        assert_eq!(
            RouteTable::parse(caps).expect("caps").order_limits,
            [
                OrderLimit {
                    sale: "bf".into(),
                    since: 1_795_766_400,
                    units_per_customer: 2,
                    skus: vec!["SKU-1".into()]
                },
                OrderLimit {
                    sale: "every".into(),
                    since: 1_795_770_000,
                    units_per_customer: 5,
                    skus: vec![]
                }
            ]
        );
        for bad in [
            r#"{"storefront": "a", "routes": [], "orderLimits": [{"sale": "bf", "since": 1, "unitsPerCustomer": 0}]}"#,
            r#"{"storefront": "a", "routes": [], "orderLimits": [{"sale": "", "since": 1, "unitsPerCustomer": 2}]}"#,
        ] {
            let e = RouteTable::parse(bad).expect_err(bad);
            assert!(e.contains("orderLimits"), "{e}");
        }
        let twice = r#"{"storefront": "a", "routes": [{"service": "auth", "upstream": "a:1"}, {"service": "auth", "upstream": "b:1"}]}"#;
        assert!(
            RouteTable::parse(twice)
                .expect_err("twice")
                .contains("twice")
        );
    }

    #[test]
    fn reloads_on_change_and_keeps_the_last_good_table() {
        let (_dir, sources) = setup("reload");
        let ring_file = sources.ring_file("acme-inventory-ring");
        let mut loader = Loader::new(sources.clone());
        // Nothing there yet: refused once, then quiet.
        assert!(matches!(loader.poll(), Poll::Refused(e) if e.contains("route table")));
        assert_eq!(loader.poll(), Poll::Unchanged);

        std::fs::write(&sources.routes_file, ROUTES).expect("write");
        std::fs::write(&ring_file, ring(1, 2)).expect("write");
        let Poll::Changed(first) = loader.poll() else {
            panic!("a good table loads");
        };
        assert_eq!(first.rings["inventory"].shard_count(), 2);
        assert_eq!(loader.poll(), Poll::Unchanged, "same bytes: no reload");

        // The ring grows: a new snapshot without touching the table.
        std::fs::write(&ring_file, ring(2, 3)).expect("write");
        let Poll::Changed(second) = loader.poll() else {
            panic!("the new ring loads");
        };
        assert_eq!(second.rings["inventory"].epoch(), 2);
        assert_eq!(second.rings["inventory"].shard_count(), 3);

        // A malformed ring: refused once (the caller keeps `second`), then quiet.
        std::fs::write(&ring_file, r#"{"service": "inventory", "epoch": 0"#).expect("write");
        assert!(matches!(loader.poll(), Poll::Refused(e) if e.contains("ring.json")));
        assert_eq!(loader.poll(), Poll::Unchanged);
        // A ring of another service is refused too.
        std::fs::write(
            &ring_file,
            ring(3, 1).replace("\"inventory\"", "\"orders\""),
        )
        .expect("w");
        assert!(matches!(loader.poll(), Poll::Refused(e) if e.contains("not \"inventory\"")));

        // A malformed table: refused; fixed again: loads.
        std::fs::write(&ring_file, ring(3, 1)).expect("write");
        std::fs::write(&sources.routes_file, "{\"storefront\": ").expect("write");
        assert!(matches!(loader.poll(), Poll::Refused(e) if e.contains("failed to parse")));
        std::fs::write(&sources.routes_file, ROUTES).expect("write");
        let Poll::Changed(third) = loader.poll() else {
            panic!("fixed table loads");
        };
        assert_eq!(third.rings["inventory"].epoch(), 3);
    }

    #[test]
    fn an_inline_ring_wins_over_the_mounted_file_which_stays_the_fallback() {
        let (_dir, sources) = setup("inline");
        let ring_file = sources.ring_file("acme-inventory-ring");
        std::fs::write(&ring_file, ring(1, 2)).expect("write");
        let with_inline = |inline: &str| {
            ROUTES.replace(
                r#""ring": "acme-inventory-ring"}"#,
                &format!(r#""ring": "acme-inventory-ring", "ringDocument": {inline}}}"#),
            )
        };
        let mut loader = Loader::new(sources.clone());
        // The API's table carries the new ring before the kubelet updates the file.
        let Poll::Changed(s) = loader.poll_routes(Ok(with_inline(&ring(2, 3)).into_bytes())) else {
            panic!("loads");
        };
        assert_eq!(
            (
                s.rings["inventory"].epoch(),
                s.rings["inventory"].shard_count()
            ),
            (2, 3)
        );
        // A bad inline ring (epoch 0): the file decides.
        let bad = ring(0, 3);
        let Poll::Changed(s) = loader.poll_routes(Ok(with_inline(&bad).into_bytes())) else {
            panic!("loads from the file");
        };
        assert_eq!(s.rings["inventory"].epoch(), 1);
    }
}
