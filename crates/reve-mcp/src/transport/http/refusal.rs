//! Every answer the transport gives in rmcp's place, as one type that becomes a response: what
//! each refusal says, its status and its headers are decided here and nowhere else.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request was not handed to rmcp.
#[derive(Debug)]
pub(super) enum Refusal {
    /// No `Authorization: Bearer` with the server's token.
    Unauthorized,
    /// A body over the limit: `declared` by its `Content-Length`, or found so while read.
    TooLarge { declared: Option<u64>, limit: usize },
    /// A body that did not arrive within the time its size allows.
    TooSlow { allowed: Duration },
    /// Over a limit that frees up by itself (sessions, bodies in flight): retry later.
    Busy(String),
    /// A request whose JSON-RPC id is already in flight in its session. Answered as JSON-RPC's
    /// Invalid Request with no id (MCP's Streamable HTTP says so for input the server cannot
    /// accept): answering it under the same id would be taken for the first request's answer.
    DuplicateId(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "Unauthorized: this server needs `Authorization: Bearer <token>` with its token\n",
            )
                .into_response(),
            Refusal::TooLarge { declared, limit } => {
                let size =
                    declared.map_or_else(|| "more".to_owned(), |bytes| format!("{bytes} bytes"));
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "Payload Too Large: the body is {size}, and this server takes at most \
                         {limit} bytes (REVE_HTTP_MAX_BODY_BYTES); send large images as http(s) \
                         URLs\n"
                    ),
                )
                    .into_response()
            }
            Refusal::TooSlow { allowed } => (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                format!(
                    "Request Timeout: the body did not arrive within {} s\n",
                    allowed.as_secs()
                ),
            )
                .into_response(),
            Refusal::Busy(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                format!("Service Unavailable: {message}\n"),
            )
                .into_response(),
            Refusal::DuplicateId(id) => {
                let body = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": {
                        "code": -32600,
                        "message": format!(
                            "request id {} is already in flight in this session; nothing was \
                             done for this request: wait for the first one's answer or send \
                             this one with a new id",
                            reve_core::workspace::shorten(&id)
                        ),
                    },
                });
                (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
            }
        }
    }
}
