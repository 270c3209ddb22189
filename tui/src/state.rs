//! The console's state: what it shows ([`View`], [`Overlay`], [`Mode`], [`SortBy`], [`Scope`]),
//! what it knows ([`App`]: the cluster, Prometheus, the API's health, derived failures), and
//! what can happen to it ([`Action`], with the sources' [`Update`]s). Read-only here: the one
//! place the state changes is [`App::update`] in [`crate::app`]. Views, palette, keys and
//! rendering depend on this module, not on `app`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use storefront_crds::{FlashSale, ServiceShard, Storefront};

use crate::{
    failures::Failure,
    metrics::{PromSnapshot, PromState},
    model::{Cluster, DeploymentInfo, EventInfo, PodInfo, sf_key},
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
    /// When each failure was first seen (kept across updates by [`App::refresh`]).
    pub(crate) first_seen: BTreeMap<String, Timestamp>,
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

    /// Selected row of the current view.
    pub fn selection(&self) -> usize {
        self.selected[self.view.index()]
    }

    /// Whether `text` passes the `/` filter (case-insensitive substring).
    pub fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter.to_lowercase())
    }
}
