//! The resharding machine's tests, by topic: the decisions step by step (`steps.rs`), the
//! whole machine driven against a simulated shop (shards holding stock, routers on a ring,
//! shoppers buying all along) with a crash injected at every step: stock is conserved, every
//! key ends on its owner only, and the switch never lets two shards accept the same key
//! (`simulated.rs`), the conversions for status, Jobs and shards (`record.rs`), and
//! properties over random runs (`properties.rs`). The helpers below are shared.

use std::collections::BTreeMap;

use storefront_crds::ring::shard_of;

use super::*;

fn ring(shards: u32, epoch: i64) -> Ring {
    Ring { shards, epoch }
}

fn ready(n: u32) -> BTreeSet<u32> {
    (0..n).collect()
}

fn at(step: Step, attempt: u32) -> Reshard {
    Reshard {
        from: 4,
        to: 5,
        epoch: 2,
        step,
        attempt,
    }
}

fn finished(epoch: i64, attempt: u32, keys: u64, mismatched: u64) -> Option<Progress> {
    Some(Progress {
        epoch,
        attempt,
        keys,
        done_keys: keys,
        mismatched,
        finished: true,
    })
}

mod properties;
mod record;
mod simulated;
mod steps;
