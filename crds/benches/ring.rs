//! Ring lookup cost (DESIGN.md: ≤ 50 ns): hashing a SKU and placing it with jump consistent
//! hash, for the smallest and largest shard counts a Storefront allows.
//!
//! `cargo bench -p storefront-crds --bench ring`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use storefront_crds::ring::{Ring, RingDocument, RingShard, jump, key_hash};

fn ring(shards: i32) -> Ring {
    let doc = RingDocument {
        service: "inventory".into(),
        epoch: 1,
        algorithm: "jump".into(),
        shards: (0..shards)
            .map(|index| RingShard {
                index,
                name: format!("shop-inventory-{index}"),
                address: format!("shop-inventory-{index}.shop.svc:9090"),
                endpoints: None,
            })
            .collect(),
    };
    match Ring::from_document(doc) {
        Ok(ring) => ring,
        Err(e) => panic!("failed to build the benchmark ring: {e}"),
    }
}

/// Distinct SKUs, visited in a scrambled order: enough that the branch predictor cannot
/// learn the jump loop's lengths (which would flatter the figure), few enough (~150 KiB)
/// to stay in cache, as the SKU of a request being routed is.
const KEYS: usize = 1 << 12;

fn lookups(c: &mut Criterion) {
    let skus: Vec<String> = (0..KEYS)
        .map(|i| {
            // A fixed odd multiplier permutes 0..KEYS; catalog-shaped SKUs.
            let n = i.wrapping_mul(2_654_435_761) % KEYS;
            format!("SKU-{:04}-{n:06}", n % 97)
        })
        .collect();
    let mut group = c.benchmark_group("ring");
    for shards in [3, 16, 64] {
        let ring = ring(shards);
        group.bench_with_input(BenchmarkId::new("lookup", shards), &ring, |b, ring| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(ring.shard(black_box(&skus[i])));
            });
        });
        let n = shards as u32;
        group.bench_with_input(BenchmarkId::new("jump", shards), &n, |b, &n| {
            let mut k = 0u64;
            b.iter(|| {
                k = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(jump(black_box(k), n));
            });
        });
    }
    group.bench_function("key_hash", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(key_hash(black_box(&skus[i])));
        });
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
