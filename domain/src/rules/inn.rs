//! Russian taxpayer number (ИНН, INN) of a customer organisation.
//!
//! An [`Inn`] can only be built through [`Inn::parse`], so holding one means
//! the number has the right length and valid check digits; serde goes
//! through the same parser, so a database row or config file cannot smuggle
//! in a bad one.
//!
//! * 10 digits — an organisation: one check digit (10th), weights
//!   `2,4,10,3,5,9,4,6,8` over digits 1–9.
//! * 12 digits — an individual entrepreneur: two check digits, the 11th with
//!   weights `7,2,4,10,3,5,9,4,6,8` over digits 1–10, the 12th with
//!   `3,7,2,4,10,3,5,9,4,6,8` over digits 1–11.
//!
//! Each check digit is `(weighted sum mod 11) mod 10`. Surrounding whitespace
//! is trimmed (copy-paste from documents); whitespace inside is an error
//! rather than silently removed, since it more often marks two numbers run
//! together than a formatted one. Errors name the first problem found, in
//! the order: empty, non-digit, length, all zeros, check digits; positions
//! are 1-based, counted in characters of the trimmed input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const WEIGHTS_10: [u8; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_11: [u8; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_12: [u8; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

/// A validated INN (10 or 12 digits), stored as its digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Inn(String);

/// Who an INN belongs to, by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InnKind {
    /// 10 digits.
    Organisation,
    /// 12 digits.
    Entrepreneur,
}

impl fmt::Display for InnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InnKind::Organisation => "organisation",
            InnKind::Entrepreneur => "individual entrepreneur",
        })
    }
}

/// Why a string is not a valid INN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InnError {
    #[error("INN is empty")]
    Empty,
    #[error("INN must have 10 digits (organisation) or 12 (individual entrepreneur), got {len}")]
    WrongLength { len: usize },
    #[error("INN has a non-digit '{}' at position {position}", found.escape_debug())]
    NotDigits { position: usize, found: char },
    #[error("INN check digit {position} is {found}, expected {expected}")]
    CheckDigit {
        /// 1-based position of the check digit (10, 11 or 12).
        position: usize,
        expected: u8,
        found: u8,
    },
    #[error("INN cannot be all zeros")]
    AllZeros,
}

fn check_digit(digits: &[u8], weights: &[u8]) -> u8 {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| u32::from(*d) * u32::from(*w)).sum();
    // Both reductions keep the value below 10, so the cast cannot truncate.
    (sum % 11 % 10) as u8
}

/// Checks the digit at 1-based `position` against the digits before it.
fn verify(digits: &[u8], position: usize, weights: &[u8]) -> Result<(), InnError> {
    let expected = check_digit(&digits[..position - 1], weights);
    let found = digits[position - 1];
    if expected == found { Ok(()) } else { Err(InnError::CheckDigit { position, expected, found }) }
}

impl Inn {
    /// Parses and validates an INN; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Inn, InnError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InnError::Empty);
        }
        let mut digits = Vec::with_capacity(12);
        for (i, c) in s.chars().enumerate() {
            // Only ASCII digits: Unicode digits (e.g. Arabic-Indic) are not an INN.
            if !c.is_ascii_digit() {
                return Err(InnError::NotDigits { position: i + 1, found: c });
            }
            // An ASCII digit is a single byte in b'0'..=b'9'.
            digits.push(c as u8 - b'0');
        }
        match digits.len() {
            10 | 12 => {}
            len => return Err(InnError::WrongLength { len }),
        }
        if digits.iter().all(|d| *d == 0) {
            return Err(InnError::AllZeros);
        }
        if digits.len() == 10 {
            verify(&digits, 10, &WEIGHTS_10)?;
        } else {
            verify(&digits, 11, &WEIGHTS_11)?;
            verify(&digits, 12, &WEIGHTS_12)?;
        }
        Ok(Inn(s.to_owned()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Organisation (10 digits) or individual entrepreneur (12 digits).
    pub fn kind(&self) -> InnKind {
        if self.0.len() == 10 { InnKind::Organisation } else { InnKind::Entrepreneur }
    }
}

impl FromStr for Inn {
    type Err = InnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Inn::parse(s)
    }
}

impl TryFrom<String> for Inn {
    type Error = InnError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Inn::parse(&s)
    }
}

impl From<Inn> for String {
    fn from(inn: Inn) -> String {
        inn.0
    }
}

impl fmt::Display for Inn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as DeError;

    const VALID: &[(&str, &str, InnKind)] = &[
        ("Sberbank", "7707083893", InnKind::Organisation),
        ("Yandex", "7736207543", InnKind::Organisation),
        ("sum mod 11 = 10 gives 0", "3449786900", InnKind::Organisation),
        ("entrepreneur", "500100732259", InnKind::Entrepreneur),
        ("entrepreneur, both sums mod 11 = 10", "447604240100", InnKind::Entrepreneur),
    ];

    /// Independent recomputation of the check digits, written out longhand,
    /// so the examples above are verified rather than trusted.
    #[test]
    fn valid_examples_recomputed() {
        fn weighted(ds: &[u32], ws: &[u32]) -> u32 {
            let mut sum = 0;
            for i in 0..ws.len() {
                sum += ds[i] * ws[i];
            }
            sum % 11 % 10
        }
        for (what, s, _) in VALID {
            let ds: Vec<u32> = s.chars().map(|c| c.to_digit(10).unwrap()).collect();
            if ds.len() == 10 {
                assert_eq!(weighted(&ds, &[2, 4, 10, 3, 5, 9, 4, 6, 8]), ds[9], "{what}");
            } else {
                assert_eq!(weighted(&ds, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]), ds[10], "{what} d11");
                assert_eq!(weighted(&ds, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]), ds[11], "{what} d12");
            }
        }
    }

    #[test]
    fn valid_table() {
        for (what, s, kind) in VALID {
            let inn = Inn::parse(s).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(inn.as_str(), *s, "{what}");
            assert_eq!(inn.to_string(), *s, "{what}");
            assert_eq!(inn.kind(), *kind, "{what}");
            assert_eq!(s.parse::<Inn>().as_ref(), Ok(&inn), "{what} FromStr");
        }
    }

    #[test]
    fn parse_table() {
        use InnError::*;
        const CASES: &[(&str, &str, Result<&str, InnError>)] = &[
            ("valid 10", "7707083893", Ok("7707083893")),
            ("valid 12", "500100732259", Ok("500100732259")),
            ("surrounding whitespace trimmed", " \t7707083893\n ", Ok("7707083893")),
            ("wrong 10th digit", "7707083894", Err(CheckDigit { position: 10, expected: 3, found: 4 })),
            ("wrong 11th digit", "500100732249", Err(CheckDigit { position: 11, expected: 5, found: 4 })),
            ("wrong 12th digit", "500100732258", Err(CheckDigit { position: 12, expected: 9, found: 8 })),
            (
                "both 12-digit checks wrong: first reported",
                "500100732200",
                Err(CheckDigit { position: 11, expected: 5, found: 0 }),
            ),
            ("empty", "", Err(Empty)),
            ("only whitespace", "   ", Err(Empty)),
            ("9 digits", "770708389", Err(WrongLength { len: 9 })),
            ("11 digits", "77070838930", Err(WrongLength { len: 11 })),
            ("13 digits", "5001007322590", Err(WrongLength { len: 13 })),
            ("1 digit", "7", Err(WrongLength { len: 1 })),
            ("letter", "77x7083893", Err(NotDigits { position: 3, found: 'x' })),
            ("letter first", "a707083893", Err(NotDigits { position: 1, found: 'a' })),
            ("space inside", "7707 083893", Err(NotDigits { position: 5, found: ' ' })),
            ("dash inside", "770-708-3893", Err(NotDigits { position: 4, found: '-' })),
            ("Cyrillic letter counted as one position", "77О7083893", Err(NotDigits { position: 3, found: 'О' })),
            ("non-ASCII digit", "77٠7083893", Err(NotDigits { position: 3, found: '٠' })),
            ("sign", "+7707083893", Err(NotDigits { position: 1, found: '+' })),
            ("all zeros 10", "0000000000", Err(AllZeros)),
            ("all zeros 12", "000000000000", Err(AllZeros)),
        ];
        for (what, input, expected) in CASES {
            let got = Inn::parse(input);
            match expected {
                Ok(s) => assert_eq!(got.map(|i| i.0), Ok(s.to_string()), "{what}"),
                Err(e) => assert_eq!(got.as_ref(), Err(e), "{what}"),
            }
        }
    }

    /// Every wrong value of every check digit of every valid example is caught,
    /// and the error names the right position and expected digit.
    #[test]
    fn every_wrong_check_digit_table() {
        for (what, s, _) in VALID {
            let bytes = s.as_bytes();
            let positions: &[usize] = if s.len() == 10 { &[10] } else { &[11, 12] };
            for &pos in positions {
                let right = bytes[pos - 1] - b'0';
                for wrong in (0..10u8).filter(|w| *w != right) {
                    let mut changed = bytes.to_vec();
                    changed[pos - 1] = b'0' + wrong;
                    let changed = String::from_utf8(changed).unwrap();
                    let err = Inn::parse(&changed).unwrap_err();
                    // A wrong 11th digit also changes the 12th check, but the 11th is reported first.
                    assert_eq!(
                        err,
                        InnError::CheckDigit { position: pos, expected: right, found: wrong },
                        "{what}: {changed}"
                    );
                }
            }
        }
    }

    #[test]
    fn error_messages_table() {
        let cases: &[(InnError, &str)] = &[
            (InnError::Empty, "INN is empty"),
            (
                InnError::WrongLength { len: 9 },
                "INN must have 10 digits (organisation) or 12 (individual entrepreneur), got 9",
            ),
            (InnError::NotDigits { position: 3, found: 'x' }, "INN has a non-digit 'x' at position 3"),
            (InnError::NotDigits { position: 2, found: '\t' }, "INN has a non-digit '\\t' at position 2"),
            (InnError::CheckDigit { position: 10, expected: 3, found: 4 }, "INN check digit 10 is 4, expected 3"),
            (InnError::AllZeros, "INN cannot be all zeros"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), *text, "{e:?}");
        }
    }

    #[test]
    fn serde_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("valid", "7707083893", true),
            ("trimmed", " 7707083893 ", true),
            ("bad check digit", "7707083894", false),
            ("empty", "", false),
        ];
        for (what, input, ok) in cases {
            let got = Inn::deserialize(IntoDeserializer::<DeError>::into_deserializer(input.to_string()));
            assert_eq!(got.is_ok(), *ok, "{what}: {got:?}");
        }
        let err =
            Inn::deserialize(IntoDeserializer::<DeError>::into_deserializer("7707083894".to_string())).unwrap_err();
        assert_eq!(err.to_string(), "INN check digit 10 is 4, expected 3");
        let inn = Inn::parse("7707083893").unwrap();
        assert_eq!(String::from(inn), "7707083893");
    }

    #[test]
    fn kind_display_table() {
        let cases = [(InnKind::Organisation, "organisation"), (InnKind::Entrepreneur, "individual entrepreneur")];
        for (k, text) in cases {
            assert_eq!(k.to_string(), text, "{k:?}");
        }
    }
}
