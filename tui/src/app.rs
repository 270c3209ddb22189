//! The one place the console's state ([`crate::state`]) changes: [`App::update`] with an
//! [`Action`].
//!
//! Keys (see [`crate::keys`]), data from the sources ([`Update`]) and the clock ([`Action::Tick`])
//! all arrive as actions, so a test can drive the whole console without a terminal or a
//! cluster, and rendering ([`crate::ui`]) only reads the state.

use crate::{
    failures,
    model::sf_key,
    palette,
    state::{Action, App, Mode, Overlay, Scope, SortBy, Update, View},
    views,
};

impl App {
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
                    let done = palette::complete(buf, &self.storefront_names(), &self.namespaces());
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
                let result = palette::parse(&cmd);
                match result {
                    Ok(a) => {
                        self.message = None;
                        match a {
                            palette::Command::Action(a) => self.update(a),
                            palette::Command::Storefront(name) => {
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
                            palette::Command::Namespace(ns) => {
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
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
