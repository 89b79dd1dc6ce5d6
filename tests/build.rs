//! Lists the vendor's documents in `spec/` for the fake API, each included in the build, so that
//! a model whose document is added there is served (and checked against its document) with no
//! edit here, as reve's own code gets it through `cargo xtask codegen`.

use std::path::Path;

fn main() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec");
    // A document added or removed changes the folder.
    println!("cargo::rerun-if-changed={}", spec.display());
    let mut documents: Vec<_> = std::fs::read_dir(&spec)
        .expect("spec/ is beside tests/")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.to_string_lossy().ends_with(".openapi.json"))
        .collect();
    documents.sort();
    let list: String = documents
        .iter()
        .map(|path| {
            let path = path.canonicalize().expect("a listed document exists");
            format!("    include_str!({:?}),\n", path.display().to_string())
        })
        .collect();
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("documents.rs");
    std::fs::write(
        out,
        format!("/// Every document in `spec/`, as published.\nconst DOCUMENTS: &[&str] = &[\n{list}];\n"),
    )
    .expect("OUT_DIR is writable");
}
