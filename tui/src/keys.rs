//! Key bindings: a key press, in the current [`Mode`] and [`Overlay`], becomes an [`Action`].
//!
//! k9s-style: `1`–`6` views, `:` palette, `/` filter, `?` help, `Enter` detail, `Esc` back,
//! `q` quit, `s` sort, `p` picker, `j`/`k` or arrows to move, `Tab` next view.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::state::{Action, Mode, Overlay, View};

/// The action for `key`, if any.
pub fn action(key: KeyEvent, mode: &Mode, overlay: &Overlay) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if *mode != Mode::Normal {
        return match key.code {
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Backspace => Some(Action::Backspace),
            KeyCode::Tab if matches!(mode, Mode::Command(_)) => Some(Action::Complete),
            KeyCode::Char(c) => Some(Action::Input(c)),
            _ => None,
        };
    }
    let common = match key.code {
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Enter => Some(Action::Enter),
        KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') => Some(Action::Help),
        _ => None,
    };
    if common.is_some() || matches!(overlay, Overlay::Picker { .. }) {
        return common;
    }
    match key.code {
        KeyCode::Char(c @ '1'..='6') => Some(Action::Show(View::ALL[(c as u8 - b'1') as usize])),
        KeyCode::Char(':') => Some(Action::Command),
        KeyCode::Char('/') => Some(Action::Filter),
        KeyCode::Char('s') => Some(Action::Sort),
        KeyCode::Char('p') => Some(Action::Picker),
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Some(Action::NextView),
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Some(Action::PrevView),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::PageDown => Some(Action::PageDown),
        KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
        KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn normal(code: KeyCode) -> Option<Action> {
        action(key(code), &Mode::Normal, &Overlay::None)
    }

    #[test]
    fn number_keys_switch_views() {
        for (c, v) in ('1'..='6').zip(View::ALL) {
            assert!(
                matches!(normal(KeyCode::Char(c)), Some(Action::Show(got)) if got == v),
                "{c}"
            );
        }
        assert!(normal(KeyCode::Char('7')).is_none());
    }

    #[test]
    fn normal_mode_bindings() {
        assert!(matches!(normal(KeyCode::Char(':')), Some(Action::Command)));
        assert!(matches!(normal(KeyCode::Char('/')), Some(Action::Filter)));
        assert!(matches!(normal(KeyCode::Char('?')), Some(Action::Help)));
        assert!(matches!(normal(KeyCode::Char('q')), Some(Action::Quit)));
        assert!(matches!(normal(KeyCode::Esc), Some(Action::Back)));
        assert!(matches!(normal(KeyCode::Enter), Some(Action::Enter)));
        assert!(matches!(normal(KeyCode::Char('j')), Some(Action::Down)));
        assert!(matches!(normal(KeyCode::Up), Some(Action::Up)));
        assert!(matches!(normal(KeyCode::Char('p')), Some(Action::Picker)));
        assert!(matches!(normal(KeyCode::Char('s')), Some(Action::Sort)));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(
            action(ctrl_c, &Mode::Filter("x".into()), &Overlay::None),
            Some(Action::Quit)
        ));
    }

    #[test]
    fn typing_in_the_palette_does_not_trigger_bindings() {
        let cmd = Mode::Command("sh".into());
        assert!(matches!(
            action(key(KeyCode::Char('q')), &cmd, &Overlay::None),
            Some(Action::Input('q'))
        ));
        assert!(matches!(
            action(key(KeyCode::Char('1')), &cmd, &Overlay::None),
            Some(Action::Input('1'))
        ));
        assert!(matches!(
            action(key(KeyCode::Tab), &cmd, &Overlay::None),
            Some(Action::Complete)
        ));
        assert!(matches!(
            action(key(KeyCode::Enter), &cmd, &Overlay::None),
            Some(Action::Submit)
        ));
        assert!(matches!(
            action(key(KeyCode::Esc), &cmd, &Overlay::None),
            Some(Action::Back)
        ));
        let filter = Mode::Filter(String::new());
        assert!(action(key(KeyCode::Tab), &filter, &Overlay::None).is_none());
    }

    #[test]
    fn the_picker_takes_only_moves_choose_and_back() {
        let picker = Overlay::Picker { selected: 0 };
        assert!(matches!(
            action(key(KeyCode::Down), &Mode::Normal, &picker),
            Some(Action::Down)
        ));
        assert!(matches!(
            action(key(KeyCode::Enter), &Mode::Normal, &picker),
            Some(Action::Enter)
        ));
        assert!(action(key(KeyCode::Char('3')), &Mode::Normal, &picker).is_none());
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..key(KeyCode::Char('q'))
        };
        assert!(action(release, &Mode::Normal, &Overlay::None).is_none());
    }
}
