//! reve-mcp: the `edit_image` MCP tool and the `reve-mcp edit` command line over `reve-core`.
//!
//! Both are thin adapters over one edit pipeline (`edit`); the binary's `main` only parses the
//! command line (`cli`) and wires the parts together. The modules are the crate's own; what is
//! public is the facade below, each item there for a named user: the binary's wiring, the
//! bench, the devtools (`cargo xtask demo`, `cargo xtask hosts`) and the test suites. The
//! layers and what each may import are in `docs/architecture.md`.

mod access;
mod byte_pool;
mod cli;
mod descriptors;
mod edit;
mod edit_command;
// Written by `cargo xtask codegen` as prettyplease prints it; its freshness test compares it byte for byte.
#[rustfmt::skip]
mod generated;
mod generation;
mod jobs;
mod jobs_command;
mod mcp;
mod preview;
mod report;
mod skill_command;
mod transport;
mod verbs;
mod view_command;

// The binary's wiring (`main.rs`): the command line, the parts it builds and the transports
// and commands it runs.
pub use cli::{Cli, Command, EditSettings, ServeArgs, ServeFlags, SkillCommand, StoreSettings};
pub use descriptors::{connections_within, edits_within, raise_limit};
pub use edit::{
    DEFAULT_MAX_EDITS_IN_FLIGHT, DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT, Editor, EditorOptions,
    ResponseMode,
};
pub use edit_command::{EditCommand, run as run_edit_command};
pub use jobs::{
    DEFAULT_MAX_WAIT, DEFAULT_REUSE_WINDOW, JobOptions, Jobs, LOCAL_PRINCIPAL, Principal,
};
pub use jobs_command::{
    Listing as JobListing, list as list_jobs, live_prices, look_after_jobs_once,
    usage as print_usage,
};
pub use mcp::server::ReveServer;
pub use mcp::tool::{EditImageTool, LocalFilesRule};
pub use skill_command::{install as install_skill, show as show_skill};
pub use transport::{http::serve as serve_http, stdio::guard as guard_stdio};
pub use view_command::{Which as ViewWhich, view};

// The job store and the generation record, as the contract suite (on both engines) and the
// bench's store costs use them.
pub use generation::{Answer, Destination, Generation, Picture, Saving, Shown};
pub use jobs::store::redis::{RedisOptions, RedisStore};
pub use jobs::store::{
    Claim, ClaimRules, Cost, DEFAULT_LEASE, Ending, JobLifecycle, JobRecord, JobState, JobStore,
    KeptPicture, ModelSpending, Payload, PictureCache, Settled, Settlement, Spending, SqliteStore,
    UsageLedger, UsdLimit, now_ms,
};

// What the property tests and the bench measure directly: the file rules, argument parsing and
// the preview.
pub use access::{AllowedDirs, output_target};
pub use mcp::tool::parse_arguments;
pub use preview::{JPEG_QUALITIES, Preview, PreviewLimits, make_preview, make_preview_from};

// What the devtools show: the known hosts (`cargo xtask hosts`) and the standalone viewer
// (`cargo xtask demo`).
pub use mcp::hosts::{KNOWN_HOSTS, ModelSees, known_host};
pub use mcp::resources::standalone_viewer;
