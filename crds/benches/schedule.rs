//! Cost of a sale's schedule: parsing and checking a spec (done on every reconcile that
//! reads the sale) and the phase at `now`, for a minutely and a weekly recurring window in a
//! DST zone, beside a one-off window as the baseline.

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use storefront_crds::{FlashSaleSpec, schedule::Schedule};

fn spec(yaml: &str) -> FlashSaleSpec {
    serde_yaml::from_str(&format!("storefrontRef: acme\n{yaml}")).expect("spec parses")
}

fn bench(c: &mut Criterion) {
    let now: Timestamp = "2026-11-27T19:30:00Z".parse().expect("timestamp");
    for (name, yaml) in [
        (
            "one-off",
            "start: 2026-11-27T19:00:00Z\nend: 2026-11-27T22:00:00Z\n",
        ),
        (
            "weekly-berlin",
            "schedule: {cron: '0 20 * * FRI', duration: 3h, timeZone: Europe/Berlin}\n",
        ),
        (
            "minutely-berlin",
            "schedule: {cron: '* * * * *', duration: 20s, timeZone: Europe/Berlin}\n",
        ),
    ] {
        let s = spec(yaml);
        c.bench_function(&format!("schedule/from_spec+state/{name}"), |b| {
            b.iter(|| {
                Schedule::from_spec(std::hint::black_box(&s), now)
                    .expect("valid")
                    .state(now)
            })
        });
        let sched = Schedule::from_spec(&s, now).expect("valid");
        c.bench_function(&format!("schedule/state/{name}"), |b| {
            b.iter(|| sched.state(std::hint::black_box(now)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
