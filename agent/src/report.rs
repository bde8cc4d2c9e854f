//! What the box runs, as the agent reports it to the gateway (the gateway's version rule
//! then checks what really runs, not what someone typed once).
//!
//! Explicit settings (`--product`/`--version` at enrolment, or `product`/`version` in
//! `agent.toml`) win. Otherwise the agent reads a version file, assumed to be in the
//! os-release style: `KEY=value` lines, `#` comments, values optionally quoted:
//!
//! ```text
//! # /etc/iks/version
//! PRODUCT=iks-standard
//! VERSION="7.2.1"
//! ```
//!
//! `PRODUCT` is the gateway's product ID (`iks-standard`, `iks-fstec`, `cf-iks-standard`,
//! `cf-iks-fstec`, `iks-lite`). The path is configurable (`version_file`) because IKS
//! releases may keep it elsewhere; a missing file simply means "not reported".

use std::path::Path;

use crate::config::AgentConfig;

/// Product and version, either of which may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub product: Option<String>,
    pub version: Option<String>,
}

/// Reads `PRODUCT` and `VERSION` from os-release-style text.
pub fn parse_version_file(text: &str) -> Release {
    let mut release = Release::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_string();
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "PRODUCT" => release.product = Some(value),
            "VERSION" => release.version = Some(value),
            _ => {}
        }
    }
    release
}

/// The version file's contents, or nothing when it does not exist or cannot be read.
pub fn read_version_file(path: &Path) -> Release {
    std::fs::read_to_string(path).map(|t| parse_version_file(&t)).unwrap_or_default()
}

/// What to report: explicit settings first, then the version file.
pub fn release(product: Option<&str>, version: Option<&str>, version_file: &Path) -> Release {
    let file =
        if product.is_some() && version.is_some() { Release::default() } else { read_version_file(version_file) };
    Release {
        product: product.map(str::to_string).or(file.product),
        version: version.map(str::to_string).or(file.version),
    }
}

/// The release of an enrolled agent.
pub fn configured_release(config: &AgentConfig) -> Release {
    release(config.product.as_deref(), config.version.as_deref(), &config.version_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_files_are_read_like_os_release() {
        let r = parse_version_file("# IKS\nPRODUCT=iks-standard\nVERSION=\"7.2.1\"\nNAME='IKS Standard'\nJUNK\n");
        assert_eq!(r, Release { product: Some("iks-standard".into()), version: Some("7.2.1".into()) });
        assert_eq!(parse_version_file("VERSION=''\n"), Release::default());
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("version");
        std::fs::write(&file, "PRODUCT=iks-fstec\nVERSION=5.0\n").unwrap();
        let r = release(None, Some("5.1"), &file);
        assert_eq!(r, Release { product: Some("iks-fstec".into()), version: Some("5.1".into()) }, "settings win");
        assert_eq!(release(None, None, &tmp.path().join("missing")), Release::default());
    }
}
