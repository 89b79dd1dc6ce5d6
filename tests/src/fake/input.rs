//! Turning a request's `image_url` into pixels, as the real API must: inline
//! `data:` URIs are decoded, `http(s)` URLs are downloaded.
//!
//! Downloads are limited to loopback hosts. Tests serve their inputs from
//! 127.0.0.1 (see [`crate::fake::FakeApi::serve_input`]); any other host is
//! refused without a connection attempt, so a test can never reach the
//! internet through the fake, and a client that forwards a remote URL still
//! gets the 400 the real API gives for a URL it cannot fetch.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::DynamicImage;
use url::{Host, Url};

/// Why an `image_url` yields no image; each maps to a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputError {
    Unfetchable,
    NotAnImage,
}

impl InputError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Unfetchable => "image_url could not be fetched",
            Self::NotAnImage => "image_url does not contain a supported image",
        }
    }
}

/// A client for fetching inputs: no proxy (a proxy would not be loopback),
/// and redirects followed only while they stay on loopback.
pub(crate) fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() < 5 && is_loopback(attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
        .expect("a plain HTTP client builds")
}

pub(crate) async fn load(
    http: &reqwest::Client,
    image_url: &str,
) -> Result<DynamicImage, InputError> {
    let bytes = match strip_prefix_ignore_case(image_url, "data:") {
        Some(inline) => decode_data_uri(inline)?,
        None => fetch(http, image_url).await?,
    };
    tokio::task::spawn_blocking(move || image::load_from_memory(&bytes))
        .await
        .map_err(|_| InputError::NotAnImage)?
        .map_err(|_| InputError::NotAnImage)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `<mediatype>;base64,<data>` after the `data:` scheme. The media type is
/// not trusted: the bytes decide what the image is.
fn decode_data_uri(inline: &str) -> Result<Vec<u8>, InputError> {
    let (metadata, data) = inline.split_once(',').ok_or(InputError::NotAnImage)?;
    if !metadata.to_ascii_lowercase().ends_with(";base64") {
        return Err(InputError::NotAnImage);
    }
    STANDARD.decode(data).map_err(|_| InputError::NotAnImage)
}

async fn fetch(http: &reqwest::Client, image_url: &str) -> Result<Vec<u8>, InputError> {
    let url = Url::parse(image_url).map_err(|_| InputError::Unfetchable)?;
    if !matches!(url.scheme(), "http" | "https") || !is_loopback(&url) {
        return Err(InputError::Unfetchable);
    }
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|_| InputError::Unfetchable)?;
    if !response.status().is_success() {
        return Err(InputError::Unfetchable);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|_| InputError::Unfetchable)?;
    Ok(bytes.to_vec())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        for allowed in [
            "http://127.0.0.1:9/a.png",
            "http://127.8.9.10/a.png",
            "http://LOCALHOST:80/a.png",
            "https://[::1]:443/a.png",
        ] {
            assert!(is_loopback(&Url::parse(allowed).unwrap()), "{allowed}");
        }
        for refused in [
            "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/t-rex.png",
            "http://128.0.0.1/a.png",
            "http://localhost.example.com/a.png",
            "http://[::2]/a.png",
            "file:///etc/passwd",
        ] {
            assert!(!is_loopback(&Url::parse(refused).unwrap()), "{refused}");
        }
    }

    #[test]
    fn data_uris_must_be_base64() {
        assert_eq!(
            decode_data_uri("image/png;base64,iVBORw=="),
            Ok(b"\x89PNG".to_vec())
        );
        assert_eq!(
            decode_data_uri("IMAGE/PNG;BASE64,iVBORw=="),
            Ok(b"\x89PNG".to_vec())
        );
        assert_eq!(
            decode_data_uri("image/png,%89PNG"),
            Err(InputError::NotAnImage)
        );
        assert_eq!(
            decode_data_uri("image/png;base64,***"),
            Err(InputError::NotAnImage)
        );
        assert_eq!(
            decode_data_uri("image/png;base64"),
            Err(InputError::NotAnImage)
        );
    }

    #[tokio::test]
    async fn remote_and_non_http_urls_are_refused() {
        let http = loopback_client();
        for url in [
            "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/t-rex.png",
            "ftp://127.0.0.1/a.png",
            "not a url",
        ] {
            assert_eq!(load(&http, url).await.err(), Some(InputError::Unfetchable));
        }
    }
}
