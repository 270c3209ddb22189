//! Overlays drawn over the view: help, the Enter detail pane, the Storefront/namespace picker.

use ratatui::{
    Frame,
    layout::{Constraint, Flex, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, List, ListItem, ListState, Paragraph, Wrap},
};

use crate::{state::App, views};

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [h] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    h
}

const HELP: [(&str, &str); 15] = [
    (
        "1-6",
        "views: topology services shards sales failures events",
    ),
    ("tab ←→", "next / previous view"),
    ("j k ↑ ↓", "move; g G top / bottom"),
    ("enter", "detail of the selected row"),
    ("esc", "back: close, cancel, clear filter"),
    (":", "command palette (tab completes)"),
    ("/", "filter rows of the view"),
    ("p", "pick Storefront / namespace"),
    ("s", "sort services (name rps errors p99 ready)"),
    ("?", "this help"),
    ("q", "quit"),
    (":sf NAME", "show one Storefront; :ns NS|all"),
    ("colors", "blue core · green supporting · red failure"),
    ("edges", "requests/s · p99 · 429s/s; → datastore: + error %"),
    (
        "limits",
        "2: 429s by per-client limits, shop budget, services",
    ),
];

pub fn help(frame: &mut Frame, area: Rect) {
    let r = centered(area, 66, HELP.len() as u16 + 2);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<9}"), Style::new().bold()),
                Span::raw(*v),
            ])
        })
        .collect();
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Help · esc closes ")),
        r,
    );
}

pub fn detail(frame: &mut Frame, area: Rect, app: &App) {
    let (title, kv) = views::detail(app);
    let r = centered(
        area,
        area.width.saturating_sub(6).max(40),
        (kv.len() as u16 + 2).max(4),
    );
    let lines: Vec<Line> = kv
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<15}"), Style::new().bold()),
                Span::raw(v),
            ])
        })
        .collect();
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" {title} · esc back "))),
        r,
    );
}

pub fn picker(frame: &mut Frame, area: Rect, app: &App, selected: usize) {
    let keys = app.storefront_keys();
    let mut items = vec![ListItem::new(match &app.scope.namespace {
        Some(ns) if app.scope.storefront.is_none() => format!(" all Storefronts in {ns}"),
        _ => " all Storefronts, all namespaces".to_string(),
    })];
    items.extend(
        keys.iter()
            .map(|(ns, name)| ListItem::new(format!(" {ns}/{name}"))),
    );
    let r = centered(area, 44, items.len() as u16 + 2);
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_widget(Clear, r);
    frame.render_stateful_widget(
        List::new(items)
            .block(Block::bordered().title(" Pick a Storefront · enter · esc "))
            .highlight_style(Style::new().reversed().bold()),
        r,
        &mut state,
    );
}
