//! Supported products and versions.
//!
//! The regulations list which products, in which major versions, are
//! supported; the list changes with releases, so it is data (loaded from the
//! configuration) with the regulations' current list as [`Default`].
//!
//! A catalog is validated whenever it is built: by [`ProductCatalog::new`]
//! and also by deserialization (serde goes through `TryFrom<Vec<ProductSpec>>`),
//! so a config file cannot yield an unchecked catalog. The wire form is a
//! plain list of products, as `#[serde(transparent)]` would give.
//!
//! A reported version such as `7`, `7.2` or `7.2.1-rc1` is supported when its
//! major component — the digits before the first `.`, `-` or `+` — equals one
//! of the listed versions exactly. Inputs echoed in error messages are
//! escaped, because they come from users and end up on terminals.

use serde::{Deserialize, Serialize};

/// One product and its supported major versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// Stable identifier, lowercase `a-z`, `0-9` and `-`, e.g. "iks-standard".
    pub id: String,
    /// Name shown to people, e.g. "IKS Standard".
    pub name: String,
    /// Supported major versions, digits only, e.g. `["6", "7"]`.
    pub versions: Vec<String>,
    /// The free edition (IKS Lite): its users are always category 4.
    #[serde(default)]
    pub free_edition: bool,
}

impl ProductSpec {
    fn new(id: &str, name: &str, versions: &[&str], free_edition: bool) -> Self {
        ProductSpec {
            id: id.to_owned(),
            name: name.to_owned(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            free_edition,
        }
    }
}

/// The validated list of supported products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ProductSpec>", into = "Vec<ProductSpec>")]
pub struct ProductCatalog {
    products: Vec<ProductSpec>,
}

/// A product catalog that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the product catalog is empty: list at least one product")]
    Empty,
    #[error(
        "product id '{}' is invalid: use only lowercase letters a-z, digits and '-'",
        id.escape_debug()
    )]
    BadId { id: String },
    #[error("product id '{id}' is listed more than once")]
    DuplicateId { id: String },
    #[error("product '{id}' has an empty name")]
    EmptyName { id: String },
    #[error("product '{id}' lists no supported versions")]
    NoVersions { id: String },
    #[error(
        "product '{id}' has an invalid version '{}': list major versions as digits only, e.g. \"7\"",
        version.escape_debug()
    )]
    BadVersion { id: String, version: String },
}

/// Why a product/version pair is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionRefusal {
    #[error("unknown product '{}' (known: {})", product.escape_debug(), known.join(", "))]
    UnknownProduct { product: String, known: Vec<String> },
    #[error(
        "'{}' is not a version number (expected e.g. 7, 7.2 or 7.2.1)",
        version.escape_debug()
    )]
    MalformedVersion { version: String },
    #[error(
        "{product} {} is not a supported version (supported: {})",
        version.escape_debug(),
        supported.join(", ")
    )]
    UnsupportedVersion {
        /// The product's name, e.g. "IKS Standard".
        product: String,
        version: String,
        supported: Vec<String>,
    },
}

impl Default for ProductCatalog {
    /// The regulations' list of supported products.
    fn default() -> Self {
        ProductCatalog {
            products: vec![
                ProductSpec::new("iks-standard", "IKS Standard", &["6", "7"], false),
                ProductSpec::new("iks-fstec", "IKS FSTEC", &["5"], false),
                ProductSpec::new("cf-iks-standard", "Content filter IKS Standard", &["6", "7"], false),
                ProductSpec::new("cf-iks-fstec", "Content filter IKS FSTEC", &["5"], false),
                ProductSpec::new("iks-lite", "IKS Lite", &["6", "7"], true),
            ],
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_major(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// The major component of a reported version, or None when it is malformed.
fn major_version(version: &str) -> Option<&str> {
    let v = version.trim();
    // Printable ASCII only: anything else is garbage, not a version.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if v.split('.').any(str::is_empty) {
        return None;
    }
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    match v.as_bytes().get(digits) {
        None | Some(b'.' | b'-' | b'+') => Some(&v[..digits]),
        Some(_) => None,
    }
}

impl ProductCatalog {
    /// A validated catalog.
    pub fn new(products: Vec<ProductSpec>) -> Result<Self, CatalogError> {
        let catalog = ProductCatalog { products };
        catalog.validate()?;
        Ok(catalog)
    }

    /// Checks the catalog; reports the first problem in list order.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.products.is_empty() {
            return Err(CatalogError::Empty);
        }
        for (i, p) in self.products.iter().enumerate() {
            if !valid_id(&p.id) {
                return Err(CatalogError::BadId { id: p.id.clone() });
            }
            if self.products[..i].iter().any(|q| q.id == p.id) {
                return Err(CatalogError::DuplicateId { id: p.id.clone() });
            }
            if p.name.trim().is_empty() {
                return Err(CatalogError::EmptyName { id: p.id.clone() });
            }
            if p.versions.is_empty() {
                return Err(CatalogError::NoVersions { id: p.id.clone() });
            }
            if let Some(bad) = p.versions.iter().find(|v| !valid_major(v)) {
                return Err(CatalogError::BadVersion { id: p.id.clone(), version: bad.clone() });
            }
        }
        Ok(())
    }

    /// The products, in configuration order.
    pub fn products(&self) -> &[ProductSpec] {
        &self.products
    }

    /// The product with this id.
    pub fn get(&self, id: &str) -> Option<&ProductSpec> {
        self.products.iter().find(|p| p.id == id)
    }

    /// The product ids, in configuration order.
    pub fn ids(&self) -> Vec<String> {
        self.products.iter().map(|p| p.id.clone()).collect()
    }

    /// Checks a product and a reported version (e.g. "7", "7.2", "7.2.1-rc1"):
    /// the version is supported when its major component (the digits before
    /// the first '.', or a '-'/'+' suffix as in "7-rc1") equals one of the
    /// spec's versions exactly. Surrounding whitespace of the version is ignored.
    pub fn check(&self, product_id: &str, version: &str) -> Result<&ProductSpec, VersionRefusal> {
        let spec = self
            .get(product_id)
            .ok_or_else(|| VersionRefusal::UnknownProduct { product: product_id.to_owned(), known: self.ids() })?;
        let major =
            major_version(version).ok_or_else(|| VersionRefusal::MalformedVersion { version: version.to_owned() })?;
        if spec.versions.iter().any(|v| v == major) {
            Ok(spec)
        } else {
            Err(VersionRefusal::UnsupportedVersion {
                product: spec.name.clone(),
                version: version.trim().to_owned(),
                supported: spec.versions.clone(),
            })
        }
    }
}

impl TryFrom<Vec<ProductSpec>> for ProductCatalog {
    type Error = CatalogError;

    fn try_from(products: Vec<ProductSpec>) -> Result<Self, Self::Error> {
        ProductCatalog::new(products)
    }
}

impl From<ProductCatalog> for Vec<ProductSpec> {
    fn from(catalog: ProductCatalog) -> Self {
        catalog.products
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, versions: &[&str]) -> ProductSpec {
        ProductSpec::new(id, "Some product", versions, false)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn default_catalog_is_the_regulations_list() {
        let c = ProductCatalog::default();
        assert_eq!(c.validate(), Ok(()));
        let expected: &[(&str, &str, &[&str], bool)] = &[
            ("iks-standard", "IKS Standard", &["6", "7"], false),
            ("iks-fstec", "IKS FSTEC", &["5"], false),
            ("cf-iks-standard", "Content filter IKS Standard", &["6", "7"], false),
            ("cf-iks-fstec", "Content filter IKS FSTEC", &["5"], false),
            ("iks-lite", "IKS Lite", &["6", "7"], true),
        ];
        assert_eq!(c.products().len(), expected.len());
        for (p, (id, name, versions, free)) in c.products().iter().zip(expected) {
            assert_eq!(p.id, *id, "{id}");
            assert_eq!(p.name, *name, "{id}");
            assert_eq!(p.versions, strings(versions), "{id}");
            assert_eq!(p.free_edition, *free, "{id}");
            assert_eq!(c.get(id), Some(p), "{id} get");
        }
        assert_eq!(c.get("iks"), None);
    }

    #[test]
    fn check_table() {
        const CASES: &[(&str, &str, &str, Result<&str, &str>)] = &[
            ("IKS Standard 6", "iks-standard", "6", Ok("iks-standard")),
            ("IKS Standard 7", "iks-standard", "7", Ok("iks-standard")),
            ("IKS FSTEC 5", "iks-fstec", "5", Ok("iks-fstec")),
            ("CF Standard 6", "cf-iks-standard", "6", Ok("cf-iks-standard")),
            ("CF Standard 7", "cf-iks-standard", "7", Ok("cf-iks-standard")),
            ("CF FSTEC 5", "cf-iks-fstec", "5", Ok("cf-iks-fstec")),
            ("Lite 6", "iks-lite", "6", Ok("iks-lite")),
            ("Lite 7", "iks-lite", "7", Ok("iks-lite")),
            ("minor", "iks-standard", "7.2", Ok("iks-standard")),
            ("patch", "iks-standard", "7.2.1", Ok("iks-standard")),
            ("pre-release", "iks-standard", "7.2.1-rc1", Ok("iks-standard")),
            ("major with pre-release", "iks-standard", "7-rc1", Ok("iks-standard")),
            ("build metadata", "iks-standard", "7+build5", Ok("iks-standard")),
            ("surrounding whitespace", "iks-fstec", " 5.0 ", Ok("iks-fstec")),
            ("old major", "iks-standard", "5", Err("IKS Standard 5 is not a supported version (supported: 6, 7)")),
            (
                "old major with minor",
                "iks-standard",
                "5.2.1",
                Err("IKS Standard 5.2.1 is not a supported version (supported: 6, 7)"),
            ),
            (
                "major is not a prefix match",
                "iks-standard",
                "70",
                Err("IKS Standard 70 is not a supported version (supported: 6, 7)"),
            ),
            (
                "leading zero is not the same major",
                "iks-standard",
                "07",
                Err("IKS Standard 07 is not a supported version (supported: 6, 7)"),
            ),
            ("FSTEC 6", "iks-fstec", "6", Err("IKS FSTEC 6 is not a supported version (supported: 5)")),
            (
                "unknown product",
                "iks-ultra",
                "7",
                Err(
                    "unknown product 'iks-ultra' (known: iks-standard, iks-fstec, cf-iks-standard, cf-iks-fstec, iks-lite)",
                ),
            ),
            (
                "product id is case sensitive",
                "IKS-Standard",
                "7",
                Err(
                    "unknown product 'IKS-Standard' (known: iks-standard, iks-fstec, cf-iks-standard, cf-iks-fstec, iks-lite)",
                ),
            ),
            (
                "unknown product wins over a bad version",
                "x",
                "",
                Err("unknown product 'x' (known: iks-standard, iks-fstec, cf-iks-standard, cf-iks-fstec, iks-lite)"),
            ),
            (
                "control characters are escaped",
                "x\u{1b}[2J",
                "7",
                Err(
                    "unknown product 'x\\u{1b}[2J' (known: iks-standard, iks-fstec, cf-iks-standard, cf-iks-fstec, iks-lite)",
                ),
            ),
            ("empty version", "iks-standard", "", Err("'' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            (
                "blank version",
                "iks-standard",
                "  ",
                Err("'  ' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
            ("letters", "iks-standard", "x", Err("'x' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            ("leading dot", "iks-standard", ".7", Err("'.7' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            ("trailing dot", "iks-standard", "7.", Err("'7.' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            (
                "double dot",
                "iks-standard",
                "7..2",
                Err("'7..2' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
            ("v prefix", "iks-standard", "v7", Err("'v7' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            (
                "letters after major",
                "iks-standard",
                "7x",
                Err("'7x' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
            (
                "space inside",
                "iks-standard",
                "7 2",
                Err("'7 2' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
            ("negative", "iks-standard", "-7", Err("'-7' is not a version number (expected e.g. 7, 7.2 or 7.2.1)")),
            (
                "non-ASCII digit",
                "iks-standard",
                "٧",
                Err("'٧' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
            (
                "newline escaped",
                "iks-standard",
                "7\n8",
                Err("'7\\n8' is not a version number (expected e.g. 7, 7.2 or 7.2.1)"),
            ),
        ];
        let c = ProductCatalog::default();
        for (what, product, version, expected) in CASES {
            let got = c.check(product, version);
            match expected {
                Ok(id) => assert_eq!(got.map(|p| p.id.as_str()), Ok(*id), "{what}"),
                Err(msg) => match got {
                    Ok(p) => panic!("{what}: accepted as {}", p.id),
                    Err(e) => assert_eq!(e.to_string(), *msg, "{what}"),
                },
            }
        }
    }

    #[test]
    fn refusal_fields() {
        let c = ProductCatalog::default();
        assert_eq!(
            c.check("iks-standard", "5"),
            Err(VersionRefusal::UnsupportedVersion {
                product: "IKS Standard".into(),
                version: "5".into(),
                supported: strings(&["6", "7"]),
            })
        );
        assert_eq!(
            c.check("nope", "7"),
            Err(VersionRefusal::UnknownProduct { product: "nope".into(), known: c.ids() })
        );
        assert_eq!(c.check("iks-standard", ".7"), Err(VersionRefusal::MalformedVersion { version: ".7".into() }));
    }

    #[test]
    fn validate_table() {
        let cases: Vec<(&str, Vec<ProductSpec>, Result<(), CatalogError>)> = vec![
            ("one product", vec![spec("a", &["1"])], Ok(())),
            ("default list", ProductCatalog::default().products, Ok(())),
            ("empty list", vec![], Err(CatalogError::Empty)),
            (
                "duplicate id",
                vec![spec("iks", &["1"]), spec("x", &["1"]), spec("iks", &["2"])],
                Err(CatalogError::DuplicateId { id: "iks".into() }),
            ),
            ("no versions", vec![spec("iks", &[])], Err(CatalogError::NoVersions { id: "iks".into() })),
            ("empty id", vec![spec("", &["1"])], Err(CatalogError::BadId { id: "".into() })),
            ("uppercase id", vec![spec("IKS", &["1"])], Err(CatalogError::BadId { id: "IKS".into() })),
            ("underscore in id", vec![spec("iks_std", &["1"])], Err(CatalogError::BadId { id: "iks_std".into() })),
            ("space in id", vec![spec("iks std", &["1"])], Err(CatalogError::BadId { id: "iks std".into() })),
            ("Cyrillic in id", vec![spec("икс", &["1"])], Err(CatalogError::BadId { id: "икс".into() })),
            (
                "empty name",
                vec![ProductSpec::new("iks", " ", &["1"], false)],
                Err(CatalogError::EmptyName { id: "iks".into() }),
            ),
            (
                "dotted version",
                vec![spec("iks", &["6", "7.2"])],
                Err(CatalogError::BadVersion { id: "iks".into(), version: "7.2".into() }),
            ),
            (
                "empty version",
                vec![spec("iks", &[""])],
                Err(CatalogError::BadVersion { id: "iks".into(), version: "".into() }),
            ),
            (
                "letter version",
                vec![spec("iks", &["v7"])],
                Err(CatalogError::BadVersion { id: "iks".into(), version: "v7".into() }),
            ),
            (
                "padded version",
                vec![spec("iks", &[" 7"])],
                Err(CatalogError::BadVersion { id: "iks".into(), version: " 7".into() }),
            ),
        ];
        for (what, products, expected) in cases {
            let built = ProductCatalog::new(products.clone());
            assert_eq!(built.as_ref().err(), expected.as_ref().err(), "{what} new");
            assert_eq!(ProductCatalog::try_from(products.clone()).err(), expected.clone().err(), "{what} try_from");
            let unchecked = ProductCatalog { products };
            assert_eq!(unchecked.validate(), expected, "{what} validate");
        }
    }

    #[test]
    fn catalog_error_messages_table() {
        let cases: &[(CatalogError, &str)] = &[
            (CatalogError::Empty, "the product catalog is empty: list at least one product"),
            (
                CatalogError::BadId { id: "IKS".into() },
                "product id 'IKS' is invalid: use only lowercase letters a-z, digits and '-'",
            ),
            (CatalogError::DuplicateId { id: "iks".into() }, "product id 'iks' is listed more than once"),
            (CatalogError::EmptyName { id: "iks".into() }, "product 'iks' has an empty name"),
            (CatalogError::NoVersions { id: "iks".into() }, "product 'iks' lists no supported versions"),
            (
                CatalogError::BadVersion { id: "iks".into(), version: "7.2".into() },
                "product 'iks' has an invalid version '7.2': list major versions as digits only, e.g. \"7\"",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), *text, "{e:?}");
        }
    }

    #[test]
    fn deserialize_table() {
        use super::super::test_value::{V, from};
        let product = |id: &'static str, versions: Vec<V>, extra: Option<(&'static str, V)>| {
            let mut fields =
                vec![("id", V::Str(id)), ("name", V::Str("IKS Standard")), ("versions", V::List(versions))];
            fields.extend(extra);
            V::Map(fields)
        };
        let cases: Vec<(&str, V, Result<ProductCatalog, &str>)> = vec![
            (
                "free_edition defaults to false",
                V::List(vec![product("iks-standard", vec![V::Str("7")], None)]),
                Ok(ProductCatalog::new(vec![ProductSpec::new("iks-standard", "IKS Standard", &["7"], false)]).unwrap()),
            ),
            (
                "free_edition given",
                V::List(vec![product("iks-lite", vec![V::Str("6")], Some(("free_edition", V::Bool(true))))]),
                Ok(ProductCatalog::new(vec![ProductSpec::new("iks-lite", "IKS Standard", &["6"], true)]).unwrap()),
            ),
            ("empty list is validated", V::List(vec![]), Err("the product catalog is empty")),
            (
                "duplicate id is validated",
                V::List(vec![product("iks", vec![V::Str("7")], None), product("iks", vec![V::Str("6")], None)]),
                Err("product id 'iks' is listed more than once"),
            ),
            (
                "bad version is validated",
                V::List(vec![product("iks", vec![V::Str("7.1")], None)]),
                Err("invalid version '7.1'"),
            ),
            (
                "unknown field refused",
                V::List(vec![product("iks", vec![V::Str("7")], Some(("edition", V::Bool(true))))]),
                Err("unknown field `edition`"),
            ),
        ];
        for (what, input, expected) in cases {
            let got = from::<ProductCatalog>(input);
            match expected {
                Ok(c) => assert_eq!(got, Ok(c), "{what}"),
                Err(fragment) => {
                    let err = got.expect_err(what);
                    assert!(err.contains(fragment), "{what}: {err}");
                }
            }
        }
    }

    #[test]
    fn serde_wire_form_is_a_plain_list() {
        let c = ProductCatalog::default();
        let list: Vec<ProductSpec> = c.clone().into();
        assert_eq!(list, c.products().to_vec());
        assert_eq!(ProductCatalog::try_from(list), Ok(c));
    }
}
