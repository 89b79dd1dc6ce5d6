//! Command-line flags and environment variables, resolved once at start-up
//! into the plain options the rest of the crate takes; nothing else here
//! knows clap.
//!
//! Precedence is flag, then environment, then default: clap's `env` support
//! gives exactly that, and `--help` then documents every variable beside its
//! flag so there is one place to read.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::edit::{DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT, EditorOptions, ResponseMode};
use crate::edit_command::{Color, EditCommand};
use crate::jobs::store::DEFAULT_LEASE;
use crate::jobs::store::redis::RedisOptions;
use crate::jobs::{DEFAULT_SETTLE_AFTER, JobOptions, JobStore};
use crate::preview::PreviewLimits;

#[cfg(test)]
mod reference;
mod serve;

pub use serve::{ServeArgs, ServeFlags};

/// Create, edit and remix images with plain-language instructions through the
/// AIML API's Reve models. With no subcommand, serves their tools
/// (`create_image`, `edit_image`, `remix_images`) over MCP on stdin/stdout
/// (what Claude Desktop, Claude Code, Cursor and VS Code launch); serve's
/// flags (`reve-mcp serve --help`) work there without the word `serve`.
///
/// The API key is read from AIML_API_KEY (or AIMLAPI_API_KEY) only, never
/// from a flag: command lines are visible to every user of the machine.
///
/// Logs go to stderr only (stdout carries the protocol); RUST_LOG sets their
/// filter, by default `info,rmcp=warn` (`warn` for `edit`).
#[derive(Debug, Parser)]
#[command(
    name = "reve-mcp",
    version = crate::mcp::server::version_text(),
    about,
    long_about,
    mut_args = shown_at_the_top_level_only_if_global
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serve's flags, for a bare `reve-mcp` (which serves stdio): a desktop configuration's
    /// `"args": ["--max-wait-secs", "30"]` names no subcommand.
    #[command(flatten)]
    pub serve: ServeFlags,
    #[command(flatten)]
    pub store: StoreSettings,
}

/// The top level's help lists the commands and the store's flags, which every command takes;
/// serve's flags are `reve-mcp serve --help`'s to list.
fn shown_at_the_top_level_only_if_global(arg: clap::Arg) -> clap::Arg {
    let global = arg.is_global_set();
    arg.hide(!global)
}

/// A command's help with its examples (its `before_help`) right after its usage, before the flags:
/// what a person reading `--help` looks for first.
pub(crate) const EXAMPLES_FIRST: &str =
    "{about-with-newline}\n{usage-heading} {usage}\n\n{before-help}{all-args}{after-help}";

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (the default when no subcommand is given), or
    /// over Streamable HTTP with --http.
    Serve(ServeArgs),
    /// Edit images from a terminal or a script, without an MCP client.
    #[command(
        long_about = crate::edit_command::LONG_ABOUT,
        before_help = crate::edit_command::EXAMPLES,
        help_template = EXAMPLES_FIRST
    )]
    Edit(EditArgs),
    #[command(flatten)]
    Model(crate::verbs::ModelVerb),
    /// List recent edit jobs, newest first: id, state, when, and the saved
    /// result or what went wrong.
    Jobs(JobsArgs),
    /// Print the usage the API reported, per UTC day and in total.
    Usage,
    /// Show a finished job's pictures before and after in the viewer, as a page opened in
    /// your browser.
    View(ViewArgs),
    /// The skill on getting good pictures through this server (SKILL.md), which the server
    /// also serves to clients of the Skills extension: print it, or install it where agents
    /// that read skills from disk look.
    #[command(subcommand)]
    Skill(SkillCommand),
}

/// What `reve-mcp skill` does.
#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// Print SKILL.md.
    Show,
    /// Write SKILL.md as DIR/reve-pictures/SKILL.md and print its path.
    Install(SkillInstallArgs),
}

/// The arguments of `reve-mcp skill install`.
#[derive(Debug, Args)]
pub struct SkillInstallArgs {
    /// The folder of skills to install it into. Default: ~/.claude/skills, where Claude Code
    /// looks for your own skills; give another agent's skills folder here.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace a SKILL.md there that differs from this version's (one changed by hand).
    #[arg(long)]
    pub force: bool,
}

/// The arguments of `reve-mcp view`.
#[derive(Debug, Args)]
#[command(
    before_help = "Examples:\n  reve-mcp view --last\n  reve-mcp view 3f2a9c1e --no-open",
    help_template = EXAMPLES_FIRST
)]
pub struct ViewArgs {
    /// The job to show: its id, or the start of it that `reve-mcp jobs` prints.
    #[arg(
        value_name = "JOB_ID",
        required_unless_present = "last",
        conflicts_with = "last"
    )]
    pub job: Option<String>,
    /// Show the newest job that succeeded.
    #[arg(long)]
    pub last: bool,
    /// Write the page and print its path, without opening a browser.
    #[arg(long)]
    pub no_open: bool,
}

/// The arguments of `reve-mcp jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// How many jobs to list.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: u32,
    /// Also list the jobs refused before anything was sent (nothing was charged for them).
    #[arg(long)]
    pub all: bool,
    /// One JSON object per job and line, with the whole id, prompt and paths.
    #[arg(long)]
    pub json: bool,
    /// The jobs as lines of versions: each picture made from an earlier result (given as
    /// job:JOB_ID or reve://jobs/JOB_ID/result) under the job it came from.
    #[arg(long, conflicts_with = "json")]
    pub tree: bool,
}

/// A store URL, checked for its scheme only: the rest is the Redis client's to read, and the
/// URL (which may hold a password) is kept secret.
fn parse_store(value: &str) -> Result<SecretString, String> {
    if value.starts_with("redis://") || value.starts_with("rediss://") {
        return Ok(SecretString::from(value));
    }
    Err("expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB (without --store, jobs are kept in the SQLite file of the state folder)".to_owned())
}

/// How a model's work reaches the API, where its results go and what a day may spend: what
/// every command that runs a model (`serve`, `edit`, `create`, `remix`) takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "The API and the results")]
pub struct EditSettings {
    /// Base URL of the AIML API. A trailing `/` or `/v1` is accepted. One
    /// with `user:password@` is refused (it would replace the key with Basic
    /// auth); plain `http://` to anything but loopback starts with a warning
    /// that the key travels in clear.
    #[arg(long, env = "AIML_API_BASE_URL", default_value = reve_core::DEFAULT_BASE_URL)]
    pub base_url: String,

    /// Folder where results are saved (created on demand); never the working
    /// directory, which MCP clients often set to `/`, nor the hidden state
    /// folder. Default: a `reve` folder in your Pictures folder
    /// (`~/Pictures/reve`, or where your desktop's user-dirs put Pictures).
    #[arg(long, env = "REVE_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,

    /// Overall deadline of one edit in seconds, retries and download included.
    #[arg(long, env = "REVE_TIMEOUT_SECS", default_value_t = reve_core::DEFAULT_TIMEOUT.as_secs())]
    pub timeout_secs: u64,

    /// Retries after a rate limit, a server error or a dropped connection
    /// (408, 429, 5xx), each after the wait the API asks for or a backoff.
    #[arg(long, env = "REVE_MAX_RETRIES", default_value_t = reve_core::DEFAULT_MAX_RETRIES)]
    pub max_retries: u32,

    /// Largest local input image, in bytes.
    #[arg(long, env = "REVE_MAX_INPUT_BYTES", default_value_t = reve_core::DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,

    /// How the API hands back the result: `url` (it publishes the image and
    /// the tool returns that URL too, then downloads it) or `base64` (the
    /// image comes inline in the response; no URL, one round trip less).
    #[arg(
        long,
        env = "REVE_RESPONSE_MODE",
        default_value = "url",
        value_parser = PossibleValuesParser::new(["url", "base64"])
            .map(|mode| if mode == "url" { ResponseMode::Url } else { ResponseMode::Base64 }),
    )]
    pub response_mode: ResponseMode,

    /// Request bodies (input pictures as base64) held at once while they are
    /// built and sent, in bytes; an edit whose body does not fit waits.
    #[arg(long, env = "REVE_MAX_UPLOAD_BYTES_IN_FLIGHT", default_value_t = DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT)]
    pub max_upload_bytes_in_flight: u64,

    /// Refuse to start an edit once the usage the API reported today (UTC)
    /// reaches this many credits (tokens, where the API reports tokens),
    /// counting the edits that may have been charged at what the last one
    /// cost. Calls that only the edits in flight would take past it wait for
    /// them, so concurrent calls go over it by one edit at most. Counted from
    /// the job store, so it holds across restarts and for every server
    /// sharing the store. Default: no limit.
    #[arg(long, env = "REVE_MAX_CREDITS_PER_DAY")]
    pub max_credits_per_day: Option<f64>,

    /// Refuse, before anything is sent, an edit that would take what today
    /// (UTC) costs past this many US dollars: what the answers said each
    /// edit cost, each edit that may have been charged counted at its
    /// model's price until the provider's usage logs settle it, and this
    /// edit at its model's live price. Held by the same step as
    /// --max-credits-per-day, across restarts and servers sharing the store.
    /// Default: no limit.
    #[arg(long, env = "REVE_MAX_USD_PER_DAY", value_parser = parse_positive_dollars)]
    pub max_usd_per_day: Option<f64>,
}

/// Where jobs are recorded: every command reads or writes the same store, so these flags are
/// taken before or after any subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Job store (every command)")]
pub struct StoreSettings {
    /// Folder of the job store (jobs.sqlite3) and the previews kept for
    /// get_edit. Default: a `reve` folder in your local data folder.
    #[arg(long, env = "REVE_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// Where jobs are recorded: a Redis shared by every replica behind a
    /// load balancer (redis://HOST:PORT/DB, or rediss:// for TLS), instead
    /// of the SQLite file in the state folder. The password comes from
    /// REVE_REDIS_PASSWORD (or the URL); run Redis with appendonly on, so a
    /// restart keeps the jobs. Default: the SQLite file.
    #[arg(long, env = "REVE_STORE", hide_env_values = true, value_name = "URL", value_parser = parse_store, global = true)]
    pub store: Option<SecretString>,

    /// With --store rediss://: a PEM file of the CA (or CAs) that Redis's
    /// certificate must chain to, in place of the system's roots. The API's
    /// certificate is still checked against the system's roots.
    #[arg(long, env = "REVE_REDIS_CA_FILE", value_name = "PEM", global = true)]
    pub redis_ca_file: Option<PathBuf>,

    /// How long a process's claim on its running edits lasts without
    /// renewal, in seconds. A replica that dies leaves its edits to the
    /// others this long after its last renewal (on one machine, at once).
    #[arg(long, env = "REVE_LEASE_SECS", default_value_t = DEFAULT_LEASE.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub lease_secs: u64,
}

impl EditSettings {
    /// The client's configuration: the key and base URL from the environment,
    /// the rest from these settings.
    pub fn client_config(&self) -> anyhow::Result<reve_core::Config> {
        let mut config = reve_core::Config::from_env()
            .context("reading AIML_API_KEY / AIML_API_BASE_URL")?
            .with_timeout(Duration::from_secs(self.timeout_secs))
            .with_max_retries(self.max_retries)
            .with_max_input_bytes(self.max_input_bytes);
        if self.base_url != config.base_url() {
            config = config.with_base_url(&self.base_url).context("--base-url")?;
        }
        Ok(config)
    }

    /// What the edit pipeline is told: whether it saves, the previews it makes and how many
    /// edits run at once.
    pub fn editor_options(
        &self,
        saves: bool,
        preview: Option<PreviewLimits>,
        max_edits_in_flight: usize,
    ) -> anyhow::Result<EditorOptions> {
        Ok(EditorOptions {
            output_dir: self.output_dir()?,
            max_input_bytes: self.max_input_bytes,
            response_mode: self.response_mode,
            saves,
            preview,
            max_edits_in_flight,
            max_upload_bytes_in_flight: self.max_upload_bytes_in_flight,
        })
    }

    /// How jobs run for `serve` (`Some(flags)`) or the command line (`None`: it waits for every
    /// edit).
    pub fn job_options(&self, serve: Option<&ServeFlags>) -> JobOptions {
        JobOptions {
            max_wait: serve.map(|flags| Duration::from_secs(flags.max_wait_secs)),
            reuse_window: serve.map_or(Duration::ZERO, |flags| {
                Duration::from_secs(flags.reuse_window_secs)
            }),
            // The command line stops what was sent only on a second Ctrl-C (see `edit_command`).
            cancel_aborts: serve.is_some_and(|flags| flags.cancel_aborts),
            max_credits_per_day: self.max_credits_per_day,
            max_usd_per_day: self.max_usd_per_day,
            settle_after: serve.map_or(DEFAULT_SETTLE_AFTER, |flags| {
                Duration::from_secs(flags.settle_after_secs)
            }),
        }
    }

    /// The output folder the user chose, or the per-user default.
    fn output_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.output_dir {
            return Ok(dir.clone());
        }
        // Without XDG user-dirs (servers, WSL, containers, many desktops) `picture_dir` knows
        // no Pictures folder: `~/Pictures` is still where people look for pictures, and the
        // per-user data folder (the state folder's home) is hidden.
        dirs::picture_dir()
            .or_else(|| dirs::home_dir().map(|home| home.join("Pictures")))
            .map(|dir| dir.join("reve"))
            .ok_or_else(|| {
                anyhow::anyhow!("cannot find your home folder: set REVE_OUTPUT_DIR or --output-dir")
            })
    }
}

impl StoreSettings {
    /// The folder of the job store: the one chosen, or the per-user default.
    pub fn state_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Ok(dir.clone());
        }
        dirs::data_local_dir()
            .map(|dir| dir.join("reve"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot find a per-user data folder: set REVE_STATE_DIR or --state-dir"
                )
            })
    }

    /// The job store these settings name: Redis, or the SQLite file of the state folder.
    /// Nothing is connected or opened yet.
    pub fn job_store(&self) -> anyhow::Result<Arc<dyn JobStore>> {
        let password = std::env::var("REVE_REDIS_PASSWORD")
            .ok()
            .filter(|password| !password.is_empty())
            .map(SecretString::from);
        let redis = RedisOptions {
            password,
            ca_file: self.redis_ca_file.clone(),
            lease: Duration::from_secs(self.lease_secs),
        };
        let url = self.store.as_ref().map(ExposeSecret::expose_secret);
        let state_dir = self.state_dir()?;
        Ok(crate::jobs::store::open(url, &state_dir, redis)?)
    }
}

/// The arguments of `reve-mcp edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Images to edit: file paths (relative ones are taken from the working
    /// directory), file:// URIs, http(s) URLs, data: URIs, or an earlier
    /// result as job:JOB_ID or reve://jobs/JOB_ID/result. PNG, JPEG, WebP
    /// or GIF.
    #[arg(
        value_name = "IMAGE",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub images: Vec<String>,

    /// Edit the result of an earlier job again (its id, or the start of it
    /// that `reve-mcp jobs` shows): the new job records that it came from it
    /// (`reve-mcp jobs --tree`).
    #[arg(long, value_name = "JOB_ID")]
    pub from: Option<String>,

    #[arg(short, long, help = prompt_help())]
    pub prompt: String,

    /// Where to save. A folder (one that exists, or any path ending in /)
    /// gets each result under a unique name; with a single IMAGE, a file
    /// path names the result (its extension is corrected to the real type;
    /// an existing file is never overwritten). Default: the output folder
    /// (--output-dir).
    #[arg(short, long = "output", value_name = "PATH_OR_DIR")]
    pub output: Option<PathBuf>,

    /// How many edits run at once.
    #[arg(short, long, value_name = "N", default_value = "4", value_parser = parse_jobs)]
    pub jobs: NonZeroUsize,

    /// Print one JSON object per IMAGE on stdout, one per line: `input` and
    /// the MCP tool's structured result keys, or `input` and `error`.
    #[arg(long)]
    pub json: bool,

    /// Once done, show each result before and after in the viewer, opened in your browser
    /// (as `reve-mcp view` does).
    #[arg(long)]
    pub view: bool,

    /// Colour the finish lines on a terminal: `auto` unless NO_COLOR is set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,

    #[command(flatten)]
    pub settings: EditSettings,
}

impl From<EditArgs> for EditCommand {
    fn from(args: EditArgs) -> Self {
        let images = match args.from {
            Some(job) => vec![format!("{}{job}", crate::jobs::JOB_REFERENCE_PREFIX)],
            None => args.images,
        };
        EditCommand::edits(
            images,
            &args.prompt,
            args.output,
            args.jobs,
            args.json,
            args.color,
        )
    }
}

fn prompt_help() -> String {
    format!(
        "What to change, in plain language (up to {} characters)",
        reve_core::edit_image::PROMPT_MAX_LENGTH
    )
}

pub(super) fn parse_at_least_one(text: &str) -> Result<usize, String> {
    parse_jobs(text).map(NonZeroUsize::get)
}

fn parse_jobs(text: &str) -> Result<NonZeroUsize, String> {
    let jobs: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    NonZeroUsize::new(jobs)
        .ok_or_else(|| "must be at least 1 (it is how many edits run at once)".to_owned())
}

/// A positive amount of US dollars, such as `5` or `0.50`.
fn parse_positive_dollars(text: &str) -> Result<f64, String> {
    match text.trim_start_matches('$').parse::<f64>() {
        Ok(dollars) if dollars.is_finite() && dollars > 0.0 => Ok(dollars),
        _ => Err(format!(
            "{text:?} is not a positive amount of US dollars (such as 5 or 0.50)"
        )),
    }
}
