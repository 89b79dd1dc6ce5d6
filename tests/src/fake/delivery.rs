//! How a response body reaches the client: whole, trickling, cut short,
//! endlessly large, or not at all.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{StreamExt, stream};

use super::scenario::SLOW_BODY_CHUNKS;

/// The pace and completeness of a body the fake knows in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Whole,
    /// [`SLOW_BODY_CHUNKS`] pieces, this long apart.
    Trickle(Duration),
    /// The full `Content-Length` is declared, half the bytes are sent, then
    /// the connection is closed.
    Truncated,
    /// [`Delivery::Truncated`] the first time the body is fetched, whole from
    /// then on (see `Shared::file`).
    TruncatedOnce,
    /// The full `Content-Length` is declared, then the connection is closed
    /// before any byte of the body.
    HeadersOnly,
}

pub(crate) fn deliver(
    status: StatusCode,
    content_type: &str,
    bytes: Bytes,
    delivery: Delivery,
) -> Response {
    let length = bytes.len();
    let body = match delivery {
        Delivery::Whole => Body::from(bytes),
        Delivery::Trickle(delay) => trickle(bytes, delay),
        Delivery::Truncated | Delivery::TruncatedOnce => truncated(bytes.slice(..length / 2)),
        Delivery::HeadersOnly => truncated(Bytes::new()),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

fn trickle(bytes: Bytes, delay: Duration) -> Body {
    let piece = bytes.len().div_ceil(SLOW_BODY_CHUNKS).max(1);
    let pieces: Vec<Bytes> = (0..bytes.len())
        .step_by(piece)
        .map(|start| bytes.slice(start..(start + piece).min(bytes.len())))
        .collect();
    Body::from_stream(stream::iter(pieces.into_iter().enumerate()).then(
        move |(index, piece)| async move {
            if index > 0 {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(piece)
        },
    ))
}

/// `sent` (possibly nothing), then an error. The error waits one turn of the
/// executor so that hyper flushes the head and what was sent before tearing
/// the connection down; without it the client would see no response at all.
fn truncated(sent: Bytes) -> Body {
    let cut = stream::once(async {
        tokio::task::yield_now().await;
        Err(io::Error::other("the fake truncates this body"))
    });
    let sent = stream::iter((!sent.is_empty()).then_some(Ok(sent)));
    Body::from_stream(sent.chain(cut))
}

const HUGE_CHUNK: usize = 64 * 1024;
static ZEROS: [u8; HUGE_CHUNK] = [0; HUGE_CHUNK];
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// `len` bytes of a would-be PNG (signature, then zeros), generated chunk by
/// chunk so the fake never holds them.
pub(crate) fn huge(len: u64, declare_length: bool) -> Response {
    let chunks = stream::unfold(0_u64, move |sent| async move {
        let remaining = len.checked_sub(sent).filter(|&left| left > 0)?;
        let size = usize::try_from(remaining).map_or(HUGE_CHUNK, |left| left.min(HUGE_CHUNK));
        let chunk = if sent == 0 {
            let mut first = ZEROS[..size].to_vec();
            let signature = PNG_SIGNATURE.len().min(size);
            first[..signature].copy_from_slice(&PNG_SIGNATURE[..signature]);
            Bytes::from(first)
        } else {
            Bytes::from_static(&ZEROS[..size])
        };
        Some((Ok::<_, Infallible>(chunk), sent + size as u64))
    });
    let mut response = (
        [(header::CONTENT_TYPE, "image/png")],
        Body::from_stream(chunks),
    )
        .into_response();
    if declare_length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
    }
    response
}

/// Marks a response that must never be sent: the connection loop closes the
/// connection instead (see `server.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

pub(crate) fn drop_connection() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}
