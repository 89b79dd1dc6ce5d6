//! The fake's lifetime and its HTTP plumbing: binding, the accept loop,
//! recording every request, routing, and the two things a normal server
//! never does (closing a connection instead of answering, and refusing a body
//! that is too large before a handler sees it).
//!
//! The accept loop is written out rather than left to `axum::serve` for two
//! reasons: connections live in a [`JoinSet`] owned by the server task, so
//! dropping the fake tears down every connection at once instead of leaving
//! stragglers; and a hyper service may fail, which is how
//! [`Scenario::DropConnection`] closes a connection without a response.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use super::delivery::DropConnection;
use super::edit::ResultFormat;
use super::error_body::documented;
use super::files::{input_file, result_file};
use super::generation::{ENDPOINT_PATH, generate};
use super::input::loopback_client;
use super::ledger::{LOGS_REQUESTS_PER_WINDOW, LogRow, LogsScenario, logs, model};
use super::record::{Counters, RecordedRequest};
use super::scenario::Scenario;
use super::state::{Options, Shared, StoredFile};

/// The key a fake accepts unless told otherwise. Obviously not a real key,
/// so it is safe in assertions, snapshots and logs of the fake itself.
pub const TEST_API_KEY: &str = "fake-aiml-test-key-0f1e2d3c4b5a";

/// Request bodies larger than this get a 413, as from Express's body parser.
/// The real limit is not published; 64 MiB passes any reasonable input image.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Settings for a [`FakeApi`], fixed once it starts.
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeApiBuilder {
    options: Options,
    default: Scenario,
    port: u16,
}

impl Default for FakeApiBuilder {
    fn default() -> Self {
        Self {
            options: Options {
                api_key: TEST_API_KEY.to_owned(),
                latency: Duration::ZERO,
                result_size: None,
                result_format: ResultFormat::Png,
                canned_result: None,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                log_delay: Duration::ZERO,
                logs_requests_per_window: LOGS_REQUESTS_PER_WINDOW,
            },
            default: Scenario::Success,
            port: 0,
        }
    }
}

impl FakeApiBuilder {
    /// The only key the fake accepts (default [`TEST_API_KEY`]).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.options.api_key = api_key.into();
        self
    }

    /// A pause before every generation answer, whatever the scenario
    /// (default none). Downloads are not delayed.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.options.latency = latency;
        self
    }

    /// Resize every result to this size (default: the input's size). 4096x4096
    /// makes results as large as real ones.
    pub fn result_size(mut self, width: u32, height: u32) -> Self {
        self.options.result_size = Some((width, height));
        self
    }

    /// Encode results in this format (default PNG, as the real service).
    pub fn result_format(mut self, format: ResultFormat) -> Self {
        self.options.result_format = format;
        self
    }

    /// Answer every successful generation with `bytes`, labelled as `format`,
    /// instead of an edit of the input (which is then not even fetched).
    /// Benchmarks use it: the fake answers at once however large the result,
    /// and a photo-like picture compresses as badly as real results do, which
    /// the fake's own smooth edits never would.
    pub fn canned_result(mut self, bytes: impl Into<Bytes>, format: ResultFormat) -> Self {
        self.options.canned_result = Some(bytes.into());
        self.options.result_format = format;
        self
    }

    /// Reject larger request bodies with 413 (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.options.max_body_bytes = limit;
        self
    }

    /// Show each charge in `/v2/logs` only this long after its request (default at once): the
    /// provider records a charge after it answers, so a row may appear late.
    pub fn log_delay(mut self, delay: Duration) -> Self {
        self.options.log_delay = delay;
        self
    }

    /// Answer 429 past this many `/v2/logs` requests in [`LOGS_WINDOW`](crate::fake::LOGS_WINDOW) (default the
    /// documented [`LOGS_REQUESTS_PER_WINDOW`]).
    pub fn logs_requests_per_window(mut self, requests: usize) -> Self {
        self.options.logs_requests_per_window = requests;
        self
    }

    /// What to do when no scenario is queued (default [`Scenario::Success`]).
    pub fn default_scenario(mut self, scenario: Scenario) -> Self {
        self.default = scenario;
        self
    }

    /// The loopback port to listen on (default 0: any free port, which is
    /// what tests want). A fixed port lets a person point a real MCP client
    /// at a long-running fake (`cargo xtask fake-api`).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds `127.0.0.1` on the chosen port and serves until the [`FakeApi`] is
    /// dropped. Must run inside a Tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound: nothing a test could do about it.
    /// [`FakeApiBuilder::try_start`] reports it instead.
    pub async fn start(self) -> FakeApi {
        self.try_start()
            .await
            .expect("the fake AIML API binds a port on 127.0.0.1")
    }

    /// Like [`FakeApiBuilder::start`], but a port that cannot be bound (in
    /// use, say) is an error rather than a panic.
    pub async fn try_start(self) -> io::Result<FakeApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared::new(
            self.options,
            format!("http://{address}"),
            self.default,
            loopback_client(),
        ));
        let server = tokio::spawn(accept(
            listener,
            Arc::clone(&shared),
            router(Arc::clone(&shared)),
        ));
        Ok(FakeApi { shared, server })
    }
}

/// A running fake of `https://api.aimlapi.com` for `reve/edit-image`.
/// Dropping it stops the server and closes every open connection.
#[derive(Debug)]
pub struct FakeApi {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApi {
    /// A fake with every default: key [`TEST_API_KEY`], no latency, PNG
    /// results the size of the input, every request succeeding.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Settings for a fake that differs from the defaults.
    pub fn builder() -> FakeApiBuilder {
        FakeApiBuilder::default()
    }

    /// `http://127.0.0.1:<port>`, no trailing slash: what a client takes as
    /// its base URL in place of `https://api.aimlapi.com`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `<base_url>/v1/images/generations`.
    pub fn endpoint_url(&self) -> String {
        format!("{}{ENDPOINT_PATH}", self.shared.base_url)
    }

    /// The key the fake accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.options.api_key
    }

    /// Queue a scenario for the next generation request that has none;
    /// scenarios are consumed in the order pushed.
    pub fn push(&self, scenario: Scenario) {
        self.shared.push(scenario);
    }

    /// What generation requests get once the queue is empty.
    pub fn set_default(&self, scenario: Scenario) {
        self.shared.set_default(scenario);
    }

    /// Every request received so far, in arrival order, including the
    /// fake's own fetches of `/inputs/` when an `image_url` points there.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The `POST /v1/images/generations` requests, in arrival order.
    pub fn generation_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == "POST" && request.path == ENDPOINT_PATH)
            .collect()
    }

    /// All counters at once.
    pub fn counters(&self) -> Counters {
        self.shared.counters()
    }

    /// How many generation requests arrived (retries count separately).
    pub fn generation_attempts(&self) -> usize {
        self.counters().generation_attempts
    }

    /// How many `GET /files/...` requests arrived.
    pub fn file_downloads(&self) -> usize {
        self.counters().file_downloads
    }

    /// How many generation requests were abandoned by their client before the
    /// fake answered. The fake notices a hang-up shortly after it happens, so
    /// wait for it with [`FakeApi::wait_until`] rather than reading it at once.
    pub fn cancelled_requests(&self) -> usize {
        self.counters().cancelled_requests
    }

    /// Resolves with the counters as soon as `condition` holds for them (at
    /// once if it already does). Wrap it in a timeout: it waits forever for a
    /// condition that never comes.
    pub async fn wait_until(&self, mut condition: impl FnMut(&Counters) -> bool) -> Counters {
        let mut counters = self.shared.watch_counters();
        let reached = counters
            .wait_for(|current| condition(current))
            .await
            .expect("the fake owns the sender for as long as it lives");
        *reached
    }

    /// Every charge the fake recorded, oldest first, whether `/v2/logs` shows it yet or not:
    /// one row per generation request made with the key, failed ones at cost 0.
    pub fn charges(&self) -> Vec<LogRow> {
        self.shared.ledger().rows()
    }

    /// Queue how late the row of the next generation request appears in `/v2/logs` (one
    /// request per call, in order; the builder's `log_delay` for the rest): a provider that
    /// records one attempt's charge long after another's.
    pub fn push_log_delay(&self, delay: Duration) {
        self.shared.ledger().push_row_delay(delay);
    }

    /// Queue an answer for the next `/v2/logs` request (after its authentication and rate
    /// limit); answers are consumed in the order pushed.
    pub fn push_logs(&self, scenario: LogsScenario) {
        self.shared.ledger().push_logs(scenario);
    }

    /// Whether `/model/{id}` answers (default) or fails with 503.
    pub fn set_pricing_available(&self, available: bool) {
        self.shared.set_pricing_available(available);
    }

    /// Multiplies every published price by `factor` (default 1): a price change, which
    /// changes the ETag.
    pub fn set_price_factor(&self, factor: f64) {
        self.shared.set_price_factor(factor);
    }

    /// A URL under `/files/` that answers 302 to `location`; chain them for
    /// several hops.
    pub fn serve_redirect(&self, location: impl Into<String>) -> String {
        self.shared.store_file(StoredFile::Redirect {
            location: location.into(),
        })
    }

    /// Serves `bytes` with this `Content-Type` at the returned URL (on
    /// 127.0.0.1, under `/inputs/`), so a test can send an `http` `image_url`
    /// that the fake is able to fetch.
    pub fn serve_input(&self, bytes: impl Into<Bytes>, content_type: &str) -> String {
        self.shared
            .store_input(bytes.into(), content_type.to_owned())
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(ENDPOINT_PATH, post(generate).fallback(unknown_route))
        .route("/files/{name}", get(result_file))
        .route("/inputs/{name}", get(input_file))
        .route("/v2/logs", get(logs))
        .route("/model/{*id}", get(model))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

/// NestJS's answer for a path or method it has no route for.
async fn unknown_route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    documented(
        StatusCode::NOT_FOUND,
        uri.path(),
        shared.ids.uuid(),
        format!("Cannot {method} {}", uri.path()),
    )
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), router.clone()));
                }
                Err(error) => tracing::warn!(%error, "the fake AIML API failed to accept a connection"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, router: Router) {
    // Like real servers: small writes (a trickling body) leave at once.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "the fake AIML API could not disable Nagle's algorithm");
    }
    let service = service_fn(move |request| handle(request, Arc::clone(&shared), router.clone()));
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "a connection to the fake AIML API ended abnormally");
    }
}

/// Reads and records the whole request, then routes it. An `Err` makes hyper
/// close the connection without writing anything.
async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    router: Router,
) -> Result<Response, io::Error> {
    let (parts, body) = request.into_parts();
    let generation = parts.method == Method::POST && parts.uri.path() == ENDPOINT_PATH;
    let download = parts.method == Method::GET && parts.uri.path().starts_with("/files/");
    let limit = shared.options.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(Body::new(body), limit).await else {
        shared.record(RecordedRequest::new(&parts, &[]), generation, download);
        return Ok(documented(
            StatusCode::PAYLOAD_TOO_LARGE,
            parts.uri.path(),
            shared.ids.uuid(),
            "request entity too large",
        ));
    };
    shared.record(RecordedRequest::new(&parts, &body), generation, download);
    let Ok(response) = router
        .oneshot(Request::from_parts(parts, Body::from(body)))
        .await;
    if response.extensions().get::<DropConnection>().is_some() {
        return Err(io::Error::other(
            "the fake drops this connection unanswered",
        ));
    }
    Ok(response)
}
