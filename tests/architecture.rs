//! The crate's modules depend on each other one way only: entry → serve → route/auth/forward → users/config →
//! errors/body (docs/architecture.md). This test reads every `crate::…` path in `src/` (outside unit tests) and
//! fails on any cycle between top-level modules (a folder counts as one module), naming the files involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (from module, to module) → one file that makes the edge, for the error message.
type Edges = BTreeMap<(String, String), PathBuf>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/a.rs` and `src/a/**` are both `a`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    // lib.rs only declares modules; main.rs is the binary and reaches the library as `gateway::`.
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every top-level module named after `crate::` in `code`, including grouped `use crate::{a, b::c}`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let preceded_by_ident = code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded_by_ident {
            continue; // e.g. `some_crate::x`
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The code of a file before its unit tests (tests may reach anywhere), without comment lines (docs may
/// mention any module).
fn code_of(text: &str) -> String {
    let code = text.find("#[cfg(test)]").map_or(text, |i| &text[..i]);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn module_edges(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges = Edges::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source file");
        for to in referenced_modules(&code_of(&text)) {
            if to != from && modules.contains(&to) {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| file.clone());
            }
        }
    }
    edges
}

/// Every elementary cycle reachable by a depth-first walk, each reported once from its smallest module.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut found = BTreeSet::new();
    fn walk<'a>(
        start: &'a str,
        at: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        for &to in next.get(at).map(Vec::as_slice).unwrap_or(&[]) {
            if to == start {
                found.insert(path.iter().map(|s| s.to_string()).collect());
            } else if to > start && !path.contains(&to) {
                path.push(to);
                walk(start, to, next, path, found);
                path.pop();
            }
        }
    }
    for &start in next.keys() {
        walk(start, start, &next, &mut vec![start], &mut found);
    }
    found.into_iter().collect()
}

#[test]
fn modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    assert!(
        edges.len() > 10,
        "the scan found almost no dependencies; is it reading src/?"
    );
    let found = cycles(&edges);
    let explain: Vec<String> = found
        .iter()
        .map(|cycle| {
            let mut steps = Vec::new();
            for (i, from) in cycle.iter().enumerate() {
                let to = &cycle[(i + 1) % cycle.len()];
                let file = &edges[&(from.clone(), to.clone())];
                steps.push(format!("{from} → {to} ({})", file.display()));
            }
            steps.join(", ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between modules:\n{}",
        explain.join("\n")
    );
}

#[test]
fn the_cycle_finder_sees_a_cycle() {
    // The check above must be able to fail: a two-module and a three-module loop are both reported.
    let mut edges = Edges::new();
    for (a, b) in [
        ("a", "b"),
        ("b", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "c"),
        ("x", "a"),
    ] {
        edges.insert((a.into(), b.into()), PathBuf::from("f.rs"));
    }
    assert_eq!(
        cycles(&edges),
        vec![
            vec!["a".to_string(), "b".into()],
            vec!["c".into(), "d".into(), "e".into()]
        ]
    );
    assert_eq!(
        referenced_modules(
            "use crate::{auth::x, config};\nlet y = other_crate::z; crate::body::f()"
        ),
        ["auth", "body", "config"].map(String::from).into()
    );
}
