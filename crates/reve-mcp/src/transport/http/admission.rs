//! What every POST must get past before rmcp sees it (the module's step 4): the limits on one
//! body, on all bodies in flight and on sessions, and the ids in flight in each session; and the
//! count of requests in flight that a graceful shutdown waits on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::task::TaskTracker;

use super::HttpOptions;
use super::refusal::Refusal;
use crate::byte_pool::BytePool;

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

/// What every POST must get past before rmcp sees it: the limits on one body, on all bodies
/// in flight and on sessions, and the ids in flight in each session.
pub(super) struct Admission {
    max_body_bytes: usize,
    /// Room for [`HttpOptions::max_body_bytes_in_flight`].
    body_room: BytePool,
    sessions: Option<Arc<LocalSessionManager>>,
    max_sessions: usize,
    /// (session id, JSON-RPC id as sent) of every request being served.
    ids_in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Admission {
    pub(super) fn new(options: &HttpOptions, sessions: Option<Arc<LocalSessionManager>>) -> Self {
        Self {
            max_body_bytes: options.max_body_bytes,
            body_room: BytePool::new(options.max_body_bytes_in_flight),
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
pub(super) async fn admit(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
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
        return Refusal::TooLarge {
            declared: Some(declared),
            limit: admission.max_body_bytes,
        }
        .into_response();
    }
    // Decided by the headers alone, before any room is taken or byte read.
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if session.is_none() && admission.sessions_full().await {
        return Refusal::Busy(format!(
            "the server has as many sessions open as it may ({}); retry later, or close an \
             unused session with DELETE",
            admission.max_sessions
        ))
        .into_response();
    }
    // What it declares, or the most it may be when it declares nothing.
    let expected = declared.unwrap_or(admission.max_body_bytes as u64);
    let room = admission.body_room.reserve(expected);
    let Ok(Ok(room)) = tokio::time::timeout(BODY_ROOM_WAIT, room).await else {
        return Refusal::Busy(
            "the server is holding as many request bodies as it may; retry in a few seconds"
                .to_owned(),
        )
        .into_response();
    };
    let (parts, body) = request.into_parts();
    let allowed = BODY_READ_BASE + Duration::from_secs(expected / BODY_MIN_BYTES_PER_SEC);
    let body = match tokio::time::timeout(
        allowed,
        axum::body::to_bytes(body, admission.max_body_bytes),
    )
    .await
    {
        Err(_) => return Refusal::TooSlow { allowed }.into_response(),
        Ok(Err(_)) => {
            return Refusal::TooLarge {
                declared: None,
                limit: admission.max_body_bytes,
            }
            .into_response();
        }
        Ok(Ok(body)) => body,
    };
    let id_in_flight = match session.zip(jsonrpc_request_id(&body)) {
        Some(key) => match IdInFlight::claim(&admission.ids_in_flight, key) {
            Ok(claimed) => Some(claimed),
            Err(id) => return Refusal::DuplicateId(id).into_response(),
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

/// Counts a request as in flight until its response body has been sent to
/// the end (for a tool call, the SSE stream that ends with the result) or
/// dropped. GET streams are left out: they stand open for the whole session
/// and are closed by the shutdown itself.
pub(super) async fn track_in_flight(
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
