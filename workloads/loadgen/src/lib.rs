//! `storefront-workloads loadgen`: open-loop shopper traffic against a Storefront's public
//! API, with latency percentiles per endpoint.
//!
//! ```text
//!   schedule (stages) ──► dispatcher ──(kind, params from the seeded mix)──► one task per request
//!        arrival n due at start + t(n)          │ cap reached? → dropped (counted)  │
//!                                              ▼                                    ▼
//!                                  progress line every second ◄──── stats (HDR histograms)
//!                                                                     │ 202 + --settle
//!                                                                     ▼
//!                                                  poll GET /orders/{id} → order → settled
//! ```
//!
//! - **Open loop, no coordinated omission.** Arrivals come from [`schedule`], a function of
//!   the clock only: the dispatcher never waits for an answer, and each request's latency is
//!   measured from its *scheduled* start, so a dispatcher or server that falls behind shows
//!   up as latency, not as a quietly lower rate.
//! - **Concurrency cap** (`--max-in-flight`): an arrival that finds the cap reached is not
//!   sent and is counted as `dropped` for its endpoint (in the table and the JSON).
//! - **Shapes** (`--shape`, [`schedule::Shape`]) or `--stages` (`DURATION@RPS` held,
//!   `DURATION@FROM..TO` linear; see [`schedule`]).
//! - **Mix** (`--mix browse=40,search=20,…`, [`mix`]): browse, search (a word of a learned
//!   product name), product page, recommendations, sign in (a pooled user), order (one line
//!   of a learned SKU, or `--sku`, with a pooled user's token and a fresh `Idempotency-Key`).
//! - **Setup**: `--users` users signed up (409 = already there) and signed in, `--skus` SKUs
//!   learned from the listing; a starting shop's 503s are waited out for a minute.
//! - **Clients** ([`identity`]): as the gateway's per-client limits see them. `--forwarded-for
//!   <CIDR>` gives each shopper its own address (`X-Forwarded-For`, believed from a trusted
//!   proxy only), `--signed-in` puts the shopper's token on catalog requests, and `--abusive`
//!   makes the whole schedule one misbehaving client's (no token, forged tokens, its own
//!   account), reported by face beside the endpoints.
//! - **Report** ([`stats`]): per endpoint offered and achieved (2xx) rates over the
//!   schedule's length, p50/p90/p99/max, 2xx/4xx/429/5xx, transport errors, drops; with
//!   `--settle`, the order → CONFIRMED/CANCELLED latency (each 202 polled every
//!   `--settle-poll`) and confirmed orders per second. `--out` writes it all as JSON, with
//!   the set-up's length and the schedule's wall-clock start (`startedAtMs`), so that runs
//!   side by side can be checked to overlap.

pub mod identity;
pub mod mix;
pub mod run;
pub mod schedule;
pub mod shop;
pub mod stats;

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};

pub use run::run;

use self::{
    identity::{Addresses, check_room},
    mix::{DEFAULT_MIX, Kind, Mix},
    schedule::{
        Schedule, Shape, Stage, default_factor, parse_duration, parse_stages, shape_stages,
    },
};

/// A parsed `--stages` list.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages(pub Vec<Stage>);

fn stages_arg(s: &str) -> Result<Stages, String> {
    parse_stages(s).map(Stages).map_err(|e| format!("{e:#}"))
}

fn mix_arg(s: &str) -> Result<Mix, String> {
    Mix::parse(s).map_err(|e| format!("{e:#}"))
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{e:#}"))
}

fn addresses_arg(s: &str) -> Result<Addresses, String> {
    s.parse().map_err(|e| format!("{e:#}"))
}

fn rate_arg(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (0.0..=1_000_000.0).contains(r))
        .ok_or_else(|| format!("invalid rate {s:?}: requests per second, from 0 to 1000000"))
}

fn factor_arg(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (1.0..=1000.0).contains(r))
        .ok_or_else(|| format!("invalid factor {s:?}: a multiplier from 1 to 1000"))
}

/// `loadgen` settings.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// The gateway: `http://host:port`.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080", value_parser = shop::parse_target)]
    pub target: String,
    /// The shape of the offered rate over time.
    #[arg(long, value_enum, default_value = "steady")]
    pub shape: Shape,
    /// The base rate, requests per second.
    #[arg(long, default_value = "10", value_parser = rate_arg)]
    pub rate: f64,
    /// The length of the run (`30s`, `2m`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Peak over base rate for `spike` (default 5) and `flash-sale` (default 20).
    #[arg(long, value_parser = factor_arg)]
    pub factor: Option<f64>,
    /// A custom schedule instead of a shape: `10s@50,30s@1000,10s@50` (held rates) or
    /// `60s@0..500` (linear), comma-separated.
    #[arg(long, value_parser = stages_arg, conflicts_with_all = ["shape", "rate", "duration", "factor"])]
    pub stages: Option<Stages>,
    /// Weights of the shopper mix: browse, search, product, recommendations, signin, order.
    #[arg(long, default_value = DEFAULT_MIX, value_parser = mix_arg)]
    pub mix: Mix,
    /// The shoppers: users to sign up (or reuse) and sign in before the run, for sign-ins,
    /// orders and `--signed-in`; with `--forwarded-for`, as many addresses.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: u32,
    /// Each shopper sends `X-Forwarded-For: <its own address>` from this range
    /// (`198.51.100.0/24`; IPv6: a /64 each), as a proxy in front of the shop would write it;
    /// the gateway believes it only from a proxy the Storefront trusts. With `--abusive`, the
    /// abuser is the range's first address and forges a hop before it.
    #[arg(long, value_parser = addresses_arg)]
    pub forwarded_for: Option<Addresses>,
    /// Signed-in shoppers: browse, search, product and recommendations requests carry the
    /// shopper's token too (orders always do), so the gateway counts them per user.
    #[arg(long, conflicts_with = "abusive")]
    pub signed_in: bool,
    /// One misbehaving client instead of shoppers: every arrival of the schedule is its
    /// request (the kind from `--mix`), with no token, a forged token or its own account's
    /// token, a third each; reported by face as well as by endpoint.
    #[arg(long, conflicts_with_all = ["users", "signed_in"])]
    pub abusive: bool,
    /// SKUs to learn from the listing (product pages, recommendations, orders).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub skus: u32,
    /// Order this one SKU only (a hot item); product pages still use the learned ones.
    #[arg(long)]
    pub sku: Option<String>,
    /// The seed of the mix: the same seed, catalog and users give the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests in flight at most; arrivals beyond are dropped and counted.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Per-request timeout (then a transport error).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub timeout: Duration,
    /// Poll every accepted order until CONFIRMED or CANCELLED and report order → settled.
    #[arg(long)]
    pub settle: bool,
    /// How often `--settle` polls an order.
    #[arg(long, default_value = "100ms", value_parser = duration_arg)]
    pub settle_poll: Duration,
    /// How long `--settle` waits for an order before counting it unsettled.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    pub settle_timeout: Duration,
    /// Write the JSON summary here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress line on standard error.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadgenArgs {
    /// How many distinct shoppers the arrivals are spread over (1 for `--abusive`).
    pub fn shoppers(&self) -> u32 {
        if self.abusive { 1 } else { self.users }
    }

    /// Whether set-up creates accounts: for sign-ins, orders, signed-in browsing and the
    /// abuser's signed-in face.
    pub fn needs_accounts(&self) -> bool {
        self.abusive || self.signed_in || self.mix.has(Kind::Order) || self.mix.has(Kind::SignIn)
    }

    /// Checks what flags cannot say alone (then [`LoadgenArgs::schedule`]).
    pub fn check(&self) -> Result<()> {
        if let Some(addresses) = &self.forwarded_for {
            check_room(addresses, self.shoppers())?;
        }
        Ok(())
    }

    /// The schedule the flags describe.
    pub fn schedule(&self) -> Result<Schedule> {
        let stages = match &self.stages {
            Some(Stages(stages)) => stages.clone(),
            None => shape_stages(
                self.shape,
                self.rate,
                self.duration,
                self.factor.unwrap_or_else(|| default_factor(self.shape)),
            ),
        };
        let schedule = Schedule::new(stages);
        if schedule.total() == 0 {
            bail!(
                "invalid load: no request would be sent (raise --rate or --duration, or use --stages)"
            );
        }
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn parse(args: &[&str]) -> Result<LoadgenArgs, String> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_a_gentle_steady_load() {
        let a = parse(&[]).expect("parses");
        let s = a.schedule().expect("a schedule");
        assert_eq!(s.total(), 300);
        assert_eq!(a.mix.to_string(), DEFAULT_MIX);
    }

    #[test]
    fn shapes_and_stages() {
        let a =
            parse(&["--shape", "flash-sale", "--rate", "5", "--duration", "100s"]).expect("parses");
        assert_eq!(a.schedule().expect("a schedule").stages().len(), 4);
        let a = parse(&["--stages", "1s@10,2s@0..20"]).expect("parses");
        assert_eq!(a.schedule().expect("a schedule").total(), 30);
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        for (args, wanted) in [
            (&["--rate", "fast"][..], "invalid rate \"fast\""),
            (&["--rate=-5"][..], "invalid rate \"-5\""),
            (
                &["--duration", "forever"][..],
                "invalid duration \"forever\"",
            ),
            (&["--shape", "zigzag"][..], "zigzag"),
            (&["--stages", "10s@x"][..], "the rate \"x\""),
            (
                &["--stages", "10s@5", "--rate", "3"][..],
                "cannot be used with",
            ),
            (
                &["--mix", "browse=1,teleport=2"][..],
                "\"teleport\" is not one of",
            ),
            (&["--users", "0"][..], "--users"),
            (&["--target", "ftp://x"][..], "only http://"),
            (&["--factor", "0.5"][..], "invalid factor"),
            (&["--forwarded-for", "10.0.0.0"][..], "a CIDR such as"),
            (&["--abusive", "--signed-in"][..], "cannot be used with"),
            (&["--abusive", "--users", "3"][..], "cannot be used with"),
        ] {
            let err = parse(args).expect_err(wanted);
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
        let err = parse(&["--rate", "0"])
            .expect("parses")
            .schedule()
            .expect_err("nothing to send");
        assert!(
            err.to_string().contains("no request would be sent"),
            "{err}"
        );
        let err = parse(&["--forwarded-for", "198.51.100.0/30", "--users", "3"])
            .expect("parses")
            .check()
            .expect_err("2 addresses for 3 shoppers");
        assert!(err.to_string().contains("fewer than --users 3"), "{err}");
    }

    #[test]
    fn who_the_shoppers_are() {
        let a = parse(&["--mix", "browse=1"]).expect("parses");
        assert!(!a.needs_accounts(), "anonymous browsing needs no account");
        assert_eq!(a.shoppers(), 20);
        let a = parse(&["--mix", "browse=1", "--signed-in"]).expect("parses");
        assert!(a.needs_accounts());
        let a = parse(&[
            "--mix",
            "browse=1",
            "--abusive",
            "--forwarded-for",
            "203.0.113.0/32",
        ])
        .expect("parses");
        assert!(a.needs_accounts(), "the abuser's signed-in face");
        assert_eq!(a.shoppers(), 1);
        a.check().expect("one address is room for one client");
    }
}
