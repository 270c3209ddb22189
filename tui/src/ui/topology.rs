//! The topology view: the focused Storefront as a left-to-right layered graph.
//!
//! ```text
//! client ─▶ gateway 2/2 ──┬─ 120/s 45ms 0 ─▶ auth 2/2        → pg
//!   120/s 12ms 0          ├─ 80.0/s 9ms 0 ─▶ catalog 1/1     → pg
//!                         ├─ …            ─▶ inventory 4/4   → pg redis nats
//!                         │                  ├ #0 1/1 Active 25%
//!                         └─ …            ─▶ recommendations → nats
//! ```
//! Edge labels are requests/s, p99 and 429s/s into the node; node colors: blue core, green
//! supporting, red failure.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Paragraph},
};

use super::{CORE, FAILURE, SUPPORTING, empty_text, metric_style, metrics_age};
use crate::{
    app::App,
    metrics::{fmt_age, fmt_latency, fmt_rate},
    topology::{self, Node, NodeClass, Topology},
    views::{self, countdown, opt},
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

fn short_store(s: &str) -> &str {
    match s {
        "postgres" => "pg",
        "broker" => "nats",
        other => other,
    }
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

/// Below the graph: the Storefront's sales, the operator's rates, and what is failing.
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
    let (edge_w, node_w): (usize, usize) = if wide { (34, 22) } else { (20, 17) };
    let label = |t: &topology::Traffic| if wide { t.label() } else { t.short_label() };
    let mstyle = metric_style(app);
    let gateway = topo.layer(1).next();
    let col_a: usize = if wide { 30 } else { 24 };
    // legend + gap at the bottom
    let (rows, hidden) = topology::rows(topo, height.saturating_sub(2));
    let selected = app.selection();
    let mut out = Vec::new();
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
                let stores: Vec<&str> = topo
                    .stores_of(&node.id)
                    .into_iter()
                    .map(short_store)
                    .collect();
                if !stores.is_empty() {
                    spans.push(Span::styled(
                        format!("→ {}", stores.join(" ")),
                        Style::new().fg(Color::Magenta),
                    ));
                }
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
    let summary = summary(topo, app);
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
        Span::raw(" edges: req/s p99 429/s"),
    ];
    out.push(Line::from(legend).dim());
    out
}
