//! Customer categories and the remote-SSH rule that follows from them.
//!
//! The regulations rank customers by priority, 1 highest:
//!
//! 1. an active *support module* — every customer has it for the first year
//!    after purchase, later it is bought and paid until a date;
//! 2. a running IKS trial (at most 3 calendar months), or a partner/distributor;
//! 3. no support module (it expired, the trial ended, or there never was one);
//! 4. IKS Lite, the free edition — always, whatever the other facts say.
//!
//! Only categories 1 and 2 may be reached over remote SSH.
//!
//! Instead of storing a category (which silently goes stale when a date
//! passes), we store the dated facts ([`OrgFacts`]) and derive a [`Standing`]
//! for a given day. The standing carries the dates a message needs ("expired
//! on …"), so callers never recompute them.
//!
//! # Date semantics
//!
//! * **Included first year**: `purchased_on ..= purchased_on + 12 months − 1 day`,
//!   using [`NaiveDate::checked_add_months`]. When the anniversary does not
//!   exist it is clamped to the month end, so a purchase on Feb 29 is covered
//!   until Feb 27 of the next year (anniversary clamped to Feb 28, minus one
//!   day): we err one day short rather than grant a year and a day.
//!   A purchase date after `today` does not count yet.
//! * **Paid module**: `module_paid_until` is the *last covered day*,
//!   inclusive. It has no start of its own: it simply extends coverage.
//! * **Trial**: `trial_started_on ..= start + 3 months − 1 day`, clamped the
//!   same way (the regulations say "at most 3 months", so clamping errs
//!   short: a trial from Nov 30 ends after Feb 27 or 28, one from Jan 31
//!   after Apr 29). A start after `today` does not count yet.
//! * A span whose end would lie beyond chrono's last representable date is
//!   treated as never ending.
//!
//! # Precedence
//!
//! free edition → active module (either coverage includes today) → running
//! trial → partner → module expired (any coverage that began in the past;
//! `expired_on` is the first uncovered day) → trial ended → no module.
//! A past trial is only mentioned when there was never a module, because the
//! expired module is the actionable fact (renew it).

use std::fmt;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// The dated facts about an organisation from which its category follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgFacts {
    /// Purchase date of IKS; starts the included first year of the module.
    pub purchased_on: Option<NaiveDate>,
    /// Last day (inclusive) covered by a bought support module.
    pub module_paid_until: Option<NaiveDate>,
    /// First day of an IKS trial.
    pub trial_started_on: Option<NaiveDate>,
    /// Partner or distributor of A-Real Consulting.
    pub partner: bool,
}

/// Customer category of the support regulations; 1 is the highest priority.
///
/// Serialized as its number (1–4), the form used in the regulations, the
/// database and configuration files.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub enum Category {
    /// Active support module.
    One = 1,
    /// Trial or partner.
    Two = 2,
    /// No support module.
    Three = 3,
    /// IKS Lite (free edition).
    Four = 4,
}

impl Category {
    /// All categories, highest priority first.
    pub const ALL: [Category; 4] = [Category::One, Category::Two, Category::Three, Category::Four];

    /// The category's number in the regulations (1–4).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Whether the regulations allow remote SSH for this category.
    pub fn allows_remote_ssh(self) -> bool {
        matches!(self, Category::One | Category::Two)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "category {}", self.number())
    }
}

impl From<Category> for u8 {
    fn from(c: Category) -> u8 {
        c.number()
    }
}

/// A number that is not a category of the regulations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("category must be 1, 2, 3 or 4, got {0}")]
pub struct InvalidCategory(pub i64);

impl TryFrom<i64> for Category {
    type Error = InvalidCategory;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        match n {
            1 => Ok(Category::One),
            2 => Ok(Category::Two),
            3 => Ok(Category::Three),
            4 => Ok(Category::Four),
            other => Err(InvalidCategory(other)),
        }
    }
}

/// Why an organisation is in its category on a given day; everything a message needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Standing {
    /// Category 1. `last_day` is the last covered day; `first_year` is true
    /// while only the included first year covers today (nothing paid beyond it).
    SupportModule { last_day: NaiveDate, first_year: bool },
    /// Category 2; `last_day` is the trial's last day.
    Trial { last_day: NaiveDate },
    /// Category 2.
    Partner,
    /// Category 3; `expired_on` is the first day NOT covered.
    ModuleExpired { expired_on: NaiveDate },
    /// Category 3; `ended_on` is the first day after the trial.
    TrialEnded { ended_on: NaiveDate },
    /// Category 3: never had a module nor a trial.
    NoSupportModule,
    /// Category 4: IKS Lite.
    FreeEdition,
}

impl Standing {
    /// The category this standing puts the organisation in.
    pub fn category(&self) -> Category {
        match self {
            Standing::SupportModule { .. } => Category::One,
            Standing::Trial { .. } | Standing::Partner => Category::Two,
            Standing::ModuleExpired { .. } | Standing::TrialEnded { .. } | Standing::NoSupportModule => Category::Three,
            Standing::FreeEdition => Category::Four,
        }
    }
}

/// A short status line for listings, e.g. "support module until 2027-03-14 (included first year)".
impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Standing::SupportModule { last_day, first_year: true } => {
                write!(f, "support module until {last_day} (included first year)")
            }
            Standing::SupportModule { last_day, first_year: false } => write!(f, "support module until {last_day}"),
            Standing::Trial { last_day } => write!(f, "trial until {last_day}"),
            Standing::Partner => f.write_str("partner"),
            Standing::ModuleExpired { expired_on } => {
                write!(f, "support module expired on {expired_on}")
            }
            Standing::TrialEnded { ended_on } => write!(f, "trial ended on {ended_on}"),
            Standing::NoSupportModule => f.write_str("no support module"),
            Standing::FreeEdition => f.write_str("IKS Lite (free edition)"),
        }
    }
}

/// Last day of a span of `months` calendar months starting on `start`.
fn last_day_of_span(start: NaiveDate, months: u32) -> NaiveDate {
    match start.checked_add_months(Months::new(months)) {
        // `end` is at least 28 days after `start`, so it is never
        // NaiveDate::MIN and has a predecessor; the fallback is unreachable.
        Some(end) => end.pred_opt().unwrap_or(start),
        None => NaiveDate::MAX,
    }
}

/// Last day covered by the support module included with a purchase.
pub fn first_year_last_day(purchased_on: NaiveDate) -> NaiveDate {
    last_day_of_span(purchased_on, 12)
}

/// Last day of a trial that started on `trial_started_on`.
pub fn trial_last_day(trial_started_on: NaiveDate) -> NaiveDate {
    last_day_of_span(trial_started_on, 3)
}

/// The day after `last`, for "expired on" dates. Only called with
/// `last < today`, so the successor exists; the fallback is unreachable.
fn day_after(last: NaiveDate, today: NaiveDate) -> NaiveDate {
    last.succ_opt().unwrap_or(today)
}

/// The organisation's standing on `today`. `free_edition` is true for IKS Lite.
pub fn standing(facts: &OrgFacts, free_edition: bool, today: NaiveDate) -> Standing {
    if free_edition {
        return Standing::FreeEdition;
    }

    // Only coverage that has begun by today counts, active or past.
    let first_year = facts.purchased_on.filter(|p| *p <= today).map(first_year_last_day);
    let paid = facts.module_paid_until;

    let first_year_active = first_year.filter(|last| today <= *last);
    let paid_active = paid.filter(|last| today <= *last);
    // Option's order puts None below any Some, so max picks the later active end.
    if let Some(last_day) = first_year_active.max(paid_active) {
        let first_year = match first_year_active {
            Some(fy_last) => paid.is_none_or(|p| p <= fy_last),
            None => false,
        };
        return Standing::SupportModule { last_day, first_year };
    }

    let trial = facts.trial_started_on.filter(|s| *s <= today).map(trial_last_day);
    if let Some(last_day) = trial.filter(|last| today <= *last) {
        return Standing::Trial { last_day };
    }

    if facts.partner {
        return Standing::Partner;
    }

    if let Some(last) = first_year.max(paid) {
        return Standing::ModuleExpired { expired_on: day_after(last, today) };
    }

    if let Some(last) = trial {
        return Standing::TrialEnded { ended_on: day_after(last, today) };
    }

    Standing::NoSupportModule
}

/// Why remote SSH is not allowed. The Display text omits the organisation
/// (the engineer already named it); see [`NoRemoteSsh::describe_for`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRemoteSsh {
    #[error("the support module expired on {expired_on} (category 3: no remote SSH)")]
    ModuleExpired { expired_on: NaiveDate },
    #[error("the trial ended on {ended_on} (category 3: no remote SSH)")]
    TrialEnded { ended_on: NaiveDate },
    #[error("no support module (category 3: no remote SSH)")]
    NoSupportModule,
    #[error("IKS Lite is the free edition (category 4: no remote SSH)")]
    FreeEdition,
}

impl NoRemoteSsh {
    /// The category that forbids remote SSH.
    pub fn category(&self) -> Category {
        match self {
            NoRemoteSsh::ModuleExpired { .. } | NoRemoteSsh::TrialEnded { .. } | NoRemoteSsh::NoSupportModule => {
                Category::Three
            }
            NoRemoteSsh::FreeEdition => Category::Four,
        }
    }

    /// The reason naming the organisation, e.g. "the support module of
    /// ООО Ромашка expired on 2026-10-01 (category 3: no remote SSH)".
    pub fn describe_for(&self, org_name: &str) -> String {
        let n = self.category().number();
        match self {
            NoRemoteSsh::ModuleExpired { expired_on } => {
                format!("the support module of {org_name} expired on {expired_on} (category {n}: no remote SSH)")
            }
            NoRemoteSsh::TrialEnded { ended_on } => {
                format!("the trial of {org_name} ended on {ended_on} (category {n}: no remote SSH)")
            }
            NoRemoteSsh::NoSupportModule => {
                format!("{org_name} has no support module (category {n}: no remote SSH)")
            }
            NoRemoteSsh::FreeEdition => {
                format!("{org_name} uses IKS Lite, the free edition (category {n}: no remote SSH)")
            }
        }
    }
}

/// Whether remote SSH is allowed for an organisation with this standing.
pub fn remote_ssh(standing: &Standing) -> Result<(), NoRemoteSsh> {
    match *standing {
        Standing::SupportModule { .. } | Standing::Trial { .. } | Standing::Partner => Ok(()),
        Standing::ModuleExpired { expired_on } => Err(NoRemoteSsh::ModuleExpired { expired_on }),
        Standing::TrialEnded { ended_on } => Err(NoRemoteSsh::TrialEnded { ended_on }),
        Standing::NoSupportModule => Err(NoRemoteSsh::NoSupportModule),
        Standing::FreeEdition => Err(NoRemoteSsh::FreeEdition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as DeError;

    const fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        match NaiveDate::from_ymd_opt(y, m, day) {
            Some(date) => date,
            None => panic!("invalid test date"),
        }
    }

    const NONE: OrgFacts =
        OrgFacts { purchased_on: None, module_paid_until: None, trial_started_on: None, partner: false };

    const fn bought(on: NaiveDate) -> OrgFacts {
        OrgFacts { purchased_on: Some(on), ..NONE }
    }

    const fn paid(purchased_on: Option<NaiveDate>, until: NaiveDate) -> OrgFacts {
        OrgFacts { purchased_on, module_paid_until: Some(until), ..NONE }
    }

    const fn trial(start: NaiveDate) -> OrgFacts {
        OrgFacts { trial_started_on: Some(start), ..NONE }
    }

    const fn module(last_day: NaiveDate, first_year: bool) -> Standing {
        Standing::SupportModule { last_day, first_year }
    }

    struct StandingCase {
        what: &'static str,
        facts: OrgFacts,
        free_edition: bool,
        today: NaiveDate,
        expected: Standing,
    }

    const fn case(what: &'static str, facts: OrgFacts, today: NaiveDate, expected: Standing) -> StandingCase {
        StandingCase { what, facts, free_edition: false, today, expected }
    }

    const fn lite(what: &'static str, facts: OrgFacts, today: NaiveDate) -> StandingCase {
        StandingCase { what, facts, free_edition: true, today, expected: Standing::FreeEdition }
    }

    const STANDING_CASES: &[StandingCase] = &[
        // Included first year: purchase 2025-03-15 covers ..= 2026-03-14.
        case("purchase day is covered", bought(d(2025, 3, 15)), d(2025, 3, 15), module(d(2026, 3, 14), true)),
        case("last day of the first year", bought(d(2025, 3, 15)), d(2026, 3, 14), module(d(2026, 3, 14), true)),
        case(
            "day after the first year, nothing paid",
            bought(d(2025, 3, 15)),
            d(2026, 3, 15),
            Standing::ModuleExpired { expired_on: d(2026, 3, 15) },
        ),
        case(
            "purchase in the future does not count yet",
            bought(d(2025, 3, 15)),
            d(2025, 3, 14),
            Standing::NoSupportModule,
        ),
        case(
            "purchase in the future, trial running",
            OrgFacts { purchased_on: Some(d(2025, 3, 15)), trial_started_on: Some(d(2025, 3, 1)), ..NONE },
            d(2025, 3, 14),
            Standing::Trial { last_day: d(2025, 5, 31) },
        ),
        case(
            "Feb 29 purchase: last day is Feb 27 (clamped anniversary minus one)",
            bought(d(2024, 2, 29)),
            d(2025, 2, 27),
            module(d(2025, 2, 27), true),
        ),
        case(
            "Feb 29 purchase: Feb 28 is no longer covered",
            bought(d(2024, 2, 29)),
            d(2025, 2, 28),
            Standing::ModuleExpired { expired_on: d(2025, 2, 28) },
        ),
        case(
            "Dec 31 purchase covers until Dec 30",
            bought(d(2024, 12, 31)),
            d(2025, 12, 30),
            module(d(2025, 12, 30), true),
        ),
        // Paid module.
        case(
            "paid_until is the last covered day",
            paid(Some(d(2020, 1, 10)), d(2026, 9, 30)),
            d(2026, 9, 30),
            module(d(2026, 9, 30), false),
        ),
        case(
            "day after paid_until: expired",
            paid(Some(d(2020, 1, 10)), d(2026, 9, 30)),
            d(2026, 10, 1),
            Standing::ModuleExpired { expired_on: d(2026, 10, 1) },
        ),
        case(
            "paid without a known purchase date",
            paid(None, d(2026, 9, 30)),
            d(2026, 1, 1),
            module(d(2026, 9, 30), false),
        ),
        case(
            "paid without a known purchase date, lapsed",
            paid(None, d(2026, 9, 30)),
            d(2027, 1, 1),
            Standing::ModuleExpired { expired_on: d(2026, 10, 1) },
        ),
        case(
            "paid beyond the first year, during the first year",
            paid(Some(d(2025, 3, 15)), d(2027, 3, 14)),
            d(2025, 6, 1),
            module(d(2027, 3, 14), false),
        ),
        case(
            "paid_until inside the first year: still first year",
            paid(Some(d(2025, 3, 15)), d(2026, 1, 1)),
            d(2025, 6, 1),
            module(d(2026, 3, 14), true),
        ),
        case(
            "paid_until equal to the first year's last day: still first year",
            paid(Some(d(2025, 3, 15)), d(2026, 3, 14)),
            d(2026, 3, 14),
            module(d(2026, 3, 14), true),
        ),
        case(
            "paid_until one day past the first year",
            paid(Some(d(2025, 3, 15)), d(2026, 3, 15)),
            d(2026, 3, 14),
            module(d(2026, 3, 15), false),
        ),
        case(
            "paid with a purchase in the future",
            paid(Some(d(2030, 1, 1)), d(2026, 9, 30)),
            d(2026, 9, 30),
            module(d(2026, 9, 30), false),
        ),
        case(
            "expired: the later of first year and paid counts",
            paid(Some(d(2020, 1, 10)), d(2023, 5, 31)),
            d(2024, 1, 1),
            Standing::ModuleExpired { expired_on: d(2023, 6, 1) },
        ),
        case(
            "expired: paid ended before the first year did",
            paid(Some(d(2025, 3, 15)), d(2025, 12, 31)),
            d(2026, 6, 1),
            Standing::ModuleExpired { expired_on: d(2026, 3, 15) },
        ),
        // Trial: 2026-01-15 ..= 2026-04-14.
        case("trial first day", trial(d(2026, 1, 15)), d(2026, 1, 15), Standing::Trial { last_day: d(2026, 4, 14) }),
        case("trial last day", trial(d(2026, 1, 15)), d(2026, 4, 14), Standing::Trial { last_day: d(2026, 4, 14) }),
        case(
            "day after the trial",
            trial(d(2026, 1, 15)),
            d(2026, 4, 15),
            Standing::TrialEnded { ended_on: d(2026, 4, 15) },
        ),
        case(
            "Nov 30 trial: last day Feb 27 (non-leap)",
            trial(d(2025, 11, 30)),
            d(2026, 2, 27),
            Standing::Trial { last_day: d(2026, 2, 27) },
        ),
        case(
            "Nov 30 trial: ended on Feb 28 (non-leap)",
            trial(d(2025, 11, 30)),
            d(2026, 2, 28),
            Standing::TrialEnded { ended_on: d(2026, 2, 28) },
        ),
        case(
            "Nov 30 trial: last day Feb 28 (leap year)",
            trial(d(2023, 11, 30)),
            d(2024, 2, 28),
            Standing::Trial { last_day: d(2024, 2, 28) },
        ),
        case(
            "Nov 30 trial: ended on Feb 29 (leap year)",
            trial(d(2023, 11, 30)),
            d(2024, 2, 29),
            Standing::TrialEnded { ended_on: d(2024, 2, 29) },
        ),
        case(
            "Jan 31 trial: last day Apr 29",
            trial(d(2026, 1, 31)),
            d(2026, 4, 29),
            Standing::Trial { last_day: d(2026, 4, 29) },
        ),
        case(
            "Jan 31 trial: ended on Apr 30",
            trial(d(2026, 1, 31)),
            d(2026, 4, 30),
            Standing::TrialEnded { ended_on: d(2026, 4, 30) },
        ),
        case(
            "trial starting tomorrow does not count yet",
            trial(d(2026, 5, 1)),
            d(2026, 4, 30),
            Standing::NoSupportModule,
        ),
        case("trial starting today", trial(d(2026, 5, 1)), d(2026, 5, 1), Standing::Trial { last_day: d(2026, 7, 31) }),
        // IKS Lite is always category 4.
        lite("Lite with nothing", NONE, d(2026, 1, 1)),
        lite("Lite with an active module date", paid(Some(d(2025, 6, 1)), d(2027, 1, 1)), d(2026, 1, 1)),
        lite("Lite with a running trial", trial(d(2025, 12, 1)), d(2026, 1, 1)),
        lite("Lite partner", OrgFacts { partner: true, ..NONE }, d(2026, 1, 1)),
        // Partners.
        case("partner", OrgFacts { partner: true, ..NONE }, d(2026, 1, 1), Standing::Partner),
        case(
            "partner with an active module",
            OrgFacts { partner: true, ..paid(None, d(2026, 12, 31)) },
            d(2026, 1, 1),
            module(d(2026, 12, 31), false),
        ),
        case(
            "partner with an expired module",
            OrgFacts { partner: true, ..paid(None, d(2025, 12, 31)) },
            d(2026, 1, 1),
            Standing::Partner,
        ),
        case(
            "partner with a running trial",
            OrgFacts { partner: true, ..trial(d(2025, 12, 1)) },
            d(2026, 1, 1),
            Standing::Trial { last_day: d(2026, 2, 28) },
        ),
        // Combinations.
        case(
            "expired module and past trial",
            OrgFacts { trial_started_on: Some(d(2024, 1, 1)), ..paid(Some(d(2024, 6, 1)), d(2025, 12, 31)) },
            d(2026, 1, 1),
            Standing::ModuleExpired { expired_on: d(2026, 1, 1) },
        ),
        case(
            "expired module and running trial",
            OrgFacts { trial_started_on: Some(d(2025, 12, 1)), ..paid(None, d(2025, 11, 30)) },
            d(2026, 1, 1),
            Standing::Trial { last_day: d(2026, 2, 28) },
        ),
        case(
            "active module and running trial: module wins",
            OrgFacts { trial_started_on: Some(d(2025, 12, 1)), ..bought(d(2025, 12, 15)) },
            d(2026, 1, 1),
            module(d(2026, 12, 14), true),
        ),
        case("all None", NONE, d(2026, 1, 1), Standing::NoSupportModule),
        // Ends beyond chrono's range never end.
        case(
            "purchase on the last representable date",
            bought(NaiveDate::MAX),
            NaiveDate::MAX,
            module(NaiveDate::MAX, true),
        ),
        case(
            "trial on the last representable date",
            trial(NaiveDate::MAX),
            NaiveDate::MAX,
            Standing::Trial { last_day: NaiveDate::MAX },
        ),
        case(
            "paid until the first representable date, today after it",
            paid(None, NaiveDate::MIN),
            d(2026, 1, 1),
            Standing::ModuleExpired { expired_on: NaiveDate::MIN.succ_opt().unwrap() },
        ),
    ];

    #[test]
    fn standing_table() {
        for c in STANDING_CASES {
            let got = standing(&c.facts, c.free_edition, c.today);
            assert_eq!(got, c.expected, "{}", c.what);
        }
    }

    #[test]
    fn standing_category_table() {
        const CASES: &[(&str, Standing, Category)] = &[
            ("module", module(d(2026, 1, 1), true), Category::One),
            ("paid module", module(d(2026, 1, 1), false), Category::One),
            ("trial", Standing::Trial { last_day: d(2026, 1, 1) }, Category::Two),
            ("partner", Standing::Partner, Category::Two),
            ("module expired", Standing::ModuleExpired { expired_on: d(2026, 1, 1) }, Category::Three),
            ("trial ended", Standing::TrialEnded { ended_on: d(2026, 1, 1) }, Category::Three),
            ("no module", Standing::NoSupportModule, Category::Three),
            ("free edition", Standing::FreeEdition, Category::Four),
        ];
        for (what, s, cat) in CASES {
            assert_eq!(s.category(), *cat, "{what}");
        }
    }

    #[test]
    fn remote_ssh_table() {
        const CASES: &[(&str, Standing, Result<(), NoRemoteSsh>)] = &[
            ("module", module(d(2026, 1, 1), true), Ok(())),
            ("paid module", module(d(2026, 1, 1), false), Ok(())),
            ("trial", Standing::Trial { last_day: d(2026, 1, 1) }, Ok(())),
            ("partner", Standing::Partner, Ok(())),
            (
                "module expired",
                Standing::ModuleExpired { expired_on: d(2026, 10, 1) },
                Err(NoRemoteSsh::ModuleExpired { expired_on: d(2026, 10, 1) }),
            ),
            (
                "trial ended",
                Standing::TrialEnded { ended_on: d(2026, 4, 15) },
                Err(NoRemoteSsh::TrialEnded { ended_on: d(2026, 4, 15) }),
            ),
            ("no module", Standing::NoSupportModule, Err(NoRemoteSsh::NoSupportModule)),
            ("free edition", Standing::FreeEdition, Err(NoRemoteSsh::FreeEdition)),
        ];
        for (what, s, expected) in CASES {
            let got = remote_ssh(s);
            assert_eq!(&got, expected, "{what}");
            assert_eq!(got.is_ok(), s.category().allows_remote_ssh(), "{what}");
            if let Err(e) = got {
                assert_eq!(e.category(), s.category(), "{what}");
            }
        }
    }

    #[test]
    fn no_remote_ssh_messages_table() {
        const CASES: &[(NoRemoteSsh, &str, &str)] = &[
            (
                NoRemoteSsh::ModuleExpired { expired_on: d(2026, 10, 1) },
                "the support module expired on 2026-10-01 (category 3: no remote SSH)",
                "the support module of ООО Ромашка expired on 2026-10-01 (category 3: no remote SSH)",
            ),
            (
                NoRemoteSsh::TrialEnded { ended_on: d(2026, 4, 15) },
                "the trial ended on 2026-04-15 (category 3: no remote SSH)",
                "the trial of ООО Ромашка ended on 2026-04-15 (category 3: no remote SSH)",
            ),
            (
                NoRemoteSsh::NoSupportModule,
                "no support module (category 3: no remote SSH)",
                "ООО Ромашка has no support module (category 3: no remote SSH)",
            ),
            (
                NoRemoteSsh::FreeEdition,
                "IKS Lite is the free edition (category 4: no remote SSH)",
                "ООО Ромашка uses IKS Lite, the free edition (category 4: no remote SSH)",
            ),
        ];
        for (e, display, described) in CASES {
            assert_eq!(e.to_string(), *display, "{e:?}");
            assert_eq!(e.describe_for("ООО Ромашка"), *described, "{e:?}");
        }
    }

    #[test]
    fn standing_display_table() {
        const CASES: &[(Standing, &str)] = &[
            (module(d(2027, 3, 14), true), "support module until 2027-03-14 (included first year)"),
            (module(d(2027, 3, 14), false), "support module until 2027-03-14"),
            (Standing::Trial { last_day: d(2026, 4, 14) }, "trial until 2026-04-14"),
            (Standing::Partner, "partner"),
            (Standing::ModuleExpired { expired_on: d(2026, 10, 1) }, "support module expired on 2026-10-01"),
            (Standing::TrialEnded { ended_on: d(2026, 4, 15) }, "trial ended on 2026-04-15"),
            (Standing::NoSupportModule, "no support module"),
            (Standing::FreeEdition, "IKS Lite (free edition)"),
        ];
        for (s, text) in CASES {
            assert_eq!(s.to_string(), *text, "{s:?}");
        }
    }

    #[test]
    fn category_try_from_table() {
        const CASES: &[(&str, i64, Result<Category, InvalidCategory>)] = &[
            ("1", 1, Ok(Category::One)),
            ("2", 2, Ok(Category::Two)),
            ("3", 3, Ok(Category::Three)),
            ("4", 4, Ok(Category::Four)),
            ("zero", 0, Err(InvalidCategory(0))),
            ("five", 5, Err(InvalidCategory(5))),
            ("negative", -1, Err(InvalidCategory(-1))),
            ("huge", i64::MAX, Err(InvalidCategory(i64::MAX))),
        ];
        for (what, n, expected) in CASES {
            assert_eq!(Category::try_from(*n), *expected, "{what}");
            let via_serde = Category::deserialize(IntoDeserializer::<DeError>::into_deserializer(*n));
            assert_eq!(via_serde.is_ok(), expected.is_ok(), "serde {what}");
        }
        assert_eq!(InvalidCategory(7).to_string(), "category must be 1, 2, 3 or 4, got 7");
    }

    #[test]
    fn category_properties_table() {
        const CASES: &[(Category, u8, bool, &str)] = &[
            (Category::One, 1, true, "category 1"),
            (Category::Two, 2, true, "category 2"),
            (Category::Three, 3, false, "category 3"),
            (Category::Four, 4, false, "category 4"),
        ];
        for (c, n, ssh, text) in CASES {
            assert_eq!(c.number(), *n, "{c:?} number");
            assert_eq!(u8::from(*c), *n, "{c:?} into u8");
            assert_eq!(c.allows_remote_ssh(), *ssh, "{c:?} remote SSH");
            assert_eq!(c.to_string(), *text, "{c:?} display");
            assert_eq!(Category::try_from(i64::from(*n)), Ok(*c), "{c:?} round trip");
        }
        assert!(Category::One < Category::Four, "1 sorts first");
        assert_eq!(Category::ALL.len(), 4);
    }

    type SpanFn = fn(NaiveDate) -> NaiveDate;

    #[test]
    fn span_helpers_table() {
        const CASES: &[(&str, SpanFn, NaiveDate, NaiveDate)] = &[
            ("first year", first_year_last_day, d(2025, 3, 15), d(2026, 3, 14)),
            ("first year Feb 29", first_year_last_day, d(2024, 2, 29), d(2025, 2, 27)),
            ("first year Mar 1", first_year_last_day, d(2024, 3, 1), d(2025, 2, 28)),
            ("trial", trial_last_day, d(2026, 1, 15), d(2026, 4, 14)),
            ("trial Nov 30", trial_last_day, d(2025, 11, 30), d(2026, 2, 27)),
            ("trial Jan 31", trial_last_day, d(2026, 1, 31), d(2026, 4, 29)),
            ("trial Mar 1", trial_last_day, d(2026, 3, 1), d(2026, 5, 31)),
            ("trial at the end of time", trial_last_day, NaiveDate::MAX, NaiveDate::MAX),
        ];
        for (what, f, start, last) in CASES {
            assert_eq!(f(*start), *last, "{what}");
        }
    }
}
