//! `cargo xtask tidy`: checks of the house conventions that the compiler and
//! clippy do not make.
//!
//! Over every `.rs` file under `crates/`, `examples/` and `xtask/` (build
//! output and hidden directories skipped):
//! - the first non-blank line is a `//!` doc comment saying what the module is for;
//! - no test is skipped or expected to panic, and no placeholder macro stands in
//!   for code (the banned spellings are listed in [`BANNED`]).
//!
//! Over each crate's `[dependencies]` and `[target.*.dependencies]` (not
//! dev- or build-dependencies), following `package = "..."` renames, also
//! through `[workspace.dependencies]`:
//! - `crates/core` depends on no I/O crate ([`is_io_crate`]) and no other
//!   HealthLedger crate;
//! - `crates/sync` depends on `healthledger-core` only among HealthLedger
//!   crates, and on no I/O crate except `tokio`;
//! - the adapters `crates/chain`, `crates/cache`, `crates/vault` depend on
//!   neither each other nor `healthledger-sync` nor `healthledger-api`;
//! - only `crates/api`, `examples` and `xtask` name a concrete adapter.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use toml::{Table, Value};

/// Directories, relative to the repository root, whose Rust sources are checked.
const SOURCE_ROOTS: &[&str] = &["crates", "examples", "xtask"];

/// Spellings that must not appear in Rust sources, with the reason shown.
/// They are assembled with `concat!` so that this file does not trip itself.
const BANNED: &[(&str, &str)] = &[
    (
        concat!("#[", "ignore"),
        "tests never skip: a test that needs a service fails when it is missing",
    ),
    (
        concat!("#[", "should_panic"),
        "assert the error value instead of expecting a panic",
    ),
    (
        concat!("todo", "!("),
        "no placeholders on main: a thing is there and works, or it is not there",
    ),
    (
        concat!("unimplemented", "!("),
        "no placeholders on main: a thing is there and works, or it is not there",
    ),
];

/// The concrete adapters, which only `api`, `examples` and `xtask` may name.
const ADAPTERS: &[&str] = &[
    "healthledger-chain",
    "healthledger-cache",
    "healthledger-vault",
];

/// Crates that do I/O (network, database, object storage, files, runtimes),
/// which `core` must not depend on; families are matched in [`is_io_crate`].
const IO_CRATES: &[&str] = &[
    "alloy",
    "sea-orm",
    "sea-orm-migration",
    "sqlx",
    "diesel",
    "object_store",
    "reqwest",
    "hyper",
    "axum",
    "tower-http",
    "tokio",
    "tokio-util",
    "tokio-postgres",
    "async-std",
    "smol",
    "async-io",
    "mio",
    "ureq",
    "rusqlite",
    "postgres",
    "aws-config",
    "fs-err",
    "tempfile",
];

/// One broken rule, located as precisely as the check can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// File, relative to the checked root.
    pub(crate) path: PathBuf,
    /// 1-based line, when the rule is about one line.
    pub(crate) line: Option<usize>,
    /// What is wrong and why it matters.
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Checks `root`, prints every violation and fails when there is any.
pub(crate) fn run(root: &Path) -> Result<()> {
    let violations = check(root)?;
    for violation in &violations {
        println!("{violation}");
    }
    match violations.len() {
        0 => {
            println!("tidy: {} is tidy", root.display());
            Ok(())
        }
        1 => bail!("tidy found 1 violation"),
        count => bail!("tidy found {count} violations"),
    }
}

/// Every violation under `root`, sources first, then dependencies.
pub(crate) fn check(root: &Path) -> Result<Vec<Violation>> {
    if !root.join("Cargo.toml").is_file() {
        bail!(
            "{} is not a repository root: it has no Cargo.toml",
            root.display()
        );
    }
    let mut violations = Vec::new();
    let mut files = Vec::new();
    for dir in SOURCE_ROOTS {
        collect_rust_files(&root.join(dir), &mut files)?;
    }
    for file in &files {
        check_source(root, file, &mut violations)?;
    }
    check_dependencies(root, &mut violations)?;
    Ok(violations)
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() {
            if !(name == "target" || name == "node_modules" || name.starts_with('.')) {
                collect_rust_files(&path, files)?;
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

fn check_source(root: &Path, file: &Path, violations: &mut Vec<Violation>) -> Result<()> {
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let path = relative(root, file);
    let first = text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty());
    match first {
        Some((_, line)) if line.trim_start().starts_with("//!") => {}
        Some((index, _)) => violations.push(Violation {
            path: path.clone(),
            line: Some(index + 1),
            message: "module does not open with a `//!` doc comment saying what it is for"
                .to_owned(),
        }),
        None => violations.push(Violation {
            path: path.clone(),
            line: None,
            message: "file is empty: a module opens with a `//!` doc comment saying what it is for"
                .to_owned(),
        }),
    }
    for (index, line) in text.lines().enumerate() {
        for (pattern, reason) in BANNED {
            if line.contains(pattern) {
                violations.push(Violation {
                    path: path.clone(),
                    line: Some(index + 1),
                    message: format!("`{pattern}` is not allowed: {reason}"),
                });
            }
        }
    }
    Ok(())
}

/// What a crate may depend on, decided by where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `crates/core`: domain and ports, no I/O.
    Core,
    /// `crates/sync`: reconciliation through the ports only.
    Sync,
    /// `crates/chain`, `crates/cache`, `crates/vault`: one port implementation each.
    Adapter,
    /// `crates/api`, `examples`, `xtask`: may wire anything.
    Wiring,
    /// Any other crate under `crates/`: must not name a concrete adapter.
    Library,
}

impl Role {
    fn of(crate_dir: &str) -> Self {
        match crate_dir {
            "core" => Self::Core,
            "sync" => Self::Sync,
            "chain" | "cache" | "vault" => Self::Adapter,
            "api" => Self::Wiring,
            _ => Self::Library,
        }
    }

    /// Why depending on `name` is forbidden for this role, or `None` when it is allowed.
    fn forbids(self, name: &str) -> Option<String> {
        let internal = name.starts_with("healthledger-");
        match self {
            Self::Core if is_io_crate(name) => Some(format!(
                "core must not depend on the I/O crate `{name}`: it holds domain types and ports, \
                 I/O belongs in the adapters"
            )),
            Self::Core if internal => Some(format!(
                "core must not depend on `{name}`: every other crate depends on core, never the reverse"
            )),
            Self::Sync if is_io_crate(name) && name != "tokio" => Some(format!(
                "sync must not depend on the I/O crate `{name}`: it reconciles through the ports \
                 (of the I/O crates it may use tokio only)"
            )),
            Self::Sync if internal && name != "healthledger-core" => Some(format!(
                "sync must not depend on `{name}`: it depends on healthledger-core only; \
                 adapters belong in its dev-dependencies"
            )),
            Self::Adapter
                if ADAPTERS.contains(&name)
                    || name == "healthledger-sync"
                    || name == "healthledger-api" =>
            {
                Some(format!(
                    "an adapter must not depend on `{name}`: adapters depend on core, never on \
                     each other, sync or api"
                ))
            }
            Self::Library if ADAPTERS.contains(&name) => Some(format!(
                "only api, examples and xtask may name the concrete adapter `{name}`"
            )),
            _ => None,
        }
    }
}

/// True for crates that do I/O and so may not appear in core.
/// `alloy-primitives` is plain data and allowed; every other `alloy` crate is not.
fn is_io_crate(name: &str) -> bool {
    if name == "alloy-primitives" {
        return false;
    }
    const FAMILIES: &[&str] = &[
        "alloy-",
        "aws-sdk-",
        "aws-smithy-",
        "sea-orm-",
        "sqlx-",
        "hyper-",
    ];
    IO_CRATES.contains(&name) || FAMILIES.iter().any(|family| name.starts_with(family))
}

fn check_dependencies(root: &Path, violations: &mut Vec<Violation>) -> Result<()> {
    let workspace = read_toml(&root.join("Cargo.toml"))?;
    let workspace_deps = workspace
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();

    let mut manifests: Vec<(Role, PathBuf)> = Vec::new();
    let crates = root.join("crates");
    if crates.is_dir() {
        let mut dirs = fs::read_dir(&crates)
            .with_context(|| format!("listing {}", crates.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("listing {}", crates.display()))?;
        dirs.sort_by_key(fs::DirEntry::file_name);
        for dir in dirs {
            let manifest = dir.path().join("Cargo.toml");
            if manifest.is_file() {
                let name = dir.file_name();
                manifests.push((Role::of(&name.to_string_lossy()), manifest));
            }
        }
    }
    for wiring in ["examples", "xtask"] {
        let manifest = root.join(wiring).join("Cargo.toml");
        if manifest.is_file() {
            manifests.push((Role::Wiring, manifest));
        }
    }

    for (role, manifest) in manifests {
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let parsed: Table = text
            .parse()
            .with_context(|| format!("parsing {}", manifest.display()))?;
        let mut found = Vec::new();
        for dep in dependencies(&parsed, &workspace_deps) {
            if let Some(reason) = role.forbids(&dep.package) {
                let named = if dep.key == dep.package {
                    format!("`{}`", dep.key)
                } else {
                    format!("`{}` (package `{}`)", dep.key, dep.package)
                };
                found.push(Violation {
                    path: relative(root, &manifest),
                    line: find_line(&text, &dep.key),
                    message: format!("[{}] {named}: {reason}", dep.table),
                });
            }
        }
        found.sort_by_key(|violation| violation.line);
        violations.append(&mut found);
    }
    Ok(())
}

/// One normal dependency of a manifest.
#[derive(Debug)]
struct Dependency {
    /// The table it is declared in, such as `dependencies`.
    table: String,
    /// The name it is declared under.
    key: String,
    /// The crate it really is, after `package = "..."` renames.
    package: String,
}

/// The `[dependencies]` and `[target.*.dependencies]` entries of a manifest.
fn dependencies(manifest: &Table, workspace_deps: &Table) -> Vec<Dependency> {
    let mut tables: Vec<(String, &Table)> = Vec::new();
    if let Some(deps) = manifest.get("dependencies").and_then(Value::as_table) {
        tables.push(("dependencies".to_owned(), deps));
    }
    if let Some(targets) = manifest.get("target").and_then(Value::as_table) {
        for (target, spec) in targets {
            if let Some(deps) = spec.get("dependencies").and_then(Value::as_table) {
                tables.push((format!("target.{target}.dependencies"), deps));
            }
        }
    }
    let mut found = Vec::new();
    for (table, deps) in tables {
        for (key, spec) in deps {
            let renamed = |spec: Option<&Value>| {
                spec.and_then(|spec| spec.get("package"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let from_workspace = spec
                .get("workspace")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let package = renamed(Some(spec))
                .or_else(|| {
                    from_workspace
                        .then(|| renamed(workspace_deps.get(key)))
                        .flatten()
                })
                .unwrap_or_else(|| key.clone());
            found.push(Dependency {
                table: table.clone(),
                key: key.clone(),
                package,
            });
        }
    }
    found
}

/// The 1-based line that declares dependency `key` in a dependency table.
fn find_line(text: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let mut in_dependencies = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            let header: String = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let is_table = |table: &str| {
                header == table
                    || (header.starts_with("target.") && header.ends_with(&format!(".{table}")))
            };
            if is_table(&format!("dependencies.{key}"))
                || is_table(&format!("dependencies.{quoted}"))
            {
                return Some(index + 1);
            }
            in_dependencies = is_table("dependencies");
            continue;
        }
        if in_dependencies {
            let rest = line
                .strip_prefix(quoted.as_str())
                .or_else(|| line.strip_prefix(key));
            if rest.is_some_and(|rest| rest.starts_with([' ', '\t', '=', '.'])) {
                return Some(index + 1);
            }
        }
    }
    None
}

fn read_toml(path: &Path) -> Result<Table> {
    fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .parse()
        .with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A throwaway repository under the system temporary directory, removed on drop.
    struct FakeRepo {
        root: PathBuf,
    }

    impl FakeRepo {
        fn new(name: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "xtask-tidy-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            if root.exists() {
                fs::remove_dir_all(&root).unwrap();
            }
            let repo = Self { root };
            repo.write(
                "Cargo.toml",
                "[workspace]\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\n\
                 healthledger-core = { path = \"crates/core\" }\n\
                 rt = { package = \"tokio\", version = \"1\" }\n\
                 tokio = \"1\"\n",
            );
            repo.crate_with("core", "");
            repo
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        /// Writes a documented crate `crates/<dir>` whose manifest ends with `tail`.
        fn crate_with(&self, dir: &str, tail: &str) {
            self.write(
                &format!("crates/{dir}/Cargo.toml"),
                &format!("[package]\nname = \"healthledger-{dir}\"\nversion = \"0.1.0\"\n\n{tail}"),
            );
            self.write(
                &format!("crates/{dir}/src/lib.rs"),
                "//! A documented crate.\n\npub fn f() {}\n",
            );
        }

        fn check(&self) -> Vec<Violation> {
            check(&self.root).unwrap()
        }
    }

    impl Drop for FakeRepo {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn rendered(violations: &[Violation]) -> Vec<String> {
        violations.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn this_repository_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let violations = check(root).unwrap();
        assert!(violations.is_empty(), "{:#?}", rendered(&violations));
    }

    #[test]
    fn a_clean_fake_repository_passes() {
        let repo = FakeRepo::new("clean");
        assert_eq!(repo.check(), []);
    }

    #[test]
    fn module_without_doc_comment_is_rejected() {
        let repo = FakeRepo::new("undocumented");
        repo.write(
            "crates/core/src/model.rs",
            "\n#![allow(dead_code)]\n//! Too late.\npub struct Model;\n",
        );
        repo.write("xtask/src/empty.rs", "\n\n");
        assert_eq!(
            rendered(&repo.check()),
            [
                "crates/core/src/model.rs:2: module does not open with a `//!` doc comment saying what it is for",
                "xtask/src/empty.rs: file is empty: a module opens with a `//!` doc comment saying what it is for",
            ]
        );
    }

    #[test]
    fn build_output_and_hidden_directories_are_skipped() {
        let repo = FakeRepo::new("skipped");
        repo.write(
            "crates/core/target/debug/build/out.rs",
            "pub fn generated() {}\n",
        );
        repo.write("xtask/.cache/x.rs", "pub fn hidden() {}\n");
        assert_eq!(repo.check(), []);
    }

    #[test]
    fn skipped_tests_panics_and_placeholders_are_rejected() {
        let repo = FakeRepo::new("banned");
        let source = [
            "//! Tests.",
            concat!("#[test] #[", "ignore = \"needs anvil\"]"),
            "fn a() {}",
            concat!("#[test] #[", "should_panic]"),
            concat!("fn b() { ", "todo", "!() }"),
            concat!("fn c() { ", "unimplemented", "!(\"later\") }"),
        ]
        .join("\n");
        repo.write("examples/quickstart.rs", &source);
        let violations = repo.check();
        let lines: Vec<_> = violations
            .iter()
            .map(|v| (v.path.to_string_lossy().into_owned(), v.line))
            .collect();
        let path = "examples/quickstart.rs".to_owned();
        assert_eq!(
            lines,
            [
                (path.clone(), Some(2)),
                (path.clone(), Some(4)),
                (path.clone(), Some(5)),
                (path, Some(6))
            ]
        );
        assert!(
            violations[0].message.contains("tests never skip"),
            "{violations:?}"
        );
    }

    #[test]
    fn core_depending_on_an_io_crate_is_rejected() {
        let repo = FakeRepo::new("core-io");
        repo.crate_with(
            "core",
            "[dependencies]\nserde = \"1\"\ntokio.workspace = true\nalloy-primitives = \"1\"\n\
             alloy-provider = { version = \"1\" }\n\n\
             [target.'cfg(unix)'.dependencies]\nsqlx = \"0.8\"\n\n\
             [dependencies.reqwest]\nversion = \"0.12\"\n",
        );
        assert_eq!(
            rendered(&repo.check()),
            [
                "crates/core/Cargo.toml:7: [dependencies] `tokio`: core must not depend on the I/O crate `tokio`: \
                 it holds domain types and ports, I/O belongs in the adapters",
                "crates/core/Cargo.toml:9: [dependencies] `alloy-provider`: core must not depend on the I/O crate \
                 `alloy-provider`: it holds domain types and ports, I/O belongs in the adapters",
                "crates/core/Cargo.toml:12: [target.cfg(unix).dependencies] `sqlx`: core must not depend on the \
                 I/O crate `sqlx`: it holds domain types and ports, I/O belongs in the adapters",
                "crates/core/Cargo.toml:14: [dependencies] `reqwest`: core must not depend on the I/O crate \
                 `reqwest`: it holds domain types and ports, I/O belongs in the adapters",
            ]
        );
    }

    #[test]
    fn renamed_io_dependencies_are_seen_through() {
        let repo = FakeRepo::new("renamed");
        repo.crate_with(
            "core",
            "[dependencies]\nrt = { workspace = true }\nstore = { package = \"object_store\", version = \"0.12\" }\n",
        );
        let violations = repo.check();
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(violations.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("`rt` (package `tokio`)"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("`store` (package `object_store`)"),
            "{messages:?}"
        );
        assert_eq!(violations[1].line, Some(7));
    }

    #[test]
    fn dev_dependencies_are_not_checked() {
        let repo = FakeRepo::new("dev");
        repo.crate_with(
            "core",
            "[dev-dependencies]\ntokio = \"1\"\nsqlx = \"0.8\"\n\n[build-dependencies]\ncc = \"1\"\n",
        );
        repo.crate_with(
            "sync",
            "[dependencies]\nhealthledger-core.workspace = true\n\n[dev-dependencies]\n\
             healthledger-cache = { path = \"../cache\" }\n",
        );
        assert_eq!(repo.check(), []);
    }

    #[test]
    fn sync_may_use_core_and_tokio_only() {
        let repo = FakeRepo::new("sync");
        repo.crate_with(
            "sync",
            "[dependencies]\nhealthledger-core.workspace = true\ntokio.workspace = true\n\
             tokio-util = \"0.7\"\nhealthledger-cache = { path = \"../cache\" }\n",
        );
        let violations = repo.check();
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(violations.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("sync must not depend on the I/O crate `tokio-util`"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("sync must not depend on `healthledger-cache`"),
            "{messages:?}"
        );
    }

    #[test]
    fn adapters_do_not_depend_on_each_other_and_only_wiring_names_them() {
        let repo = FakeRepo::new("adapters");
        repo.crate_with(
            "chain",
            "[dependencies]\nhealthledger-core.workspace = true\nhealthledger-cache.workspace = true\n\
             healthledger-sync.workspace = true\n",
        );
        repo.crate_with(
            "api",
            "[dependencies]\nhealthledger-chain.workspace = true\n",
        );
        repo.crate_with(
            "audit",
            "[dependencies]\nhealthledger-vault.workspace = true\n",
        );
        repo.write(
            "examples/Cargo.toml",
            "[package]\nname = \"healthledger-examples\"\n\n[dependencies]\nhealthledger-vault.workspace = true\n",
        );
        let violations = repo.check();
        let found: Vec<_> = violations
            .iter()
            .map(|v| (v.path.to_string_lossy().into_owned(), v.line))
            .collect();
        assert_eq!(
            found,
            [
                ("crates/audit/Cargo.toml".to_owned(), Some(6)),
                ("crates/chain/Cargo.toml".to_owned(), Some(7)),
                ("crates/chain/Cargo.toml".to_owned(), Some(8)),
            ],
            "{:#?}",
            rendered(&violations)
        );
        assert!(
            violations[0]
                .message
                .contains("only api, examples and xtask"),
            "{violations:?}"
        );
        assert!(
            violations[1]
                .message
                .contains("an adapter must not depend on `healthledger-cache`")
        );
    }

    #[test]
    fn a_directory_without_a_manifest_is_not_a_root() {
        let repo = FakeRepo::new("no-root");
        let error = check(&repo.root.join("crates")).unwrap_err().to_string();
        assert!(error.contains("has no Cargo.toml"), "{error}");
    }
}
