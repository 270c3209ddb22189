//! Application state and the one place it changes: [`App::update`] with an [`Action`].
//!
//! Keys (see [`crate::keys`]), data from the sources ([`Update`]) and the clock ([`Action::Tick`])
//! all arrive as actions, so a test can drive the whole console without a terminal or a
//! cluster, and rendering ([`crate::ui`]) only reads the state.

use std::collections::BTreeMap;

use jiff::Timestamp;
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::{
    failures::{self, Failure},
    metrics::{PromSnapshot, PromState},
    model::{Cluster, DeploymentInfo, EventInfo, PodInfo, sf_key},
    views,
};

/// The six views, in number-key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum View {
    Topology,
    Services,
    Shards,
    Sales,
    Failures,
    Events,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Topology,
        View::Services,
        View::Shards,
        View::Sales,
        View::Failures,
        View::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Topology => "Topology",
            View::Services => "Services",
            View::Shards => "Shards",
            View::Sales => "Flash sales",
            View::Failures => "Failures",
            View::Events => "Events",
        }
    }

    /// The palette command that opens the view.
    pub fn command(self) -> &'static str {
        match self {
            View::Topology => "topology",
            View::Services => "services",
            View::Shards => "shards",
            View::Sales => "sales",
            View::Failures => "failures",
            View::Events => "events",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// What the kube and Prometheus sources report.
#[derive(Clone, Debug)]
pub enum Update {
    Storefronts(Vec<Storefront>),
    Shards(Vec<ServiceShard>),
    Sales(Vec<FlashSale>),
    Deployments(Vec<DeploymentInfo>),
    Pods(Vec<PodInfo>),
    Events(Vec<EventInfo>),
    /// The watch of a kind failed (the API server is unreachable, or refused us): kind, error.
    ApiError(String, String),
    /// The first list of every watch arrived.
    ApiSynced,
    Prometheus(Result<PromSnapshot, String>),
}

/// Everything that can happen to the console.
#[derive(Clone, Debug)]
pub enum Action {
    Quit,
    Show(View),
    NextView,
    PrevView,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Open the detail pane of the selected row (or choose in the picker).
    Enter,
    /// Close whatever is open: input line, overlay, filter.
    Back,
    Help,
    /// `:` palette.
    Command,
    /// `/` filter.
    Filter,
    /// Storefront/namespace picker.
    Picker,
    /// Next sort column (Services).
    Sort,
    Input(char),
    Backspace,
    /// Tab in the palette.
    Complete,
    /// Enter in the palette or filter line.
    Submit,
    Tick(Timestamp),
    Data(Update),
}

/// Where keystrokes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Command(String),
    Filter(String),
}

/// What is drawn over the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Detail,
    Picker { selected: usize },
}

/// Sort order of the Services view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Name,
    Rps,
    Errors,
    P99,
    Ready,
}

impl SortBy {
    pub const ALL: [SortBy; 5] = [
        SortBy::Name,
        SortBy::Rps,
        SortBy::Errors,
        SortBy::P99,
        SortBy::Ready,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Rps => "rps",
            SortBy::Errors => "errors",
            SortBy::P99 => "p99",
            SortBy::Ready => "ready",
        }
    }
}

/// Which Storefronts the views show: `None` is all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub namespace: Option<String>,
    pub storefront: Option<String>,
}

/// Health of the API server side.
#[derive(Clone, Debug, Default)]
pub struct ApiState {
    pub synced: bool,
    /// Last time a watch delivered anything.
    pub last_ok: Option<Timestamp>,
    /// Error of the latest failed watch per kind, cleared by that kind's next delivery.
    pub errors: BTreeMap<String, String>,
}

impl ApiState {
    /// The error to show, if any watch is failing.
    pub fn error(&self) -> Option<&String> {
        self.errors.values().next()
    }

    /// Whether the failures look like the API server cannot be reached at all (rather than a
    /// refused or missing resource).
    pub fn unreachable(&self) -> bool {
        self.errors.values().any(|e| {
            let e = e.to_lowercase();
            [
                "connect",
                "timed out",
                "dns",
                "broken pipe",
                "connection reset",
            ]
            .iter()
            .any(|w| e.contains(w))
        })
    }
}

/// Settings shown in the header.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub context: Option<String>,
    pub prometheus_url: Option<String>,
}

/// The whole console state.
#[derive(Clone, Debug)]
pub struct App {
    pub now: Timestamp,
    pub view: View,
    pub mode: Mode,
    pub overlay: Overlay,
    pub filter: String,
    pub selected: [usize; 6],
    pub sort: SortBy,
    pub scope: Scope,
    pub cluster: Cluster,
    pub api: ApiState,
    pub prom: PromState,
    pub settings: Settings,
    /// Derived on every update: what is broken, newest first.
    pub failures: Vec<Failure>,
    first_seen: BTreeMap<String, Timestamp>,
    /// A one-line message for the footer (unknown command, …).
    pub message: Option<String>,
    pub quit: bool,
}

impl App {
    pub fn new(now: Timestamp, settings: Settings, scope: Scope) -> Self {
        let prom = PromState {
            configured: settings.prometheus_url.is_some(),
            ..PromState::default()
        };
        App {
            now,
            view: View::Topology,
            mode: Mode::Normal,
            overlay: Overlay::None,
            filter: String::new(),
            selected: [0; 6],
            sort: SortBy::Name,
            scope,
            cluster: Cluster::default(),
            api: ApiState::default(),
            prom,
            settings,
            failures: Vec::new(),
            first_seen: BTreeMap::new(),
            message: None,
            quit: false,
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Show(v) => self.show(v),
            Action::NextView => self.show(View::ALL[(self.view.index() + 1) % 6]),
            Action::PrevView => self.show(View::ALL[(self.view.index() + 5) % 6]),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-10),
            Action::PageDown => self.move_by(10),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::Enter => self.enter(),
            Action::Back => self.back(),
            Action::Help => {
                self.overlay = if self.overlay == Overlay::Help {
                    Overlay::None
                } else {
                    Overlay::Help
                }
            }
            Action::Command => self.mode = Mode::Command(String::new()),
            Action::Filter => self.mode = Mode::Filter(self.filter.clone()),
            Action::Picker => self.overlay = Overlay::Picker { selected: 0 },
            Action::Sort => {
                let i = SortBy::ALL
                    .iter()
                    .position(|s| *s == self.sort)
                    .unwrap_or(0);
                self.sort = SortBy::ALL[(i + 1) % SortBy::ALL.len()];
                self.message = Some(format!("sorted by {}", self.sort.as_str()));
            }
            Action::Input(c) => match &mut self.mode {
                Mode::Command(buf) => buf.push(c),
                Mode::Filter(buf) => {
                    buf.push(c);
                    self.filter = buf.clone();
                    self.clamp();
                }
                Mode::Normal => {}
            },
            Action::Backspace => match &mut self.mode {
                Mode::Command(buf) => {
                    buf.pop();
                }
                Mode::Filter(buf) => {
                    buf.pop();
                    self.filter = buf.clone();
                }
                Mode::Normal => {}
            },
            Action::Complete => {
                if let Mode::Command(buf) = &self.mode {
                    let done =
                        crate::palette::complete(buf, &self.storefront_names(), &self.namespaces());
                    self.mode = Mode::Command(done);
                }
            }
            Action::Submit => self.submit(),
            Action::Tick(now) => {
                self.now = now;
                self.refresh();
            }
            Action::Data(u) => {
                self.apply(u);
                self.refresh();
            }
        }
    }

    fn show(&mut self, v: View) {
        self.view = v;
        self.overlay = Overlay::None;
        self.clamp();
    }

    fn move_by(&mut self, delta: isize) {
        let n = 1 + self.storefront_keys().len();
        if let Overlay::Picker { selected } = &mut self.overlay {
            *selected = (*selected as isize + delta).clamp(0, n as isize - 1) as usize;
            return;
        }
        let n = self.row_count();
        let i = &mut self.selected[self.view.index()];
        *i = (*i as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
    }

    fn clamp(&mut self) {
        let n = self.row_count();
        let i = &mut self.selected[self.view.index()];
        *i = (*i).min(n.saturating_sub(1));
    }

    fn enter(&mut self) {
        match self.overlay {
            Overlay::Picker { selected } => {
                let keys = self.storefront_keys();
                self.scope = match selected.checked_sub(1).and_then(|i| keys.get(i)) {
                    Some((ns, name)) => Scope {
                        namespace: Some(ns.clone()),
                        storefront: Some(name.clone()),
                    },
                    None => Scope {
                        namespace: self.scope.namespace.clone().filter(|_| selected > 0),
                        storefront: None,
                    },
                };
                self.overlay = Overlay::None;
                self.refresh();
            }
            Overlay::None if self.row_count() > 0 => self.overlay = Overlay::Detail,
            _ => {}
        }
    }

    fn back(&mut self) {
        if self.mode != Mode::Normal {
            self.mode = Mode::Normal;
        } else if self.overlay != Overlay::None {
            self.overlay = Overlay::None;
        } else if !self.filter.is_empty() {
            self.filter.clear();
        } else {
            self.message = None;
        }
    }

    fn submit(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Command(cmd) => {
                let result = crate::palette::parse(&cmd);
                match result {
                    Ok(a) => {
                        self.message = None;
                        match a {
                            crate::palette::Command::Action(a) => self.update(a),
                            crate::palette::Command::Storefront(name) => {
                                let ns = self
                                    .storefront_keys()
                                    .into_iter()
                                    .find(|(_, n)| *n == name)
                                    .map(|(ns, _)| ns);
                                self.scope = Scope {
                                    namespace: ns.or(self.scope.namespace.clone()),
                                    storefront: Some(name),
                                };
                                self.refresh();
                            }
                            crate::palette::Command::Namespace(ns) => {
                                self.scope = Scope {
                                    namespace: Some(ns).filter(|n| n != "all"),
                                    storefront: None,
                                };
                                self.refresh();
                            }
                        }
                    }
                    Err(e) => self.message = Some(e),
                }
            }
            Mode::Filter(f) => self.filter = f,
            Mode::Normal => {}
        }
    }

    fn apply(&mut self, u: Update) {
        let kind = match &u {
            Update::Storefronts(_) => Some("Storefront"),
            Update::Shards(_) => Some("ServiceShard"),
            Update::Sales(_) => Some("FlashSale"),
            Update::Deployments(_) => Some("Deployment"),
            Update::Pods(_) => Some("Pod"),
            Update::Events(_) => Some("Event"),
            Update::ApiSynced | Update::ApiError(..) | Update::Prometheus(_) => None,
        };
        match u {
            Update::Storefronts(v) => self.cluster.storefronts = v,
            Update::Shards(v) => self.cluster.shards = v,
            Update::Sales(v) => self.cluster.sales = v,
            Update::Deployments(v) => self.cluster.deployments = v,
            Update::Pods(v) => self.cluster.pods = v,
            Update::Events(v) => self.cluster.events = v,
            Update::ApiSynced => self.api.synced = true,
            Update::ApiError(kind, e) => {
                self.api.errors.insert(kind, e);
            }
            Update::Prometheus(r) => self.prom.record(r),
        }
        if let Some(kind) = kind {
            self.cluster.index();
            self.api.last_ok = Some(self.now);
            self.api.errors.remove(kind);
        }
    }

    /// Re-derives failures and keeps the selection in range.
    pub fn refresh(&mut self) {
        // Derived over everything (first-seen times survive a change of scope), shown in scope.
        let all = failures::derive(&self.cluster, &self.prom, self.now, &self.first_seen);
        self.first_seen = all.iter().map(|f| (f.key(), f.since)).collect();
        let ns_ok =
            |ns: &str| ns.is_empty() || self.scope.namespace.as_deref().is_none_or(|n| n == ns);
        self.failures = all
            .into_iter()
            .filter(|f| ns_ok(&f.namespace))
            .filter(|f| match (&self.scope.storefront, &f.storefront) {
                (Some(want), Some(got)) => want == got,
                _ => true,
            })
            .collect();
        self.clamp();
    }

    /// Whether a Storefront is in the picked scope.
    pub fn in_scope(&self, sf: &Storefront) -> bool {
        let (ns, name) = sf_key(sf);
        self.scope.namespace.as_deref().is_none_or(|n| n == ns)
            && self.scope.storefront.as_deref().is_none_or(|n| n == name)
    }

    /// Storefronts in scope, by namespace and name.
    pub fn storefronts(&self) -> Vec<&Storefront> {
        let mut v: Vec<_> = self
            .cluster
            .storefronts
            .iter()
            .filter(|sf| self.in_scope(sf))
            .collect();
        v.sort_by_key(|sf| sf_key(sf));
        v
    }

    /// The Storefront the topology shows: the picked one, else the first in scope.
    pub fn focus(&self) -> Option<&Storefront> {
        self.storefronts().into_iter().next()
    }

    /// Every Storefront known (for the picker), by namespace and name.
    pub fn storefront_keys(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .cluster
            .storefronts
            .iter()
            .map(sf_key)
            .filter(|(ns, _)| {
                self.scope.namespace.as_deref().is_none_or(|n| n == ns)
                    || self.scope.storefront.is_some()
            })
            .collect();
        v.sort();
        v
    }

    fn storefront_names(&self) -> Vec<String> {
        self.cluster
            .storefronts
            .iter()
            .map(|s| sf_key(s).1)
            .collect()
    }

    fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .cluster
            .storefronts
            .iter()
            .map(|s| sf_key(s).0)
            .collect();
        v.dedup();
        v
    }

    /// Rows of the current view after the filter.
    pub fn row_count(&self) -> usize {
        match self.view {
            View::Topology => views::topology_rows(self).len(),
            View::Services => views::services(self).len(),
            View::Shards => views::shards(self).len(),
            View::Sales => views::sales(self).len(),
            View::Failures => views::failures(self).len(),
            View::Events => views::events(self).len(),
        }
    }

    /// Selected row of the current view.
    pub fn selection(&self) -> usize {
        self.selected[self.view.index()]
    }

    /// Whether `text` passes the `/` filter (case-insensitive substring).
    pub fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter.to_lowercase())
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
