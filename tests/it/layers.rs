//! The guard of drctl's layers: every top-level module of `src/` has a
//! layer, and imports (`crate::x` outside test code) only go down. Any
//! import circle, any import upwards or sideways, and any top-level module
//! missing from the table fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom up. Modules of one layer may not import each other.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "vocabulary",
        &["clock", "diag", "digest", "durable", "types"],
    ),
    ("run store", &["store"]),
    ("what exists", &["world"]),
    ("outcomes", &["outcome"]),
    ("sandbox", &["sandbox"]),
    ("the user's files, as typed values", &["model"]),
    ("a plan's data", &["plan"]),
    ("each kind's rules", &["kinds"]),
    ("AWS adapters and each kind's AWS half", &["cloud"]),
    ("the dependency graph", &["graph"]),
    ("loading and validation", &["load"]),
    ("the planner", &["planner"]),
    ("the RTO forecast", &["forecast"]),
    ("errors", &["error"]),
    ("executor", &["execute"]),
    ("journal", &["journal"]),
    ("events and locks", &["events", "lock"]),
    ("run session and verification", &["run", "verify"]),
    ("notifications", &["notify"]),
    ("application", &["app"]),
    ("drills and preflights", &["drill", "preflight"]),
    ("schedules", &["schedule"]),
    ("command line", &["cli"]),
];

#[test]
fn modules_import_only_from_layers_below_and_form_no_new_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = import_edges(&src);
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, units))| units.iter().map(move |u| (*u, i)))
        .collect();
    let mut problems = Vec::new();
    for unit in edges.keys() {
        if !layer_of.contains_key(unit.as_str()) {
            problems.push(format!(
                "{unit}: a top-level module with no layer in LAYERS"
            ));
        }
    }
    for (from, targets) in &edges {
        for (to, files) in targets {
            let (Some(a), Some(b)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
            else {
                continue;
            };
            if b >= a {
                problems.push(format!(
                    "{from} ({}) imports {to} ({}) in {}",
                    LAYERS[*a].0,
                    LAYERS[*b].0,
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    for circle in circles(&edges) {
        problems.push(format!("import circle: {}", circle.join(" → ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Only the store's layout (`src/store/layout.rs`) knows where records
/// live under the state directory.
#[test]
fn only_the_store_names_the_state_directorys_layout() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names = [
        "\"runs\"",
        "\"events.jsonl\"",
        "\"locks\"",
        "\"reports\"",
        "\"schedule\"",
        "\"state.json\"",
        "\"daemon.lock\"",
        "\"sandbox\"",
    ];
    let mut found = Vec::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        if rel == "store/layout.rs" || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
        for name in names {
            if code.contains(&format!(".join({name})")) {
                found.push(format!("{rel} joins {name}"));
            }
        }
        // A key spelled out (`"runs/{id}"`) is the layout as much as a join.
        for prefix in ["\"runs/", "\"locks/", "\"reports/", "\"schedule/"] {
            if code.contains(prefix) {
                found.push(format!("{rel} names {prefix}…\""));
            }
        }
    }
    assert!(
        found.is_empty(),
        "name records by crate::store::Key, through the run store:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_sees_imports_in_paths_and_in_use_groups() {
    let text = "use crate::a::X;\nuse crate::{b::Y, c, d::{e, f}};\n// crate::commented\nfn g() { crate::h::i(); }\n#[cfg(test)]\nmod tests { use crate::late; }\n";
    assert_eq!(
        imported(text),
        BTreeSet::from(["a", "b", "c", "d", "h"].map(str::to_string))
    );
    let edges = BTreeMap::from([
        (
            "x".to_string(),
            BTreeMap::from([("y".to_string(), BTreeSet::new())]),
        ),
        (
            "y".to_string(),
            BTreeMap::from([("x".to_string(), BTreeSet::new())]),
        ),
        (
            "z".to_string(),
            BTreeMap::from([("x".to_string(), BTreeSet::new())]),
        ),
    ]);
    assert_eq!(circles(&edges), [vec!["x".to_string(), "y".to_string()]]);
}

type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Top-level module → the top-level modules it imports, with the files
/// that do. Test code (`tests.rs`, `*_tests.rs`, a `#[cfg(test)] mod`) is
/// left out.
fn import_edges(src: &Path) -> Edges {
    let units: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.is_dir() || path.extension().is_some_and(|x| x == "rs")).then_some(stem)
        })
        .filter(|u| u != "lib" && u != "main")
        .collect();
    let mut edges = Edges::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let name = rel.file_name().unwrap().to_str().unwrap();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let unit = first.trim_end_matches(".rs").to_string();
        if !units.contains(&unit) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = edges.entry(unit.clone()).or_default();
        for target in imported(&text) {
            if target != unit && units.contains(&target) {
                entry
                    .entry(target)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    edges
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level modules `text` names as `crate::x…` or inside `use
/// crate::{…}`, before any `#[cfg(test)] mod`, comments left out.
fn imported(text: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if !trimmed.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The first name of each item of a `{a::b, c, d::{e}}` group (from just
/// after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut item_start) = (0usize, true);
    let mut name = String::new();
    let mut flush = |name: &mut String, item_start: &mut bool| {
        if !name.is_empty() {
            heads.push(std::mem::take(name));
            *item_start = false;
        }
    };
    for c in group.chars() {
        match c {
            '}' if depth == 0 => break,
            '{' => {
                flush(&mut name, &mut item_start);
                depth += 1;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                flush(&mut name, &mut item_start);
                item_start = true;
            }
            c if c.is_alphanumeric() || c == '_' => {
                if item_start && depth == 0 {
                    name.push(c);
                }
            }
            _ => flush(&mut name, &mut item_start),
        }
    }
    flush(&mut name, &mut item_start);
    heads.retain(|h| h != "self");
    heads
}

/// Every import circle (strongly connected set of two or more modules),
/// each sorted.
fn circles(edges: &Edges) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|t| t.keys()))
        .collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in edges.get(&n).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for n in &nodes {
        let mut circle: Vec<String> = nodes
            .iter()
            .filter(|m| reaches[*n].contains(**m) && reaches[**m].contains(*n))
            .map(|m| m.to_string())
            .collect();
        circle.sort();
        if circle.len() > 1 && !out.contains(&circle) {
            out.push(circle);
        }
    }
    out
}
