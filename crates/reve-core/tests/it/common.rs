//! What every integration test needs: a client pointed at a fresh fake, and a request for it.

use std::time::Duration;

use reve_core::{Client, Config, EditImageRequest};
use reve_tests::fake::{self, FakeApi};

/// A config for `fake`: its key and URL, a generous deadline that only a hung test reaches, and
/// a backoff of a few milliseconds so that retries cost no noticeable time.
pub fn config(fake: &FakeApi) -> Config {
    Config::default()
        .with_api_key(fake.api_key())
        .with_base_url(fake.base_url())
        .expect("the fake's URL is a valid base URL")
        .with_timeout(Duration::from_secs(60))
        .with_retry_backoff(Duration::from_millis(1), Duration::from_millis(4))
}

pub fn client(config: Config) -> Client {
    Client::new(config).expect("a valid config builds a client")
}

/// The sample picture the requests send, as PNG.
pub fn input_png() -> Vec<u8> {
    fake::sample_png(40, 30)
}

/// A request sending [`input_png`] inline.
pub fn request() -> EditImageRequest {
    EditImageRequest::new(
        fake::data_uri("image/png", &input_png()),
        "Invert the colours",
    )
}
