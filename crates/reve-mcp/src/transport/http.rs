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
//! 4. the admission of a POST ([`admit`]): a declared body over the limit
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
//! Without sessions, rmcp sends a response's headers with its first message,
//! which for a tool call without a progress token is its result: a proxy or
//! client that waits 30 s for headers would fail a longer edit. A POST not
//! answered within [`EARLY_HEADERS_AFTER`] is therefore answered at once
//! with `200` and an event stream ([`answer_early`]) that carries rmcp's
//! answer when it comes.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;

use crate::jobs::{Jobs, Principal};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use futures::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::budget::ByteBudget;
use crate::mcp::server::ReveServer;

/// Where the MCP endpoint lives, as most clients and examples expect.
pub const MCP_PATH: &str = "/mcp";

/// Default request body limit. A tool call carries its input image inline
/// as a data URI: the largest local input (20 MiB) is ~26.7 MiB once
/// base64-encoded, plus a little JSON, so 32 MiB fits it with room to spare
/// while still bounding what one request can make the server buffer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Hosts that mean "this machine" in a `Host` header; rmcp's own default.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Browser origins served without configuration: pages this machine serves
/// itself, on any port (local development tools such as the MCP Inspector).
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// Largest request head (request line and headers) a client may send; a
/// longer one gets 431. An MCP request's head is well under 2 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Defaults of the limits `serve --http` can be given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: u64 = 256 * 1024 * 1024;

/// How long a request waits for room among the bodies in flight before it
/// is answered 503: long enough for a burst, short of any client's timeout.
const BODY_ROOM_WAIT: Duration = Duration::from_secs(10);

/// How long a body may take to arrive: a base allowance plus one second per
/// [`BODY_MIN_BYTES_PER_SEC`] of its size (of the largest allowed when it
/// declares none), so that a client trickling a body cannot hold its room
/// among the bodies in flight for ever, while a 27 MiB upload over a slow
/// link still fits.
const BODY_READ_BASE: Duration = Duration::from_secs(10);
const BODY_MIN_BYTES_PER_SEC: u64 = 256 * 1024;

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

/// How long a POST may go without an answer before its headers are sent anyway, with an event
/// stream that carries the answer when it comes ([`answer_early`]).
const EARLY_HEADERS_AFTER: Duration = Duration::from_millis(200);

/// How often an answer sent early ([`answer_early`]) says it is still alive while rmcp works:
/// rmcp's own keep-alive, as proxies expect of an event stream.
const EARLY_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The largest JSON answer of rmcp's that [`answer_early`] turns into an event: far more than
/// any result of these tools (their pictures are bounded by the preview budget).
const MAX_EARLY_JSON_BYTES: usize = 64 * 1024 * 1024;

/// Marks a response to a request that carried the right token.
#[derive(Debug, Clone, Copy)]
struct Authenticated;

/// Closes the connection after any response to a request that did not carry the token (see
/// the module's documentation): a client without it never holds a connection between
/// requests.
async fn close_unauthenticated(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.extensions().get::<Authenticated>().is_none() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Sends a POST's headers and a first line of its event stream at once when rmcp has not
/// answered within [`EARLY_HEADERS_AFTER`] (see the module's documentation), then rmcp's answer
/// in the same stream: its events as they are, or its JSON answer as one `message` event. A
/// protocol error that rmcp would have sent with a 4xx status after that moment arrives as an
/// event of the `200` stream instead; those come at once, in practice, before it.
async fn answer_early(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let mut answer = Box::pin(next.run(request));
    tokio::select! {
        response = &mut answer => return response,
        () = tokio::time::sleep(EARLY_HEADERS_AFTER) => {}
    }
    let (events, received) = tokio::sync::mpsc::channel::<axum::body::Bytes>(16);
    tokio::spawn(async move {
        let send = |bytes: &'static [u8]| events.send(axum::body::Bytes::from_static(bytes));
        if send(b": the request is being worked on\n\n").await.is_err() {
            return;
        }
        let mut keep_alive = tokio::time::interval_at(
            tokio::time::Instant::now() + EARLY_KEEP_ALIVE,
            EARLY_KEEP_ALIVE,
        );
        let response = loop {
            tokio::select! {
                response = &mut answer => break response,
                _ = keep_alive.tick() => {
                    if send(b": still working\n\n").await.is_err() {
                        return;
                    }
                }
                // The client left: dropping `answer` cancels the request as rmcp does.
                () = events.closed() => return,
            }
        };
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let body = response.into_body();
        if is_stream {
            let mut chunks = body.into_data_stream();
            while let Some(Ok(chunk)) = chunks.next().await {
                if events.send(chunk).await.is_err() {
                    return;
                }
            }
        } else if let Ok(json) = axum::body::to_bytes(body, MAX_EARLY_JSON_BYTES).await
            && !json.is_empty()
        {
            let mut event = b"event: message\ndata: ".to_vec();
            event.extend(json.iter().filter(|&&byte| byte != b'\n' && byte != b'\r'));
            event.extend_from_slice(b"\n\n");
            let _ = events.send(event.into()).await;
        }
    });
    let stream = futures::stream::unfold(received, |mut received| async move {
        received
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), received))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("a response of constant parts")
}

/// What a connection is allowed before it has sent anything worth serving.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    max_connections: usize,
    idle_timeout: Duration,
}

impl From<&HttpOptions> for ConnectionLimits {
    fn from(options: &HttpOptions) -> Self {
        Self {
            max_connections: options.max_connections,
            idle_timeout: options.idle_timeout,
        }
    }
}

/// How often, at most, a refused connection is logged: a flood must not flood the log too.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until `stop` fires and serves each with hyper's HTTP/1 server under
/// `limits`, returning the handle that closes the connections still open. A connection over the
/// cap is closed at once, so it neither waits in the kernel's backlog nor takes a descriptor.
async fn accept_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> GracefulShutdown {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let connections = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head: on a new connection and
        // between requests on a kept-alive one. It is the header-read and the idle timeout.
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return connections,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of descriptors (EMFILE) or a connection reset before it was accepted:
                // back off briefly instead of spinning.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                last_refusal_log = Some(tokio::time::Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "refusing connections: the connection limit is reached"
                );
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _open = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// The browser origins served: this machine's, and those the operator added.
fn allowed_origins(options: &HttpOptions) -> Result<Vec<String>, HttpError> {
    let mut origins: Vec<String> = LOOPBACK_ORIGINS
        .iter()
        .map(|&origin| origin.to_owned())
        .collect();
    for origin in &options.allowed_origins {
        origins.push(normalize_origin(origin)?);
    }
    Ok(origins)
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
    let jobs = server.jobs().clone();
    let (mcp, sessions) = if options.stateless {
        let sessions = Arc::new(NeverSessionManager::default());
        (mcp_route(server, sessions, config), None)
    } else {
        let sessions = Arc::new(LocalSessionManager::default());
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
        .route("/healthz", get(move || healthz(jobs.clone())));
    match options.token {
        Some(_) => app.layer(middleware::from_fn(close_unauthenticated)),
        None => app,
    }
}

/// Whether this replica can take edits: it answers, and so does its job store.
async fn healthz(jobs: Jobs) -> Response {
    match jobs.store().health().await {
        Ok(()) => "ok\n".into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: the job store does not answer");
            // The reason stays in the log: this endpoint answers without the token.
            let body = match error.is_transient() {
                true => "job store unreachable\n",
                false => "job store refuses this replica (its log says why)\n",
            };
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

/// CORS for the allowed browser origins, so that a web page served from one
/// of them (a browser-based MCP client) can call the server.
fn cors(origins: Vec<String>) -> CorsLayer {
    let listed = move |origin: &HeaderValue, _: &Parts| {
        origin
            .to_str()
            .is_ok_and(|origin| origin_is_listed(origin, &origins))
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(listed))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
        ])
        .expose_headers([HeaderName::from_static("mcp-session-id")])
        .max_age(Duration::from_secs(600))
}

/// Whether `origin` (as a browser sends it) is one of `listed`, in the forms
/// [`allowed_origins`] produces: `scheme://host:*` for any port, otherwise
/// `scheme://host:port`; the same rule rmcp applies to every other request.
fn origin_is_listed(origin: &str, listed: &[String]) -> bool {
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    listed.iter().any(|entry| {
        let (base, any_port) = match entry.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (entry.as_str(), false),
        };
        url::Url::parse(base).is_ok_and(|allowed| {
            allowed.scheme() == origin.scheme()
                && allowed.host_str() == origin.host_str()
                && (any_port || allowed.port_or_known_default() == origin.port_or_known_default())
        })
    })
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

/// What every POST must get past before rmcp sees it: the limits on one body, on all bodies
/// in flight and on sessions, and the ids in flight in each session.
struct Admission {
    max_body_bytes: usize,
    /// Room for [`HttpOptions::max_body_bytes_in_flight`].
    body_room: ByteBudget,
    sessions: Option<Arc<LocalSessionManager>>,
    max_sessions: usize,
    /// (session id, JSON-RPC id as sent) of every request being served.
    ids_in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Admission {
    fn new(options: &HttpOptions, sessions: Option<Arc<LocalSessionManager>>) -> Self {
        Self {
            max_body_bytes: options.max_body_bytes,
            body_room: ByteBudget::new(options.max_body_bytes_in_flight),
            sessions,
            max_sessions: options.max_sessions,
            ids_in_flight: Arc::default(),
        }
    }

    async fn sessions_full(&self) -> bool {
        match &self.sessions {
            Some(sessions) => sessions.sessions.read().await.len() >= self.max_sessions,
            None => false,
        }
    }
}

/// Admits a POST, or answers it here (see the module's documentation, step 4). The body's room
/// and its id are held until the response has been sent to the end, or dropped.
async fn admit(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&declared| declared > admission.max_body_bytes as u64)
    {
        return too_large(Some(declared), admission.max_body_bytes);
    }
    // Decided by the headers alone, before any room is taken or byte read.
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if session.is_none() && admission.sessions_full().await {
        return busy(&format!(
            "the server has as many sessions open as it may ({}); retry later, or close an \
             unused session with DELETE",
            admission.max_sessions
        ));
    }
    // What it declares, or the most it may be when it declares nothing.
    let expected = declared.unwrap_or(admission.max_body_bytes as u64);
    let room = admission.body_room.reserve(expected);
    let Ok(Ok(room)) = tokio::time::timeout(BODY_ROOM_WAIT, room).await else {
        return busy(
            "the server is holding as many request bodies as it may; retry in a few seconds",
        );
    };
    let (parts, body) = request.into_parts();
    let allowed = BODY_READ_BASE + Duration::from_secs(expected / BODY_MIN_BYTES_PER_SEC);
    let body = match tokio::time::timeout(
        allowed,
        axum::body::to_bytes(body, admission.max_body_bytes),
    )
    .await
    {
        Err(_) => return body_too_slow(allowed),
        Ok(Err(_)) => return too_large(None, admission.max_body_bytes),
        Ok(Ok(body)) => body,
    };
    let id_in_flight = match session.zip(jsonrpc_request_id(&body)) {
        Some(key) => match IdInFlight::claim(&admission.ids_in_flight, key) {
            Ok(claimed) => Some(claimed),
            Err(id) => return duplicate_id(&id),
        },
        None => None,
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = (&room, &id_in_flight);
            chunk
        }))
    })
}

/// The id of a JSON-RPC request (not a notification, not a response to the server), as it was
/// written: `7` and `"7"` are different ids.
fn jsonrpc_request_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        id: Option<&'a serde_json::value::RawValue>,
        method: Option<serde::de::IgnoredAny>,
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    envelope.method?;
    envelope.id.map(|id| id.get().to_owned())
}

/// A request id claimed in its session until dropped.
struct IdInFlight {
    ids: Arc<Mutex<HashSet<(String, String)>>>,
    key: (String, String),
}

impl IdInFlight {
    /// Claims `key`, or gives back its id when it is already in flight.
    fn claim(
        ids: &Arc<Mutex<HashSet<(String, String)>>>,
        key: (String, String),
    ) -> Result<Self, String> {
        let mut claimed = ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !claimed.insert(key.clone()) {
            return Err(key.1);
        }
        Ok(Self {
            ids: ids.clone(),
            key,
        })
    }
}

impl Drop for IdInFlight {
    fn drop(&mut self) {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

fn too_large(declared: Option<u64>, limit: usize) -> Response {
    let size = declared.map_or_else(|| "more".to_owned(), |bytes| format!("{bytes} bytes"));
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Payload Too Large: the body is {size}, and this server takes at most {limit} bytes \
             (REVE_HTTP_MAX_BODY_BYTES); send large images as http(s) URLs\n"
        ),
    )
        .into_response()
}

fn body_too_slow(allowed: Duration) -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        format!(
            "Request Timeout: the body did not arrive within {} s\n",
            allowed.as_secs()
        ),
    )
        .into_response()
}

fn busy(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        format!("Service Unavailable: {message}\n"),
    )
        .into_response()
}

/// Refuses a request reusing the id of one still in flight in its session, as JSON-RPC's
/// Invalid Request with no id (MCP's Streamable HTTP says so for input the server cannot
/// accept): answering it under the same id would be taken for the first request's answer.
fn duplicate_id(id: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32600,
            "message": format!(
                "request id {} is already in flight in this session; nothing was done for this \
                 request: wait for the first one's answer or send this one with a new id",
                reve_core::shorten(id)
            ),
        },
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Rejects a request unless it carries `Authorization: Bearer <token>`.
async fn require_token(
    State(token): State<Arc<SecretString>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer_credentials(value.as_bytes()));
    if let Some(presented) = presented.filter(|presented| token_matches(&token, presented)) {
        // rmcp hands the request's headers to the handler and may log them;
        // the token has done its job and goes no further. Whose jobs the
        // request may see goes in its place.
        let principal = Principal::of_token(presented);
        request.headers_mut().remove(header::AUTHORIZATION);
        request.extensions_mut().insert(principal);
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Authenticated);
        return response;
    }
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        "rejected a request without the right bearer token"
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "Unauthorized: this server needs `Authorization: Bearer <token>` with its token\n",
    )
        .into_response()
}

/// The credentials of an `Authorization: Bearer ...` header (RFC 6750; the
/// scheme is case-insensitive).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, credentials) = value.split_at_checked(b"Bearer ".len())?;
    scheme
        .eq_ignore_ascii_case(b"Bearer ")
        .then(|| credentials.trim_ascii())
        .filter(|credentials| !credentials.is_empty())
}

/// Compares in constant time, so response timing cannot reveal how many
/// leading bytes of a guess were right. `subtle` is used rather than a
/// hand-written loop because it keeps the optimiser from reintroducing an
/// early exit. Only the token's length can leak, which a long random token
/// makes worthless.
fn token_matches(expected: &SecretString, presented: &[u8]) -> bool {
    expected.expose_secret().as_bytes().ct_eq(presented).into()
}

/// Counts a request as in flight until its response body has been sent to
/// the end (for a tool call, the SSE stream that ends with the result) or
/// dropped. GET streams are left out: they stand open for the whole session
/// and are closed by the shutdown itself.
async fn track_in_flight(
    State(in_flight): State<TaskTracker>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let token = in_flight.token();
    next.run(request).await.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _in_flight = &token;
            chunk
        }))
    })
}

/// `--allow-host` accepts what a `Host` header carries: a name or IP,
/// optionally with a port (without one, any port matches).
fn check_host(host: &str) -> Result<String, HttpError> {
    let host = host.trim();
    axum::http::uri::Authority::try_from(host)
        .ok()
        .filter(|authority| authority.as_str() == host && !host.contains('@'))
        .map(|_| host.to_ascii_lowercase())
        .ok_or_else(|| HttpError::BadHost(host.to_owned()))
}

/// Turns an `--allow-origin` value into the form rmcp matches on. An origin
/// without a port means its scheme's default port, as browsers send it;
/// rmcp would match any port for such an entry today, and will stop doing
/// so, so the port is made explicit. `:*` keeps any port.
fn normalize_origin(origin: &str) -> Result<String, HttpError> {
    let bad = || HttpError::BadOrigin(origin.to_owned());
    let trimmed = origin.trim();
    let (base, any_port) = match trimmed.strip_suffix(":*") {
        Some(base) => (base, true),
        None => (trimmed, false),
    };
    let url = url::Url::parse(base).map_err(|_| bad())?;
    // `Url` forgets a default port written out; `https://h:443:*` is still wrong.
    let explicit_port = axum::http::Uri::try_from(base)
        .ok()
        .and_then(|uri| uri.port_u16())
        .is_some();
    let bare = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !base.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    let host = url.host_str().filter(|_| bare).ok_or_else(bad)?;
    match (any_port, url.port(), url.port_or_known_default()) {
        (true, None, _) if !explicit_port => Ok(format!("{}://{host}:*", url.scheme())),
        (false, _, Some(port)) => Ok(format!("{}://{host}:{port}", url.scheme())),
        _ => Err(bad()),
    }
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM (what `docker stop`, systemd and
/// Kubernetes send), registered up front so a signal that arrives early is
/// not lost.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_get_an_explicit_port() {
        let cases = [
            ("https://app.example.com", "https://app.example.com:443"),
            ("http://app.example.com", "http://app.example.com:80"),
            (
                "HTTPS://App.Example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://localhost:*", "http://localhost:*"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        for (given, expected) in cases {
            assert_eq!(normalize_origin(given).unwrap(), expected, "{given}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com:443:*",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "null",
            "*",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cors_admits_the_origins_rmcp_admits() {
        let listed = [
            "http://localhost:*".to_owned(),
            "http://[::1]:*".to_owned(),
            normalize_origin("https://app.example.com").unwrap(),
        ];
        for (origin, expected) in [
            ("http://localhost:5173", true),
            ("http://localhost", true),
            ("http://[::1]:8080", true),
            ("https://app.example.com", true),
            ("https://APP.example.com:443", true),
            ("https://app.example.com:8443", false),
            ("http://app.example.com", false),
            ("https://localhost:5173", false),
            ("http://localhost.evil.example", false),
            ("null", false),
        ] {
            assert_eq!(origin_is_listed(origin, &listed), expected, "{origin}");
        }
    }

    #[test]
    fn hosts_are_names_with_an_optional_port() {
        assert_eq!(
            check_host("MCP.example.com").unwrap(),
            "mcp.example.com".to_owned()
        );
        assert_eq!(
            check_host("mcp.example.com:443").unwrap(),
            "mcp.example.com:443"
        );
        assert_eq!(check_host("[::1]:8787").unwrap(), "[::1]:8787");
        for bad in ["https://mcp.example.com", "mcp.example.com/mcp", "a@b", ""] {
            assert!(check_host(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        assert_eq!(bearer_credentials(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"Basic abc"), None);
        assert_eq!(bearer_credentials(b"Bearer "), None);
        assert_eq!(bearer_credentials(b"Bearer"), None);
    }

    #[test]
    fn tokens_must_match_exactly() {
        let token = SecretString::from("s3cret-token");
        assert!(token_matches(&token, b"s3cret-token"));
        for wrong in [&b"s3cret-tokeN"[..], b"s3cret-token ", b"s3cret", b""] {
            assert!(!token_matches(&token, wrong));
        }
    }
}
