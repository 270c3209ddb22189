//! The `:` command palette: what a command line means ([`parse`]) and Tab completion
//! ([`complete`]) of command words and of Storefront and namespace names.
//!
//! Commands: the view names (`topology`, `services`, `shards`, `sales`, `failures`,
//! `events`), `sf <name>`, `ns <namespace|all>`, `pick`, `sort`, `help`, `quit`.

use crate::state::{Action, View};

/// A parsed palette command.
#[derive(Clone, Debug)]
pub enum Command {
    Action(Action),
    Storefront(String),
    Namespace(String),
}

/// Every command word, for completion and help.
pub const WORDS: [&str; 12] = [
    "topology", "services", "shards", "sales", "failures", "events", "sf", "ns", "pick", "sort",
    "help", "quit",
];

/// Parses a palette line; an error says what is wrong.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut parts = line.split_whitespace();
    let Some(word) = parts.next() else {
        return Err("empty command".into());
    };
    let arg = parts.next();
    let view = |v| Ok(Command::Action(Action::Show(v)));
    match (word, arg) {
        ("topology" | "topo" | "1", None) => view(View::Topology),
        ("services" | "svc" | "2", None) => view(View::Services),
        ("shards" | "ssh" | "3", None) => view(View::Shards),
        ("sales" | "flashsales" | "fsale" | "4", None) => view(View::Sales),
        ("failures" | "fail" | "5", None) => view(View::Failures),
        ("events" | "ev" | "6", None) => view(View::Events),
        ("sf" | "storefront", Some(name)) => Ok(Command::Storefront(name.to_string())),
        ("ns" | "namespace", Some(ns)) => Ok(Command::Namespace(ns.to_string())),
        ("sf" | "storefront" | "ns" | "namespace", None) | ("pick", None) => {
            Ok(Command::Action(Action::Picker))
        }
        ("sort", None) => Ok(Command::Action(Action::Sort)),
        ("help", None) => Ok(Command::Action(Action::Help)),
        ("quit" | "q", None) => Ok(Command::Action(Action::Quit)),
        _ => Err(format!(
            "unknown command `{line}` (Tab completes, ? lists commands)"
        )),
    }
}

/// Completes the line as far as every candidate agrees (the longest common prefix); a unique
/// command word that takes an argument gets its trailing space.
pub fn complete(line: &str, storefronts: &[String], namespaces: &[String]) -> String {
    match line.split_once(' ') {
        None => {
            let matches: Vec<&str> = WORDS
                .iter()
                .copied()
                .filter(|w| w.starts_with(line))
                .collect();
            match matches.as_slice() {
                [] => line.to_string(),
                [one] if matches!(*one, "sf" | "ns") => format!("{one} "),
                [one] => one.to_string(),
                many => common_prefix(many).to_string(),
            }
        }
        Some((word, arg)) => {
            let mut candidates: Vec<&str> = match word {
                "sf" | "storefront" => storefronts.iter().map(String::as_str).collect(),
                "ns" | "namespace" => namespaces
                    .iter()
                    .map(String::as_str)
                    .chain(["all"])
                    .collect(),
                _ => return line.to_string(),
            };
            candidates.retain(|c| c.starts_with(arg.trim()));
            candidates.sort_unstable();
            candidates.dedup();
            if candidates.is_empty() {
                line.to_string()
            } else {
                format!("{word} {}", common_prefix(&candidates))
            }
        }
    }
}

fn common_prefix<'a>(words: &[&'a str]) -> &'a str {
    let Some(first) = words.first() else {
        return "";
    };
    let mut len = first.len();
    for w in &words[1..] {
        len = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(len);
    }
    &first[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn completes_words_and_names() {
        let sfs = names(&["acme", "acme-eu", "globex"]);
        let nss = names(&["shop", "staging"]);
        assert_eq!(complete("sh", &sfs, &nss), "shards");
        assert_eq!(
            complete("s", &sfs, &nss),
            "s",
            "services, shards, sales, sf, sort share only `s`"
        );
        assert_eq!(complete("se", &sfs, &nss), "services");
        assert_eq!(complete("f", &sfs, &nss), "failures");
        assert_eq!(complete("sf", &sfs, &nss), "sf ");
        assert_eq!(complete("sf a", &sfs, &nss), "sf acme");
        assert_eq!(complete("sf g", &sfs, &nss), "sf globex");
        assert_eq!(complete("ns st", &sfs, &nss), "ns staging");
        assert_eq!(complete("ns a", &sfs, &nss), "ns all");
        assert_eq!(complete("zz", &sfs, &nss), "zz");
        assert_eq!(complete("sf zz", &sfs, &nss), "sf zz");
    }

    #[test]
    fn parses_views_scopes_and_refuses_the_unknown() {
        assert!(matches!(
            parse("services"),
            Ok(Command::Action(Action::Show(View::Services)))
        ));
        assert!(matches!(
            parse(" fsale "),
            Ok(Command::Action(Action::Show(View::Sales)))
        ));
        assert!(matches!(parse("sf acme"), Ok(Command::Storefront(n)) if n == "acme"));
        assert!(matches!(parse("ns all"), Ok(Command::Namespace(n)) if n == "all"));
        assert!(matches!(parse("sf"), Ok(Command::Action(Action::Picker))));
        assert!(matches!(parse("q"), Ok(Command::Action(Action::Quit))));
        let err = parse("launch rockets").err();
        assert!(err.is_some_and(|e| e.contains("unknown command `launch rockets`")));
        assert!(parse("").is_err());
    }
}
