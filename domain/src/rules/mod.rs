//! The support regulations' rules, as pure functions over plain data.
//!
//! Everything the regulations decide — a customer's category and whether
//! remote SSH is allowed, whether an INN is valid, whether a product version
//! is supported, when an SLA deadline falls in working hours, whether a
//! grant window is open — lives here, in one place, so the SSH gateway, the
//! CLI and the web panel cannot drift apart.
//!
//! The module does no I/O, reads no clock and holds no globals: "today" and
//! "now" are arguments, and configuration arrives as values. That keeps each
//! rule deterministic, so the tests are exhaustive tables of boundary cases
//! (the last day of a year, 18:00 on a Friday, a DST change) that run in
//! milliseconds without sockets, databases or waiting.
//!
//! Errors are `thiserror` enums whose Display text is a complete one-line
//! English sentence fragment fit for the user: an engineer's SSH stderr or a
//! CLI error, without further wrapping. Untrusted input echoed in a message
//! is escaped so it cannot drive the reader's terminal.
//!
//! * [`category`] — customer categories, standing on a day, remote-SSH eligibility;
//! * [`inn`] — taxpayer numbers (INN) with check digits;
//! * [`products`] — the catalog of supported products and versions;
//! * [`clock`] — working hours, SLA deadlines in working or calendar time;
//! * [`window`] — grant windows and human-readable durations.

pub mod calendar;
pub mod category;
pub mod clock;
pub mod inn;
pub mod products;
pub mod window;

pub use calendar::{Calendar, CalendarError};
pub use category::{
    Category, InvalidCategory, NoRemoteSsh, OrgFacts, Standing, first_year_last_day, remote_ssh, standing,
    trial_last_day,
};
pub use clock::{ClockError, WorkingHours};
pub use inn::{Inn, InnError, InnKind};
pub use products::{CatalogError, ProductCatalog, ProductSpec, VersionRefusal};
pub use window::{DurationParseError, GrantWindow, WindowError, WindowPosition, format_duration, parse_duration};

#[cfg(test)]
pub(crate) mod test_value {
    //! A tiny self-describing value to drive serde in tests without a format crate.

    use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
    use serde::de::{self, IntoDeserializer};

    #[derive(Debug, Clone)]
    pub enum V {
        Str(&'static str),
        Bool(bool),
        List(Vec<V>),
        Map(Vec<(&'static str, V)>),
    }

    impl<'de> de::Deserializer<'de> for V {
        type Error = Error;

        fn deserialize_any<W: de::Visitor<'de>>(self, visitor: W) -> Result<W::Value, Error> {
            match self {
                V::Str(s) => visitor.visit_borrowed_str(s),
                V::Bool(b) => visitor.visit_bool(b),
                V::List(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter())),
                V::Map(entries) => visitor.visit_map(MapDeserializer::new(entries.into_iter())),
            }
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    impl IntoDeserializer<'_, Error> for V {
        type Deserializer = V;

        fn into_deserializer(self) -> V {
            self
        }
    }

    /// Deserializes `v` as `T`, with the error as text.
    pub fn from<T: de::DeserializeOwned>(v: V) -> Result<T, String> {
        T::deserialize(v).map_err(|e| e.to_string())
    }
}
