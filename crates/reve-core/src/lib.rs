//! A typed async client for the AIML API's image-editing model `reve/edit-image`.
//!
//! You give it an image (a URL, a `data:` URI or a local file) and a prompt saying what to change;
//! it returns the edited image, ready to save. It exists so that callers, chiefly the `reve-mcp`
//! server, get the fiddly parts right once: requests are checked before they can cost anything,
//! transient failures are retried without risking a double charge more than necessary, one
//! deadline bounds the whole call, result types come from the bytes rather than from a URL, and
//! saving never overwrites or leaves a partial file. The API key never appears in `Debug`
//! output, logs or error messages.
//!
//! ```
//! use std::path::Path;
//! use reve_core::{Client, Config, EditImageRequest, ImageSource, Result};
//!
//! async fn edit(photo: &str, prompt: &str, out_dir: &Path) -> Result<std::path::PathBuf> {
//!     let config = Config::from_env()?; // AIML_API_KEY, optionally AIML_API_BASE_URL
//!     let client = Client::new(config.clone())?;
//!     // A URL or data: URI passes through; a local file is read and sent as a data: URI.
//!     let image_url = ImageSource::parse(photo)?.into_image_url(config.max_input_bytes())?;
//!     let request = EditImageRequest::new(image_url, prompt);
//!     let edited = client.edit_image(&request).await?;
//!     println!("{} {:?}, request id {:?}", edited.mime_type(), edited.dimensions()?, edited.request_id);
//!     edited.save_in(out_dir, None) // reve-<UTC time>-<random>.<real extension>
//! }
//! # // Running `edit` needs the network; what can be checked offline is checked here.
//! # let source = ImageSource::parse("https://example.com/t-rex.png")?;
//! # assert_eq!(source, ImageSource::Url("https://example.com/t-rex.png".into()));
//! # assert!(ImageSource::parse("t-rex.png").is_err());
//! # let _ = edit;
//! # Ok::<(), reve_core::Error>(())
//! ```
//!
//! The types in [`generated`] are produced by `cargo xtask codegen` from the vendor's OpenAPI
//! document; everything else here is written by hand.

#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod format;
mod image;
mod output;
mod retry;

pub mod generated;
pub use generated::*;

pub use client::Client;
pub use config::{
    API_KEY_ALIAS_VAR, API_KEY_VAR, BASE_URL_VAR, Config, DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRY_BACKOFF_BASE, DEFAULT_RETRY_BACKOFF_CAP, DEFAULT_TIMEOUT,
};
pub use error::{Error, Phase, Result};
pub use format::ImageFormat;
pub use image::{ImageSource, data_uri_from_file};
pub use output::{EditedImage, Usage};
