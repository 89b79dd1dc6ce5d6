//! `serve`'s own flags: how the server listens, which local files it reads, what the model gets
//! and how its jobs run. A bare `reve-mcp` takes them too (see [`super::Cli`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;
use secrecy::SecretString;

use super::{EditSettings, parse_at_least_one};
use crate::edit::DEFAULT_MAX_EDITS_IN_FLIGHT;
use crate::jobs::{DEFAULT_MAX_WAIT, DEFAULT_REUSE_WINDOW, DEFAULT_SETTLE_AFTER};
use crate::mcp::hosts::StructuredContent;
use crate::preview::PreviewLimits;
use crate::transport::http::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_SESSIONS, HttpOptions,
};

#[cfg(unix)]
const PATH_LIST_SEPARATOR: char = ':';
#[cfg(windows)]
const PATH_LIST_SEPARATOR: char = ';';

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

    /// How many seconds after an edit that may have been charged ended
    /// (killed, cancelled or cut off after sending) the provider's usage
    /// logs may settle it as not charged, once they list every attempt it
    /// sent (each retry is recorded before it is sent), all failed: a margin
    /// for a row recorded late. A charge they list settles it at once.
    #[arg(help_heading = "Jobs", long, env = "REVE_SETTLE_AFTER_SECS", default_value_t = DEFAULT_SETTLE_AFTER.as_secs())]
    pub settle_after_secs: u64,

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

fn parse_token(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("the token is empty".to_owned());
    }
    Ok(SecretString::from(value))
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
