//! Headers sent early for a stateless POST that rmcp has not answered yet, so that a proxy or
//! client waiting for headers does not fail a long edit.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;

/// How long a POST may go without an answer before its headers are sent anyway, with an event
/// stream that carries the answer when it comes ([`answer_early`]).
pub(super) const EARLY_HEADERS_AFTER: Duration = Duration::from_millis(200);

/// How often an answer sent early ([`answer_early`]) says it is still alive while rmcp works:
/// rmcp's own keep-alive, as proxies expect of an event stream.
const EARLY_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The largest JSON answer of rmcp's that [`answer_early`] turns into an event: far more than
/// any result of these tools (their pictures are bounded by the preview budget).
const MAX_EARLY_JSON_BYTES: usize = 64 * 1024 * 1024;

/// Sends a POST's headers and a first line of its event stream at once when rmcp has not
/// answered within [`EARLY_HEADERS_AFTER`] (see the module's documentation), then rmcp's answer
/// in the same stream: its events as they are, or its JSON answer as one `message` event. A
/// protocol error that rmcp would have sent with a 4xx status after that moment arrives as an
/// event of the `200` stream instead; those come at once, in practice, before it.
pub(super) async fn answer_early(request: Request, next: Next) -> Response {
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
