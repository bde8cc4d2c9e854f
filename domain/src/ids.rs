//! Typed IDs, so a ticket ID can never be passed where a box ID is expected.
//!
//! Every row's key is a database `BIGINT`; the newtype carries what it refers to and how
//! people write it (`T-1042` for tickets, `S-7` for sessions, plain numbers elsewhere).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a written ID could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a valid {what} (expected {expected})")]
pub struct IdParseError {
    input: String,
    what: &'static str,
    expected: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The plain number, as stored.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        /// Accepts the display form (`T-1042`) and the bare number (`1042`).
        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                let digits = t
                    .strip_prefix($prefix)
                    .or_else(|| t.strip_prefix(&$prefix.to_lowercase()))
                    .unwrap_or(t);
                match digits.parse::<i64>() {
                    Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(n)),
                    _ => Err(IdParseError {
                        input: s.to_string(),
                        what: $what,
                        expected: if $prefix.is_empty() { "a positive number" } else { concat!("like ", $prefix, "1042") },
                    }),
                }
            }
        }
    };
}

id_type!(
    /// An organisation (a customer, identified to people by its INN).
    OrgId, "organisation ID", ""
);
id_type!(
    /// A customer's IKS box.
    BoxId, "box ID", ""
);
id_type!(
    /// An operator, customer user, auditor or admin.
    PersonId, "person ID", ""
);
id_type!(
    /// A registered SSH public key.
    KeyId, "key ID", ""
);
id_type!(
    /// One enrolment of a box's agent.
    AgentId, "agent ID", "A-"
);
id_type!(
    /// A one-time enrolment token (its record; the token itself is never stored).
    AgentTokenId, "enrolment token ID", ""
);
id_type!(
    /// A support ticket; customers quote it as `T-1042`.
    TicketId, "ticket number", "T-"
);
id_type!(
    /// An access request and, once approved, the grant.
    GrantId, "grant ID", "G-"
);
id_type!(
    /// One SSH session through the gateway.
    SessionId, "session ID", "S-"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_their_display_and_bare_numbers() {
        let cases: &[(&str, Option<i64>)] = &[
            ("T-1042", Some(1042)),
            ("t-1042", Some(1042)),
            ("1042", Some(1042)),
            (" T-7 ", Some(7)),
            ("T-", None),
            ("T-0", None),
            ("T--5", None),
            ("T-+5", None),
            ("T-12a", None),
            ("S-12", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<TicketId>().ok().map(TicketId::get);
            assert_eq!(got, *want, "parsing {input:?}");
        }
        assert_eq!(TicketId(1042).to_string(), "T-1042");
        assert_eq!(BoxId(3).to_string(), "3");
        assert_eq!("S-9".parse::<SessionId>().unwrap(), SessionId(9));
        let err = "x".parse::<TicketId>().unwrap_err().to_string();
        assert_eq!(err, "'x' is not a valid ticket number (expected like T-1042)");
    }
}
