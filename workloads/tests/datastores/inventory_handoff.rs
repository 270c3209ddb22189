//! Resharding's data handoff against a real PostgreSQL: shards with the ring in the database
//! take orders from many tasks while the shard count goes 4 → 5 → 3 → 4, and afterwards no
//! stock is lost or re-seeded, nothing stays reserved, every order settled, every key is on
//! its owner only; a bad copy is refused under the switch's lock; a settlement that reaches
//! a line's new owner before the line does is applied at the switch.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use rand::{
    Rng, SeedableRng,
    seq::{IndexedRandom, SliceRandom},
};
use rand_chacha::ChaCha8Rng;
use sqlx::AssertSqlSafe;
use storefront_crds::ring::shard_of;
use storefront_workloads::inventory::{
    domain::ReserveOutcome,
    handoff::{Fault, Handoff, HandoffError},
    postgres::{PgInventory, RingPlace},
};
use tokio::sync::Mutex;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

/// A fresh prefix: shard schemas `<prefix><i>`, the ring `<prefix>ring`.
async fn fresh_prefix() -> String {
    let prefix = format!(
        "it_ho_{}_{}_",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let pool = sqlx::PgPool::connect(&url()).await.expect("connects");
    for i in 0..8 {
        sqlx::query(AssertSqlSafe(format!(
            r#"DROP SCHEMA IF EXISTS "{prefix}{i}" CASCADE"#
        )))
        .execute(&pool)
        .await
        .expect("clean");
    }
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{prefix}ring" CASCADE"#
    )))
    .execute(&pool)
    .await
    .expect("clean");
    prefix
}

/// Shards `0..n` of a shop whose ring starts at `initial` shards, epoch 1.
async fn shards(prefix: &str, n: u32, initial: u32) -> Vec<PgInventory> {
    let mut out = Vec::new();
    for index in 0..n {
        let place = RingPlace {
            prefix: prefix.to_string(),
            index,
        };
        let s = PgInventory::connect_shard(&url(), place, 8)
            .await
            .expect("connects");
        s.migrate_ring(initial, 1).await.expect("migrates");
        out.push(s);
    }
    out
}

fn lines(items: &[(&str, u32)]) -> Vec<(String, u32)> {
    items.iter().map(|(s, q)| (s.to_string(), *q)).collect()
}

/// The first `k` SKUs that shard `a` owns among `n` shards and shard `b` among `m`.
fn skus_moving(a: u32, n: u32, b: u32, m: u32, k: usize) -> Vec<String> {
    (0..100_000)
        .map(|i| format!("MOVE-{i}"))
        .filter(|s| shard_of(s, n) == a && shard_of(s, m) == b)
        .take(k)
        .collect()
}

/// (stock, reserved) of every SKU in schema `<prefix><i>`.
async fn table(prefix: &str, i: u32) -> BTreeMap<String, (i64, i64)> {
    let pool = sqlx::PgPool::connect(&url()).await.expect("connects");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
    )
    .bind(format!("{prefix}{i}"))
    .fetch_one(&pool)
    .await
    .expect("query");
    if !exists {
        return BTreeMap::new();
    }
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        r#"SELECT sku, stock, reserved FROM "{prefix}{i}".stock"#
    )))
    .fetch_all(&pool)
    .await
    .expect("query");
    rows.into_iter().map(|(s, a, b)| (s, (a, b))).collect()
}

#[tokio::test]
async fn a_bad_copy_is_refused_under_the_lock_and_nothing_switches() {
    let prefix = fresh_prefix().await;
    let s = shards(&prefix, 2, 1).await;
    let moving = skus_moving(0, 1, 1, 2, 1).remove(0);
    s[0].set_stock(&moving, 10).await.expect("stock");
    s[0].set_stock("STAYS", 10).await.expect("stock");
    let mut h = Handoff::connect(&url(), &prefix).await.expect("connects");
    let copied = h.copy(1, 2).await.expect("copies");
    assert!(copied.keys >= 1, "{copied:?}");
    let verified = h.verify(1, 2).await.expect("verifies");
    assert!(verified.mismatched.is_empty(), "{verified:?}");

    h.inject(Fault::CorruptAfterSync);
    match h.switch(1, 2, 2).await {
        Err(HandoffError::Mismatch(m)) => assert_eq!(m.keys, 1, "{m:?}"),
        other => panic!("a corrupted copy must be refused, got {other:?}"),
    }
    let ring = h.ring().await.expect("ring");
    assert_eq!((ring.shards, ring.epoch), (1, 1), "nothing switched");
    assert_eq!(
        table(&prefix, 0).await.get(&moving),
        Some(&(10, 0)),
        "the old owner keeps the key"
    );

    h.inject(Fault::None);
    let done = h.switch(1, 2, 2).await.expect("switches");
    assert!(done.now && done.moved_keys >= 1, "{done:?}");
    assert_eq!(table(&prefix, 0).await.get(&moving), None, "moved away");
    assert_eq!(table(&prefix, 1).await.get(&moving), Some(&(10, 0)));
    // Idempotent: the same switch again reads the record.
    let again = h.switch(1, 2, 2).await.expect("recorded");
    assert!(!again.now);
    assert_eq!(again.moved_keys, done.moved_keys);
    // A switch for a ring that moved on is refused.
    assert!(matches!(
        h.switch(1, 3, 2).await,
        Err(HandoffError::RingMoved { .. })
    ));
}

#[tokio::test]
async fn settlements_that_reach_a_new_owner_first_apply_when_the_lines_arrive() {
    let prefix = fresh_prefix().await;
    let s = shards(&prefix, 2, 1).await;
    let moving = skus_moving(0, 1, 1, 2, 2);
    let (a, c) = (moving[0].clone(), moving[1].clone());
    for sku in [&a, &c] {
        s[0].set_stock(sku, 10).await.expect("stock");
    }
    // Shard 0 holds both orders' lines while it owns everything.
    for (order, sku) in [("confirmed", &a), ("cancelled", &c)] {
        let held = s[0].hold(order, &lines(&[(sku, 3)])).await.expect("holds");
        assert_eq!(held.outcome, ReserveOutcome::Reserved);
        assert_eq!(held.skus, std::slice::from_ref(sku));
    }
    // Shard 1 hears of the confirmation and the cancellation first: it holds nothing yet.
    assert!(!s[1].commit("confirmed").await.expect("commits"));
    assert!(!s[1].release("cancelled").await.expect("releases"));

    let h = Handoff::connect(&url(), &prefix).await.expect("connects");
    let done = h.switch(1, 2, 2).await.expect("switches");
    assert_eq!(done.settled_lines, 2, "{done:?}");
    let one = table(&prefix, 1).await;
    assert_eq!(one.get(&a), Some(&(7, 0)), "sold at the switch");
    assert_eq!(one.get(&c), Some(&(10, 0)), "given back at the switch");
    // Shard 0 hears of them afterwards: nothing left to do, nothing done twice.
    assert!(!s[0].commit("confirmed").await.expect("commits"));
    assert!(!s[0].release("cancelled").await.expect("releases"));
    let one = table(&prefix, 1).await;
    assert_eq!((one.get(&a), one.get(&c)), (Some(&(7, 0)), Some(&(10, 0))));
    // A late reservation of the cancelled order is refused by its new owner too.
    let late = s[1]
        .hold("cancelled", &lines(&[(&c, 1)]))
        .await
        .expect("answers");
    assert!(matches!(late.outcome, ReserveOutcome::Rejected(_)));
    // Reads through the old owner find the new one.
    let level = s[0].level(&a).await.expect("reads").expect("known");
    assert_eq!((level.stock, level.reserved), (7, 0));
}

#[tokio::test]
async fn a_line_missed_across_the_switch_is_held_when_asked_again() {
    let prefix = fresh_prefix().await;
    let s = shards(&prefix, 2, 1).await;
    let a = skus_moving(0, 1, 1, 2, 1).remove(0);
    s[0].set_stock(&a, 5).await.expect("stock");
    let order = lines(&[(&a, 2)]);
    // The new shard answers before the switch: it owns nothing yet.
    let early = s[1].hold("o1", &order).await.expect("answers");
    assert_eq!((early.ring.epoch, early.skus.len()), (1, 0));
    let h = Handoff::connect(&url(), &prefix).await.expect("connects");
    h.switch(1, 2, 2).await.expect("switches");
    // The old owner answers after it: the SKU is gone. Nobody holds it.
    let late = s[0].hold("o1", &order).await.expect("answers");
    assert_eq!((late.ring.epoch, late.skus.len()), (2, 0));
    assert_eq!(table(&prefix, 1).await.get(&a), Some(&(5, 0)));
    // Orders sees two epochs and asks again: the new owner holds it, once.
    for _ in 0..2 {
        let again = s[1].hold("o1", &order).await.expect("answers");
        assert_eq!(again.outcome, ReserveOutcome::Reserved);
        assert_eq!(again.skus, std::slice::from_ref(&a));
    }
    assert_eq!(table(&prefix, 1).await.get(&a), Some(&(5, 2)));
    assert!(s[1].commit("o1").await.expect("commits"));
    assert_eq!(table(&prefix, 1).await.get(&a), Some(&(3, 0)));
}

/// Per order, what the test saw: the quantities per SKU and how it ended.
#[derive(Default)]
struct Book {
    sold: BTreeMap<String, i64>,
    confirmed: u64,
    cancelled: u64,
    rejected: u64,
    requests: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_during_four_to_five_to_three_to_four_lose_nothing() {
    const SKUS: usize = 400;
    const STOCK: i64 = 40;
    const WORKERS: u64 = 6;
    let prefix = fresh_prefix().await;
    let s = Arc::new(shards(&prefix, 5, 4).await);
    // A tenth of the SKUs are scarce, so orders are rejected during the switches too.
    let stock = |i: usize| if i.is_multiple_of(10) { 4 } else { STOCK };
    let catalog: Vec<(String, i64)> = (0..SKUS)
        .map(|i| (format!("SKU-{i:04}"), stock(i)))
        .collect();
    s[0].stock_missing(&catalog).await.expect("seeds");
    let skus: Arc<Vec<String>> = Arc::new(catalog.iter().map(|(k, _)| k.clone()).collect());
    let book = Arc::new(Mutex::new(Book::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (s, skus, book, stop) = (s.clone(), skus.clone(), book.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(w);
            let mut n = 0;
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let order = format!("w{w}-{n}");
                let count = rng.random_range(1..=3);
                let picked: Vec<(String, u32)> = skus
                    .choose_multiple(&mut rng, count)
                    .map(|k| (k.clone(), rng.random_range(1..=2)))
                    .collect();
                let wanted: BTreeSet<String> = picked.iter().map(|(k, _)| k.clone()).collect();
                // Every shard answers, in a random order, as their consumers would.
                let mut covered = BTreeSet::new();
                let mut rejected = false;
                let mut attempt = 0;
                loop {
                    let mut order_of: Vec<usize> = (0..s.len()).collect();
                    order_of.shuffle(&mut rng);
                    let mut epochs = BTreeSet::new();
                    for i in order_of {
                        let t = Instant::now();
                        let held = s[i].hold(&order, &picked).await.expect("answers");
                        slowest = slowest.max(t.elapsed());
                        epochs.insert(held.ring.epoch);
                        match held.outcome {
                            ReserveOutcome::Reserved => covered.extend(held.skus),
                            ReserveOutcome::Rejected(_) => rejected = true,
                        }
                        tokio::task::yield_now().await;
                    }
                    if rejected || covered == wanted || attempt == 3 {
                        break;
                    }
                    attempt += 1;
                }
                let confirm = !rejected && covered == wanted && rng.random_bool(0.7);
                let mut order_of: Vec<usize> = (0..s.len()).collect();
                order_of.shuffle(&mut rng);
                for i in order_of {
                    if confirm {
                        s[i].commit(&order).await.expect("commits");
                    } else {
                        s[i].release(&order).await.expect("releases");
                    }
                }
                let mut b = book.lock().await;
                b.requests += attempt;
                if confirm {
                    b.confirmed += 1;
                    for (k, q) in &picked {
                        *b.sold.entry(k.clone()).or_default() += i64::from(*q);
                    }
                } else if rejected {
                    b.rejected += 1;
                } else {
                    b.cancelled += 1;
                }
            }
            slowest
        }));
    }
    let h = Handoff::connect(&url(), &prefix).await.expect("connects");
    let mut epoch = 1;
    let mut from = 4;
    for to in [5, 3, 4] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let copied = h.copy(from, to).await.expect("copies");
        let verified = h.verify(from, to).await.expect("verifies");
        epoch += 1;
        let switched = h.switch(from, to, epoch).await.expect("switches");
        println!(
            "figure: handoff {from} -> {to}: {} of {SKUS} keys moved (ideal {:.0}), {} lines, \
             copy wrote {}, verify found {} keys / {} lines changed since, switch synced {}, \
             settled {}; lock wait {:.1} ms, pause {:.1} ms",
            switched.moved_keys,
            SKUS as f64 * ideal_share(from, to),
            switched.moved_lines,
            copied.done_keys,
            verified.mismatched.keys,
            verified.mismatched.lines,
            switched.synced_keys,
            switched.settled_lines,
            switched.lock_wait_ms,
            switched.pause_ms
        );
        assert!(switched.now);
        if to < from {
            // Shards to..from hold nothing any more.
            for i in to..from {
                assert!(table(&prefix, i).await.is_empty(), "shard {i} emptied");
            }
        }
        from = to;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut slowest = Duration::ZERO;
    for w in workers {
        slowest = slowest.max(w.await.expect("worker"));
    }
    let b = book.lock().await;
    println!(
        "figure: {} orders confirmed, {} cancelled, {} rejected, {} asked again; slowest \
         shard answer {:.1} ms",
        b.confirmed,
        b.cancelled,
        b.rejected,
        b.requests,
        slowest.as_secs_f64() * 1e3
    );
    assert!(b.confirmed > 50, "enough orders ran: {}", b.confirmed);

    // Every SKU on its owner only, its stock = seeded − sold, nothing reserved.
    // SKU → [(shard, (stock, reserved))]
    type Copies = BTreeMap<String, Vec<(u32, (i64, i64))>>;
    let mut everywhere: Copies = BTreeMap::new();
    for i in 0..5 {
        for (k, v) in table(&prefix, i).await {
            everywhere.entry(k).or_default().push((i, v));
        }
    }
    let mut wrong = Vec::new();
    for (sku, seeded) in &catalog {
        let want = seeded - b.sold.get(sku).copied().unwrap_or(0);
        match everywhere.get(sku).map(Vec::as_slice) {
            Some([(i, (stock, reserved))])
                if *i == shard_of(sku, 4) && *stock == want && *reserved == 0 => {}
            other => wrong.push(format!(
                "{sku}: want {want} on shard {}, found {other:?}",
                shard_of(sku, 4)
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} SKUs wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(everywhere.len(), SKUS, "no SKU appeared or vanished");
    // Shard 4, removed by 5 -> 3, holds nothing: its schema can go; a shard in use cannot.
    h.retire(4).await.expect("shard 4 holds nothing");
    assert!(matches!(
        h.retire(0).await,
        Err(HandoffError::NotEmpty { .. })
    ));
}

/// The share of keys that moves from `from` to `to` shards under jump hash.
fn ideal_share(from: u32, to: u32) -> f64 {
    let (a, b) = (f64::from(from), f64::from(to));
    if to > from { (b - a) / b } else { (a - b) / a }
}
