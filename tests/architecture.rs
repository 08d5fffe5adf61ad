//! The layers of `src/`, held by a test: it reads every module's `crate::...` paths and fails
//! when a lower layer names a higher one, or when modules of one layer name each other in a
//! cycle.
//!
//! From the bottom: the utilities (`glob`, `splitargs`, `num`, `memory`), `config`, `logging`,
//! `supervise` and the `facade` (network, TLS, RESP), `storage` (pure data) and `cmd::error` (the error
//! vocabulary), the `engine`, the command families (`cmd`), and on top the `runtime` and the
//! `benchmark` tool. The benchmark tool shares the facade and nothing of the server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's layer: the longest matching prefix of its path wins.
const LAYERS: &[(&str, u8)] = &[
    ("glob", 0),
    ("splitargs", 0),
    ("num", 0),
    ("memory", 0),
    ("durable", 0),
    ("config", 1),
    ("logging", 2),
    ("supervise", 2),
    ("facade", 2),
    ("storage", 3),
    ("cmd::error", 3),
    ("engine", 4),
    ("cmd", 5),
    ("internals", 6),
    ("runtime", 6),
    ("metrics", 6),
    ("benchmark", 6),
];

/// Modules that must not name these, whatever the layers say.
const FORBIDDEN: &[(&str, &[&str])] =
    &[("benchmark", &["storage", "engine", "cmd", "runtime"]), ("facade", &["storage", "engine", "cmd"])];

fn layer(module: &str) -> (&'static str, u8) {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(p, l)| (p, l))
        .unwrap_or_else(|| panic!("module {module} has no layer: add it to LAYERS"))
}

/// Every `.rs` file under `dir`, with its module path (`engine::shard`, `engine` for mod.rs).
fn modules(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
            if parts.first() == Some(&"bin") || parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.push((parts.join("::"), path));
        }
    }
}

/// The code of a file without its comments (doc comments name modules freely).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The modules a file names: every `crate::a::b...` path, as the longest known module prefix.
fn named(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code = code(text);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let path: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        // `use crate::x::{a, b}` names x's submodules a and b too.
        let group: Vec<String> = if rest[path.len()..].starts_with('{') {
            let inner = &rest
                [path.len() + 1..rest[path.len()..].find('}').map_or(path.len() + 1, |e| path.len() + e)];
            inner.split(',').map(|s| s.trim().split("::").next().unwrap_or("").to_owned()).collect()
        } else {
            Vec::new()
        };
        let base = (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| known.contains(m));
        if let Some(base) = base {
            for g in &group {
                let sub = format!("{base}::{g}");
                if known.contains(&sub) {
                    found.insert(sub);
                }
            }
            found.insert(base);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&root, &root, &mut files);
    let known: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    files
        .into_iter()
        .map(|(module, path)| {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut edges = named(&text, &known);
            edges.remove(&module);
            // A module's parent (its mod.rs) declares it: that is not a dependency.
            edges.retain(|e| !module.starts_with(&format!("{e}::")));
            (module, edges)
        })
        .collect()
}

#[test]
fn no_layer_names_a_higher_one() {
    let mut violations = Vec::new();
    for (module, edges) in graph() {
        let (group, level) = layer(&module);
        for target in edges {
            let (target_group, target_level) = layer(&target);
            if target_level > level {
                violations.push(format!("{module} (layer {level}) names {target} (layer {target_level})"));
            }
            for (who, banned) in FORBIDDEN {
                if group.starts_with(who) && banned.iter().any(|b| target_group.starts_with(b)) {
                    violations.push(format!("{module} names {target}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

#[test]
fn modules_of_one_layer_form_no_cycle() {
    let graph = graph();
    // Depth-first search for a back edge, within each layer group.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        path.push(node.to_owned());
        let group = layer(node).0;
        for next in graph.get(node).into_iter().flatten() {
            if layer(next).0 == group {
                visit(next, graph, path, done, cycles);
            }
        }
        path.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "modules of one layer in a cycle:\n{}", cycles.join("\n"));
}

/// The test itself sees what it must: a made-up file naming a higher layer is caught.
#[test]
fn the_reader_finds_what_a_file_names() {
    let known: BTreeSet<String> =
        ["engine", "engine::shard", "engine::router", "storage", "storage::db"].map(String::from).into();
    let text = "use crate::engine::{shard::Shard, router};\n// crate::storage::db in a comment\nfn f() { crate::storage::db::x() }";
    let found = named(text, &known);
    assert_eq!(found, ["engine", "engine::router", "engine::shard", "storage::db"].map(String::from).into());
}
