//! The shape of the crate, checked from its sources: the pure modules stay pure, nothing but
//! the binary's entry points imports `crate::reconcile`, and the modules import each other
//! without a cycle. Comments and `#[cfg(test)]` modules are not looked at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Modules that decide without I/O: the builders, the day-2 planners, the gate, the status
/// and the vocabulary.
const PURE: &[&str] = &["build", "day2", "gate", "status", "vocabulary"];
/// What a pure module must not use.
const IMPURE: &[&str] = &[
    "kube::Api",
    "Api<",
    "Api::",
    "QdrantClient",
    ".await",
    "tokio::",
];
/// The modules that may import `crate::reconcile`: the controller wiring.
const ENTRY_POINTS: &[&str] = &["controller", "lib"];

/// Every `.rs` file under `src/`, as (top-level module, source without comments and tests).
fn sources() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = vec![];
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((top, path.clone(), code_of(&text)));
        }
    }
    out
}

/// `text` without line comments (`//`, `///`, `//!`) and without everything from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|line| match line.find("//") {
            // Only whole-line comments and trailing ones outside strings are expected.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::` (paths and `use crate::{...}`
/// groups).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut name = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_segment(&name));
                        name.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    name.push(ch);
                }
            }
            found.insert(first_segment(&name));
        } else {
            found.insert(first_segment(rest));
        }
    }
    found.retain(|m| {
        !m.is_empty()
            && m.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
    });
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn pure_modules_do_no_io() {
    let mut wrong = vec![];
    for (top, path, code) in sources() {
        if !PURE.contains(&top.as_str()) {
            continue;
        }
        for needle in IMPURE {
            if code.contains(needle) {
                wrong.push(format!("{} uses {needle}", path.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "pure modules doing I/O:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_the_entry_points_import_reconcile() {
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|(top, _, code)| {
            top != "reconcile"
                && !ENTRY_POINTS.contains(&top.as_str())
                && imports(code).contains("reconcile")
        })
        .map(|(_, path, _)| path.display().to_string())
        .collect();
    assert!(
        wrong.is_empty(),
        "modules importing crate::reconcile: {wrong:?}"
    );
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (top, _, code) in sources() {
        let deps = graph.entry(top.clone()).or_default();
        deps.extend(imports(&code).into_iter().filter(|d| *d != top));
    }
    // The crate root declares every module; it is not part of the layering.
    graph.remove("lib");
    graph.remove("main");
    for deps in graph.values_mut() {
        deps.retain(|d| d != "lib");
    }
    // Kahn: peel off modules that import nothing left; what remains is in a cycle.
    let mut left = graph.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for m in leaves {
            left.remove(&m);
        }
    }
    assert!(
        left.is_empty(),
        "modules in an import cycle (module -> what it imports):\n{}",
        left.iter()
            .map(|(m, deps)| format!(
                "  {m} -> {}",
                deps.iter()
                    .filter(|d| left.contains_key(*d))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The module graph, for the design doc (`cargo test -- --nocapture`).
    for (m, deps) in &graph {
        println!(
            "{m} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
}

#[test]
fn the_scanner_sees_imports_and_ignores_comments() {
    let code = code_of(
        "use crate::{build::{self, Names}, peers};\n// crate::reconcile\nlet x = crate::status::compute();\n#[cfg(test)]\nmod tests { use crate::reconcile; }",
    );
    assert_eq!(
        imports(&code),
        BTreeSet::from([
            "build".to_string(),
            "peers".to_string(),
            "status".to_string()
        ])
    );
}
