//! What a request cost, and how to find it again in the provider's records.
//!
//! The AIML API traces every inference request: a request may carry the caller's own id
//! (`X-Client-Request-Id`), and every response names the inference (`x-inference-id`) and, for
//! a JSON answer, what it was charged (`x-aimlapi-credits-used`, `x-aimlapi-usd-spent`). The
//! same ids come back in the account's usage logs (`GET /v2/logs`), which is how a caller that
//! never saw the answer (a crash, a lost connection) learns afterwards whether it paid.

use reqwest::header::HeaderMap;

use crate::error::{Error, Result};

/// The request header carrying the caller's id of a request.
pub const CLIENT_REQUEST_ID_HEADER: &str = "x-client-request-id";
/// The response header naming the inference, the id its charge is recorded under.
pub const INFERENCE_ID_HEADER: &str = "x-inference-id";
/// The response header holding the charge in credits (an integer).
pub const CREDITS_USED_HEADER: &str = "x-aimlapi-credits-used";
/// The response header holding the charge in US dollars.
pub const USD_SPENT_HEADER: &str = "x-aimlapi-usd-spent";

/// A caller's id for one request, sent as `X-Client-Request-Id` and reported back as
/// `client_request_id` in the usage logs.
///
/// The API silently drops a value outside its alphabet (and still runs and bills the request),
/// leaving nothing to find the request by afterwards; so a value is checked here, before it can
/// be sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRequestId(String);

impl ClientRequestId {
    /// The most characters the API keeps.
    pub const MAX_CHARS: usize = 128;

    /// `id`, if the API keeps it: 1 to [`ClientRequestId::MAX_CHARS`] characters of `A-Z`,
    /// `a-z`, `0-9`, `.`, `_`, `:` and `-`.
    pub fn new(id: impl Into<String>) -> Result<ClientRequestId> {
        let id = id.into();
        if ClientRequestId::is_kept(&id) {
            Ok(ClientRequestId(id))
        } else {
            Err(Error::InvalidInput {
                field: "client_request_id",
                reason: format!(
                    "a client request id must be 1 to {} characters of A-Z, a-z, 0-9, '.', '_', \
                     ':' and '-' (the API silently drops any other); got {} characters",
                    ClientRequestId::MAX_CHARS,
                    id.chars().count()
                ),
            })
        }
    }

    /// Whether the API keeps `id` as a client request id rather than dropping it.
    pub fn is_kept(id: &str) -> bool {
        (1..=ClientRequestId::MAX_CHARS).contains(&id.len())
            && id.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-')
            })
    }

    /// The id, as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientRequestId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What an answer's headers say of its request: the ids to find it by, and its charge.
///
/// Each part is `None` when the answer did not carry it (an older API, a proxy that strips
/// headers) or carried something unreadable: a missing charge is unknown, never zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Charge {
    /// The provider's id of the inference (`x-inference-id`): its `inference_id` in the usage
    /// logs and the `reference_id` of its charge in the account's transactions.
    pub inference_id: Option<String>,
    /// The client request id the API kept and echoed (`x-client-request-id`); `None` when none
    /// was sent or the API dropped it.
    pub client_request_id: Option<String>,
    /// What the request was charged, in credits (`x-aimlapi-credits-used`).
    pub credits_used: Option<u64>,
    /// What the request was charged, in US dollars (`x-aimlapi-usd-spent`).
    pub usd_spent: Option<f64>,
}

impl Charge {
    /// The charge a response's headers report.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Charge {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        Charge {
            inference_id: text(INFERENCE_ID_HEADER).map(str::to_owned),
            client_request_id: text(CLIENT_REQUEST_ID_HEADER).map(str::to_owned),
            credits_used: text(CREDITS_USED_HEADER).and_then(|value| value.parse().ok()),
            usd_spent: text(USD_SPENT_HEADER)
                .and_then(|value| value.parse::<f64>().ok())
                .filter(|usd| usd.is_finite() && *usd >= 0.0),
        }
    }

    /// Whether the answer said what the request cost, in either unit.
    pub fn is_reported(&self) -> bool {
        self.credits_used.is_some() || self.usd_spent.is_some()
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn a_client_request_id_is_checked_as_the_api_keeps_it() {
        for kept in ["a", "job-1", "A.b_c:d-9", &"x".repeat(128)] {
            assert_eq!(ClientRequestId::new(kept).unwrap().as_str(), kept);
        }
        for dropped in ["", "has space", "ünï", "a/b", "a+b", &"x".repeat(129)] {
            let error = ClientRequestId::new(dropped).unwrap_err().to_string();
            assert!(error.contains("1 to 128 characters"), "{error}");
        }
    }

    #[test]
    fn a_charge_reads_its_headers_and_leaves_out_what_is_unreadable() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (INFERENCE_ID_HEADER, "inf-7"),
            (CLIENT_REQUEST_ID_HEADER, "job-1"),
            (CREDITS_USED_HEADER, "210000"),
            (USD_SPENT_HEADER, "0.105000000"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let charge = Charge::from_headers(&headers);
        assert_eq!(
            charge,
            Charge {
                inference_id: Some("inf-7".into()),
                client_request_id: Some("job-1".into()),
                credits_used: Some(210_000),
                usd_spent: Some(0.105),
            }
        );
        assert!(charge.is_reported());

        headers.insert(CREDITS_USED_HEADER, HeaderValue::from_static("lots"));
        headers.insert(USD_SPENT_HEADER, HeaderValue::from_static("-1"));
        let charge = Charge::from_headers(&headers);
        assert_eq!((charge.credits_used, charge.usd_spent), (None, None));
        assert!(!charge.is_reported());
        assert_eq!(Charge::from_headers(&HeaderMap::new()), Charge::default());
    }
}
