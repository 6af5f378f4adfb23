//! The layer rules of ARCHITECTURE.md, checked over the source: which top-level modules
//! each module imports (`crate::x` paths, including `use crate::{x, y}` groups).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Modules on top: nothing below them may import them.
const SERVING_AND_TOOLS: &[&str] = &["api", "broker", "console", "cli", "cluster"];

/// Modules below the serving layer (layers 0-3).
const BELOW_SERVING: &[&str] = &[
    "clock",
    "sync",
    "tasks",
    "protocol",
    "storage",
    "config",
    "fetch_session",
    "coordination",
    "security",
    "zookeeper",
    "replica",
    "controller",
    "admin",
    "client",
    "coordinator",
    "group",
    "txn",
];

/// Layer 0 modules that must stay free of everything above layer 0.
const FOUNDATIONS: &[&str] = &[
    "clock",
    "sync",
    "tasks",
    "protocol",
    "storage",
    "fetch_session",
];

/// The broker-side modules the mini-zookeeper must not import.
const BROKER_SIDE: &[&str] = &[
    "api",
    "broker",
    "replica",
    "storage",
    "group",
    "txn",
    "coordinator",
    "coordination",
    "controller",
    "admin",
    "fetch_session",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named after `crate::` in one line of code.
fn crate_paths(line: &str, out: &mut BTreeSet<String>) {
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c}`: the first segment after `{` and after each comma at
            // depth one.
            let mut depth = 1;
            let mut start = true;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.insert(name);
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
}

/// Top-level module -> the top-level modules its code imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(SRC).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let used = map.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            crate_paths(code, used);
        }
        used.remove(&module);
    }
    map
}

fn violations(of: &[&str], forbidden: &[&str]) -> Vec<String> {
    let map = imports();
    let mut out = Vec::new();
    for module in of {
        let used = map
            .get(*module)
            .unwrap_or_else(|| panic!("no module {module} under src/"));
        for f in forbidden {
            if used.contains(*f) && f != module {
                out.push(format!("{module} imports {f}"));
            }
        }
    }
    out
}

#[test]
fn the_scanner_reads_paths_and_groups() {
    let mut got = BTreeSet::new();
    crate_paths(
        "use crate::{config::BrokerConfig, storage::{Log, Segment}, sync};",
        &mut got,
    );
    crate_paths("let now = crate::clock::now_ms();", &mut got);
    let want: BTreeSet<String> = ["config", "storage", "sync", "clock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn nothing_below_the_serving_layer_imports_it() {
    let v = violations(BELOW_SERVING, SERVING_AND_TOOLS);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_foundations_import_only_foundations() {
    let above: Vec<&str> = BELOW_SERVING
        .iter()
        .chain(SERVING_AND_TOOLS)
        .chain(["metrics"].iter())
        .copied()
        .filter(|m| !FOUNDATIONS.contains(m))
        .collect();
    let v = violations(FOUNDATIONS, &above);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_mini_zookeeper_imports_no_broker_module() {
    let v = violations(&["zookeeper"], BROKER_SIDE);
    assert!(v.is_empty(), "{v:#?}");
}
