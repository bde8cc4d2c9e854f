//! Embeds the web panel's files (`web/templates`, `web/static`) in the binary, so one file
//! is the whole deployment and no page depends on the working directory. The texts
//! (`web/i18n`) are embedded by `src/i18n.rs` itself, which depends on nothing else.
//! Listing the directories here, instead of naming each file in the source, means adding
//! a template is just adding the file.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut out = String::new();
    for dir in ["templates", "static"] {
        let root = web.join(dir);
        println!("cargo:rerun-if-changed={}", root.display());
        let mut files = Vec::new();
        collect(&root, &root, &mut files);
        files.sort();
        let konst = dir.to_uppercase();
        writeln!(out, "pub const {konst}: &[(&str, &[u8])] = &[").unwrap();
        for (name, path) in files {
            println!("cargo:rerun-if-changed={path}");
            writeln!(out, "    ({name:?}, include_bytes!({path:?})),").unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("web_files.rs");
    std::fs::write(dest, out).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            files.push((name, path.canonicalize().unwrap().display().to_string()));
        }
    }
}
