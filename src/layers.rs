//! The layer map of docs/ARCHITECTURE.md ("Layers"), checked against the
//! code: a small parser reads every `use crate::...`/`use super::...` and
//! every `crate::`/`super::` path in src/, resolves it to the module file
//! it names, and fails when a module reaches one at its own layer or above
//! (so no import cycle between modules can exist), when the library
//! imports `cli`, when `sync::protocol` uses an HTTP crate, when `web`
//! opens a writer, or when the library (outside unit tests) returns
//! `Result<_, String>`.
//! Test-only; nothing here is compiled into lumpy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module (path prefix) -> layer. A module may name modules of a lower
/// layer, and anything inside its own entry (its submodules, its parent
/// `mod.rs`). The longest matching prefix gives a module its entry; a file
/// that matches none fails the test, so a new module gets a place here.
const LAYERS: &[(&str, u8)] = &[
    // Pure leaves: formats and rules with no I/O but the one file asked for.
    ("clock", 0),
    ("durable", 0),
    ("mysql", 0),
    ("net", 0),
    ("records", 0),
    ("sensor_id", 0),
    ("sync", 0), // sync/mod.rs: declarations only
    ("sync::protocol", 0),
    ("capture", 1),
    ("community_id", 1),
    ("time_arg", 1),
    ("flows", 2),
    ("p0f", 2),
    ("sebek", 2),
    // Storage and settings.
    ("config", 3),
    ("store", 3),
    ("mirror", 4),
    ("node", 5),
    ("sync::reply", 5),
    ("sync::tls", 5),
    ("sync::auth", 6),
    ("sync::summary", 6),
    // Writers and readers of one node.
    ("ingest", 7),
    ("pcap_service", 7),
    ("prune", 7),
    ("sync::links", 7),
    ("archive", 8),
    ("export", 8),
    ("legacy", 8),
    ("sync::client", 8),
    // Between nodes, and the daemon.
    ("decommission", 9),
    ("metrics", 9),
    ("repair", 9),
    ("sync::pcap_http", 9),
    ("control", 10),
    ("sync::server", 10),
    ("web", 11),
    ("serve", 12),
    ("cli", 13),
    ("lib", 14),
    ("layers", 14),
    ("main", 15),
];

/// Module path of a file under src/ (`sync/server.rs` -> `sync::server`).
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments and string contents, so a path in a doc
/// comment or a message is not read as an import.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && b[i..].starts_with(b"r#\"") {
            i += 3;
            while i < b.len() && !b[i..].starts_with(b"\"#") {
                i += 1;
            }
            i += 2;
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\''); a lifetime has no closing quote.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Expands a `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn flatten(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let (prefix, inner) = (
        &tree[..open],
        &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())],
    );
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| flatten(i).into_iter().map(|p| format!("{prefix}{p}")))
        .collect()
}

/// Every path a file names that starts with `crate`, `super` or `self`.
fn paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            out.extend(flatten(&rest[..end]));
        }
    }
    let b = code.as_bytes();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0
                && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_' || b[at - 1] == b':')
            {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.insert(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The module a path names (the longest prefix that is a module), seen
/// from module `from`.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = match from {
        "lib" | "main" => Vec::new(),
        _ => from.split("::").collect(),
    };
    match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            base.clear();
        }
        Some(&"super") | Some(&"self") => {
            while let Some(s) = segs.first() {
                match *s {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs.remove(0);
            }
        }
        _ => return None,
    }
    base.extend(segs);
    (1..=base.len())
        .rev()
        .map(|n| base[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// The layer entry of a module: its longest matching prefix.
fn entry(module: &str) -> Option<(&'static str, u8)> {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .copied()
}

struct Source {
    module: String,
    file: String,
    code: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).unwrap();
                out.push(Source {
                    module: module_of(rel),
                    file: format!("src/{}", rel.display()),
                    code: code_only(&std::fs::read_to_string(&p).unwrap()),
                });
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

/// Each module's dependencies on other modules: module -> (used -> file).
fn graph(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in sources {
        for p in paths(&s.code) {
            if let Some(to) = resolve(&s.module, &p, &modules)
                && to != s.module
            {
                g.entry(s.module.clone())
                    .or_default()
                    .insert(to, s.file.clone());
            }
        }
    }
    g
}

#[test]
fn every_import_runs_down_the_layers() {
    let sources = sources();
    assert!(sources.len() > 100, "src/ not found");
    let mut problems = Vec::new();
    for s in &sources {
        if entry(&s.module).is_none() {
            problems.push(format!(
                "{}: module {} has no layer in LAYERS",
                s.file, s.module
            ));
        }
    }
    for (from, tos) in graph(&sources) {
        let Some((from_entry, from_layer)) = entry(&from) else {
            continue;
        };
        for (to, file) in tos {
            let Some((to_entry, to_layer)) = entry(&to) else {
                continue;
            };
            let inside = to_entry == from_entry
                || from_entry.starts_with(&format!("{to_entry}::")) && to == to_entry;
            if !inside && to_layer >= from_layer {
                problems.push(format!(
                    "{file}: {from} (layer {from_layer}) uses {to} (layer {to_layer})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn named_rules_hold() {
    let mut problems = Vec::new();
    for s in &sources() {
        let lib = s.module != "main" && s.module != "layers";
        let m = s.module.as_str();
        let mut forbid = |what: &str, why: &str| {
            if s.code.contains(what) {
                problems.push(format!("{}: `{what}`: {why}", s.file));
            }
        };
        if m == "sync::protocol" {
            for c in ["warp", "reqwest", "hyper"] {
                forbid(c, "the wire types depend on no HTTP crate");
            }
        }
        if m == "web" || m.starts_with("web::") {
            forbid(
                "Mirror::open(",
                "the UI reads the mirror through Mirror::open_reader",
            );
            forbid(
                "Store::open",
                "the UI reads the store through serve's handle",
            );
            forbid(
                "node::open",
                "the UI reads the store through serve's handle",
            );
        }
        if lib && m != "cli" && !m.starts_with("cli::") {
            forbid(
                "anyhow",
                "anyhow is for the command line's edge (cli, main)",
            );
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn library_errors_are_typed() {
    let mut problems = Vec::new();
    for s in &sources() {
        let m = s.module.as_str();
        if matches!(m, "main" | "layers" | "cli") || m.starts_with("cli::") {
            continue;
        }
        // Unit tests (the `mod tests` at a file's end) may use String.
        let code = s.code.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        for (at, _) in flat.match_indices("Result<") {
            let mut depth = 0;
            let mut comma = None;
            for (i, c) in flat[at + 7..].char_indices() {
                match c {
                    '<' | '(' | '[' => depth += 1,
                    ')' | ']' => depth -= 1,
                    '>' if depth == 0 => {
                        let end = at + 7 + i;
                        if let Some(c) = comma
                            && flat[c + 1..end].trim() == "String"
                        {
                            problems.push(format!(
                                "{}: `{}`: library errors are typed (thiserror), not String",
                                s.file,
                                &flat[at..=end]
                            ));
                        }
                        break;
                    }
                    '>' => depth -= 1,
                    ',' if depth == 0 => comma = Some(at + 7 + i),
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_parser_reads_use_trees_and_relative_paths() {
    let modules: BTreeSet<String> = [
        "sync",
        "sync::server",
        "sync::auth",
        "store",
        "store::segment",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let code = code_only(
        "use super::{auth::{self, Secret}, server};\n// use crate::cli;\nlet s = \"crate::web\";\nuse crate::store::{segment::X, Store};\nfn f() { crate::store::segment::y(); }",
    );
    let p = paths(&code);
    assert!(
        p.contains("super::auth::self") && p.contains("super::server"),
        "{p:?}"
    );
    assert!(
        !p.iter().any(|x| x.contains("cli") || x.contains("web")),
        "{p:?}"
    );
    let resolved: BTreeSet<String> = p
        .iter()
        .filter_map(|x| resolve("sync::pcap_http", x, &modules))
        .collect();
    let want: BTreeSet<String> = [
        "sync",
        "sync::auth",
        "sync::server",
        "store",
        "store::segment",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(resolved, want);
    assert_eq!(entry("sync::client"), Some(("sync::client", 8)));
    assert_eq!(entry("mirror::ui_query"), Some(("mirror", 4)));
    assert_eq!(module_of(Path::new("sync/mod.rs")), "sync");
}
