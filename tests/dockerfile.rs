//! Docker cannot run on the test machines, so `docker build .` is checked by reading the
//! Dockerfile: every path the release build needs (manifest, lock file, sources, bench
//! targets the manifest declares, path dependencies such as the vendored kafka-protocol)
//! must be copied into the build stage before `cargo build` runs.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The first path component of each source of the `COPY` lines before the first
/// `cargo build` (the build stage's inputs).
fn copied_before_build(dockerfile: &str) -> Vec<String> {
    let mut copied = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("RUN") && line.contains("cargo build") {
            break;
        }
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if let Some((_dest, sources)) = words.split_last() {
            for s in sources {
                let first = s.trim_start_matches("./").split('/').next().unwrap_or("");
                copied.push(first.to_string());
            }
        }
    }
    copied
}

/// Top-level paths the build reads: path dependencies and patches, and explicit targets.
fn needed_by_manifest(manifest: &toml::Table) -> Vec<String> {
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".into(), "src".into()];
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(key).and_then(|v| v.as_table()) {
            tables.push(t);
        }
    }
    if let Some(patch) = manifest.get("patch").and_then(|v| v.as_table()) {
        tables.extend(patch.values().filter_map(|v| v.as_table()));
    }
    for table in tables {
        for dep in table.values() {
            if let Some(path) = dep.get("path").and_then(|p| p.as_str()) {
                needed.push(path.split('/').next().unwrap_or(path).to_string());
            }
        }
    }
    if let Some(benches) = manifest.get("bench").and_then(|v| v.as_array()) {
        if !benches.is_empty() {
            needed.push("benches".into());
        }
    }
    needed
}

#[test]
fn the_dockerfile_copies_everything_the_build_needs() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let manifest: toml::Table = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let copied = copied_before_build(&dockerfile);
    let needed = needed_by_manifest(&manifest);
    assert!(
        needed.iter().any(|n| n == "vendor"),
        "the manifest's path dependency was found"
    );
    for path in needed {
        assert!(
            copied.contains(&path),
            "the Dockerfile's build stage does not copy `{path}` (copies {copied:?})"
        );
        assert!(Path::new(ROOT).join(&path).exists(), "{path} exists");
    }
}

#[test]
fn the_check_notices_a_missing_copy() {
    let manifest: toml::Table = "[dependencies]\nx = { path = \"vendor/x\" }\n"
        .parse()
        .unwrap();
    let copied = copied_before_build(
        "FROM rust AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY src ./src\nRUN cargo build --release\nCOPY vendor ./vendor\n",
    );
    let needed = needed_by_manifest(&manifest);
    assert!(needed.contains(&"vendor".to_string()));
    assert!(
        !copied.contains(&"vendor".to_string()),
        "a COPY after the build does not count"
    );
}
