//! The driver: setup, the open-loop dispatcher, the progress line, the drain and the report.

use std::{
    io::Write as _,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use hyper::Method;
use rand::Rng;
use tokio::{sync::Semaphore, time::Instant};

use super::{
    LoadgenArgs,
    identity::{self, ABUSER_EMAIL, Face},
    mix::{self, Kind},
    shop::{Call, Shop},
    stats::{self, Endpoint, Latency, Outcome, Settle, Summary},
};

/// Sign-ups and sign-ins at once during setup (argon2 is slow on purpose).
const SETUP_CONCURRENCY: usize = 8;

#[derive(Default)]
struct State {
    endpoints: [Endpoint; Kind::ALL.len()],
    /// `--abusive`: the same requests by face.
    faces: [Endpoint; Face::ALL.len()],
    polls: Endpoint,
    settle: Settle,
    /// All answers of the current second (the progress line), reset every second.
    window: Latency,
}

fn index(kind: Kind) -> usize {
    kind as usize
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking request task cannot leave the counters half-written: keep going.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the load and prints the table (and writes `--out`).
pub async fn run(args: LoadgenArgs) -> Result<()> {
    let summary = execute(&args).await?;
    print!("{}", summary.table());
    if let Some(path) = &args.out {
        let json =
            serde_json::to_string_pretty(&summary).context("failed to encode the summary")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

/// Sets up, runs the schedule, waits for the answers and returns the summary.
pub async fn execute(args: &LoadgenArgs) -> Result<Summary> {
    let schedule = args.schedule()?;
    args.check()?;
    let cap = args.max_in_flight as usize;
    let mut shop = Shop::new(&args.target, args.timeout, cap);
    let t_setup = Instant::now();
    // The catalog is learned as the first shopper (or the abuser) would.
    shop.setup_forwarded_for = args.forwarded_for.map(|a| a.nth(0).to_string());
    shop.learn_catalog(args.skus as usize).await?;
    if args.abusive {
        let abuser = shop
            .account(ABUSER_EMAIL.to_string(), shop.setup_forwarded_for.clone())
            .await?;
        shop.users = vec![abuser];
    } else if args.needs_accounts() {
        shop.users = shop
            .create_users(
                args.users as usize,
                SETUP_CONCURRENCY,
                args.forwarded_for.as_ref(),
            )
            .await?;
    }
    let setup = t_setup.elapsed();
    let shop = Arc::new(shop);
    if !args.quiet {
        eprintln!(
            "loadgen: {} SKUs, {} search words, {} users ready in {:.1}s; {} arrivals over {:.1}s",
            shop.skus.len(),
            shop.words.len(),
            shop.users.len(),
            t_setup.elapsed().as_secs_f64(),
            schedule.total(),
            schedule.duration().as_secs_f64(),
        );
    }

    let state = Arc::new(Mutex::new(State::default()));
    let permits = Arc::new(Semaphore::new(cap));
    let pollers = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Idempotency-Keys must be new in every run, whatever the seed.
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut rng = mix::rng(args.seed);
    let start = Instant::now();
    let started_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));

    let progress = (!args.quiet).then(|| {
        tokio::spawn(progress(
            Arc::clone(&state),
            Arc::clone(&permits),
            cap,
            Arc::clone(&done),
            start,
            schedule.clone(),
        ))
    });

    for (n, offset) in schedule.arrivals().enumerate() {
        let due = start + offset;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let kind = args.mix.pick(&mut rng);
        let call = draw(kind, &mut rng, &shop, args, run_id, n);
        {
            let mut s = lock(&state);
            s.endpoints[index(kind)].offered += 1;
            if let Some(face) = call.face {
                s.faces[face as usize].offered += 1;
            }
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            let mut s = lock(&state);
            s.endpoints[index(kind)].dropped += 1;
            if let Some(face) = call.face {
                s.faces[face as usize].dropped += 1;
            }
            continue;
        };
        let (shop, state, pollers) = (Arc::clone(&shop), Arc::clone(&state), Arc::clone(&pollers));
        let settle = args
            .settle
            .then_some((args.settle_poll, args.settle_timeout));
        tokio::spawn(async move {
            let (outcome, order_id) = shop.call(&call).await;
            let latency = due.elapsed();
            {
                let mut s = lock(&state);
                s.endpoints[index(kind)].record(outcome, latency);
                if let Some(face) = call.face {
                    s.faces[face as usize].record(outcome, latency);
                }
                if outcome != Outcome::Transport {
                    s.window.record(latency);
                }
            }
            drop(permit);
            if let (Some((every, patience)), Some(id), Some(token)) =
                (settle, order_id, call.token.as_deref())
            {
                pollers.fetch_add(1, Ordering::SeqCst);
                let who = Who {
                    token,
                    forwarded_for: call.forwarded_for.as_deref(),
                };
                settle_order(&shop, &state, &id, who, due, every, patience).await;
                pollers.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }

    // Drain: every request ends by its timeout, every poller by the settle timeout.
    let mut patience = args.timeout + Duration::from_secs(1);
    if args.settle {
        patience += args.settle_timeout + args.settle_poll;
    }
    let deadline = Instant::now() + patience;
    while (permits.available_permits() < cap || pollers.load(Ordering::SeqCst) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    if let Some(p) = progress {
        let _ = p.await;
    }

    let scheduled = schedule.duration();
    let s = lock(&state);
    let endpoints = Kind::ALL
        .iter()
        .filter(|k| s.endpoints[index(**k)].offered > 0 || args.mix.has(**k))
        .map(|k| s.endpoints[index(*k)].summarize(k.name(), k.endpoint(), scheduled))
        .collect();
    Ok(Summary {
        target: args.target.clone(),
        mode: if args.abusive { "abusive" } else { "shoppers" }.to_string(),
        stages: schedule.stages().iter().map(ToString::to_string).collect(),
        mix: args.mix.to_string(),
        seed: args.seed,
        users: shop.users.len(),
        forwarded_for: args.forwarded_for.map(|a| a.to_string()),
        signed_in: args.signed_in,
        max_in_flight: cap,
        setup_seconds: setup.as_secs_f64(),
        started_at_ms,
        duration_seconds: scheduled.as_secs_f64(),
        elapsed_seconds: elapsed.as_secs_f64(),
        endpoints,
        total: stats::total(&s.endpoints).summarize("total", "all", scheduled),
        faces: if args.abusive {
            Face::ALL
                .iter()
                .map(|f| s.faces[*f as usize].summarize(f.name(), f.counted_as(), scheduled))
                .collect()
        } else {
            vec![]
        },
        settle_polls: args.settle.then(|| {
            s.polls
                .summarize("order-status", "GET /api/v1/orders/{id}", scheduled)
        }),
        settle: args.settle.then(|| s.settle.summarize(scheduled)),
    })
}

/// What arrival `n` does: every choice drawn from the run's seeded generator.
fn draw(
    kind: Kind,
    rng: &mut impl Rng,
    shop: &Shop,
    args: &LoadgenArgs,
    run_id: u128,
    n: usize,
) -> Call {
    let sku = &shop.skus[rng.random_range(0..shop.skus.len())];
    let mut call = Call {
        kind,
        method: Method::GET,
        path: String::new(),
        token: None,
        idempotency_key: None,
        body: None,
        forwarded_for: None,
        face: None,
    };
    // Whose arrival: one of the shoppers (drawn only when it matters, so that a run without
    // identities draws what it always drew), or the abuser.
    let catalog = !matches!(kind, Kind::SignIn | Kind::Order);
    let identified = args.signed_in || args.forwarded_for.is_some();
    let who = if args.abusive || (catalog && !identified) {
        0
    } else {
        rng.random_range(0..args.shoppers() as usize)
    };
    let user = shop.users.get(who);
    match kind {
        Kind::Browse => call.path = "/api/v1/products?limit=20".to_string(),
        Kind::Search => {
            let word = shop
                .words
                .get(rng.random_range(0..shop.words.len().max(1)))
                .map_or("shop", String::as_str);
            call.path = format!("/api/v1/products?q={word}&limit=20");
        }
        Kind::Product => call.path = format!("/api/v1/products/{sku}"),
        Kind::Recommendations => call.path = format!("/api/v1/products/{sku}/recommendations"),
        Kind::SignIn => {
            call.method = Method::POST;
            call.path = "/api/v1/sessions".to_string();
            call.body = user.map(|u| Shop::sign_in_body(&u.email));
        }
        Kind::Order => {
            let sku = args.sku.as_deref().unwrap_or(sku);
            call.method = Method::POST;
            call.path = "/api/v1/orders".to_string();
            call.token = user.map(|u| u.token.clone());
            call.idempotency_key = Some(format!("loadgen-{run_id}-{}-{n}", args.seed));
            call.body =
                Some(serde_json::json!({"items": [{"sku": sku, "quantity": 1}]}).to_string());
        }
    }
    if args.abusive {
        let face = Face::pick(rng);
        call.face = Some(face);
        call.token = match face {
            Face::Anonymous => None,
            Face::ForgedToken => Some(identity::forged_token(rng)),
            Face::SignedIn => user.map(|u| u.token.clone()),
        };
        call.forwarded_for = args
            .forwarded_for
            .map(|a| identity::forged_forwarded_for(rng, a.nth(0)));
    } else {
        if args.signed_in && catalog {
            call.token = user.map(|u| u.token.clone());
        }
        call.forwarded_for = args.forwarded_for.map(|a| a.nth(who).to_string());
    }
    call
}

/// Who polls an order: its owner's token, from its address.
struct Who<'a> {
    token: &'a str,
    forwarded_for: Option<&'a str>,
}

/// Polls an accepted order until it settles or the patience runs out.
async fn settle_order(
    shop: &Shop,
    state: &Mutex<State>,
    id: &str,
    who: Who<'_>,
    due: Instant,
    every: Duration,
    patience: Duration,
) {
    let deadline = due + patience;
    loop {
        tokio::time::sleep(every).await;
        let t = Instant::now();
        let (outcome, settled) = shop.order_status(id, who.token, who.forwarded_for).await;
        let mut s = lock(state);
        s.polls.offered += 1;
        s.polls.record(outcome, t.elapsed());
        if let Some((status, reason)) = settled {
            let latency = due.elapsed();
            s.settle.latency.record(latency);
            if status == "CONFIRMED" {
                s.settle.confirmed += 1;
                s.settle.confirmed_latency.record(latency);
            } else {
                s.settle.cancelled += 1;
                *s.settle
                    .cancelled_reasons
                    .entry(reason_kind(reason.as_deref()))
                    .or_default() += 1;
            }
            return;
        }
        if Instant::now() >= deadline {
            s.settle.unsettled += 1;
            return;
        }
    }
}

/// A cancellation reason without its particulars ("out of stock: SKU-1: 1 requested, 0
/// available" → "out of stock"), so that reasons add up.
fn reason_kind(reason: Option<&str>) -> String {
    match reason.map(|r| r.split(':').next().unwrap_or(r).trim()) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => "(no reason given)".to_string(),
    }
}

/// One line a second on standard error: the last second's rates, errors and percentiles.
async fn progress(
    state: Arc<Mutex<State>>,
    permits: Arc<Semaphore>,
    cap: usize,
    done: Arc<AtomicBool>,
    start: Instant,
    schedule: super::schedule::Schedule,
) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut prev = Endpoint::default();
    let mut prev_settled = 0;
    while !done.load(Ordering::SeqCst) {
        tick.tick().await;
        let (now, window, settled) = {
            let mut s = lock(&state);
            let window = s.window.summary();
            s.window.reset();
            (
                stats::total(&s.endpoints),
                window,
                s.settle.confirmed + s.settle.cancelled,
            )
        };
        let at = start.elapsed();
        let errors = |e: &Endpoint| e.finished() - e.ok;
        let line = format!(
            "[{:>5.0}s] scheduled {:>7.1}/s  offered {:>6}  2xx {:>6}  errors {:>4}  dropped {:>4}  in flight {:>5}  p50 {:>8}  p99 {:>8} ms{}",
            at.as_secs_f64(),
            schedule.rate_at(at.saturating_sub(Duration::from_millis(500))),
            now.offered - prev.offered,
            now.ok - prev.ok,
            errors(&now) - errors(&prev),
            now.dropped - prev.dropped,
            cap - permits.available_permits(),
            window.map_or_else(|| "-".to_string(), |w| format!("{:.1}", w.p50)),
            window.map_or_else(|| "-".to_string(), |w| format!("{:.1}", w.p99)),
            if settled > 0 {
                format!("  settled {}", settled - prev_settled)
            } else {
                String::new()
            },
        );
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        prev = now;
        prev_settled = settled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_grouped_by_their_kind() {
        assert_eq!(
            reason_kind(Some(
                "out of stock: SKU-0000-000072: 1 requested, 0 available"
            )),
            "out of stock"
        );
        assert_eq!(reason_kind(Some("payment declined")), "payment declined");
        assert_eq!(reason_kind(Some("")), "(no reason given)");
        assert_eq!(reason_kind(None), "(no reason given)");
    }
}
