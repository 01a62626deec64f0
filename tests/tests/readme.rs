//! README.md's lists stay true (no QEMU): the domain images it names are the `[[bin]]`s of the
//! image packages (`xtask::artifacts::PACKAGES` but hv-core), and its shipped topologies are
//! `topologies/*.toml`. Each failure says what to add to, or remove from, which README list.
//!
//! The lists: the `**Demo DomUs**` bullet (every image of `frontends/demos` and
//! `frontends/test-domains`, in backticks), the `image = ...` comment of the topology example
//! (`a domain binary (dom0, hello, ...)`: examples, each a real image), and the paragraph that
//! starts `Shipped topologies:` (backticked names; `blk*` stands for every `blk...` topology).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("reading README.md")
}

/// The text from the line holding `start` to the end of its paragraph or bullet (a blank line
/// or the next `- ` bullet); panics naming `start` when README has no such line.
fn section<'a>(readme: &'a str, start: &str) -> &'a str {
    let at = readme
        .find(start)
        .unwrap_or_else(|| panic!("README.md has no {start:?} any more: update tests/tests/readme.rs"));
    let line_start = readme[..at].rfind('\n').map_or(0, |i| i + 1);
    let rest = &readme[line_start..];
    let mut end = rest.len();
    for (i, _) in rest.match_indices('\n') {
        let next = &rest[i + 1..];
        if next.starts_with('\n') || next.starts_with("- ") || next.starts_with('#') {
            end = i;
            break;
        }
    }
    &rest[..end]
}

/// The `code` spans of `text` that look like names (no `/`, `.`, `=` or spaces).
fn names_in_backticks(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && !s.contains(['/', '.', '=', ' ', '"']))
        .map(str::to_owned)
        .collect()
}

/// Whole-name match where a trailing `*` stands for any rest.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn images() -> Vec<(String, String)> {
    xtask::artifacts::domain_images(&root()).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn readme_lists_every_demo_and_test_domain_image_and_no_other() {
    let readme = readme();
    let listed: BTreeSet<String> = names_in_backticks(section(&readme, "**Demo DomUs**")).into_iter().collect();
    let truth: BTreeSet<String> = images()
        .into_iter()
        .filter(|(package, _)| package == "demos" || package == "test-domains")
        .map(|(_, image)| image)
        .collect();
    let missing: Vec<&String> = truth.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(&truth).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's **Demo DomUs** / **Test domains** bullet is out of date: add {missing:?}, remove {extra:?} \
         (the images are the [[bin]]s of frontends/demos and frontends/test-domains: {truth:?})"
    );
}

#[test]
fn readme_example_images_exist() {
    let readme = readme();
    let comment = section(&readme, "# a domain binary (");
    let inside = comment.split_once("# a domain binary (").and_then(|(_, r)| r.split_once(')')).map(|(l, _)| l);
    let listed: Vec<&str> = inside.expect("a closing parenthesis").split(',').map(str::trim).collect();
    let truth: BTreeSet<String> = images().into_iter().map(|(_, image)| image).collect();
    let unknown: Vec<&&str> = listed.iter().filter(|n| !truth.contains(**n)).collect();
    assert!(
        unknown.is_empty(),
        "README.md's topology example names domain binaries that do not exist: {unknown:?} (the images: {truth:?})"
    );
}

#[test]
fn readme_lists_every_shipped_topology_and_no_other() {
    let readme = readme();
    let listed = names_in_backticks(section(&readme, "Shipped topologies:"));
    let truth = xtask::topology::available(&root());
    assert!(!truth.is_empty(), "no topologies/*.toml");
    let missing: Vec<&String> = truth.iter().filter(|t| !listed.iter().any(|p| matches(p, t))).collect();
    let extra: Vec<&String> = listed.iter().filter(|p| !truth.iter().any(|t| matches(p, t))).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's \"Shipped topologies:\" paragraph is out of date: add {missing:?}, remove {extra:?} \
         (topologies/*.toml: {truth:?}; `name*` covers every name starting with `name`)"
    );
}

#[test]
fn the_readers_of_this_test() {
    let text = "a\n- **Demo DomUs** (`frontends/demos`): `hello`; `ping`\n  and `x=y` `pong`\n- next `no`\n";
    assert_eq!(names_in_backticks(section(text, "**Demo DomUs**")), ["hello", "ping", "pong"]);
    let text = "Shipped topologies: `default`,\n`blk*` (block).\n\nUnder QEMU `no`";
    assert_eq!(names_in_backticks(section(text, "Shipped topologies:")), ["default", "blk*"]);
    assert!(matches("blk*", "blk-crash") && matches("blk*", "blk") && !matches("blk", "blk-crash"));
}

/// docs/architecture.md maps every concept to its files: each backticked repository path in it
/// (`folder/…/file`, globs allowed, `{a,b}` alternatives cut off) must exist, so a file that
/// moves cannot leave the map pointing at nothing.
#[test]
fn every_path_in_the_architecture_map_exists() {
    let text = std::fs::read_to_string(root().join("docs/architecture.md")).expect("reading docs/architecture.md");
    let mut missing = BTreeSet::new();
    for (i, span) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if i % 2 == 0 || span.contains(' ') || !span.contains('/') || span.starts_with('/') || span.contains("://") {
            continue;
        }
        let path = span.split('{').next().unwrap_or(span).trim_end_matches(['/', ':']);
        let first = path.split('/').next().unwrap_or("");
        if !root().join(first).is_dir() || path.contains("..") {
            continue; // not a repository path (a store path, a URL part, …)
        }
        let exists = if path.contains('*') {
            let (dir, pattern) = path.rsplit_once('/').unwrap_or(("", path));
            std::fs::read_dir(root().join(dir))
                .map(|entries| {
                    entries.flatten().any(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
                        name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
                    })
                })
                .unwrap_or(false)
        } else {
            root().join(path).exists()
        };
        if !exists {
            missing.insert(path.to_owned());
        }
    }
    assert!(missing.is_empty(), "docs/architecture.md names paths that do not exist: {missing:?}");
}
