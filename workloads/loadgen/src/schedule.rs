//! The arrival schedule: a list of stages, each a duration and a rate that is either held
//! (step) or moved linearly from one value to another, and the instant of the n-th arrival.
//!
//! Arrivals are evenly spaced along the cumulative count `N(t) = ∫ rate`: arrival `n`
//! (from 0) is scheduled at the `t` where `N(t) = n`, so a steady 100/s puts arrivals at
//! 0, 10 ms, 20 ms, … and exactly 100 fall in each second. The schedule depends only on the
//! clock, never on answers: the offered rate is what the shape says however slow the server.
//!
//! `--stages` syntax, comma-separated: `DURATION@RPS` holds RPS for DURATION (a step), and
//! `DURATION@FROM..TO` moves linearly from FROM to TO over DURATION. Durations are `500ms`,
//! `10s`, `2m`, `1h` or bare seconds. `10s@50,30s@1000,10s@50` is a 50 → 1000 → 50 step;
//! `60s@0..500` a one-minute ramp.

use std::{fmt, time::Duration};

use anyhow::{Context, Result, bail};

/// One stage: `rate_from` at its start to `rate_to` at its end (equal for a step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub rate_from: f64,
    pub rate_to: f64,
}

impl Stage {
    /// A held rate.
    pub fn step(duration: Duration, rate: f64) -> Self {
        Self {
            duration,
            rate_from: rate,
            rate_to: rate,
        }
    }

    /// A linear change of rate.
    pub fn linear(duration: Duration, from: f64, to: f64) -> Self {
        Self {
            duration,
            rate_from: from,
            rate_to: to,
        }
    }

    /// Arrivals in the whole stage (fractional).
    fn count(&self) -> f64 {
        self.duration.as_secs_f64() * (self.rate_from + self.rate_to) / 2.0
    }

    /// Seconds into the stage at which `k` (fractional, `0 <= k <= count`) arrivals are due.
    fn time_of(&self, k: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        let (a, b) = (self.rate_from, self.rate_to);
        let slope = (b - a) / d;
        if slope.abs() < 1e-12 {
            return if a > 0.0 { k / a } else { d };
        }
        // a t + slope t² / 2 = k  →  t = (-a + sqrt(a² + 2 slope k)) / slope
        let disc = (a * a + 2.0 * slope * k).max(0.0);
        ((-a + disc.sqrt()) / slope).clamp(0.0, d)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        if (self.rate_from - self.rate_to).abs() < f64::EPSILON {
            write!(f, "{secs}s@{}", self.rate_from)
        } else {
            write!(f, "{secs}s@{}..{}", self.rate_from, self.rate_to)
        }
    }
}

/// The named shapes (`--shape`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `--rate` for `--duration`.
    Steady,
    /// 0 → `--rate`, linearly over `--duration`.
    Ramp,
    /// `--rate`, then `--factor` (default 5) × rate for the middle fifth, then `--rate`.
    Spike,
    /// `--rate` for the first fifth, up to `--factor` (default 20) × rate within 5 s,
    /// sustained, back to `--rate` for the last fifth.
    FlashSale,
}

/// The default multiplier of a shape's peak over its base rate.
pub fn default_factor(shape: Shape) -> f64 {
    match shape {
        Shape::Spike => 5.0,
        Shape::FlashSale => 20.0,
        Shape::Steady | Shape::Ramp => 1.0,
    }
}

/// The stages of a named shape.
pub fn shape_stages(shape: Shape, rate: f64, duration: Duration, factor: f64) -> Vec<Stage> {
    let d = duration.as_secs_f64();
    let part = |f: f64| Duration::from_secs_f64(d * f);
    let peak = rate * factor;
    match shape {
        Shape::Steady => vec![Stage::step(duration, rate)],
        Shape::Ramp => vec![Stage::linear(duration, 0.0, rate)],
        Shape::Spike => vec![
            Stage::step(part(0.4), rate),
            Stage::step(part(0.2), peak),
            Stage::step(part(0.4), rate),
        ],
        Shape::FlashSale => {
            // "Within seconds": 5 s up, or a tenth of the run if that is shorter.
            let up = (d * 0.1).min(5.0);
            vec![
                Stage::step(part(0.2), rate),
                Stage::linear(Duration::from_secs_f64(up), rate, peak),
                Stage::step(Duration::from_secs_f64(d * 0.6 - up), peak),
                Stage::step(part(0.2), rate),
            ]
        }
    }
}

/// Parses a duration: `500ms`, `10s`, `2m`, `1h`, or bare seconds (`30`, `1.5`).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| {
            format!("invalid duration {s:?}: use a positive number with ms, s, m or h (e.g. 30s)")
        })?;
    let secs = value * scale;
    if secs > 7.0 * 24.0 * 3600.0 {
        bail!("invalid duration {s:?}: longer than a week");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(s: &str, stage: &str) -> Result<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (0.0..=1_000_000.0).contains(r))
        .with_context(|| {
            format!(
                "invalid stage {stage:?}: the rate {s:?} must be a number of requests per second from 0 to 1000000"
            )
        })
}

/// Parses `--stages`: `DURATION@RPS` (step) or `DURATION@FROM..TO` (linear), comma-separated.
pub fn parse_stages(s: &str) -> Result<Vec<Stage>> {
    let mut stages = vec![];
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            bail!("invalid stages {s:?}: an empty stage (use e.g. 10s@50,30s@1000,10s@50)");
        }
        let (d, r) = part.split_once('@').with_context(|| {
            format!("invalid stage {part:?}: use DURATION@RPS or DURATION@FROM..TO (e.g. 10s@50)")
        })?;
        let duration = parse_duration(d).with_context(|| format!("invalid stage {part:?}"))?;
        let stage = match r.split_once("..") {
            Some((from, to)) => {
                Stage::linear(duration, parse_rate(from, part)?, parse_rate(to, part)?)
            }
            None => Stage::step(duration, parse_rate(r, part)?),
        };
        stages.push(stage);
    }
    if stages.iter().all(|st| st.count() < 1.0) {
        bail!("invalid stages {s:?}: no request would be sent");
    }
    Ok(stages)
}

/// A whole run's schedule: the arrival instants of its stages, one after the other.
#[derive(Clone, Debug)]
pub struct Schedule {
    stages: Vec<Stage>,
}

impl Schedule {
    pub fn new(stages: Vec<Stage>) -> Self {
        Self { stages }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The schedule's length.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// How many arrivals the whole schedule holds.
    pub fn total(&self) -> u64 {
        let c: f64 = self.stages.iter().map(Stage::count).sum();
        // Arrival n is due when N(t) = n, for n = 0, 1, …, so ⌈N(end)⌉ arrivals fall in
        // [0, end) (an arrival exactly at the end belongs to whatever comes next).
        (c - 1e-9).ceil().max(0.0) as u64
    }

    /// The offset from the start at which arrival `n` (from 0) is due; `None` past the end.
    pub fn arrival(&self, n: u64) -> Option<Duration> {
        if n >= self.total() {
            return None;
        }
        let mut k = n as f64;
        let mut start = 0.0;
        for stage in &self.stages {
            let c = stage.count();
            if k < c {
                return Some(Duration::from_secs_f64(start + stage.time_of(k)));
            }
            k -= c;
            start += stage.duration.as_secs_f64();
        }
        None
    }

    /// The scheduled rate at an offset (for the progress line).
    pub fn rate_at(&self, at: Duration) -> f64 {
        let mut t = at.as_secs_f64();
        for stage in &self.stages {
            let d = stage.duration.as_secs_f64();
            if t < d {
                return stage.rate_from + (stage.rate_to - stage.rate_from) * t / d;
            }
            t -= d;
        }
        0.0
    }

    /// An iterator over all arrival offsets, in order.
    pub fn arrivals(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..).map_while(|n| self.arrival(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(schedule: &Schedule) -> Vec<u64> {
        let secs = schedule.duration().as_secs_f64().ceil() as usize;
        let mut counts = vec![0; secs];
        for t in schedule.arrivals() {
            counts[t.as_secs() as usize] += 1;
        }
        counts
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn steady_puts_exactly_the_rate_in_every_second() {
        let s = Schedule::new(shape_stages(Shape::Steady, 100.0, secs(10), 1.0));
        assert_eq!(s.total(), 1000);
        assert_eq!(per_second(&s), vec![100; 10]);
        assert_eq!(s.arrival(0), Some(Duration::ZERO));
        assert_eq!(s.arrival(1), Some(Duration::from_millis(10)));
        assert_eq!(s.arrival(1000), None);
        // Fractional rates are spread, not rounded away.
        let s = Schedule::new(vec![Stage::step(secs(10), 2.5)]);
        assert_eq!(s.total(), 25);
        assert!(per_second(&s).iter().all(|c| (2..=3).contains(c)));
    }

    #[test]
    fn arrivals_never_go_back_in_time() {
        let s = Schedule::new(shape_stages(Shape::FlashSale, 10.0, secs(60), 20.0));
        let all: Vec<_> = s.arrivals().collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]));
        assert!(all.last().is_some_and(|t| *t < secs(60)));
    }

    #[test]
    fn ramp_grows_linearly_from_zero() {
        let s = Schedule::new(shape_stages(Shape::Ramp, 100.0, secs(10), 1.0));
        // ∫₀¹⁰ 10 t dt = 500; second i holds 10 i + 5.
        assert_eq!(s.total(), 500);
        for (i, c) in per_second(&s).into_iter().enumerate() {
            let expected = 10 * i as i64 + 5;
            assert!((c as i64 - expected).abs() <= 1, "second {i}: {c}");
        }
    }

    #[test]
    fn spike_multiplies_the_middle_fifth() {
        let s = Schedule::new(shape_stages(Shape::Spike, 20.0, secs(10), 5.0));
        assert_eq!(
            per_second(&s),
            vec![20, 20, 20, 20, 100, 100, 20, 20, 20, 20]
        );
    }

    #[test]
    fn flash_sale_reaches_twenty_times_within_seconds_and_comes_back() {
        let s = Schedule::new(shape_stages(Shape::FlashSale, 10.0, secs(100), 20.0));
        let c = per_second(&s);
        assert!(c[..20].iter().all(|&n| n == 10), "{:?}", &c[..20]);
        // 5 s up: 10 → 200, strictly growing.
        assert!(
            c[20..25].windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            &c[20..25]
        );
        assert!(c[25..80].iter().all(|&n| n == 200), "{:?}", &c[25..80]);
        assert!(c[80..].iter().all(|&n| n == 10), "{:?}", &c[80..]);
        assert_eq!(s.duration(), secs(100));
    }

    #[test]
    fn custom_stages_follow_each_other() {
        let s = Schedule::new(parse_stages("2s@50,3s@1000,2s@50").expect("parses"));
        assert_eq!(per_second(&s), vec![50, 50, 1000, 1000, 1000, 50, 50]);
        let s = Schedule::new(parse_stages("4s@0..400, 1s@10").expect("parses"));
        let c = per_second(&s);
        assert_eq!(c.len(), 5);
        for (i, want) in [50, 150, 250, 350, 10].into_iter().enumerate() {
            assert!((c[i] as i64 - want).abs() <= 1, "second {i}: {c:?}");
        }
        assert_eq!(s.rate_at(Duration::from_secs(2)), 200.0);
        assert_eq!(s.rate_at(Duration::from_secs(9)), 0.0);
    }

    #[test]
    fn stages_parse_durations_and_rates() {
        assert_eq!(
            parse_stages("500ms@10,1m@0.5..2,2@3").expect("parses"),
            vec![
                Stage::step(Duration::from_millis(500), 10.0),
                Stage::linear(secs(60), 0.5, 2.0),
                Stage::step(secs(2), 3.0),
            ]
        );
        assert_eq!(parse_duration("1h").expect("parses"), secs(3600));
    }

    #[test]
    fn bad_stages_are_named() {
        for (input, wanted) in [
            ("", "an empty stage"),
            ("10s@50,", "an empty stage"),
            ("10s", "use DURATION@RPS"),
            ("10x@5", "invalid duration \"10x\""),
            ("-3s@5", "invalid duration"),
            ("0s@5", "invalid duration"),
            ("10s@fast", "the rate \"fast\""),
            ("10s@-1", "the rate \"-1\""),
            ("10s@NaN", "the rate"),
            ("10s@5..", "the rate \"\""),
            ("10s@0", "no request would be sent"),
            ("9999h@1", "longer than a week"),
        ] {
            let err = format!("{:#}", parse_stages(input).expect_err(input));
            assert!(err.contains(wanted), "{input:?}: {err}");
        }
    }
}
