//! The downloads: results under `/files/` (the fake's stand-in for
//! `cdn.aimlapi.com`) and test inputs under `/inputs/`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::delivery::{Delivery, deliver, huge};
use super::state::{Shared, StoredFile};

pub(crate) async fn result_file(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    match shared.file(&name) {
        Some(StoredFile::Image {
            bytes,
            content_type,
            delivery,
        }) => deliver(StatusCode::OK, content_type, bytes, delivery),
        Some(StoredFile::Huge {
            len,
            declare_length,
        }) => huge(len, declare_length),
        Some(StoredFile::Redirect { location }) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        None => not_found(),
    }
}

pub(crate) async fn input_file(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    match shared.input(&name) {
        Some((bytes, content_type)) => {
            deliver(StatusCode::OK, &content_type, bytes, Delivery::Whole)
        }
        None => not_found(),
    }
}

/// A storage bucket's bare 404, not the API's JSON error body.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not Found",
    )
        .into_response()
}
