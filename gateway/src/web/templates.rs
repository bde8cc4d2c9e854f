//! The embedded files and the template environment: the adapter between minijinja and
//! the texts of [`iks_domain::i18n`].
//!
//! Templates get three helpers: `t("key")` translates into the page's language (from the
//! `lang` variable every page has), `value|when` shows a stored time in the configured
//! zone, and `value|date` shows its date only.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use iks_domain::i18n::{self, Lang};

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// A static asset by its name under `web/static`.
pub fn asset(name: &str) -> Option<&'static [u8]> {
    STATIC.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new(tz: Tz) -> Self {
        let mut env = Environment::new();
        for (name, bytes) in TEMPLATES {
            let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("web/templates/{name}: {e}"));
            env.add_template(name, text).unwrap_or_else(|e| panic!("web/templates/{name}: {e}"));
        }
        env.add_function("t", |state: &State, key: &str| -> String { i18n::text(lang_of(state), key) });
        env.add_filter("when", move |v: Value| -> Result<String, Error> {
            Ok(parse_time(&v)?.map(|t| iks_domain::time::display(t, tz)).unwrap_or_default())
        });
        env.add_filter("date", move |v: Value| -> Result<String, Error> {
            Ok(parse_time(&v)?.map(|t| t.with_timezone(&tz).format("%Y-%m-%d").to_string()).unwrap_or_default())
        });
        Self { env }
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

fn lang_of(state: &State) -> Lang {
    state.lookup("lang").and_then(|v| v.as_str().and_then(Lang::parse)).unwrap_or_default()
}

/// Times reach templates as RFC 3339 strings (how `DateTime<Utc>` serialises); none is "".
fn parse_time(v: &Value) -> Result<Option<DateTime<Utc>>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(None);
    }
    let s = v.as_str().ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "a time must be a string"))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("'{s}' is not a time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t("…")` in every template names a text that exists.
    #[test]
    fn every_key_the_templates_use_exists() {
        let mut missing = Vec::new();
        for (name, bytes) in TEMPLATES {
            let text = std::str::from_utf8(bytes).unwrap();
            for part in text.split("t(\"").skip(1) {
                let key = part.split('"').next().unwrap();
                // `t("role." ~ me.role)` builds its key; the prefix is checked by hand.
                if !key.ends_with('.') && !i18n::exists(key) {
                    missing.push(format!("{name}: {key}"));
                }
            }
        }
        assert!(missing.is_empty(), "texts missing from web/i18n: {missing:#?}");
    }
}
