//! A typed async client for the AIML API's Reve models: `reve/edit-image` (change a picture),
//! `reve/create-image` (make one from words, [`Client::create`]) and `reve/remix-edit-image`
//! (combine one to four pictures, [`Client::remix`]).
//!
//! You give it pictures (URLs, `data:` URIs or local files) and a prompt saying what to make;
//! it returns the result, ready to save. Each model's request is checked against its published
//! document ([`Model`], generated as each module's `DESCRIPTION`) before anything is sent. It exists so that callers, chiefly the `reve-mcp`
//! server, get the fiddly parts right once: requests are checked before they can cost anything,
//! transient failures are retried without risking a double charge more than necessary, one
//! deadline bounds the whole call, result types come from the bytes rather than from a URL, and
//! saving never overwrites or leaves a partial file. The API key never appears in `Debug`
//! output, logs or error messages.
//!
//! ```
//! use reve_core::{Client, Config, EditImageRequest, ImageSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // The doctest runs against a local fake of the API, with a generated picture.
//! # let fake = reve_tests::FakeApi::start().await;
//! # let out_dir = tempfile::tempdir()?;
//! # let photo = out_dir.path().join("t-rex.png");
//! # std::fs::write(&photo, reve_tests::fake::sample_png(64, 48))?;
//! # let photo = photo.to_str().unwrap();
//! let config = Config::from_env()?; // AIML_API_KEY, optionally AIML_API_BASE_URL
//! # let config = config.with_api_key(fake.api_key()).with_base_url(fake.base_url())?;
//! let client = Client::new(config.clone())?;
//! // `photo` may be an https:// URL, a data: URI, or a local file such as "/home/me/t-rex.png",
//! // which is read (type checked from its bytes) and sent as a data: URI.
//! let image_url = ImageSource::parse(photo)?.into_image_url(config.max_input_bytes())?;
//! let request = EditImageRequest::new(image_url, "Make the dinosaur sit on a lounge chair");
//! let edited = client.edit_image(&request).await?;
//! let saved = edited.save_in(out_dir.path(), None)?; // reve-<UTC time>-<random>.png
//! println!("saved {} ({:?}, request {:?})", saved.display(), edited.dimensions()?, edited.metadata.request_id);
//! # assert_eq!(edited.dimensions()?, (64, 48));
//! # assert_eq!(std::fs::read(&saved)?, edited.bytes);
//! # Ok(())
//! # }
//! ```
//!
//! For large images, or many results at once, build the body from the open file with
//! [`RequestBody::with_image_file`] (the file's base64 goes straight into the body: one pass, one
//! buffer) and let [`Client::edit_into_dir`] stream the result into a hidden file in the
//! destination folder instead of memory:
//!
//! ```
//! use reve_core::{Client, Config, EditImageRequest, RequestBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let fake = reve_tests::FakeApi::start().await;
//! # let out_dir = tempfile::tempdir()?;
//! # let photo = out_dir.path().join("t-rex.png");
//! # std::fs::write(&photo, reve_tests::fake::sample_png(64, 48))?;
//! # let config = Config::default().with_api_key(fake.api_key()).with_base_url(fake.base_url())?;
//! # let client = Client::new(config.clone())?;
//! let request = EditImageRequest::new(photo.display().to_string(), "Make it night");
//! let file = std::fs::File::open(&photo)?;
//! let body = RequestBody::with_image_file(&request, &file, &photo, config.max_input_bytes())?;
//! // The folder is created, and checked writable, before anything is sent.
//! let staged = client.edit_into_dir(&body, out_dir.path()).await?;
//! println!("{} bytes of {}, {:?}", staged.size, staged.metadata.mime_type(), staged.dimensions()?);
//! let saved = staged.persist(Some("t-rex-at-night.png"))?; // dropping it instead deletes it
//! # assert_eq!(image::image_dimensions(&saved)?, (64, 48));
//! # Ok(())
//! # }
//! ```
//!
//! The types in [`generated`] are produced by `cargo xtask codegen` from the vendor's OpenAPI
//! documents, one module per model; everything else here is written by hand.

#![deny(missing_docs)]

mod arrival;
mod billing;
mod body;
mod client;
mod config;
mod error;
mod format;
mod image;
mod model;
mod output;
mod platform;
mod response;
mod retry;
mod sink;
mod text;
mod transport;

// Written by `cargo xtask codegen` as prettyplease prints it; its freshness test compares it byte for byte.
#[rustfmt::skip]
pub mod generated;
pub use generated::*;

/// The README's example, compiled as a doctest so that what crates.io shows keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

pub use arrival::ArrivingImage;
pub use billing::{
    CLIENT_REQUEST_ID_HEADER, CREDITS_USED_HEADER, Charge, ClientRequestId, INFERENCE_ID_HEADER,
    USD_SPENT_HEADER,
};
pub use body::{PictureSource, RequestBody};
pub use client::Client;
pub use config::{
    API_KEY_ALIAS_VAR, API_KEY_VAR, BASE_URL_VAR, Config, DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRY_BACKOFF_BASE, DEFAULT_RETRY_BACKOFF_CAP, DEFAULT_TIMEOUT,
};
pub use error::{Error, Phase, Result};
pub use format::ImageFormat;
pub use image::{FinalSymlink, ImageSource, data_uri_from_file, open_nonblocking};
pub use model::{Model, ModelRequest, PictureField, TextField};
pub use output::{
    EditedImage, NotPersisted, ResultMetadata, StagedImage, Usage, check_file_name, name_beside,
    possible_file_names, sweep_stale_partials,
};
pub use platform::{
    LOGS_MAX_PAGE, LOGS_MAX_WINDOW_DAYS, LOGS_RATE_LIMIT, LOGS_RATE_WINDOW, LogCost, LogRow,
    LogStatus, LogsPage, LogsQuery, Pagination, PriceLookup,
};
pub use response::Generated;
/// The workspace's own text helpers (how a message quotes input, an error with its causes on
/// one line), public only so that the server quotes input exactly as this crate does; not part
/// of this crate's API, and not covered by its semver.
#[doc(hidden)]
pub mod workspace {
    pub use crate::text::{error_chain, shorten};
}
