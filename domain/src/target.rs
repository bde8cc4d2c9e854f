//! What an engineer types as the SSH user name: `T-1042` (the ticket's only box) or
//! `T-1042+main-gw`. Parsed from untrusted input, so it is strict and never panics.

use std::fmt;

use crate::ids::TicketId;

/// The ticket and, optionally, the box an engineer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ticket: TicketId,
    pub box_name: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.box_name {
            Some(b) => write!(f, "{}+{b}", self.ticket),
            None => write!(f, "{}", self.ticket),
        }
    }
}

/// Why a user name names no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the user name must be T-<ticket> or T-<ticket>+<box> (e.g. T-1042+main-gw), got '{0}'")]
pub struct BadTarget(String);

impl Target {
    pub fn parse(user: &str) -> Result<Self, BadTarget> {
        let bad = || BadTarget(user.chars().take(64).flat_map(char::escape_default).collect());
        let (ticket, box_name) = match user.split_once('+') {
            Some((t, b)) => (t, Some(b)),
            None => (user, None),
        };
        let digits = ticket.strip_prefix("T-").or_else(|| ticket.strip_prefix("t-")).ok_or_else(bad)?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id: i64 = digits.parse().map_err(|_| bad())?;
        if id == 0 {
            return Err(bad());
        }
        let box_name = match box_name {
            None => None,
            Some(b)
                if !b.is_empty()
                    && b.len() <= 63
                    && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c)) =>
            {
                Some(b.to_string())
            }
            Some(_) => return Err(bad()),
        };
        Ok(Self { ticket: TicketId(id), box_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        type Case<'a> = (&'a str, Option<(i64, Option<&'a str>)>);
        let cases: &[Case] = &[
            ("T-1042", Some((1042, None))),
            ("t-1042", Some((1042, None))),
            ("T-1042+main-gw", Some((1042, Some("main-gw")))),
            ("T-7+gw.1_a", Some((7, Some("gw.1_a")))),
            ("T-", None),
            ("T-0", None),
            ("1042", None),
            ("T1042", None),
            ("T-10a2", None),
            ("T-1042+", None),
            ("T-1042+Main", None),
            ("T-1042+a+b", None),
            ("T-99999999999999999999", None),
            ("root", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = Target::parse(input).ok().map(|t| (t.ticket.get(), t.box_name));
            let want = want.map(|(t, b)| (t, b.map(str::to_string)));
            assert_eq!(got, want, "{input:?}");
        }
        let err = Target::parse("root\x1b[2J").unwrap_err().to_string();
        assert!(err.contains("got 'root\\u{1b}[2J'"), "control characters are escaped: {err}");
        assert_eq!(Target::parse("T-5+gw").unwrap().to_string(), "T-5+gw");
    }
}
