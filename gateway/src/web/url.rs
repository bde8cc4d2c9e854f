//! Paths and query values: percent-encoding, and which paths a redirect may go to. At the
//! bottom of the panel: it depends on nothing.

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `p` may be a redirect target: a path of our own, and nothing a browser could
/// read as another origin. The one check for every redirect taken from a request (`next`
/// after signing in, `back` after switching the language).
///
/// Only visible ASCII is allowed: browsers drop tabs and newlines from a `Location`
/// (`/\t/evil.example` becomes `//evil.example`) and read `\` as `/`; the paths the
/// panel itself makes are percent-encoded, so nothing legitimate is lost. It also keeps
/// the value a valid header, so a redirect never fails (a control character used to
/// panic `Redirect::to` into a 500).
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}
