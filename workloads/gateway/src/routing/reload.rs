//! The reload loop and what it has applied: the route table from the API watch
//! ([`super::source`]) as soon as it changes, or from the mounted file, and the rings from
//! the mounted files every tick; `GET /routes` on the HTTP port says which table is in
//! force.
//!
//! ```text
//!  source::watch_routes ──(changed)──┐
//!  tick (GATEWAY_RELOAD_MS) ─────────┼─▶ Loader::poll_routes / poll ─▶ super::apply ─▶ Loaded ─▶ GET /routes
//!                                    │                                                └▶ storefront_gateway_route_table_generation
//! ```
//!
//! `GET /routes` answers `{source, resourceVersion, generation, appliedAtUnixMs, routes,
//! limits, refused}`: `source` is `api` or `file`, `resourceVersion` the ConfigMap version of the
//! table in force (API only), `generation` counts the tables applied since start, `refused`
//! is the last refusal since then (a malformed or missing table), cleared by the next good
//! one. The e2e suite measures a sale's limit change with it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::get};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use tokio::sync::watch;

use super::{
    Change, Refused, Routed, apply,
    source::Fetched,
    table::{Loader, RateLimit},
};
use storefront_platform::ops::Readiness;

/// Which table is in force, for `GET /routes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// `api` or `file`; empty before the first table.
    pub source: &'static str,
    pub resource_version: Option<String>,
    pub generation: u64,
    /// When this table was applied (Unix milliseconds).
    pub applied_at_unix_ms: Option<u64>,
    pub routes: usize,
    /// Each service's rate limit (`gateway` for the gateway's own).
    pub limits: BTreeMap<String, RateLimit>,
    pub refused: Option<String>,
}

/// The shared record of the applied table, and its metrics.
#[derive(Clone, Default)]
pub struct Loaded {
    applied: Arc<Mutex<Applied>>,
    generation: Gauge,
    refusals: Counter,
}

impl Loaded {
    /// A record whose metrics are registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let loaded = Self::default();
        registry.register(
            "storefront_gateway_route_table_generation",
            "Route tables applied since the gateway started",
            loaded.generation.clone(),
        );
        registry.register(
            "storefront_gateway_route_table_refusals",
            "Route tables refused (malformed or missing; the last good one stays)",
            loaded.refusals.clone(),
        );
        loaded
    }

    /// What is in force now.
    pub fn get(&self) -> Applied {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn applied(&self, gateway: &impl Routed, source: &'static str, rv: Option<String>) {
        let Some(snapshot) = gateway.in_force() else {
            return;
        };
        let table = &snapshot.table;
        let mut limits: BTreeMap<String, RateLimit> = table
            .routes
            .iter()
            .filter_map(|r| Some((r.service.clone(), r.rate_limit?)))
            .collect();
        if let Some(l) = table.gateway_rate_limit {
            limits.insert("gateway".into(), l);
        }
        let mut a = self.lock();
        a.source = source;
        a.resource_version = rv;
        a.generation += 1;
        a.applied_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        a.routes = table.routes.len();
        a.limits = limits;
        a.refused = None;
        self.generation
            .set(i64::try_from(a.generation).unwrap_or(i64::MAX));
    }

    fn refused(&self, e: String) {
        self.refusals.inc();
        self.lock().refused = Some(e);
    }

    /// The same table again (another resourceVersion with the same bytes, or another
    /// source): keep the record current unless the last input was refused.
    fn unchanged(&self, source: &'static str, rv: Option<String>) {
        let mut a = self.lock();
        if a.generation > 0 && a.refused.is_none() {
            a.source = source;
            a.resource_version = rv;
        }
    }

    /// `GET /routes`.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/routes",
                get(|State(l): State<Loaded>| async move { Json(l.get()) }),
            )
            .with_state(self)
    }
}

/// Applies route tables and rings until the task is dropped: at once when the API watch
/// (`api`) reports a change, and every `every` for the rings (and the routes file while the
/// watch has not listed yet, or when there is no watch).
pub async fn reload(
    gateway: impl Routed,
    mut loader: Loader,
    ready: Readiness,
    every: Duration,
    mut api: Option<watch::Receiver<Option<Fetched>>>,
    loaded: Loaded,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let watch_open = match api.as_mut() {
            Some(rx) => tokio::select! {
                _ = tick.tick() => true,
                changed = rx.changed() => changed.is_ok(),
            },
            None => {
                tick.tick().await;
                true
            }
        };
        if !watch_open {
            tracing::warn!("the route table watch stopped; reading the mounted file");
            api = None;
        }
        let fetched = api.as_ref().and_then(|rx| rx.borrow().clone());
        let (source, rv) = match &fetched {
            Some(f) => ("api", f.resource_version.clone()),
            None => ("file", None),
        };
        let (back, poll) = match tokio::task::spawn_blocking(move || {
            let poll = match fetched {
                Some(f) => loader.poll_routes(f.routes),
                None => loader.poll(),
            };
            (loader, poll)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("failed to poll the route table: {e}");
                return;
            }
        };
        loader = back;
        match apply(&gateway, poll) {
            Ok(Change::Switched) => loaded.applied(&gateway, source, rv),
            Ok(Change::Unchanged) => loaded.unchanged(source, rv),
            Err(Refused::Input(e)) => loaded.refused(e),
            Err(Refused::NotApplied(e)) => {
                loaded.refused(format!("the new route table could not be applied: {e}"));
            }
        }
        let has_routes = gateway.in_force().is_some();
        if has_routes && !ready.get() {
            ready.set(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Gateway, resilience::guard::AllowAll, routing::table::Sources, upstream::Deadlines,
    };
    use storefront_platform::token::{SigningKeys, TokenIssuer};

    const TABLE: &str = r#"{"storefront": "shop", "routes": [
        {"service": "catalog", "tier": "core", "upstream": "127.0.0.1:1",
         "rateLimit": {"requestsPerMinute": RPM, "burst": 10}}]}"#;

    fn table(rpm: &str) -> Vec<u8> {
        TABLE.replace("RPM", rpm).into_bytes()
    }

    fn fetched(bytes: Result<Vec<u8>, String>, rv: &str) -> Option<Fetched> {
        Some(Fetched {
            routes: bytes,
            resource_version: Some(rv.into()),
        })
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The API side of the loop, fed by a channel (the watch itself needs an API server:
    /// the e2e suite covers it): changes apply at once, not at the next tick; garbage and a
    /// deletion keep the last good table; the first good table after them applies.
    #[tokio::test]
    async fn api_changes_apply_at_once_and_bad_ones_keep_the_last_good_table() {
        let dir = std::env::temp_dir().join(format!("sf-gw-reload-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let sources = Sources {
            routes_file: dir.join("routes.json"),
            rings_dir: dir.join("rings"),
        };
        std::fs::write(&sources.routes_file, table("60")).expect("write");
        let issuer = Arc::new(TokenIssuer::new(
            SigningKeys::from_seed([3; 32]).expect("key"),
            "shop",
            60,
            60,
        ));
        let gateway = Gateway::new(issuer, Arc::new(AllowAll), Deadlines::default());
        let (tx, rx) = watch::channel(None);
        let loaded = Loaded::register(&mut Registry::default());
        let ready = Readiness::default();
        // A tick of an hour: whatever happens after the first tick is the watch's doing.
        let task = tokio::spawn(reload(
            gateway.clone(),
            Loader::new(sources),
            ready.clone(),
            Duration::from_secs(3600),
            Some(rx),
            loaded.clone(),
        ));
        let rpm = |l: &Loaded| l.get().limits.get("catalog").map(|l| l.requests_per_minute);
        until("the mounted file before the first list", || ready.get()).await;
        assert_eq!(loaded.get().source, "file");
        assert_eq!(rpm(&loaded), Some(60));

        tx.send_replace(fetched(Ok(table("600")), "5"));
        until("the API's table", || rpm(&loaded) == Some(600)).await;
        let a = loaded.get();
        assert_eq!(
            (a.source, a.resource_version.as_deref(), a.generation),
            ("api", Some("5"), 2)
        );

        for (bad, why) in [
            (Ok(b"{ garbage".to_vec()), "failed to parse"),
            (Ok(table("0")), "requestsPerMinute 0"),
            (
                Err("the ConfigMap shop/x is missing".to_string()),
                "missing",
            ),
            // Parsed, but not applicable: `GET /routes` says why, not only that.
            (
                Ok(TABLE
                    .replace("RPM", "60")
                    .replace("127.0.0.1:1", "no-port-here")
                    .into_bytes()),
                "no-port-here",
            ),
        ] {
            tx.send_replace(fetched(bad, "6"));
            until(why, || {
                loaded.get().refused.is_some_and(|r| r.contains(why))
            })
            .await;
            assert_eq!(rpm(&loaded), Some(600), "the last good table stays");
            assert!(gateway.has_routes() && ready.get());
        }
        assert_eq!(loaded.get().generation, 2);

        tx.send_replace(fetched(Ok(table("6000")), "9"));
        until("the repaired table", || rpm(&loaded) == Some(6000)).await;
        let a = loaded.get();
        assert_eq!(
            (a.refused, a.resource_version.as_deref()),
            (None, Some("9"))
        );

        // A new resourceVersion with the same bytes is the same table.
        tx.send_replace(fetched(Ok(table("6000")), "10"));
        until("the new version", || {
            loaded.get().resource_version.as_deref() == Some("10")
        })
        .await;
        assert_eq!(loaded.get().generation, 3);
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
