//! The table views: Services, Shards, Flash sales, Failures, Events. Columns are sized for
//! 80 columns; the last text column takes whatever a bigger terminal offers.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Cell, Paragraph, Row, Table, TableState},
};

use super::{CORE, FAILURE, SUPPORTING, empty_text, metric_style, metrics_age};
use crate::{
    metrics::{Circuit, fmt_age, fmt_latency, fmt_percent, fmt_rate},
    state::App,
    views::{self, Verdict, countdown, opt},
};
use storefront_crds::Tier;

fn header(cols: &[&'static str]) -> Row<'static> {
    Row::new(cols.iter().map(|c| Cell::from(*c))).style(Style::new().bold().underlined())
}

fn render_table(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: String,
    table: Table<'_>,
    empty: bool,
) {
    let block = Block::bordered().title(title);
    if empty {
        let mut text = if app.storefronts().is_empty() {
            empty_text(app)
        } else {
            vec![Line::from(" nothing here")]
        };
        if !app.filter.is_empty() {
            text.push(Line::from(format!(
                " (filter /{} — esc clears it)",
                app.filter
            )));
        }
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let mut state = TableState::default().with_selected(Some(app.selection()));
    frame.render_stateful_widget(
        table
            .block(block)
            .column_spacing(1)
            .row_highlight_style(Style::new().reversed()),
        area,
        &mut state,
    );
}

/// The rate-limit panel under the Services table (see [`views::Limits`]): the verdict, the
/// 429s by what refused them, per-client refusals and clients tracked, then the limits in
/// force.
fn limits_lines(app: &App, limits: &views::Limits) -> Vec<Line<'static>> {
    let ms = metric_style(app);
    let verdict_style = match limits.verdict() {
        Verdict::ShopBudgetSpent => Style::new().fg(FAILURE).bold(),
        Verdict::ServiceBudgetSpent => Style::new().fg(Color::Yellow).bold(),
        Verdict::ClientsLimited => Style::new().fg(Color::Yellow),
        Verdict::Quiet => Style::new().fg(Color::Green),
        Verdict::Unknown => Style::new().dim(),
    };
    let line = |k: String, v: String, style: Style| {
        Line::from(vec![
            Span::styled(format!(" {k:<12}"), Style::new().bold()),
            Span::styled(v, style),
        ])
    };
    let mut out = vec![line(
        "verdict".into(),
        limits.verdict_text(),
        verdict_style.patch(ms),
    )];
    out.extend(
        limits
            .metric_lines()
            .into_iter()
            .map(|(k, v)| line(k, v, ms)),
    );
    out.extend(
        limits
            .spec_lines()
            .into_iter()
            .map(|(k, v)| line(k, v, Style::new())),
    );
    out
}

pub fn services(frame: &mut Frame, area: Rect, app: &App) {
    // The rate limits of the selected row's Storefront below the table, in what the table
    // leaves; at least the verdict and the refusals (6 lines) where the table is long.
    let rows = views::services(app);
    let limits = views::limits(app, &rows);
    let rows_len = rows.len() as u16;
    let area = match &limits {
        Some(limits) => {
            let lines = limits_lines(app, limits);
            let room = area
                .height
                .saturating_sub(rows_len + 3)
                .max(6.min(area.height / 3));
            let [top, bottom] = Layout::vertical([
                Constraint::Min(4),
                Constraint::Length((lines.len() as u16 + 2).min(room)),
            ])
            .areas(area);
            let title = format!(
                " Rate limits {}/{} · per client, shop, services ",
                limits.namespace, limits.storefront
            );
            frame.render_widget(
                Paragraph::new(lines).block(Block::bordered().title(title)),
                bottom,
            );
            top
        }
        None => area,
    };
    let sfs = app.storefronts();
    let multi = sfs.len() > 1;
    let multi_ns = sfs
        .windows(2)
        .any(|w| w[0].metadata.namespace != w[1].metadata.namespace);
    let ms = metric_style(app);
    let name_of = |r: &views::ServiceRow| match (multi_ns, multi) {
        (true, _) => format!("{}/{}/{}", r.namespace, r.storefront, r.service),
        (false, true) => format!("{}/{}", r.storefront, r.service),
        (false, false) => r.service.clone(),
    };
    let names: Vec<String> = rows.iter().map(name_of).collect();
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let name = name_of(r);
            let name_style = if r.failed {
                Style::new().fg(Color::White).bg(FAILURE).bold()
            } else if r.tier == Tier::Core {
                Style::new().fg(CORE).bold()
            } else {
                Style::new().fg(SUPPORTING).bold()
            };
            let m = &r.metrics;
            let cb = match m.circuit {
                Some(Circuit::Open) => Span::styled("OPEN", Style::new().fg(FAILURE).bold()),
                Some(c) => Span::raw(c.as_str()),
                None => Span::raw("–"),
            };
            Row::new(vec![
                Cell::from(Span::styled(name, name_style)),
                Cell::from(if r.tier == Tier::Core { "core" } else { "supp" }),
                Cell::from(format!("{}/{}", opt(r.ready), opt(r.desired))),
                Cell::from(r.why.clone()),
                Cell::from(Span::styled(fmt_rate(m.rps), ms)),
                Cell::from(Span::styled(fmt_percent(m.error_ratio), ms)),
                Cell::from(Span::styled(fmt_latency(m.p99_seconds), ms)),
                Cell::from(Span::styled(
                    if r.ratelimit_estimated {
                        format!("~{}", fmt_percent(m.ratelimit_use))
                    } else {
                        fmt_percent(m.ratelimit_use)
                    },
                    ms,
                )),
                Cell::from(cb),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(fit(&names, 15, area.width / 3)),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Min(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let table = Table::new(body, widths).header(header(&[
        "SERVICE", "TIER", "READY", "WHY", "REQ/S", "ERR", "P99", "RL USE", "CIRCT",
    ]));
    let title = format!(
        " Services ({}) · sort {} · {} ",
        rows.len(),
        app.sort.as_str(),
        metrics_age(app)
    );
    render_table(frame, area, app, title, table, rows.is_empty());
}

/// A text progress bar: `[#####.....]`, `width` cells inside the brackets.
pub fn bar(percent: i32, width: usize) -> String {
    let filled = (percent.clamp(0, 100) as usize * width)
        .div_ceil(100)
        .min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

pub fn shards(frame: &mut Frame, area: Rect, app: &App) {
    // Reshards first: one line each above the table (the running one, or the last done).
    let reshards = views::reshards(app);
    let area = if reshards.is_empty() {
        area
    } else {
        let [top, rest] = Layout::vertical([
            Constraint::Length(reshards.len().min(4) as u16),
            Constraint::Min(3),
        ])
        .areas(area);
        let lines: Vec<Line> = reshards
            .iter()
            .map(|r| {
                let style = if r.running {
                    Style::new().fg(Color::Yellow).bold()
                } else {
                    Style::new()
                };
                Line::from(vec![
                    Span::styled(
                        format!(
                            " {} {} {} → {} {} ",
                            r.storefront, r.service, r.from, r.to, r.phase
                        ),
                        style,
                    ),
                    Span::raw(format!(
                        "{} {}% {}/{} keys, epoch {}: {}",
                        bar(r.percent, 10),
                        r.percent,
                        r.copied,
                        r.to_move,
                        r.epoch,
                        r.message
                    )),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), top);
        rest
    };
    let rows = views::shards(app);
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let ready = Span::styled(
                format!("{}/{}", r.ready, r.desired),
                if r.desired > 0 && r.ready == 0 {
                    Style::new().fg(FAILURE).bold()
                } else {
                    Style::new()
                },
            );
            Row::new(vec![
                Cell::from(r.name.clone()),
                Cell::from(r.service.clone()),
                Cell::from(r.index.to_string()),
                Cell::from(if r.phase.is_empty() {
                    "–".to_string()
                } else {
                    r.phase.clone()
                }),
                Cell::from(r.share.clone()),
                Cell::from(r.handoff.map_or_else(|| "–".into(), |h| format!("{h}%"))),
                Cell::from(ready),
                Cell::from(r.epoch.map_or_else(|| "–".into(), |e| e.to_string())),
            ])
        })
        .collect();
    let widths = [
        Constraint::Min(18),
        Constraint::Length(9),
        Constraint::Length(3),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    let table = Table::new(body, widths).header(header(&[
        "SHARD", "SERVICE", "#", "PHASE", "SHARE", "HANDOFF", "READY", "EPOCH",
    ]));
    render_table(
        frame,
        area,
        app,
        format!(" Shards ({}) ", rows.len()),
        table,
        rows.is_empty(),
    );
}

pub fn sales(frame: &mut Frame, area: Rect, app: &App) {
    let rows = views::sales(app);
    let selected = rows.get(app.selection()).cloned();
    let plan_height = selected
        .as_ref()
        .map_or(0, |s| s.plans.len() + usize::from(s.warning.is_some()) + 2)
        as u16;
    let [top, bottom] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(plan_height.min(area.height / 2)),
    ])
    .areas(area);
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let phase_style = match r.phase.as_str() {
                "Active" | "PreWarming" => Style::new().fg(Color::Yellow).bold(),
                "Failed" => Style::new().fg(FAILURE).bold(),
                _ => Style::new(),
            };
            let warn = if r.warning.is_some() {
                Span::styled("⚠ preflight", Style::new().fg(FAILURE))
            } else {
                Span::raw("ok")
            };
            Row::new(vec![
                Cell::from(r.name.clone()),
                Cell::from(r.storefront.clone()),
                Cell::from(Span::styled(r.phase.clone(), phase_style)),
                Cell::from(countdown(r.next, app.now)),
                Cell::from(r.window.clone()),
                Cell::from(warn),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(11),
        Constraint::Min(10),
        Constraint::Length(11),
    ];
    let table = Table::new(body, widths).header(header(&[
        "SALE",
        "STOREFRONT",
        "PHASE",
        "NEXT",
        "WINDOW (UTC)",
        "PLAN",
    ]));
    render_table(
        frame,
        top,
        app,
        format!(" Flash sales ({}) ", rows.len()),
        table,
        rows.is_empty(),
    );
    if let Some(s) = selected {
        let mut lines: Vec<Line> = s
            .plans
            .iter()
            .map(|p| Line::from(format!(" {p}")))
            .collect();
        if let Some(w) = s.warning {
            lines.push(Line::from(Span::styled(
                format!(" ⚠ {w}"),
                Style::new().fg(FAILURE),
            )));
        }
        let title = format!(" {}: planned vs actual (ready/desired) ", s.name);
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            bottom,
        );
    }
}

pub fn failures(frame: &mut Frame, area: Rect, app: &App) {
    let rows = views::failures(app);
    let body: Vec<Row> = rows
        .iter()
        .map(|f| {
            Row::new(vec![
                Cell::from(fmt_age(app.now.duration_since(f.since))),
                Cell::from(Span::styled(
                    f.kind.clone(),
                    Style::new().fg(FAILURE).bold(),
                )),
                Cell::from(f.name.clone()),
                Cell::from(f.reason.clone()),
                Cell::from(f.message.clone()),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(14),
        Constraint::Length(20),
        Constraint::Length(16),
        Constraint::Min(10),
    ];
    let table =
        Table::new(body, widths).header(header(&["FOR", "KIND", "NAME", "REASON", "MESSAGE"]));
    render_table(
        frame,
        area,
        app,
        format!(" Failures ({}) · newest first ", rows.len()),
        table,
        rows.is_empty() && app.storefronts().is_empty(),
    );
    if rows.is_empty() && !app.storefronts().is_empty() {
        let inner = Block::bordered().inner(area);
        let text = Line::from(Span::styled(
            " nothing is broken",
            Style::new().fg(Color::Green),
        ));
        frame.render_widget(
            Paragraph::new(text),
            Rect {
                y: inner.y + 1,
                height: 1,
                ..inner
            },
        );
    }
}

pub fn events(frame: &mut Frame, area: Rect, app: &App) {
    let rows = views::events(app);
    let objects: Vec<String> = rows
        .iter()
        .map(|e| format!("{}/{}", short_kind(&e.kind), e.object))
        .collect();
    let reasons: Vec<String> = rows.iter().map(|e| e.reason.clone()).collect();
    let body: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let age = e
                .last
                .map_or_else(|| "–".into(), |t| fmt_age(app.now.duration_since(t)));
            let ty = if e.type_ == "Warning" {
                Span::styled("Warn", Style::new().fg(FAILURE))
            } else {
                Span::raw("Norm")
            };
            let count = if e.count > 1 {
                format!(" (×{})", e.count)
            } else {
                String::new()
            };
            Row::new(vec![
                Cell::from(age),
                Cell::from(ty),
                Cell::from(objects[i].clone()),
                Cell::from(e.reason.clone()),
                Cell::from(format!("{}{count}", e.message)),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(fit(&objects, 26, area.width / 3)),
        Constraint::Length(fit(&reasons, 14, 24)),
        Constraint::Min(10),
    ];
    let table =
        Table::new(body, widths).header(header(&["AGE", "TYPE", "OBJECT", "REASON", "MESSAGE"]));
    render_table(
        frame,
        area,
        app,
        format!(" Events ({}) · newest first ", rows.len()),
        table,
        rows.is_empty(),
    );
}

/// Width of a name column: its longest entry, at least `min`, at most `max` (when there is
/// room for `min`).
fn fit(names: &[String], min: u16, max: u16) -> u16 {
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    (longest as u16).clamp(min, max.max(min))
}

fn short_kind(kind: &str) -> &str {
    match kind {
        "Storefront" => "sf",
        "ServiceShard" => "ssh",
        "FlashSale" => "fsale",
        "Deployment" => "deploy",
        "ReplicaSet" => "rs",
        "Pod" => "pod",
        "HorizontalPodAutoscaler" => "hpa",
        "PodDisruptionBudget" => "pdb",
        other => other,
    }
}
