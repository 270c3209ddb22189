//! Snapshot tests of every view at 80×24 (and a big terminal), in every degraded state, from
//! the fixtures — no cluster needed. Colors are checked cell by cell where they carry meaning.

#![allow(clippy::unwrap_used)]

use ratatui::style::Color;

use super::{FAILURE, render, to_text};
use crate::{
    diagram, fixtures,
    state::{Action, App, View},
    topology,
};

fn frame(app: &App, view: View) -> String {
    let mut app = app.clone();
    app.update(Action::Show(view));
    to_text(&render(&app, 80, 24))
}

macro_rules! views_of {
    ($name:ident, $fixture:expr) => {
        #[test]
        fn $name() {
            let app = $fixture;
            for v in View::ALL {
                insta::assert_snapshot!(
                    format!("{}_{}", stringify!($name), v.command()),
                    frame(&app, v)
                );
            }
        }
    };
}

views_of!(healthy, fixtures::healthy());
views_of!(degraded, fixtures::degraded());
views_of!(prometheus_down, fixtures::prometheus_down());
views_of!(api_down, fixtures::api_down());
views_of!(empty, fixtures::empty());

#[test]
fn the_shards_view_shows_a_reshard_live() {
    let text = frame(&fixtures::resharding(), View::Shards);
    assert!(
        text.contains("acme inventory 4 → 5 Copying [#####.....] 50% 200/400 keys, epoch 2"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("acme-inventory-4") && l.contains("Joining") && l.contains("50%")),
        "{text}"
    );
    // Without a reshard, no line above the table.
    assert!(!frame(&fixtures::healthy(), View::Shards).contains("Copying"));
}

#[test]
fn topology_uses_a_big_terminal() {
    let text = to_text(&render(&fixtures::degraded(), 132, 40));
    insta::assert_snapshot!(text);
}

#[test]
fn overlays() {
    let mut app = fixtures::healthy();
    app.update(Action::Help);
    insta::assert_snapshot!("overlay_help", to_text(&render(&app, 80, 24)));
    app.update(Action::Back);
    app.update(Action::Show(View::Services));
    app.update(Action::Down);
    app.update(Action::Down);
    app.update(Action::Enter);
    insta::assert_snapshot!("overlay_detail_service", to_text(&render(&app, 80, 24)));
    app.update(Action::Back);
    app.update(Action::Picker);
    insta::assert_snapshot!("overlay_picker", to_text(&render(&app, 80, 24)));
    app.update(Action::Back);
    app.update(Action::Command);
    app.update(Action::Input('f'));
    insta::assert_snapshot!("palette_typing", to_text(&render(&app, 80, 24)));
}

#[test]
fn a_failed_service_is_red_on_screen_and_a_healthy_one_blue() {
    let find = |app: &App, word: &str| {
        let buf = render(app, 80, 24);
        let text = to_text(&buf);
        let (y, line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(&format!("─▶ {word}")))
            .unwrap();
        let col = line[..line.find(&format!("─▶ {word}")).unwrap()]
            .chars()
            .count()
            + 3;
        buf[(col as u16, y as u16)].clone()
    };
    let cell = find(&fixtures::degraded(), "payments");
    assert_eq!(cell.bg, FAILURE, "payments has no ready pod");
    let cell = find(&fixtures::healthy(), "payments");
    assert_eq!(cell.fg, Color::Blue);
    let cell = find(&fixtures::healthy(), "catalog");
    assert_eq!(cell.fg, Color::Green, "catalog is supporting");
}

#[test]
fn every_service_with_its_replicas_is_on_the_topology_at_80x24() {
    let text = frame(&fixtures::healthy(), View::Topology);
    for (service, replicas) in [
        ("gateway", "2/2"),
        ("auth", "2/2"),
        ("catalog", "1/1"),
        ("orders", "2/2"),
        ("payments", "2/2"),
        ("inventory", "4/4"),
        ("recommendations", "1/1"),
    ] {
        assert!(
            text.contains(&format!("{service} {replicas}")),
            "{service} {replicas} missing:\n{text}"
        );
    }
    assert!(
        text.contains("412/s"),
        "gateway traffic on its edge:\n{text}"
    );
}

#[test]
fn degraded_sources_never_show_zeros_for_unknown_values() {
    let text = frame(&fixtures::prometheus_down(), View::Services);
    assert!(text.contains("Prometheus unreachable"), "{text}");
    assert!(
        text.contains("2m05s ago"),
        "the age of the last-known values:\n{text}"
    );
    assert!(
        text.contains("412"),
        "last-known gateway rate kept:\n{text}"
    );
    let empty = frame(&fixtures::empty(), View::Topology);
    assert!(!empty.contains(" 0/s"), "{empty}");
}

#[test]
fn mermaid_diagram_of_the_degraded_shop() {
    let app = fixtures::degraded();
    let topo = topology::build(app.focus().unwrap(), &app.cluster, &app.prom, &app.failures);
    let text = diagram::mermaid(&topo);
    assert!(
        text.contains("class payments failure")
            || text.contains(",payments failure")
            || text.contains("payments,")
    );
    insta::assert_snapshot!(text);
}

#[test]
fn svg_diagram_has_every_node_in_its_class_color() {
    let app = fixtures::degraded();
    let topo = topology::build(app.focus().unwrap(), &app.cluster, &app.prom, &app.failures);
    let svg = diagram::svg(&topo);
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<g class=").count(), topo.nodes.len());
    assert_eq!(
        svg.matches("<g class=\"failure\"").count(),
        topo.nodes.iter().filter(|n| n.failed).count()
    );
    assert!(svg.contains("#cf222e") && svg.contains("#1f6feb") && svg.contains("#2da44e"));
    // Edge labels on the same row are far enough apart not to overlap (~6 px a character).
    let mut rows: std::collections::BTreeMap<i32, Vec<(i32, usize)>> = Default::default();
    for line in svg.lines().filter(|l| l.contains("font-size=\"10\"")) {
        let attr = |name: &str| -> i32 {
            let rest = &line[line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        };
        let text = &line[line.find('>').unwrap() + 1..line.rfind("</text>").unwrap()];
        rows.entry(attr("y"))
            .or_default()
            .push((attr("x"), text.chars().count()));
    }
    assert!(!rows.is_empty());
    for labels in rows.values_mut() {
        labels.sort();
        for w in labels.windows(2) {
            let room = (w[0].1 + w[1].1) as i32 * 6 / 2;
            assert!(w[1].0 - w[0].0 >= room, "overlapping edge labels {w:?}");
        }
    }
}

#[test]
fn nothing_reachable_from_the_start() {
    use crate::state::{Scope, Settings, Update};
    let mut app = App::new(
        fixtures::now(),
        Settings {
            context: Some("gone".into()),
            prometheus_url: Some("http://127.0.0.1:9".into()),
        },
        Scope::default(),
    );
    app.update(Action::Data(Update::ApiError(
        "Storefront".into(),
        "failed to watch Storefront: connection refused".into(),
    )));
    app.update(Action::Data(Update::Prometheus(Err(
        "failed to query Prometheus: connection refused".into(),
    ))));
    let text = to_text(&render(&app, 80, 24));
    assert!(text.contains("no data from the API server yet"), "{text}");
    assert!(
        !text.contains("Create one"),
        "no advice to create what may exist:\n{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn many_storefronts_in_many_namespaces() {
    let app = fixtures::many(12);
    insta::assert_snapshot!("many_services", frame(&app, View::Services));
    let text = frame(&app, View::Failures);
    assert!(text.contains("Failures ("), "{text}");
    assert!(
        text.contains("shop-0") || text.contains("payments"),
        "{text}"
    );
}

#[test]
fn tiny_and_odd_terminal_sizes_never_panic() {
    let mut apps = vec![
        fixtures::healthy(),
        fixtures::degraded(),
        fixtures::api_down(),
        fixtures::empty(),
    ];
    let mut with_overlays = fixtures::degraded();
    with_overlays.update(Action::Show(View::Sales));
    with_overlays.update(Action::Enter);
    apps.push(with_overlays);
    for app in apps {
        for v in View::ALL {
            let mut app = app.clone();
            app.update(Action::Show(v));
            for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (79, 23), (300, 100)] {
                let text = to_text(&render(&app, w, h));
                assert_eq!(text.lines().count(), h as usize);
            }
        }
    }
}

#[test]
fn topology_selection_opens_a_shard_detail() {
    let mut app = fixtures::healthy();
    for _ in 0..6 {
        app.update(Action::Down);
    }
    app.update(Action::Enter);
    let text = to_text(&render(&app, 80, 24));
    assert!(text.contains("shard acme-inventory-1"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn the_rate_limit_panel_tells_clients_limited_from_the_shop_budget_spent() {
    // The cell where `text` starts on screen.
    let cell_of = |app: &App, text: &str| {
        let buf = render(app, 80, 24);
        let screen = to_text(&buf);
        let (y, line) = screen
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(text))
            .unwrap_or_else(|| panic!("{text} not on screen:\n{screen}"));
        let x = line[..line.find(text).unwrap()].chars().count();
        buf[(x as u16, y as u16)].clone()
    };
    let mut app = fixtures::degraded();
    app.update(Action::Show(View::Services));
    let text = to_text(&render(&app, 80, 24));
    for want in [
        "Rate limits shop/acme",
        "clients limited 2.30/s (address)",
        "3.50: per client 2.30 · shop budget 0 · services 1.20 (orders)",
        "1234 tracked on 2 gateway pods",
        "POST /api/v1/sessions 30/min burst 5",
        "1 trusted: 10.0.0.0/8",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert_eq!(cell_of(&app, "orders budget spent").fg, Color::Yellow);

    // The shop's budget spent: red, whoever asks.
    let mut snap = app.prom.last.clone().unwrap();
    for (k, m) in &mut snap.services {
        if k.service == "gateway" {
            m.limited_rps = Some(40.0);
        }
    }
    app.update(Action::Data(crate::state::Update::Prometheus(Ok(snap))));
    assert_eq!(cell_of(&app, "shop budget spent").fg, FAILURE);

    // The topology's summary says it while something refuses, and nothing while all passes.
    let mut topo = app.clone();
    topo.update(Action::Show(View::Topology));
    assert_eq!(
        cell_of(&topo, "shop budget spent: 40.0/s refused to everyone").fg,
        FAILURE
    );
    let quiet = frame(&fixtures::healthy(), View::Topology);
    assert!(!quiet.contains("limits "), "{quiet}");

    // Enter on the gateway: its pane has the verdict and the refusals; the limits in force
    // follow the pods where the terminal has room.
    let mut app = fixtures::degraded();
    app.update(Action::Show(View::Services));
    app.update(Action::Enter);
    let text = to_text(&render(&app, 132, 40));
    assert!(text.contains("service gateway"), "{text}");
    for (key, want) in [
        (
            "429/s",
            "3.50: per client 2.30 · shop budget 0 · services 1.20 (orders)",
        ),
        (
            "limits",
            "orders budget spent 1.20/s · clients limited 2.30/s (address)",
        ),
        (
            "limited/s",
            "user 0 · address 2.30 (2.0%) · POST /api/v1/sessions 0",
        ),
        (
            "per client",
            "user 600/min burst 100 · address 1200/min burst 200 (defaults)",
        ),
        ("proxies", "1 trusted: 10.0.0.0/8"),
    ] {
        let line = format!(" {key:<15}{want}");
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
    assert_eq!(
        text.matches(&format!(" {:<15}", "429/s")).count(),
        1,
        "one 429/s line in the pane, split:\n{text}"
    );
}
