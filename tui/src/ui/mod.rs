//! Rendering: a pure function of [`App`] into a ratatui [`Frame`]. No I/O, no clock (the app
//! carries `now`), so every screen is snapshot-tested with a `TestBackend`.
//!
//! ```text
//! ┌ header: context, scope, API and Prometheus health ───────────────────────────┐
//! │ banner(s) while the API server or Prometheus is unreachable (last-known data) │
//! │ tabs: 1 Topology 2 Services 3 Shards 4 Flash sales 5 Failures 6 Events        │
//! │ the view (bordered)                                                           │
//! │ footer: palette / filter input, message, or key hints                         │
//! └───────────────────────────────────────────────────────────────────────────────┘
//! ```

mod overlay;
mod tables;
#[cfg(test)]
mod tests;
mod topology;

use ratatui::{
    Frame, Terminal,
    backend::TestBackend,
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::{
    metrics::{Freshness, fmt_age},
    state::{App, Mode, Overlay, View},
};

/// Core transactional services.
pub const CORE: Color = Color::Blue;
/// Supporting services.
pub const SUPPORTING: Color = Color::Green;
/// Failure points.
pub const FAILURE: Color = Color::Red;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let banners = banners(app);
    let [header, banner, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banners.len() as u16),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(app)), header);
    frame.render_widget(Paragraph::new(banners), banner);
    frame.render_widget(Paragraph::new(tab_line(app)), tabs);
    match app.view {
        View::Topology => topology::draw(frame, body, app),
        View::Services => tables::services(frame, body, app),
        View::Shards => tables::shards(frame, body, app),
        View::Sales => tables::sales(frame, body, app),
        View::Failures => tables::failures(frame, body, app),
        View::Events => tables::events(frame, body, app),
    }
    frame.render_widget(Paragraph::new(footer_line(app)), footer);
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => overlay::help(frame, body),
        Overlay::Detail => overlay::detail(frame, body, app),
        Overlay::Picker { selected } => overlay::picker(frame, body, app, selected),
    }
}

/// Renders one frame of `width`×`height` into a buffer.
pub fn render(app: &App, width: u16, height: u16) -> Buffer {
    // The test backend cannot fail to draw.
    match Terminal::new(TestBackend::new(width, height)) {
        Ok(mut t) => {
            let _ = t.draw(|f| draw(f, app));
            t.backend().buffer().clone()
        }
        Err(_) => Buffer::empty(Rect::new(0, 0, width, height)),
    }
}

/// A buffer as plain text, one line per row, trailing blanks trimmed.
pub fn to_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn dot(ok: bool) -> Span<'static> {
    if ok {
        Span::styled("●", Style::new().fg(Color::Green))
    } else {
        Span::styled("●", Style::new().fg(FAILURE))
    }
}

fn header_line(app: &App) -> Line<'static> {
    let scope = match (&app.scope.namespace, &app.scope.storefront) {
        (Some(ns), Some(sf)) => format!("{ns}/{sf}"),
        (Some(ns), None) => format!("{ns}/*"),
        (None, Some(sf)) => format!("*/{sf}"),
        (None, None) => "all".into(),
    };
    let api_ok = app.api.error().is_none();
    let api_text = match (api_ok, app.api.synced) {
        (false, _) => "down",
        (true, false) => "syncing",
        (true, true) => "ok",
    };
    let prom = if !app.prom.configured {
        vec![Span::raw("prom "), Span::styled("off", Style::new().dim())]
    } else {
        let state = match (
            &app.prom.error,
            Freshness::of(app.prom.last.as_ref().map(|s| s.at), app.now),
        ) {
            (Some(_), _) => "down",
            (None, Freshness::Fresh) => "ok",
            (None, Freshness::Stale(_)) => "stale",
            (None, Freshness::Missing) => "waiting",
        };
        vec![
            Span::raw("prom "),
            dot(state == "ok"),
            Span::raw(format!(" {state}")),
        ]
    };
    let n = app.failures.len();
    let failing = if n > 0 {
        Span::styled(format!("{n} failing"), Style::new().fg(FAILURE).bold())
    } else {
        Span::styled("0 failing", Style::new().fg(Color::Green))
    };
    // Most important first: a narrow terminal cuts the context, not the health.
    let mut spans = vec![
        Span::styled(" storefront-console ", Style::new().bold().reversed()),
        Span::raw(" "),
        failing,
        Span::raw("  api "),
        dot(api_ok),
        Span::raw(format!(" {api_text} ")),
    ];
    spans.extend(prom);
    spans.push(Span::styled(
        format!("  scope {scope}"),
        Style::new().bold(),
    ));
    spans.push(Span::raw(format!(
        "  ctx {}",
        app.settings
            .context
            .clone()
            .unwrap_or_else(|| "default".into())
    )));
    Line::from(spans)
}

/// Degraded-source banners: never silent, always with the age of what is shown.
fn banners(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if let Some(e) = app.api.error() {
        let age = app.api.last_ok.map_or_else(
            || "no data yet".into(),
            |t| {
                format!(
                    "last-known state from {} ago",
                    fmt_age(app.now.duration_since(t))
                )
            },
        );
        out.push(
            Line::from(format!(
                " {} — {age}, retrying · {e}",
                if app.api.unreachable() {
                    "API server unreachable"
                } else {
                    "API watch failing"
                }
            ))
            .style(Style::new().fg(Color::White).bg(FAILURE).bold()),
        );
    }
    if app.prom.configured {
        let last = app.prom.last.as_ref().map(|s| s.at);
        let age = last.map_or_else(
            || "no metrics yet".into(),
            |t| {
                format!(
                    "last-known metrics from {} ago",
                    fmt_age(app.now.duration_since(t))
                )
            },
        );
        let msg = match (&app.prom.error, Freshness::of(last, app.now)) {
            (Some(e), _) => Some(format!(" Prometheus unreachable — {age} · {e}")),
            (None, Freshness::Stale(_)) => Some(format!(" Prometheus stale — {age}")),
            _ => None,
        };
        if let Some(msg) = msg {
            out.push(Line::from(msg).style(Style::new().fg(Color::Black).bg(Color::Yellow)));
        }
    }
    out
}

fn tab_line(app: &App) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, v.title());
        spans.push(if *v == app.view {
            Span::styled(text, Style::new().reversed().bold())
        } else {
            Span::raw(text)
        });
    }
    Line::from(spans)
}

fn footer_line(app: &App) -> Line<'static> {
    match &app.mode {
        Mode::Command(buf) => {
            let hint = crate::palette::complete(buf, &[], &[]);
            let rest = hint.strip_prefix(buf.as_str()).unwrap_or("").to_string();
            Line::from(vec![
                Span::styled(format!(":{buf}"), Style::new().bold()),
                Span::styled(rest, Style::new().dim()),
                Span::styled(
                    "▏ Tab complete · Enter run · Esc cancel",
                    Style::new().dim(),
                ),
            ])
        }
        Mode::Filter(buf) => Line::from(vec![
            Span::styled(format!("/{buf}"), Style::new().bold()),
            Span::styled("▏ Enter keep · Esc cancel", Style::new().dim()),
        ]),
        Mode::Normal => {
            if let Some(m) = &app.message {
                return Line::from(Span::styled(
                    format!(" {m}"),
                    Style::new().fg(Color::Yellow),
                ));
            }
            let mut spans = Vec::new();
            if !app.filter.is_empty() {
                spans.push(Span::styled(
                    format!(" /{} ", app.filter),
                    Style::new().fg(Color::Black).bg(Color::Cyan),
                ));
            }
            spans.push(Span::styled(
                " ? help  : cmd  / filter  p pick  ⏎ detail  esc back  q quit",
                Style::new().add_modifier(Modifier::DIM),
            ));
            Line::from(spans)
        }
    }
}

/// Title suffix saying how old the metrics on screen are.
pub(crate) fn metrics_age(app: &App) -> String {
    if !app.prom.configured {
        return "no Prometheus".into();
    }
    match &app.prom.last {
        None => "no metrics yet".into(),
        Some(s) => format!("metrics {} old", fmt_age(app.now.duration_since(s.at))),
    }
}

/// Style of last-known metric values: dim when stale or unreachable.
pub(crate) fn metric_style(app: &App) -> Style {
    let fresh = app.prom.error.is_none()
        && Freshness::of(app.prom.last.as_ref().map(|s| s.at), app.now) == Freshness::Fresh;
    if fresh {
        Style::new()
    } else {
        Style::new().dim().italic()
    }
}

/// Text shown when nothing is in scope.
pub(crate) fn empty_text(app: &App) -> Vec<Line<'static>> {
    if !app.api.synced {
        return vec![Line::from(if app.api.error().is_none() {
            " waiting for the API server…"
        } else {
            " no data from the API server yet (see the banner); retrying…"
        })];
    }
    let mut v = vec![Line::from(" No Storefronts in scope.")];
    if app.cluster.storefronts.is_empty() {
        v.push(Line::from(
            " Create one: kubectl apply -f manifests/samples/storefront.yaml",
        ));
    } else {
        v.push(Line::from(
            " Press p to pick another Storefront or namespace.",
        ));
    }
    v
}
