//! MCP over Streamable HTTP: the same `edit_image` tool for clients that
//! cannot launch a process on this machine.
//!
//! A socket is reachable by things a stdio pipe never is: web pages the user
//! visits (through DNS rebinding or plain cross-origin requests) and, off
//! loopback, other machines. Every edit spends the operator's API credits,
//! and anyone who can connect can try to exhaust the process before any
//! token is checked.
//!
//! Each connection is accepted by our own loop, not `axum::serve`, because
//! that loop is where a hostile peer is stopped: at most `max_connections`
//! at once (more are closed on accept), headers of at most
//! [`MAX_HEADER_BYTES`], and a connection that has not sent a complete
//! request head within the idle timeout (whether it just connected or sits
//! between requests) is closed.
//!
//! Each request then passes, outermost first:
//!
//! 1. CORS: a browser's preflight (`OPTIONS`) from an allowed origin is
//!    answered here, since it carries no token and rmcp serves no `OPTIONS`;
//!    other origins get no CORS headers, and their requests still meet
//!    rmcp's 403 below;
//! 2. the bearer token, when one is set (required off loopback), compared in
//!    constant time;
//! 3. the in-flight count that graceful shutdown waits on;
//! 4. the admission of a POST ([`admission::admit`]): a declared body over the limit
//!    is answered 413 before it is read; the body then takes its share of
//!    the bytes all bodies in flight may hold, and must arrive in a time
//!    proportional to its size (408 otherwise); a new session beyond the cap
//!    gets 503; a request whose JSON-RPC id is already in flight in its
//!    session gets a JSON-RPC error;
//! 5. rmcp's `StreamableHttpService`, configured here to check `Host` and
//!    `Origin` against allow-lists (403 otherwise), cap the request body
//!    (413) and speak the protocol, with or without sessions.
//!
//! `/healthz` sits outside all of that so a load balancer can probe a
//! replica without holding the token; it reveals nothing but "ok", or 503
//! and "job store unreachable" while the job store (Redis) does not answer,
//! the details going to the log.
//!
//! When a token is required, every response to a request without it (a
//! health probe, a 401, a 404) closes its connection: clients without the
//! token cannot keep connections open between requests, so however many of
//! them poll, the connection slots stay free for those who hold it.
//!
//! A session's event streams can be resumed: every event carries an id, and a client that
//! reconnects with `Last-Event-ID` gets what it missed, the call's answer included
//! ([`resume`]).
//!
//! Without sessions, rmcp sends a response's headers with its first message,
//! which for a tool call without a progress token is its result: a proxy or
//! client that waits 30 s for headers would fail a longer edit. A POST not
//! answered within [`early::EARLY_HEADERS_AFTER`] is therefore answered at once
//! with `200` and an event stream ([`early::answer_early`]) that carries rmcp's
//! answer when it comes.

mod accept;
mod admission;
mod auth;
mod early;
mod origins;
mod refusal;
mod resume;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::mcp::server::{Health, ReveServer};
use accept::{ConnectionLimits, Signals, accept_connections};
use admission::{Admission, admit, track_in_flight};
use auth::{close_unauthenticated, require_token};
use early::answer_early;
use origins::{LOOPBACK_HOSTS, allowed_origins, check_host, cors};

/// Where the MCP endpoint lives, as most clients and examples expect.
pub const MCP_PATH: &str = "/mcp";

/// Default request body limit. A tool call carries its input image inline
/// as a data URI: the largest local input (20 MiB) is ~26.7 MiB once
/// base64-encoded, plus a little JSON, so 32 MiB fits it with room to spare
/// while still bounding what one request can make the server buffer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Largest request head (request line and headers) a client may send; a
/// longer one gets 431. An MCP request's head is well under 2 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Defaults of the limits `serve --http` can be given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

pub const DEFAULT_MAX_SESSIONS: usize = 1024;

pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: u64 = 256 * 1024 * 1024;

/// Once in-flight requests are done (or the grace period is over), how long
/// connections get to close before the process exits regardless; a client
/// that never reads its socket must not hold the shutdown hostage.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything `serve --http` was told, resolved.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub token: Option<SecretString>,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub stateless: bool,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Sessions open at once (stateful mode); a client starting one more gets 503.
    pub max_sessions: usize,
    /// How long a connection may go without sending a complete request head.
    pub idle_timeout: Duration,
    /// Bytes of request bodies held at once, from when they are read until their responses end.
    pub max_body_bytes_in_flight: u64,
}

/// Why the HTTP server did not start. None of these carry the token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {addr} without a bearer token: anyone who can reach that address \
         could spend your AIML API credits. Set REVE_HTTP_TOKEN (or --auth-token) to a long \
         random secret, or listen on 127.0.0.1"
    )]
    ExposedWithoutToken { addr: SocketAddr },
    #[error(
        "--allow-origin {0:?} is not an origin: give scheme://host[:port] like \
         https://app.example.com or http://localhost:* (no path)"
    )]
    BadOrigin(String),
    #[error("--allow-host {0:?} is not a host name or host:port like mcp.example.com:443")]
    BadHost(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot watch for shutdown signals: {0}")]
    Signals(io::Error),
    #[error(
        "the open-file limit leaves no descriptor for HTTP connections beside the edits in \
         flight; raise `ulimit -n` (LimitNOFILE= under systemd) or lower --max-edits-in-flight"
    )]
    NoConnections,
}

/// Serves `server` until SIGINT or SIGTERM, then shuts down gracefully: new
/// connections are refused at once, requests in flight (edits included) get
/// up to the grace period to finish, then every stream is closed.
pub async fn serve(server: ReveServer, options: HttpOptions) -> Result<(), HttpError> {
    if !options.addr.ip().is_loopback() && options.token.is_none() {
        return Err(HttpError::ExposedWithoutToken { addr: options.addr });
    }
    if options.max_connections == 0 {
        return Err(HttpError::NoConnections);
    }
    let protocol_stop = CancellationToken::new();
    let config = rmcp_config(&options)?.with_cancellation_token(protocol_stop.clone());
    let mut signals = Signals::new().map_err(HttpError::Signals)?;
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: options.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: options.addr,
        source,
    })?;
    if local.ip().is_unspecified() && options.allowed_hosts.is_empty() {
        tracing::warn!(
            "listening on every interface, but only requests whose Host header is a loopback \
             name are served; list the names clients use with --allow-host"
        );
    }

    let in_flight = TaskTracker::new();
    let app = router(
        server,
        config,
        &options,
        allowed_origins(&options)?,
        in_flight.clone(),
    );
    let stop_accepting = CancellationToken::new();
    let accept_loop = tokio::spawn(accept_connections(
        listener,
        app,
        ConnectionLimits::from(&options),
        stop_accepting.clone(),
    ));
    tracing::info!(
        stateless = options.stateless,
        token_required = options.token.is_some(),
        max_connections = options.max_connections,
        max_sessions = options.max_sessions,
        "listening on http://{local}{MCP_PATH}"
    );

    let signal = signals.next().await;
    stop_accepting.cancel();
    // Idle connections close now; busy ones once their response is done.
    let connections_closed = match accept_loop.await {
        Ok(connections) => tokio::spawn(connections.shutdown()),
        Err(error) => {
            tracing::warn!(%error, "the accept loop failed");
            tokio::spawn(async {})
        }
    };
    in_flight.close();
    tracing::info!(
        "{signal}: shutting down; no new connections, waiting up to {} s for {} request(s) in flight",
        options.shutdown_grace.as_secs(),
        in_flight.len()
    );
    tokio::select! {
        () = in_flight.wait() => {}
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!("grace period over; abandoning {} request(s)", in_flight.len());
        }
        signal = signals.next() => {
            tracing::warn!("{signal} again; abandoning {} request(s)", in_flight.len());
        }
    }
    // Ends the sessions and their standing SSE streams, which would
    // otherwise keep their connections, and so the accept loop, open.
    protocol_stop.cancel();
    if tokio::time::timeout(CLOSE_TIMEOUT, connections_closed)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// rmcp's transport settings: allow-lists, body limit and session mode.
fn rmcp_config(options: &HttpOptions) -> Result<StreamableHttpServerConfig, HttpError> {
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|&host| host.to_owned()).collect();
    if !options.addr.ip().is_unspecified() {
        hosts.push(options.addr.ip().to_string());
    }
    for host in &options.allowed_hosts {
        hosts.push(check_host(host)?);
    }
    Ok(StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(allowed_origins(options)?)
        .with_max_request_body_bytes(options.max_body_bytes)
        // Sessions are the "legacy" lifecycle in rmcp's terms, and what every
        // client released so far speaks; stateless serves each POST on its own.
        .with_legacy_session_mode(!options.stateless))
}

fn router(
    server: ReveServer,
    config: StreamableHttpServerConfig,
    options: &HttpOptions,
    origins: Vec<String>,
    in_flight: TaskTracker,
) -> Router {
    let health = server.clone();
    let (mcp, sessions) = if options.stateless {
        let sessions = Arc::new(NeverSessionManager::default());
        (mcp_route(server, sessions, config), None)
    } else {
        let events = resume::SharedEvents(Arc::new(resume::ResumableEvents::new()));
        let sessions = Arc::new(LocalSessionManager::default().with_event_store(Arc::new(events)));
        (mcp_route(server, sessions.clone(), config), Some(sessions))
    };
    let admission = Arc::new(Admission::new(options, sessions));
    // Sessions send their headers at once already.
    let mcp = match options.stateless {
        true => mcp.layer(middleware::from_fn(answer_early)),
        false => mcp,
    };
    let mut app = mcp
        .layer(middleware::from_fn_with_state(admission, admit))
        .layer(middleware::from_fn_with_state(in_flight, track_in_flight));
    if let Some(token) = &options.token {
        app = app.layer(middleware::from_fn_with_state(
            Arc::new(token.clone()),
            require_token,
        ));
    }
    let app = app
        .layer(cors(origins))
        .route("/healthz", get(move || healthz(health.clone())));
    match options.token {
        Some(_) => app.layer(middleware::from_fn(close_unauthenticated)),
        None => app,
    }
}

/// Whether this replica can take edits: it answers, and so does its job store.
async fn healthz(server: ReveServer) -> Response {
    match server.health().await {
        Health::Ready => "ok\n".into_response(),
        // The reason stays in the log: this endpoint answers without the token.
        Health::StoreUnreachable => {
            (StatusCode::SERVICE_UNAVAILABLE, "job store unreachable\n").into_response()
        }
        Health::StoreRefuses => (
            StatusCode::SERVICE_UNAVAILABLE,
            "job store refuses this replica (its log says why)\n",
        )
            .into_response(),
    }
}

fn mcp_route<M: SessionManager>(
    server: ReveServer,
    sessions: Arc<M>,
    config: StreamableHttpServerConfig,
) -> Router {
    let new_handler = move || Ok(server.for_new_client());
    Router::new().route_service(
        MCP_PATH,
        StreamableHttpService::new(new_handler, sessions, config),
    )
}
