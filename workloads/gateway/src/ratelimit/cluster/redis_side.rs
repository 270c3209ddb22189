//! The limiter's Redis side ([`super::ClusterLimiter`]'s methods that talk to Redis): lease
//! refills, ahead of need and one at a time per bucket, and the heartbeat that counts the
//! live replicas and switches the fallback off or on (see [`super`]'s docs).

use std::{
    sync::{Arc, PoisonError, atomic::Ordering},
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;
use storefront_platform::{
    datastore_metrics::{Datastore, record},
    datastore_op,
};

use super::{
    super::{
        clients,
        lease::{self, LEASE_LIFETIME_US},
    },
    Bucket, CALL_TIMEOUT, ClusterLimiter, HEARTBEAT, LIVE_WINDOW_MS, SLOW_STREAK,
};

impl ClusterLimiter {
    /// Starts a refill when the lease runs low (a quarter of the last grant) or is old.
    pub(super) fn refill_ahead(&self, bucket: &Arc<Bucket>) {
        let (low, old) = {
            let s = bucket.shared();
            (
                bucket.lease.left() <= s.last_grant / 4,
                s.granted_at.elapsed() >= Duration::from_micros(LEASE_LIFETIME_US),
            )
        };
        if low || old {
            self.spawn_refill(bucket);
        }
    }

    pub(super) fn spawn_refill(&self, bucket: &Arc<Bucket>) {
        if bucket
            .refilling
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let limiter = self.clone();
        let bucket = Arc::clone(bucket);
        tokio::spawn(async move {
            limiter.refill(&bucket).await;
            bucket.refilling.store(false, Ordering::Release);
            bucket.refilled.notify_waiters();
        });
    }

    /// One lease request: gives back an expired lease's tokens, asks for the next.
    pub(super) async fn refill(&self, bucket: &Bucket) {
        let Some(mut conn) = self.0.connection.lock().await.clone() else {
            self.set_degraded(true, "not connected to Redis");
            return;
        };
        let (rate, key, want, expired, demand) = {
            let mut s = bucket.shared();
            let offered = bucket.offered.load(Ordering::Relaxed);
            let elapsed = s.measured_at.elapsed().as_secs_f64();
            if elapsed >= 0.01 {
                let recent = (offered - s.offered_then) as f64 / elapsed;
                s.demand_per_s = 0.5 * s.demand_per_s + 0.5 * recent;
                s.offered_then = offered;
                s.measured_at = Instant::now();
            }
            // At least one token for each request waiting now (a burst at start, before the
            // demand estimate has caught up, is not starved one round trip per token).
            let want =
                lease::lease_size(s.demand_per_s, s.remaining, self.replicas(), s.share_per_s)
                    .max(bucket.waiting.load(Ordering::Acquire));
            let expired = s.granted_at.elapsed() >= Duration::from_micros(LEASE_LIFETIME_US);
            let now_us = self.now_us();
            s.meter.update(offered, now_us);
            let demand = s.meter.demand_rpm();
            (s.rate, s.key.clone(), want, expired, demand)
        };
        let returned = if expired { bucket.lease.end() } else { 0 };
        let mut call = self.0.script.key(&key);
        call.key(format!("{key}:replicas"))
            .arg(rate.interval_us)
            .arg(rate.burst)
            .arg(want)
            .arg(returned)
            .arg(&self.0.member)
            .arg(demand);
        let sent = Instant::now();
        let answer =
            tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        record(
            datastore_op!(Datastore::Redis, "lease"),
            matches!(answer, Ok(Ok(_))),
            Some(sent.elapsed()),
        );
        let grant = match answer {
            Ok(Ok(v)) if v.len() == 6 && v.iter().all(|n| *n >= 0) => v,
            Ok(Ok(v)) => {
                self.set_degraded(true, &format!("the lease script answered {v:?}"));
                return;
            }
            Ok(Err(e)) if !e.is_timeout() => {
                self.set_degraded(true, &format!("the lease script failed: {e}"));
                return;
            }
            Ok(Err(_)) | Err(_) => {
                self.slow_call();
                return;
            }
        };
        self.0.slow_streak.store(0, Ordering::Release);
        let [granted, remaining, retry_us, reset_us, share_rpm] =
            [grant[0], grant[1], grant[2], grant[3], grant[4]].map(|n| n as u64);
        bucket.lease.add(granted);
        let mut s = bucket.shared();
        s.remaining = remaining;
        s.reset_us = reset_us;
        s.share_per_s = share_rpm as f64 / 60.0;
        s.blocked_until = (granted == 0 && want > 0)
            .then(|| Instant::now() + Duration::from_micros(retry_us.max(1_000)));
        if granted > 0 || expired {
            s.granted_at = Instant::now();
            s.last_grant = granted;
        }
    }

    /// A Redis call over its deadline: the fallback after [`SLOW_STREAK`] in a row (one slow
    /// answer on a busy node is not an outage; the request that waited was refused, never
    /// admitted without a token).
    pub(super) fn slow_call(&self) {
        let n = self.0.slow_streak.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= SLOW_STREAK {
            self.set_degraded(
                true,
                &format!(
                    "Redis answered slower than {} ms {n} times in a row",
                    CALL_TIMEOUT.as_millis()
                ),
            );
        }
    }

    /// One heartbeat: connects if needed, records this replica, counts the live ones, and
    /// leaves or enters the fallback accordingly.
    pub async fn heartbeat(&self) {
        let Some(client) = &self.0.redis else {
            self.set_degraded(true, "no Redis configured (REDIS_URL)");
            return;
        };
        let mut slot = self.0.connection.lock().await;
        if slot.is_none() {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_response_timeout(Some(CALL_TIMEOUT))
                .set_number_of_retries(0);
            match tokio::time::timeout(
                Duration::from_secs(1),
                ConnectionManager::new_with_config(client.clone(), config),
            )
            .await
            {
                Ok(Ok(c)) => *slot = Some(c),
                Ok(Err(e)) => {
                    drop(slot);
                    self.set_degraded(true, &format!("failed to connect to Redis: {e}"));
                    return;
                }
                Err(_) => {
                    drop(slot);
                    self.set_degraded(true, "failed to connect to Redis: timed out");
                    return;
                }
            }
        }
        let Some(mut conn) = slot.clone() else {
            return;
        };
        drop(slot);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let key = format!("{}:gateways", self.0.prefix);
        let mut pipe = redis::pipe();
        pipe.zadd(&key, &self.0.member, now_ms)
            .ignore()
            .zrembyscore(&key, 0, now_ms.saturating_sub(LIVE_WINDOW_MS))
            .ignore()
            .pexpire(&key, (LIVE_WINDOW_MS * 2) as i64)
            .ignore()
            .zcard(&key);
        let sent = Instant::now();
        let answer =
            tokio::time::timeout(CALL_TIMEOUT * 4, pipe.query_async::<(u64,)>(&mut conn)).await;
        record(
            datastore_op!(Datastore::Redis, "heartbeat"),
            matches!(answer, Ok(Ok(_))),
            Some(sent.elapsed()),
        );
        match answer {
            Ok(Ok((live,))) => {
                self.0.slow_streak.store(0, Ordering::Release);
                self.0.replicas.store(live.max(1), Ordering::Release);
                self.0.metrics.replicas.set(self.replicas() as i64);
                if self.degraded() {
                    // Fresh leases: what was held before the outage is stale.
                    for b in self
                        .0
                        .buckets
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .values()
                    {
                        b.shared().blocked_until = None;
                    }
                }
                self.set_degraded(false, "");
            }
            Ok(Err(e)) if !e.is_timeout() => {
                self.set_degraded(true, &format!("Redis heartbeat failed: {e}"));
            }
            Ok(Err(_)) | Err(_) => self.slow_call(),
        }
    }

    /// Heartbeats every [`HEARTBEAT`], and reports the per-client budgets every
    /// [`clients::SYNC`], until the task is dropped.
    pub async fn run_heartbeats(self) {
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync = tokio::time::interval(clients::SYNC);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = beat.tick() => self.heartbeat().await,
                _ = sync.tick() => self.sync_clients().await,
            }
        }
    }

    /// One report of the per-client budgets ([`clients`]): what this replica admitted per
    /// client since the last, in script calls of at most [`clients::BATCH`] clients; each
    /// answer's debt is adopted. Degraded or failing: nothing is charged later (see the
    /// module docs of [`clients`]); a slow call puts its reports back for the next sync.
    pub async fn sync_clients(&self) {
        let now_us = self.now_us();
        let reports = self.0.clients.drain(now_us);
        if reports.is_empty() || self.degraded() {
            return;
        }
        let Some(mut conn) = self.0.connection.lock().await.clone() else {
            return;
        };
        let Some(rules) = self.0.clients.rules() else {
            return;
        };
        let mut key = String::with_capacity(self.0.prefix.len() + 64);
        for batch in reports.chunks(clients::BATCH) {
            let mut call = self.0.client_script.prepare_invoke();
            for r in batch {
                let Some(budget) = rules.budget(r.rule) else {
                    continue;
                };
                key.clear();
                key.push_str(&self.0.prefix);
                key.push_str(":client:");
                key.push_str(&budget.name);
                key.push_str(&format!(":{}:{}:", r.rate.interval_us, r.rate.burst));
                match &r.client {
                    Some(c) => c.write_to(&mut key),
                    None => key.push_str("overflow"),
                }
                call.key(&key)
                    .arg(r.rate.interval_us)
                    .arg(r.rate.burst)
                    .arg(r.spent);
            }
            let sent = Instant::now();
            let answer =
                tokio::time::timeout(CALL_TIMEOUT * 2, call.invoke_async::<Vec<i64>>(&mut conn))
                    .await;
            record(
                datastore_op!(Datastore::Redis, "client-sync"),
                matches!(answer, Ok(Ok(_))),
                Some(sent.elapsed()),
            );
            match answer {
                Ok(Ok(debts)) if debts.len() == batch.len() => {
                    let now_us = self.now_us();
                    for (r, debt) in batch.iter().zip(debts) {
                        self.0.clients.adopt(
                            r.rule,
                            r.client.as_ref(),
                            u64::try_from(debt).unwrap_or(0),
                            now_us,
                        );
                    }
                }
                Ok(Ok(debts)) => {
                    tracing::warn!(
                        "the client-limit script answered {} debts for {} clients",
                        debts.len(),
                        batch.len()
                    );
                }
                Ok(Err(e)) if !e.is_timeout() => {
                    tracing::warn!("the client-limit sync failed: {e}");
                }
                Ok(Err(_)) | Err(_) => self.0.clients.restore(batch),
            }
        }
    }
}
