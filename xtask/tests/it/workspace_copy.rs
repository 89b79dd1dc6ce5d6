//! A maintainer's round trip after the vendor changes `spec/`, on a copy of the workspace: a new field in the edit
//! document, and a fourth, made-up model arriving by its document alone. `cargo xtask codegen` gives the field to the
//! edit's request and tool and gives the new model a typed request and a tool; `cargo xtask snapshots` reports exactly
//! the snapshots they moved (the new tool's as new), `--accept` records them and the next run reports none; and the
//! copy's binary calls the new model as a tool and as a command line verb against the fake, with its new field. Both
//! changes go in one round, so the copy is compiled once.
//!
//! Compiling the copy is the cost. The copy cannot build in this build's directory: cargo names a workspace member's
//! artifacts by its path relative to the workspace, so the copy's `reve-core` would overwrite this one's. So the
//! copy and a target directory of its own stay at one place in this build's target directory, updated file by file
//! (an unchanged file keeps what cargo built from it), and that target directory starts as a copy of what this build
//! compiled for everything but the workspace's own packages: the dependencies, which cargo names the same in any
//! workspace, are never compiled twice, and only the first run compiles the copy's members.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use xtask::codegen::SPEC_PATH;

/// The snapshots a new optional request field moves: the request's JSON Schema (xtask) and the tool listing
/// (reve-mcp), named as `cargo xtask snapshots` names them.
const MOVED: [&str; 2] = ["edit_image_request_schema", "edit_image_tool"];

/// The snapshot the new model's tool makes.
const NEW: &str = "sketch_image_tool";

/// The snapshot the new model moves besides: `reve-mcp --help` lists its verb.
const NEW_MODEL_MOVES: &str = "help_top";

const REQUEST: &str =
    "/paths/~1v1~1images~1generations/post/requestBody/content/application~1json/schema";

#[test]
fn a_new_field_and_a_new_model_move_exactly_their_snapshots_and_the_model_is_called() {
    let root = xtask::project_root();
    // One copy per workspace: checkouts sharing a build directory must not take turns at the same copy.
    let mut hasher = DefaultHasher::new();
    root.hash(&mut hasher);
    let place = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("workspace-copy-{:016x}", hasher.finish()));
    let copy = Copy {
        workspace: place.join("workspace"),
        target: place.join("target"),
    };
    if !copy.target.exists() {
        let build = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the temporary folder is inside the build directory");
        seed(build, &copy.target, &members(&root));
    }
    let tracked = tracked_files(&root);
    let mut files = tracked.clone();
    files.extend([
        PathBuf::from(MADE_UP_DOCUMENT),
        PathBuf::from(MADE_UP_OVERLAY),
    ]);
    sync(
        &root,
        &copy.workspace,
        &files,
        &BTreeMap::from([
            (PathBuf::from(SPEC_PATH), spec_with_field(&root)),
            (PathBuf::from(MADE_UP_DOCUMENT), made_up_document(&root)),
            (PathBuf::from(MADE_UP_OVERLAY), b"{}\n".to_vec()),
        ]),
    );

    let codegen = copy.xtask(&["codegen"]);
    assert!(codegen.status.success(), "{}", text(&codegen));
    let said = String::from_utf8_lossy(&codegen.stderr);
    assert!(
        said.contains("`cargo xtask snapshots`"),
        "codegen names the next command: {}",
        text(&codegen)
    );
    for written in [
        "crates/reve-core/src/generated/edit_image.rs",
        "crates/reve-mcp/src/generated/edit_image.rs",
        "crates/reve-core/src/generated/acme_sketch_image.rs",
        "crates/reve-mcp/src/generated/acme_sketch_image.rs",
    ] {
        assert!(
            said.contains(&format!("wrote {written}")),
            "{}",
            text(&codegen)
        );
    }
    // The new model has a typed request with its new field, its values an enum.
    let core = fs::read_to_string(
        copy.workspace
            .join("crates/reve-core/src/generated/acme_sketch_image.rs"),
    )
    .unwrap();
    for expected in [
        "pub struct SketchImageRequest",
        "pub style: Option<SketchImageRequestStyle>",
        "pub enum SketchImageRequestStyle",
    ] {
        assert!(core.contains(expected), "{expected} in {core}");
    }

    // The snapshots: the field moves the edit's two, and the new model's tool (under the name derived from its id,
    // the new field in its input schema) is new.
    let check = copy.xtask(&["snapshots"]);
    assert!(!check.status.success(), "{}", text(&check));
    let mut reported = moved();
    reported.insert(NEW.to_owned());
    reported.insert(NEW_MODEL_MOVES.to_owned());
    assert_eq!(named(&check, "Snapshot `"), reported, "{}", text(&check));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("+        \"16:9\""),
        "the diff shows the new field: {stdout}"
    );
    assert!(
        stdout.contains(&format!("Snapshot `{NEW}` is new")),
        "{stdout}"
    );
    assert!(stdout.contains("\"charcoal\""), "{stdout}");

    let accept = copy.xtask(&["snapshots", "--accept"]);
    assert!(accept.status.success(), "{}", text(&accept));
    assert_eq!(
        named(&accept, "Accepted snapshot `"),
        reported,
        "{}",
        text(&accept)
    );
    let rewritten: BTreeSet<String> = tracked
        .iter()
        .filter(|file| {
            file.extension()
                .is_some_and(|extension| extension == "snap")
        })
        .filter(|file| fs::read(root.join(file)).ok() != fs::read(copy.workspace.join(file)).ok())
        .map(|file| {
            let stem = file.file_stem().unwrap().to_string_lossy();
            stem.rsplit_once("__")
                .map_or(stem.to_string(), |(_, name)| name.to_owned())
        })
        .collect();
    let mut tracked_moves = moved();
    tracked_moves.insert(NEW_MODEL_MOVES.to_owned());
    assert_eq!(
        rewritten, tracked_moves,
        "only the moved snapshot files are rewritten"
    );

    let again = copy.xtask(&["snapshots"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(named(&again, "Snapshot `").is_empty(), "{}", text(&again));

    // Called as a tool and as a verb through the copy's binary, against the copy's fake.
    let mut test = Command::new(env!("CARGO"));
    test.current_dir(&copy.workspace)
        .args(["test", "--workspace", "--tests", "--locked", "--"])
        .args(["--ignored", "--exact", CALLED])
        .env("CARGO_TARGET_DIR", &copy.target)
        .env("CARGO_BUILD_BUILD_DIR", &copy.target);
    let called = test.output().expect("cargo runs");
    assert!(called.status.success(), "{}", text(&called));
    assert!(
        String::from_utf8_lossy(&called.stdout).contains(&format!("test {CALLED} ... ok")),
        "{}",
        text(&called)
    );
}

/// reve-mcp's test of a model added by its document, ignored where there is none.
const CALLED: &str = "family::a_model_added_by_its_document_is_a_tool_and_a_verb";

/// The made-up model's document and overlay, as a maintainer would add them to `spec/`.
const MADE_UP_DOCUMENT: &str = "spec/acme-sketch-image.openapi.json";
const MADE_UP_OVERLAY: &str = "spec/acme-sketch-image.overlay.merge-patch.json";

/// The edit document made into one of a made-up model: another id and title, and a `style` enum beside its fields.
fn made_up_document(root: &Path) -> Vec<u8> {
    let text = fs::read_to_string(root.join(SPEC_PATH)).expect("the spec is checked in");
    let mut spec: Value = serde_json::from_str(&text).expect("the spec is JSON");
    let request = spec
        .pointer_mut(REQUEST)
        .expect("the spec has a request schema");
    request["title"] = json!("acme/sketch-image");
    request["properties"]["model"]["enum"] = json!(["acme/sketch-image"]);
    request["properties"]
        .as_object_mut()
        .expect("the request schema has properties")
        .insert(
            "style".to_owned(),
            json!({"type": "string", "enum": ["pencil", "charcoal"], "description": "The drawing medium."}),
        );
    serde_json::to_vec_pretty(&spec).expect("JSON serialises")
}

fn moved() -> BTreeSet<String> {
    MOVED.map(str::to_owned).into()
}

struct Copy {
    workspace: PathBuf,
    target: PathBuf,
}

impl Copy {
    /// `cargo xtask <args>` in the copy, building into the copy's own target directory (and build directory, should
    /// the caller's configuration put that elsewhere).
    fn xtask(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO"));
        command
            .current_dir(&self.workspace)
            .arg("xtask")
            .args(args)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_BUILD_BUILD_DIR", &self.target);
        command.output().expect("cargo runs")
    }
}

/// The names of the workspace's packages.
fn members(root: &Path) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo metadata: {}", text(&output));
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .map(|package| {
            package["name"]
                .as_str()
                .expect("a package has a name")
                .to_owned()
        })
        .collect()
}

/// Seeds `target` with what the dev profile of the build directory `build` holds for every package but `members`:
/// each compiled unit's fingerprint (`.fingerprint/<package>-<hash>`), build script output (`build/<package>-<hash>`)
/// and artifacts (`deps/*-<hash>*`), with their modification times, which cargo compares.
///
/// Libraries are hard links, not copies: copies doubled the build directory, which filled CI's disk. A link is safe
/// because rustc and the linker never write a library in place: they write a new file and rename it over the old
/// one (or unlink it first), so a unit the copy rebuilds gets a file of its own. Fingerprints, dependency lists
/// and build script output are small and are rewritten in place, so they are copied.
fn seed(build: &Path, target: &Path, members: &BTreeSet<String>) {
    let from = build.join("debug");
    let to = target.join("debug");
    let Ok(fingerprints) = fs::read_dir(from.join(".fingerprint")) else {
        return;
    };
    let mut artifacts: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(from.join("deps")).expect("the build directory has deps") {
        let path = entry.expect("deps is readable").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some((_, hash)) = name
            .split('.')
            .next()
            .and_then(|stem| stem.rsplit_once('-'))
        {
            artifacts.entry(hash.to_owned()).or_default().push(path);
        }
    }
    fs::create_dir_all(to.join("deps")).expect("the copy's target is writable");
    for entry in fingerprints {
        let unit = entry.expect("fingerprints are readable").file_name();
        let unit = unit.to_string_lossy();
        let Some((package, hash)) = unit.rsplit_once('-') else {
            continue;
        };
        if members.contains(package) {
            continue;
        }
        copy_tree(
            &from.join(".fingerprint").join(&*unit),
            &to.join(".fingerprint").join(&*unit),
        );
        copy_tree(
            &from.join("build").join(&*unit),
            &to.join("build").join(&*unit),
        );
        for artifact in artifacts.get(hash).into_iter().flatten() {
            let seeded = to.join("deps").join(artifact.file_name().unwrap());
            let library = artifact.extension().is_some_and(|extension| {
                ["rlib", "rmeta", "so"].contains(&&*extension.to_string_lossy())
            });
            if library {
                fs::hard_link(artifact, &seeded)
                    .expect("the copy's target is on the build directory's disk");
            } else {
                copy_tree(artifact, &seeded);
            }
        }
    }
}

/// Copies a file, or a folder and everything in it, keeping modification times; a missing `from` copies nothing.
fn copy_tree(from: &Path, to: &Path) {
    let Ok(metadata) = fs::symlink_metadata(from) else {
        return;
    };
    if metadata.is_dir() {
        fs::create_dir_all(to).expect("the copy's target is writable");
        for entry in fs::read_dir(from).expect("the build directory is readable") {
            let entry = entry.expect("the build directory is readable");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else if metadata.is_file() {
        fs::copy(from, to).expect("the copy's target is writable");
        fs::File::options()
            .write(true)
            .open(to)
            .and_then(|file| file.set_modified(metadata.modified()?))
            .expect("the copy's target is writable");
    }
}

/// The workspace's files as a checkout of the working tree would hold them: tracked or new, not ignored.
fn tracked_files(root: &Path) -> Vec<PathBuf> {
    let output = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("git runs (the copy is made from the git checkout)");
    assert!(output.status.success(), "git ls-files: {}", text(&output));
    String::from_utf8(output.stdout)
        .expect("file names are UTF-8")
        .split('\0')
        .filter(|name| !name.is_empty() && root.join(name).is_file())
        .map(PathBuf::from)
        .collect()
}

/// The published spec with a new optional enum field in its request, as the existing codegen test adds it.
fn spec_with_field(root: &Path) -> Vec<u8> {
    let text = fs::read_to_string(root.join(SPEC_PATH)).expect("the spec is checked in");
    let mut spec: Value = serde_json::from_str(&text).expect("the spec is JSON");
    spec.pointer_mut(REQUEST)
        .and_then(|request| request["properties"].as_object_mut())
        .expect("the request schema has properties")
        .insert(
            "aspect_ratio".to_owned(),
            json!({"type": "string", "enum": ["1:1", "16:9"], "description": "Shape of the output image."}),
        );
    serde_json::to_vec_pretty(&spec).expect("JSON serialises")
}

/// Makes `copy` hold exactly `files` of `root`, with `overrides` instead of some of them, writing only what differs.
fn sync(root: &Path, copy: &Path, files: &[PathBuf], overrides: &BTreeMap<PathBuf, Vec<u8>>) {
    for file in files {
        let wanted = overrides
            .get(file)
            .cloned()
            .unwrap_or_else(|| fs::read(root.join(file)).expect("a listed file is readable"));
        let target = copy.join(file);
        if fs::read(&target).ok().as_ref() != Some(&wanted) {
            fs::create_dir_all(target.parent().expect("a file has a folder")).expect("mkdir");
            fs::write(&target, wanted).expect("the copy is writable");
        }
    }
    let keep: BTreeSet<PathBuf> = files.iter().map(|file| copy.join(file)).collect();
    let mut folders = vec![copy.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).expect("the copy is readable") {
            let path = entry.expect("the copy is readable").path();
            if path.is_dir() {
                folders.push(path);
            } else if !keep.contains(&path) {
                fs::remove_file(&path).expect("the copy is writable");
            }
        }
    }
}

/// The snapshot names the report gives after `prefix`.
fn named(output: &Output, prefix: &str) -> BTreeSet<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix(prefix)?.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
