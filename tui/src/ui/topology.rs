//! The topology view: the focused Storefront as a left-to-right layered graph.
//!
//! ```text
//! client ─▶ gateway 2/2 ──┬─ 120/s 45ms 0 ─▶ auth 2/2        → pg
//!   120/s 12ms 0          ├─ 80.0/s 9ms 0 ─▶ catalog 1/1     → pg
//!                         ├─ …            ─▶ inventory 4/4   → pg redis nats
//!                         │                  ├ #0 1/1 Active 25%
//!                         └─ …            ─▶ recommendations → nats
//! ```
//! Edge labels are requests/s, p99 and 429s/s into the node (`~` an estimate from the served
//! rate, `⇠nats` messages consumed from the broker); after `→`, the service's calls to each
//! datastore with requests/s, p99 and error rate, as much as fits. Node colors: blue core,
//! green supporting, red failure.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Paragraph},
};

use super::{CORE, FAILURE, SUPPORTING, empty_text, metric_style, metrics_age};
use crate::{
    metrics::{fmt_age, fmt_latency, fmt_percent, fmt_rate},
    state::App,
    topology::{self, Node, NodeClass, Topology},
    views::{self, Verdict, countdown, opt},
};

fn node_style(n: &Node) -> Style {
    let base = Style::new().bold();
    if n.failed {
        return base.fg(Color::White).bg(FAILURE);
    }
    match n.class {
        NodeClass::Core => base.fg(CORE),
        NodeClass::Supporting => base.fg(SUPPORTING),
        NodeClass::Client => base,
        NodeClass::Datastore => Style::new().fg(Color::Magenta),
    }
}

fn replicas(n: &Node) -> String {
    n.replicas
        .map_or_else(String::new, |(r, d)| format!(" {}/{}", opt(Some(r)), d))
}

use topology::short_store;

/// How a service's datastore edges are written after `→`, widest first: each row uses the
/// widest form it has room for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreForm {
    /// `pg 96.0/s 2ms 0.0%`
    Full,
    /// `pg 96.0/s 2ms`, the error rate only where calls failed: `pg 96.0/s 2ms 2.0%`
    RateP99,
    /// `pg 96.0/s`, with the error rate where calls failed
    Rate,
    /// `pg` (the numbers go to the summary's `datastore` lines)
    Names,
}

impl StoreForm {
    const ALL: [StoreForm; 4] = [
        StoreForm::Full,
        StoreForm::RateP99,
        StoreForm::Rate,
        StoreForm::Names,
    ];

    fn numbers(self, t: &topology::Traffic) -> String {
        let failing = t
            .error_ratio
            .filter(|e| *e > 0.0)
            .map(|e| format!(" {}", fmt_percent(Some(e))))
            .unwrap_or_default();
        match self {
            StoreForm::Full => t.short_label(),
            StoreForm::RateP99 => format!("{}{failing}", t.rate_label()),
            StoreForm::Rate => format!("{}/s{failing}", fmt_rate(t.rps)),
            StoreForm::Names => String::new(),
        }
    }

    /// `(store, numbers)` of each datastore edge of `id`; no numbers where nothing is known.
    fn parts(self, topo: &Topology, id: &str) -> Vec<(String, String)> {
        topo.store_edges_of(id)
            .map(|e| {
                let numbers = e
                    .traffic
                    .as_ref()
                    .filter(|t| t.rps.is_some())
                    .map(|t| self.numbers(t))
                    .unwrap_or_default();
                (short_store(&e.to).to_string(), numbers)
            })
            .collect()
    }

    fn width(self, topo: &Topology, id: &str) -> usize {
        let parts = self.parts(topo, id);
        if parts.is_empty() {
            return 0;
        }
        let numbered = parts.iter().any(|(_, n)| !n.is_empty());
        1 + parts
            .iter()
            .map(|(s, n)| {
                let sep = if numbered { 3 } else { 1 };
                sep + s.chars().count()
                    + if n.is_empty() {
                        0
                    } else {
                        1 + n.chars().count()
                    }
            })
            .sum::<usize>()
            - usize::from(numbered) * 2
    }

    /// `→ pg 96.0/s 2ms 0.0% · nats 40.0/s 3ms 0.0%`
    fn spans(self, topo: &Topology, id: &str, mstyle: Style) -> Vec<Span<'static>> {
        let parts = self.parts(topo, id);
        if parts.is_empty() {
            return Vec::new();
        }
        let store = Style::new().fg(Color::Magenta);
        let numbered = parts.iter().any(|(_, n)| !n.is_empty());
        let mut spans = vec![Span::styled("→", store)];
        for (i, (name, numbers)) in parts.into_iter().enumerate() {
            let sep = if i > 0 && numbered { " · " } else { " " };
            spans.push(Span::styled(format!("{sep}{name}"), store));
            if !numbers.is_empty() {
                spans.push(Span::styled(format!(" {numbers}"), mstyle));
            }
        }
        spans
    }
}

/// The summary's `datastore` lines (terminals too narrow for the numbers on each service's
/// row): per datastore, the calls of every service summed, the worst service's p99 and the
/// share of calls that failed.
fn datastore_lines(topo: &Topology, app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for store in topo.layer(4) {
        let edges: Vec<&topology::Traffic> = topo
            .edges
            .iter()
            .filter(|e| e.to == store.id)
            .filter_map(|e| e.traffic.as_ref())
            .filter(|t| t.rps.is_some())
            .collect();
        if edges.is_empty() {
            continue;
        }
        let rps: f64 = edges.iter().filter_map(|t| t.rps).sum();
        let p99 = edges
            .iter()
            .filter_map(|t| t.p99_seconds)
            .filter(|v| v.is_finite())
            .reduce(f64::max);
        let failed: f64 = edges
            .iter()
            .filter_map(|t| Some(t.rps? * t.error_ratio?))
            .sum();
        let errors = (rps > 0.0).then(|| failed / rps);
        out.push(Line::from(vec![
            Span::styled(format!("{:<9} ", "datastore"), Style::new().bold()),
            Span::styled(
                format!("{:<5}", short_store(&store.id)),
                Style::new().fg(Color::Magenta),
            ),
            Span::styled(
                format!(
                    " {}/s · p99 ≤{} · err {} · from {} service{}",
                    fmt_rate(Some(rps)),
                    fmt_latency(p99),
                    fmt_percent(errors),
                    edges.len(),
                    if edges.len() == 1 { "" } else { "s" }
                ),
                metric_style(app),
            ),
        ]));
    }
    out
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.chars().take(w).collect()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(sf) = app.focus() else {
        frame.render_widget(
            Paragraph::new(empty_text(app)).block(Block::bordered().title(" Topology ")),
            area,
        );
        return;
    };
    let topo = topology::build(sf, &app.cluster, &app.prom, &app.failures);
    let ready = sf
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map_or_else(|| "no status".into(), |c| format!("Ready={}", c.status));
    let title = format!(
        " Topology {}/{} · {} · {} ",
        topo.namespace,
        topo.storefront,
        ready,
        metrics_age(app)
    );
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = lines(&topo, app, inner.width as usize, inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Below the graph: the Storefront's sales, the operator's rates, what refuses requests (while
/// something does), and what is failing.
fn summary(topo: &Topology, app: &App) -> Vec<Line<'static>> {
    let head = |s: &str| Span::styled(format!("{s:<9} "), Style::new().bold());
    let mut out = Vec::new();
    for s in views::sales(app)
        .into_iter()
        .filter(|s| s.namespace == topo.namespace && s.storefront == topo.storefront)
        .take(2)
    {
        let warn = s.warning.map(|w| format!(" ⚠ {w}")).unwrap_or_default();
        out.push(Line::from(vec![
            head("sale"),
            Span::raw(format!(
                "{} {} · next {}{warn}",
                s.name,
                s.phase,
                countdown(s.next, app.now)
            )),
        ]));
    }
    if app.prom.configured {
        let p = &app.prom;
        let p99 = p.last.as_ref().and_then(|s| s.operator.p99_seconds);
        let [reconciles, errors, writes] = p.operator_rates();
        out.push(Line::from(vec![
            head("operator"),
            Span::styled(
                format!(
                    "{} reconciles/s · {} errors/s · {} writes/s · p99 {}",
                    fmt_rate(reconciles),
                    fmt_rate(errors),
                    fmt_rate(writes),
                    fmt_latency(p99)
                ),
                metric_style(app),
            ),
        ]));
    }
    // What refuses requests, while something does: a few clients, or everyone (details in
    // the Services view's rate-limit panel).
    if let Some(limits) = app.focus().map(|sf| views::limits_of(app, sf)) {
        let style = match limits.verdict() {
            Verdict::ShopBudgetSpent => Some(Style::new().fg(FAILURE).bold()),
            Verdict::ServiceBudgetSpent => Some(Style::new().fg(Color::Yellow).bold()),
            Verdict::ClientsLimited => Some(Style::new().fg(Color::Yellow)),
            Verdict::Quiet | Verdict::Unknown => None,
        };
        if let Some(style) = style {
            out.push(Line::from(vec![
                head("limits"),
                Span::styled(limits.verdict_text(), style.patch(metric_style(app))),
            ]));
        }
    }
    for f in app
        .failures
        .iter()
        .filter(|f| f.namespace == topo.namespace || f.namespace.is_empty())
    {
        out.push(Line::from(vec![
            head("failing"),
            Span::styled(
                format!("✗ {} {} {}", f.kind, f.name, f.reason),
                Style::new().fg(FAILURE).bold(),
            ),
            Span::raw(format!(" for {}", fmt_age(app.now.duration_since(f.since)))),
        ]));
    }
    out
}

/// The view's lines for an inner area of `width`×`height`.
fn lines(topo: &Topology, app: &App, width: usize, height: usize) -> Vec<Line<'static>> {
    let wide = width >= 100;
    let (edge_w, node_w): (usize, usize) = if wide { (34, 22) } else { (20, 16) };
    let label = |t: &topology::Traffic| if wide { t.label() } else { t.short_label() };
    let mstyle = metric_style(app);
    let gateway = topo.layer(1).next();
    let col_a: usize = if wide { 30 } else { 24 };
    // legend + gap at the bottom
    let (rows, hidden) = topology::rows(topo, height.saturating_sub(2));
    let selected = app.selection();
    let mut out: Vec<Line<'static>> = Vec::new();
    // (line, service, columns used before its datastores): filled once the form is known.
    let mut store_rows: Vec<(usize, String, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(node) = topo.node(row.node) else {
            continue;
        };
        let mut spans: Vec<Span<'static>> = Vec::new();
        // column A: client and gateway on the first row, the gateway's traffic below
        match (i, gateway) {
            (0, Some(g)) => {
                spans.push(Span::raw("client ─▶ "));
                let text = format!("{}{}", g.label, replicas(g));
                spans.push(Span::styled(text.clone(), node_style(g)));
                spans.push(Span::raw(format!(
                    " {}",
                    "─".repeat(col_a.saturating_sub(11 + text.chars().count()))
                )));
            }
            (0, None) => spans.push(Span::raw(pad("client ", col_a))),
            (1, Some(g)) => {
                let t = topo.traffic_into(&g.id).map(label).unwrap_or_default();
                spans.push(Span::styled(pad(&format!("  {t}"), col_a), mstyle));
            }
            _ => spans.push(Span::raw(" ".repeat(col_a))),
        }
        spans.push(Span::raw(row.trunk.to_string()));
        let select = |s: Style| if i == selected { s.reversed() } else { s };
        match row.branch {
            None => {
                let t = topo.traffic_into(&node.id).map(label).unwrap_or_default();
                spans.push(Span::raw("─ "));
                spans.push(Span::styled(pad(&t, edge_w - 5), mstyle));
                spans.push(Span::raw(" ─▶ "));
                let text = format!("{}{}", node.label, replicas(node));
                spans.push(Span::styled(text.clone(), select(node_style(node))));
                spans.push(Span::raw(
                    " ".repeat(node_w.saturating_sub(text.chars().count()).max(1)),
                ));
                let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
                store_rows.push((out.len(), node.id.clone(), used));
            }
            Some(b) => {
                let index = node.id.rsplit('-').next().unwrap_or("");
                spans.push(Span::raw(" ".repeat(edge_w)));
                spans.push(Span::raw(format!("{b} ")));
                let text = format!("#{index}{} {}", replicas(node), node.note);
                spans.push(Span::styled(
                    text.trim_end().to_string(),
                    select(node_style(node)),
                ));
            }
        }
        out.push(Line::from(spans));
    }
    // Each row in the widest form it has room for; the summary sums them per datastore
    // where a row had to leave numbers out.
    let mut all_full = true;
    for (line, id, used) in &store_rows {
        let form = StoreForm::ALL
            .into_iter()
            .find(|f| used + f.width(topo, id) <= width)
            .unwrap_or(StoreForm::Names);
        all_full &= form == StoreForm::Full;
        out[*line].spans.extend(form.spans(topo, id, mstyle));
    }
    if rows.is_empty() {
        if let Some(g) = gateway {
            out.push(Line::from(vec![
                Span::raw("client ─▶ "),
                Span::styled(format!("{}{}", g.label, replicas(g)), node_style(g)),
            ]));
        } else {
            out.push(Line::from(" no services enabled"));
        }
    }
    if hidden > 0 {
        out.push(Line::from(Span::styled(
            format!(
                "{}… {hidden} more shards (3 Shards)",
                " ".repeat(col_a + 1 + edge_w)
            ),
            Style::new().dim(),
        )));
    }
    let mut summary = summary(topo, app);
    if !all_full && app.prom.configured {
        // Last: what is failing matters more where rows are few.
        summary.extend(datastore_lines(topo, app));
    }
    if out.len() + 2 < height && !summary.is_empty() {
        out.push(Line::default());
        let room = height - out.len() - 1;
        out.extend(summary.into_iter().take(room));
    }
    while out.len() + 1 < height {
        out.push(Line::default());
    }
    let legend = vec![
        Span::styled("■ core ", Style::new().fg(CORE)),
        Span::styled("■ supporting ", Style::new().fg(SUPPORTING)),
        Span::styled("■ failure ", Style::new().fg(FAILURE)),
        Span::styled("■ datastore ", Style::new().fg(Color::Magenta)),
        Span::raw(" edges: req/s p99 429/s (→ err%)"),
    ];
    out.push(Line::from(legend).dim());
    out
}
