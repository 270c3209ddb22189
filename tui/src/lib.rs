//! `storefront-console`: the ratatui ops console of Storefront — live topology, throughput
//! and failure points of the shops in a cluster, from kube-rs watches and Prometheus.
//!
//! ```text
//!  sources (I/O)                         app (update)               ui (pure)
//!  kube watchers ──┐                     ┌──────────────┐          ┌──────────┐
//!  Prometheus poll ┼─ Update ─▶ channel ─▶ App::update  ├─ &App ──▶ ui::draw  ├─▶ terminal
//!  keys (crossterm)┘   Action            │ (state::App) │          └──────────┘
//!                                        └──────────────┘
//! ```
//!
//! * [`state`]: the state ([`state::App`]) and what can happen to it ([`state::Action`]);
//!   [`app`]: the one place it changes ([`state::App::update`]); [`keys`]: key → action;
//!   [`palette`]: `:` commands. Views, keys, palette and `ui` depend on `state`, never on
//!   `app`.
//! * View models, pure and unit-tested: [`topology`] (layered graph and its terminal layout),
//!   [`failures`] (what is broken, newest first), [`metrics`] (PromQL, rates from counters,
//!   staleness), [`views`] (table rows and detail panes), [`model`] (trimmed kube objects).
//! * [`ui`]: rendering, snapshot-tested; [`diagram`]: Mermaid and SVG export; [`fixtures`]:
//!   the sample shop in known states (tests and `--demo`).
//! * [`sources`]: kube-rs watchers and the Prometheus poller; [`run`]: the terminal loop,
//!   `--once` and `diagram`.

pub mod app;
pub mod diagram;
pub mod failures;
pub mod fixtures;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod palette;
pub mod run;
pub mod sources;
pub mod state;
pub mod topology;
pub mod ui;
pub mod views;
