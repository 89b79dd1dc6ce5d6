//! Developer tasks for the reve workspace, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! The tasks live in this library so that tests can call them directly; `main.rs` only parses arguments. xtask
//! depends only on what `cargo xtask codegen` needs, so that regenerating the types after a spec change is a short
//! build; tasks that need the fake API or an MCP client run from `xtask/devtools` (see [`devtools`]).

pub mod bench;
pub mod cargo;
pub mod codegen;
pub mod devtools;
pub mod release;
pub mod snapshots;
pub mod startup_order;

use std::path::{Path, PathBuf};

/// The workspace root, which every task's paths are relative to: the parent of this crate's directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
