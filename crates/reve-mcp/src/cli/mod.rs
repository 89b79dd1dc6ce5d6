//! Command-line flags and environment variables, resolved once at start-up
//! into the plain options the rest of the crate takes; nothing else here
//! knows clap.
//!
//! Precedence is flag, then environment, then default: clap's `env` support
//! gives exactly that, and `--help` then documents every variable beside its
//! flag so there is one place to read.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::edit::{
    DEFAULT_MAX_EDITS_IN_FLIGHT, DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT, EditorOptions, ResponseMode,
};
use crate::edit_command::{Color, EditCommand};
use crate::jobs::store::DEFAULT_LEASE;
use crate::jobs::store::redis::RedisOptions;
use crate::jobs::{DEFAULT_MAX_WAIT, DEFAULT_REUSE_WINDOW, JobOptions, JobStore};
use crate::mcp::hosts::StructuredContent;
use crate::preview::PreviewLimits;
use crate::transport::http::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_SESSIONS, HttpOptions,
};

#[cfg(test)]
mod reference;

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
}

/// The arguments of `reve-mcp serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// More folders local input images may be read from, as with
    /// --allowed-dir: the form in which a client's configuration (the folder
    /// picker of the Claude Desktop bundle) passes a list.
    #[arg(value_name = "FOLDER")]
    pub folders: Vec<PathBuf>,

    #[command(flatten)]
    pub flags: ServeFlags,
}

/// How the server listens, which local files it reads, what it sends back and how its jobs run:
/// `serve`'s flags, which a bare `reve-mcp` takes too.
#[derive(Debug, Clone, Args)]
pub struct ServeFlags {
    #[command(flatten)]
    pub edit: EditSettings,

    /// Folders local input images may be read from. Repeat the flag, or give
    /// a list separated like PATH in the variable. The client's MCP roots are
    /// allowed too; with neither, your home folder. The output folder is
    /// always allowed, so a result can be edited again. Over HTTP (`serve
    /// --http`) only these folders are, and none when this is not set.
    #[arg(
        long = "allowed-dir",
        env = "REVE_ALLOWED_DIRS",
        value_delimiter = PATH_LIST_SEPARATOR,
        help_heading = "Local files"
    )]
    pub allowed_dirs: Vec<PathBuf>,

    /// Let a local image be read when it has more than one hard link. Off by
    /// default: a hard link in an allowed folder may name a file from
    /// anywhere else on the same disk, and nothing in its path says so.
    #[arg(long, env = "REVE_ALLOW_HARD_LINKS", value_parser = BoolishValueParser::new(), help_heading = "Local files")]
    pub allow_hard_links: bool,

    /// Largest base64 size of the inline preview returned to the model, in bytes.
    #[arg(long, env = "REVE_PREVIEW_MAX_BYTES", default_value_t = PreviewLimits::default().max_base64_bytes, help_heading = "What the model gets")]
    pub preview_max_bytes: usize,

    /// Longest edge of the inline preview, in pixels.
    #[arg(long, env = "REVE_PREVIEW_MAX_EDGE", default_value_t = PreviewLimits::default().max_edge_px, help_heading = "What the model gets")]
    pub preview_max_edge: u32,

    /// Edits that may run at once; further calls wait their turn (reported
    /// as progress), with nothing sent to the API while they wait. Lowered
    /// at start-up if the open-file limit cannot hold them.
    #[arg(long, env = "REVE_MAX_EDITS_IN_FLIGHT", default_value_t = DEFAULT_MAX_EDITS_IN_FLIGHT, value_parser = parse_at_least_one, help_heading = "Jobs")]
    pub max_edits_in_flight: usize,

    /// Serve MCP over Streamable HTTP at http://ADDR/mcp instead of stdio.
    /// ADDR is IP:PORT, localhost:PORT or a bare PORT (on 127.0.0.1); port 0
    /// picks a free one, and the address is logged. Any address other than
    /// loopback requires --auth-token.
    #[arg(help_heading = "HTTP", long, value_name = "ADDR", value_parser = parse_http_addr)]
    pub http: Option<SocketAddr>,

    /// Bearer token every HTTP request must carry (`Authorization: Bearer
    /// TOKEN`). Prefer the variable: command lines are visible to every user
    /// of the machine.
    #[arg(
        help_heading = "HTTP",
        long,
        env = "REVE_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_token
    )]
    pub auth_token: Option<SecretString>,

    /// A browser origin allowed to call the HTTP server besides this
    /// machine's own (http(s)://localhost, 127.0.0.1 and [::1], any port),
    /// e.g. https://app.example.com or https://app.example.com:*. Requests
    /// without an Origin header (non-browser clients) are always allowed.
    /// Repeat the flag, or separate with commas in the variable.
    #[arg(
        help_heading = "HTTP",
        long = "allow-origin",
        env = "REVE_HTTP_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// A Host header value to accept besides loopback names and the bound
    /// IP: the public name clients use when the server sits behind a reverse
    /// proxy or load balancer, e.g. mcp.example.com (any port) or
    /// mcp.example.com:443. Other hosts get 403, which defeats DNS rebinding.
    #[arg(
        help_heading = "HTTP",
        long = "allow-host",
        env = "REVE_HTTP_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub allowed_hosts: Vec<String>,

    /// Keep no session state between HTTP requests, so that any replica
    /// behind a load balancer can serve any request of any client.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_STATELESS", value_parser = BoolishValueParser::new())]
    pub stateless: bool,

    /// Do not save results on this machine: they are returned inline (the
    /// preview) and by the API's URL only. Meant for hosted servers whose
    /// disk is not the user's.
    #[arg(help_heading = "Jobs", long, env = "REVE_NO_SAVE", value_parser = BoolishValueParser::new())]
    pub no_save: bool,

    /// Largest HTTP request body, in bytes (larger ones get 413). The
    /// default fits a 20 MiB input image sent inline as a data URI.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Bytes of HTTP request bodies held at once, from when each is read
    /// until its response ends; a request that finds no room within 10 s
    /// gets 503 with Retry-After.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = DEFAULT_MAX_BODY_BYTES_IN_FLIGHT)]
    pub max_body_bytes_in_flight: u64,

    /// HTTP connections open at once; more are closed as soon as they are
    /// accepted. Lowered at start-up if the open-file limit cannot hold it
    /// beside the edits in flight.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// MCP sessions open at once (not with --stateless); a client starting
    /// one more gets 503 with Retry-After. Idle sessions end after 5 minutes.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,

    /// Seconds an HTTP connection may take to send a complete request head,
    /// whether it has just connected or sits idle between requests; then it
    /// is closed. Behind a proxy that keeps connections to the server open,
    /// make the proxy's idle timeout shorter than this.
    #[arg(help_heading = "HTTP", long, env = "REVE_HTTP_IDLE_TIMEOUT_SECS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,

    /// How long a tool call waits for its edit, in seconds, before it
    /// returns a result saying the edit is still running, with a job id for
    /// get_edit. Below the 60 s most MCP clients give a call.
    #[arg(help_heading = "Jobs", long, env = "REVE_MAX_WAIT_SECS", default_value_t = DEFAULT_MAX_WAIT.as_secs())]
    pub max_wait_secs: u64,

    /// Whether tool results carry structured JSON (`structuredContent`) beside the picture and
    /// the text, and the tools declare its schema. `auto`: yes, except to a host known to drop
    /// the picture and the text when the JSON is there (Codex) unless it renders the viewer.
    /// Every fact the model needs is in both, so either alone serves it.
    #[arg(help_heading = "What the model gets", long, env = "REVE_STRUCTURED_CONTENT", value_enum, default_value_t = StructuredContent::Auto)]
    pub structured_content: StructuredContent,

    /// For how many seconds after an edit succeeded an identical call (the
    /// same picture, prompt and output name, from the same client) gets its
    /// result instead of paying again; a call identical to one still running
    /// always waits for it. 0 turns reuse off.
    #[arg(help_heading = "Jobs", long, env = "REVE_REUSE_WINDOW_SECS", default_value_t = DEFAULT_REUSE_WINDOW.as_secs())]
    pub reuse_window_secs: u64,

    /// Let a cancelled call stop its edit even after the request was sent,
    /// giving up a result that is most likely already charged for. Without
    /// it, such an edit finishes in the background and is saved, for
    /// get_edit to collect.
    #[arg(help_heading = "Jobs", long, env = "REVE_CANCEL_ABORTS", value_parser = BoolishValueParser::new())]
    pub cancel_aborts: bool,

    /// On SIGINT or SIGTERM, how long edits in flight may take to finish
    /// before the HTTP server exits anyway, in seconds.
    #[arg(
        help_heading = "HTTP",
        long,
        env = "REVE_SHUTDOWN_GRACE_SECS",
        default_value_t = 30
    )]
    pub shutdown_grace_secs: u64,
}

impl ServeFlags {
    /// The previews the model gets.
    pub fn preview_limits(&self) -> PreviewLimits {
        PreviewLimits {
            max_base64_bytes: self.preview_max_bytes,
            max_edge_px: self.preview_max_edge,
        }
    }

    /// The HTTP server's options, with at most `max_connections` connections (what the
    /// open-file limit leaves of `--max-connections`).
    pub fn http_options(&self, addr: SocketAddr, max_connections: usize) -> HttpOptions {
        HttpOptions {
            addr,
            token: self.auth_token.clone(),
            allowed_origins: self.allowed_origins.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            stateless: self.stateless,
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            max_connections,
            max_sessions: self.max_sessions,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
        }
    }
}

/// Reads `--http`: a socket address, `localhost:PORT`, or a bare port on
/// loopback, so that the short form can never expose the server.
fn parse_http_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = value.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|error| error.to_string())?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    value
        .parse()
        .map_err(|_| "expected IP:PORT (e.g. 127.0.0.1:8787), localhost:PORT or PORT".to_owned())
}

/// A store URL, checked for its scheme only: the rest is the Redis client's to read, and the
/// URL (which may hold a password) is kept secret.
fn parse_store(value: &str) -> Result<SecretString, String> {
    if value.starts_with("redis://") || value.starts_with("rediss://") {
        return Ok(SecretString::from(value));
    }
    Err("expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB (without --store, jobs are kept in the SQLite file of the state folder)".to_owned())
}

fn parse_token(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("the token is empty".to_owned());
    }
    Ok(SecretString::from(value))
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

#[cfg(unix)]
const PATH_LIST_SEPARATOR: char = ':';
#[cfg(windows)]
const PATH_LIST_SEPARATOR: char = ';';

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
    /// directory), file:// URIs, http(s) URLs or data: URIs. PNG, JPEG, WebP
    /// or GIF.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

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
        EditCommand::edits(
            args.images,
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

fn parse_at_least_one(text: &str) -> Result<usize, String> {
    parse_jobs(text).map(NonZeroUsize::get)
}

fn parse_jobs(text: &str) -> Result<NonZeroUsize, String> {
    let jobs: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    NonZeroUsize::new(jobs)
        .ok_or_else(|| "must be at least 1 (it is how many edits run at once)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_addresses_default_to_loopback() {
        let cases = [
            ("8787", "127.0.0.1:8787"),
            ("localhost:0", "127.0.0.1:0"),
            ("127.0.0.1:8787", "127.0.0.1:8787"),
            ("[::1]:9", "[::1]:9"),
            ("0.0.0.0:80", "0.0.0.0:80"),
        ];
        for (given, expected) in cases {
            assert_eq!(parse_http_addr(given).unwrap().to_string(), expected);
        }
        for bad in ["example.com:80", "localhost:x", "localhost", "70000", ""] {
            assert!(parse_http_addr(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn an_empty_token_is_refused() {
        assert!(parse_token("").is_err());
        assert!(parse_token("  ").is_err());
        assert!(parse_token("t0ken").is_ok());
    }
}
