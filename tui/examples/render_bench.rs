//! Frame render time of every view from the fixtures (view models + layout + buffer diff
//! input), at 80×24 and 200×60, and with a thousand Storefronts: `cargo run --release -p storefront-console --example
//! render_bench`. Prints p50/p99/max per size; no cluster needed.

use std::time::Instant;

use ratatui::{Terminal, backend::TestBackend};
use storefront_console::{
    fixtures,
    state::{Action, Update, View},
    ui,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames = 2000;
    let scenarios = [
        ("sample shop", 80u16, 24u16, 1usize),
        ("sample shop", 200, 60, 1),
        ("1000 Storefronts, all in scope", 80, 24, 1000),
    ];
    for (name, w, h, n) in scenarios {
        let mut terminal = Terminal::new(TestBackend::new(w, h))?;
        let mut app = if n == 1 {
            fixtures::degraded()
        } else {
            fixtures::many(n)
        };
        let frames = if n == 1 { frames } else { 120 };
        let mut times = Vec::with_capacity(frames);
        for i in 0..frames {
            app.update(Action::Show(View::ALL[i % View::ALL.len()]));
            let start = Instant::now();
            terminal.draw(|f| ui::draw(f, &app))?;
            times.push(start.elapsed());
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "{name}, {w}x{h}: {frames} frames over all six views: p50 {:?} p99 {:?} max {:?}",
            p(0.5),
            p(0.99),
            p(1.0)
        );
    }
    // Churn: one pod of a thousand Storefronts changes (the watcher sends the whole list),
    // the app re-indexes and re-derives failures, then a frame is drawn.
    let mut terminal = Terminal::new(TestBackend::new(80, 24))?;
    let mut app = fixtures::many(1000);
    let mut times = Vec::new();
    for i in 0..200 {
        let mut pods = app.cluster.pods.clone();
        let n = pods.len();
        let p = &mut pods[(i * 7919) % n];
        p.waiting_reason = if p.waiting_reason.is_some() {
            None
        } else {
            Some("CrashLoopBackOff".into())
        };
        let start = Instant::now();
        app.update(Action::Data(Update::Pods(pods)));
        terminal.draw(|f| ui::draw(f, &app))?;
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "churn, 1000 Storefronts ({} pods), one pod changes, topology at 80x24: update+frame p50 {:?} p99 {:?}",
        app.cluster.pods.len(),
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
    Ok(())
}
