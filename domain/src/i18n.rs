//! Texts shown to people, in the two languages of the gateway: the one home of every
//! sentence the panel, its error pages and the ticket history show. Texts live in
//! `web/i18n/*.toml` (embedded here), one file per part of the panel, each text with both
//! languages side by side so a missing translation shows in review (and in the test below):
//!
//! ```toml
//! [login]
//! title = { ru = "Вход", en = "Sign in" }
//! ```
//!
//! is the key `login.title`. Russian is the default: the customers are Russian. The CLI
//! reads ticket history lines (`desk.history`) from here too, in English.
//!
//! Depends on nothing else in the crate (std and `toml` only): the panel's templates adapt
//! it for minijinja (`web::templates`), and anything below the web may use it.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The catalogue's files, by name. A test holds this list to the directory.
const FILES: &[(&str, &str)] = &[
    ("admin.toml", include_str!("../../web/i18n/admin.toml")),
    ("audit.toml", include_str!("../../web/i18n/audit.toml")),
    ("common.toml", include_str!("../../web/i18n/common.toml")),
    ("desk.toml", include_str!("../../web/i18n/desk.toml")),
    ("recordings.toml", include_str!("../../web/i18n/recordings.toml")),
    ("refusal.toml", include_str!("../../web/i18n/refusal.toml")),
    ("sessions.toml", include_str!("../../web/i18n/sessions.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Ru,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ru" => Some(Self::Ru),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Ru => "ru",
            Self::En => "en",
        }
    }
}

/// Every text, by key: (Russian, English).
type Catalogue = HashMap<String, (String, String)>;

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| load(FILES).unwrap_or_else(|e| panic!("web/i18n: {e}")))
}

/// Reads the catalogue files; a malformed file is a build defect, caught by the tests.
fn load(files: &[(&str, &str)]) -> Result<Catalogue, String> {
    let mut all = Catalogue::new();
    for (name, text) in files {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        flatten(name, "", &table, &mut all)?;
    }
    Ok(all)
}

fn flatten(file: &str, prefix: &str, table: &toml::Table, all: &mut Catalogue) -> Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let toml::Value::Table(t) = v else {
            return Err(format!("{file}: {key} must be {{ ru = \"…\", en = \"…\" }} or a section"));
        };
        match (t.get("ru"), t.get("en")) {
            (Some(toml::Value::String(ru)), Some(toml::Value::String(en))) if t.len() == 2 => {
                if all.insert(key.clone(), (ru.clone(), en.clone())).is_some() {
                    return Err(format!("{file}: {key} is defined twice"));
                }
            }
            (None, None) => flatten(file, &key, t, all)?,
            _ => return Err(format!("{file}: {key} needs exactly ru and en texts")),
        }
    }
    Ok(())
}

/// Whether the catalogue has a text for `key` (for the tests that check the keys in use).
pub fn exists(key: &str) -> bool {
    catalogue().contains_key(key)
}

/// The text for `key` in `lang`; an unknown key shows as itself (and fails the test that
/// checks every key the templates use).
pub fn text(lang: Lang, key: &str) -> String {
    match catalogue().get(key) {
        Some((ru, en)) => match lang {
            Lang::Ru => ru.clone(),
            Lang::En => en.clone(),
        },
        None => key.to_string(),
    }
}

/// The text for `key` in `lang` with each `{name}` replaced by its value in `args`. A
/// value is inserted as given, never read for placeholders itself.
pub fn fill(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    let template = text(lang, key);
    let mut out = String::with_capacity(template.len());
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let named = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter().find(|(n, _)| *n == name).map(|(_, value)| (*value, close))
        });
        match named {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_loads_and_has_both_languages() {
        let all = load(FILES).unwrap();
        assert!(all.len() > 10);
        for (key, (ru, en)) in &all {
            assert!(!ru.trim().is_empty() && !en.trim().is_empty(), "{key} has an empty text");
        }
        assert_eq!(text(Lang::Ru, "login.title"), "Вход");
        assert_eq!(text(Lang::En, "login.title"), "Sign in");
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let args = [("ticket", "T-1"), ("box", "{ticket}")];
        assert_eq!(
            fill(Lang::En, "refusal.box_offline", &[("since", "noon"), ("ticket", "T-1"), ("box", "gw")]),
            "T-1: box gw is offline since noon"
        );
        assert_eq!(fill(Lang::Ru, "refusal.other_operator", &args), "T-1: доступ выдан другому инженеру");
        assert_eq!(
            fill(Lang::En, "refusal.no_agent", &args),
            "T-1: box {ticket} has no agent connected (enrol it with: iks-gateway box enroll-token {ticket})"
        );
        assert_eq!(
            fill(Lang::En, "refusal.pending", &args),
            "T-1: access request {grant} is waiting for the customer's approval"
        );
    }

    #[test]
    fn malformed_entries_are_named() {
        let bad: &[(&str, &str)] = &[("x.toml", "[a]\nb = { ru = \"Д\" }\n")];
        assert_eq!(load(bad).unwrap_err(), "x.toml: a.b needs exactly ru and en texts");
        let twice: &[(&str, &str)] =
            &[("x.toml", "[a]\nb = { ru = \"1\", en = \"1\" }\n"), ("y.toml", "[a]\nb = { ru = \"1\", en = \"1\" }\n")];
        assert_eq!(load(twice).unwrap_err(), "y.toml: a.b is defined twice");
    }

    /// A file added to `web/i18n` is loaded: the list above names every one.
    #[test]
    fn every_catalogue_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/i18n");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, listed);
    }
}
