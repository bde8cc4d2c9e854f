//! The panel's two languages. Texts live in `web/i18n/*.toml`, one file per part of the
//! panel, each text with both languages side by side so a missing translation shows in
//! review (and in the test below):
//!
//! ```toml
//! [login]
//! title = { ru = "Вход", en = "Sign in" }
//! ```
//!
//! is the key `login.title`. Russian is the default: the customers are Russian. The CLI
//! reads ticket history lines (`work.history`) from here too, in English.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "iks_lang";

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
    CATALOGUE.get_or_init(|| load(super::templates::I18N).unwrap_or_else(|e| panic!("web/i18n: {e}")))
}

/// Reads the catalogue files; a malformed file is a build defect, caught by the tests.
fn load(files: &[(&str, &[u8])]) -> Result<Catalogue, String> {
    let mut all = Catalogue::new();
    for (name, bytes) in files {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("{name}: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_loads_and_has_both_languages() {
        let all = load(super::super::templates::I18N).unwrap();
        assert!(all.len() > 10);
        for (key, (ru, en)) in &all {
            assert!(!ru.trim().is_empty() && !en.trim().is_empty(), "{key} has an empty text");
        }
        assert_eq!(text(Lang::Ru, "login.title"), "Вход");
        assert_eq!(text(Lang::En, "login.title"), "Sign in");
    }

    #[test]
    fn malformed_entries_are_named() {
        let bad: &[(&str, &[u8])] = &[("x.toml", b"[a]\nb = { ru = \"\xd0\x94\" }\n")];
        assert_eq!(load(bad).unwrap_err(), "x.toml: a.b needs exactly ru and en texts");
        let twice: &[(&str, &[u8])] = &[
            ("x.toml", b"[a]\nb = { ru = \"1\", en = \"1\" }\n"),
            ("y.toml", b"[a]\nb = { ru = \"1\", en = \"1\" }\n"),
        ];
        assert_eq!(load(twice).unwrap_err(), "y.toml: a.b is defined twice");
    }

    /// Every `t("…")` in every template names a text that exists.
    #[test]
    fn every_key_the_templates_use_exists() {
        let mut missing = Vec::new();
        for (name, bytes) in super::super::templates::TEMPLATES {
            let text = std::str::from_utf8(bytes).unwrap();
            for part in text.split("t(\"").skip(1) {
                let key = part.split('"').next().unwrap();
                // `t("role." ~ me.role)` builds its key; the prefix is checked by hand.
                if !key.ends_with('.') && !catalogue().contains_key(key) {
                    missing.push(format!("{name}: {key}"));
                }
            }
        }
        assert!(missing.is_empty(), "texts missing from web/i18n: {missing:#?}");
    }
}
