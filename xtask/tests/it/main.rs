//! xtask's tests, as one binary so that the test build links once.

mod codegen;
mod doc_links;
mod fresh;
mod snapshot_rule;
mod workspace_copy;
