//! Command-line flags and environment variables, resolved once at start-up.
//!
//! Precedence is flag, then environment, then default: clap's `env` support
//! gives exactly that, and `--help` then documents every variable beside its
//! flag so there is one place to read.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::preview::PreviewBudget;

/// Edit images with plain-language instructions through the AIML API model
/// reve/edit-image. With no subcommand, serves the `edit_image` tool over MCP
/// on stdin/stdout (what Claude Desktop, Claude Code, Cursor and VS Code
/// launch).
///
/// The API key is read from AIML_API_KEY (or AIMLAPI_API_KEY) only, never
/// from a flag: command lines are visible to every user of the machine.
#[derive(Debug, Parser)]
#[command(name = "reve-mcp", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (the default when no subcommand is given).
    Serve,
}

/// Every knob of the server, shared by all subcommands.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Base URL of the AIML API. A trailing `/` or `/v1` is accepted.
    #[arg(long, env = "AIML_API_BASE_URL", global = true)]
    pub base_url: Option<String>,

    /// Folder where edited images are saved (created on demand). Default: a
    /// `reve` folder in your Pictures folder, or in your data folder when
    /// there is no Pictures folder; never the working directory, which MCP
    /// clients often set to `/`.
    #[arg(long, env = "REVE_OUTPUT_DIR", global = true)]
    pub output_dir: Option<PathBuf>,

    /// Folders local input images may be read from. Repeat the flag, or give
    /// a list separated like PATH in the variable. The client's MCP roots are
    /// allowed too; with neither, your home folder. The output folder is
    /// always allowed, so a result can be edited again.
    #[arg(
        long = "allowed-dir",
        env = "REVE_ALLOWED_DIRS",
        value_delimiter = PATH_LIST_SEPARATOR,
        global = true
    )]
    pub allowed_dirs: Vec<PathBuf>,

    /// Overall deadline of one edit in seconds, retries and download included.
    #[arg(long, env = "REVE_TIMEOUT_SECS", default_value_t = 300, global = true)]
    pub timeout_secs: u64,

    /// Retries after a rate limit, a server error or a dropped connection.
    #[arg(long, env = "REVE_MAX_RETRIES", default_value_t = 2, global = true)]
    pub max_retries: u32,

    /// Largest local input image, in bytes.
    #[arg(long, env = "REVE_MAX_INPUT_BYTES", default_value_t = 20 * 1024 * 1024, global = true)]
    pub max_input_bytes: u64,

    /// Largest base64 size of the inline preview returned to the model, in bytes.
    #[arg(long, env = "REVE_PREVIEW_MAX_BYTES", default_value_t = PreviewBudget::default().max_base64_bytes, global = true)]
    pub preview_max_bytes: usize,

    /// How the API hands back the result: `url` (it publishes the image and
    /// the tool returns that URL too, then downloads it) or `base64` (the
    /// image comes inline in the response; no URL, one round trip less).
    #[arg(long, env = "REVE_RESPONSE_MODE", value_enum, default_value_t = ResponseMode::Url, global = true)]
    pub response_mode: ResponseMode,

    /// Longest edge of the inline preview, in pixels.
    #[arg(long, env = "REVE_PREVIEW_MAX_EDGE", default_value_t = PreviewBudget::default().max_edge_px, global = true)]
    pub preview_max_edge: u32,
}

/// The vendor's `convert_base64_to_url`, as a choice a user can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponseMode {
    Url,
    Base64,
}

impl ResponseMode {
    pub fn convert_base64_to_url(self) -> bool {
        self == ResponseMode::Url
    }
}

#[cfg(unix)]
const PATH_LIST_SEPARATOR: char = ':';
#[cfg(windows)]
const PATH_LIST_SEPARATOR: char = ';';

impl Settings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn preview_budget(&self) -> PreviewBudget {
        PreviewBudget {
            max_base64_bytes: self.preview_max_bytes,
            max_edge_px: self.preview_max_edge,
        }
    }

    /// The output folder the user chose, or the per-user default.
    pub fn output_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.output_dir {
            return Ok(dir.clone());
        }
        dirs::picture_dir()
            .or_else(dirs::data_dir)
            .map(|dir| dir.join("reve"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot find a per-user Pictures or data folder: set REVE_OUTPUT_DIR or --output-dir"
                )
            })
    }
}
