//! What the API's answers mean: a status and body become a response to use or an [`Error`] to
//! report (with whether to retry), and a response becomes the image it points at.
//!
//! Text that came from the server is scrubbed of the key (servers have been known to echo the
//! `Authorization` header back) before an error keeps it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use crate::billing::Charge;
use crate::error::{Error, Result, scrub};
use crate::format::ImageFormat;
use crate::generated::EditImageResponse;
use crate::output::{ResultMetadata, Usage};
use crate::retry::{Failure, Retry, is_retryable_status};

/// A 200's body: the response, or the failed generation some 200s report instead of data.
pub(crate) fn success(
    status: u16,
    body: &[u8],
    key: &str,
    attempt: u32,
) -> Result<EditImageResponse, Failure> {
    let parsed: EditImageResponse = serde_json::from_slice(body).map_err(|error| {
        Failure::fatal(Error::Decode {
            reason: format!("the response is not the expected JSON: {error}"),
            body: text_excerpt(body, key),
        })
    })?;
    if parsed.data.is_none() && parsed.extra.contains_key("error") {
        let details = parse_api_error(body, Some(key));
        return Err(Failure::fatal(Error::Api {
            status,
            message: details.message,
            request_id: details.request_id,
            attempts: attempt,
        }));
    }
    Ok(parsed)
}

/// An unsuccessful status and its body, as the error to report and whether to try again.
pub(crate) fn failure(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    key: &str,
    attempt: u32,
) -> Failure {
    let details = parse_api_error(body, Some(key));
    let message = details.message;
    let error = match status {
        401 => Error::Authentication { message },
        403 => Error::InsufficientCredits { message },
        429 => Error::RateLimited {
            attempts: attempt,
            retry_after,
            message,
        },
        _ => Error::Api {
            status,
            message,
            request_id: details.request_id,
            attempts: attempt,
        },
    };
    let retry = if is_retryable_status(status) {
        Retry::After(retry_after)
    } else {
        Retry::Never
    };
    Failure { error, retry }
}

/// What the API answered about an image it made, before the image is fetched (see
/// [`Client::edit_into_dir_reporting`](crate::Client::edit_into_dir_reporting)): the generation
/// has happened and is most likely billed.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Where the API published the image (these URLs expire); `None` when it came inline.
    pub url: Option<String>,
    /// The provider's id for this generation; quote it when reporting a problem.
    pub request_id: Option<String>,
    /// The API's content-policy flag, as in [`ResultMetadata::content_violation`].
    pub content_violation: Option<bool>,
    /// What the generation cost, when the API said in the body's `meta.usage`.
    pub usage: Option<Usage>,
    /// What the answer's headers said: the inference's id and its charge.
    pub charge: Charge,
}

/// What a successful response says about the image it made, before the image is fetched.
pub(crate) struct Generation {
    pub(crate) image: ResultImage,
    request_id: Option<String>,
    content_violation: Option<bool>,
    usage: Option<Usage>,
    charge: Charge,
}

/// Where a result image is.
pub(crate) enum ResultImage {
    Base64(String),
    Url(String),
}

impl Generation {
    pub(crate) fn from_response(response: EditImageResponse, charge: Charge) -> Result<Generation> {
        let items = response.data.unwrap_or_default();
        if items.len() > 1 {
            tracing::debug!(
                count = items.len(),
                "the response holds several images; using the first"
            );
        }
        let Some(item) = items.into_iter().next() else {
            return Err(Error::Decode {
                reason: "the response holds no image (its data list is missing or empty)".into(),
                body: None,
            });
        };
        if item.content_violation == Some(true) {
            tracing::info!(
                request_id = item.request_id.as_deref(),
                "content violation reported"
            );
            return Err(Error::ContentViolation {
                request_id: item.request_id,
            });
        }
        let usage = response
            .meta
            .and_then(|meta| meta.usage)
            .map(|usage| Usage {
                credits_used: usage.credits_used,
                tokens_used: usage.tokens_used,
            })
            .filter(|usage| usage.credits_used.is_some() || usage.tokens_used.is_some());
        let image = match (item.b64_json, item.url) {
            (Some(b64), _) if !b64.is_empty() => ResultImage::Base64(b64),
            (_, Some(url)) if !url.is_empty() => ResultImage::Url(url),
            _ => {
                return Err(Error::Decode {
                    reason: "the response's image has neither a url nor b64_json".into(),
                    body: None,
                });
            }
        };
        tracing::info!(
            request_id = item.request_id.as_deref(),
            inference_id = charge.inference_id.as_deref(),
            usd_spent = charge.usd_spent,
            "the API made the image"
        );
        Ok(Generation {
            image,
            request_id: item.request_id,
            content_violation: item.content_violation,
            usage,
            charge,
        })
    }

    /// What the API said, before the image is fetched.
    pub(crate) fn summary(&self) -> Generated {
        Generated {
            url: match &self.image {
                ResultImage::Url(url) => Some(url.clone()),
                ResultImage::Base64(_) => None,
            },
            request_id: self.request_id.clone(),
            content_violation: self.content_violation,
            usage: self.usage,
            charge: self.charge.clone(),
        }
    }

    /// An earlier generation whose image is at `url`.
    pub(crate) fn from_summary(generated: &Generated, url: &str) -> Generation {
        Generation {
            image: ResultImage::Url(url.to_owned()),
            request_id: generated.request_id.clone(),
            content_violation: generated.content_violation,
            usage: generated.usage,
            charge: generated.charge.clone(),
        }
    }

    /// What the API said about the image, once its type is known.
    pub(crate) fn metadata(self, format: ImageFormat) -> ResultMetadata {
        ResultMetadata {
            format,
            url: match self.image {
                ResultImage::Url(url) => Some(url),
                ResultImage::Base64(_) => None,
            },
            request_id: self.request_id,
            content_violation: self.content_violation,
            usage: self.usage,
            charge: self.charge,
        }
    }
}

pub(crate) fn decode_base64_image(b64: &str, limit: u64) -> Result<Bytes> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|error| Error::Decode {
        reason: format!("b64_json is not valid base64: {error}"),
        body: None,
    })?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(Error::ResultTooLarge {
            size: Some(size),
            limit,
        });
    }
    Ok(Bytes::from(bytes))
}

/// A scrubbed excerpt of a body for [`Error::Decode`], when it is text worth keeping.
pub(crate) fn text_excerpt(bytes: &[u8], key: &str) -> Option<String> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut in the middle of a character by the 4096-byte limit: keep what is whole.
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    (!text.trim().is_empty()).then(|| scrub(text, Some(key)))
}

/// The parts of an API error body worth showing: its message(s) and request id.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiErrorBody {
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

/// Reads the error body shapes the AIML API is documented and observed to send, falling back to
/// the raw text.
///
/// Two shapes are known: `{message, path, requestId, statusCode, timestamp}`, where `message` may
/// be a string or an array of strings (validation errors list one per field) and `statusCode` a
/// number or a string (it is ignored: the HTTP status is authoritative); and
/// `{error: {name, message}}`. Parsing goes through `serde_json::Value` so that any other type in
/// any field degrades to the raw text instead of failing.
pub(crate) fn parse_api_error(body: &[u8], key: Option<&str>) -> ApiErrorBody {
    let raw = String::from_utf8_lossy(body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let Some(value) = parsed else {
        return ApiErrorBody {
            message: fallback_message(&raw, key),
            request_id: None,
        };
    };
    let request_id = value
        .get("requestId")
        .or_else(|| value.get("request_id"))
        .and_then(|id| id.as_str())
        .map(|id| scrub(id, key));
    let message = match (value.get("message"), value.get("error")) {
        (Some(message), _) => message_text(message),
        (None, Some(error)) => {
            let name = error.get("name").and_then(|n| n.as_str());
            let message = error
                .get("message")
                .and_then(message_text)
                .or_else(|| error.as_str().map(str::to_owned));
            match (name, message) {
                (Some(name), Some(message)) => Some(format!("{name}: {message}")),
                (None, Some(message)) => Some(message),
                (Some(name), None) => Some(name.to_owned()),
                (None, None) => None,
            }
        }
        (None, None) => None,
    };
    ApiErrorBody {
        message: match message {
            Some(message) if !message.trim().is_empty() => scrub(&message, key),
            _ => fallback_message(&raw, key),
        },
        request_id,
    }
}

fn message_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(items) => {
            let parts: Vec<&str> = items.iter().filter_map(|item| item.as_str()).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

fn fallback_message(raw: &str, key: Option<&str>) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        "(empty response body)".to_owned()
    } else {
        scrub(raw, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_excerpts_are_scrubbed_and_binary_is_dropped() {
        assert_eq!(
            text_excerpt(b"<html>key sk-1</html>", "sk-1").as_deref(),
            Some("<html>key [redacted]</html>")
        );
        assert_eq!(text_excerpt(&[0xff, 0xfe, 0], "k"), None);
    }

    #[test]
    fn parses_the_documented_error_shape_with_string_or_array_message() {
        let body = br#"{"message":"Invalid image_url","path":"/v1/images/generations","requestId":"req-1","statusCode":400,"timestamp":"2025-01-01T00:00:00Z"}"#;
        assert_eq!(
            parse_api_error(body, None),
            ApiErrorBody {
                message: "Invalid image_url".into(),
                request_id: Some("req-1".into())
            }
        );
        let body = br#"{"message":["prompt must be shorter","image_url must be a URL"],"statusCode":"422"}"#;
        assert_eq!(
            parse_api_error(body, None).message,
            "prompt must be shorter; image_url must be a URL"
        );
    }

    #[test]
    fn parses_the_nested_error_shape() {
        let body = br#"{"error":{"name":"UnauthorizedError","message":"Invalid key sk-1"}}"#;
        assert_eq!(
            parse_api_error(body, Some("sk-1")).message,
            "UnauthorizedError: Invalid key [redacted]"
        );
    }

    #[test]
    fn falls_back_to_scrubbed_raw_text() {
        assert_eq!(
            parse_api_error(b"<html>502 Bad Gateway sk-1</html>", Some("sk-1")).message,
            "<html>502 Bad Gateway [redacted]</html>"
        );
        assert_eq!(
            parse_api_error(b"  ", None).message,
            "(empty response body)"
        );
        assert_eq!(
            parse_api_error(br#"{"message":42}"#, None).message,
            r#"{"message":42}"#
        );
    }
}
