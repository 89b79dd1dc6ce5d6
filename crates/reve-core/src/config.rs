//! Where the client talks to, with which key, and within which limits.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::generated::{DEFAULT_BASE_URL, ENDPOINT_PATH};
use crate::retry::RetryPolicy;

/// The environment variable holding the API key.
pub const API_KEY_VAR: &str = "AIML_API_KEY";
/// Also accepted for the API key, because the AIML API's own examples spell it this way.
pub const API_KEY_ALIAS_VAR: &str = "AIMLAPI_API_KEY";
/// The environment variable overriding the API's base URL (tests point it at a local fake).
pub const BASE_URL_VAR: &str = "AIML_API_BASE_URL";

/// Default overall deadline for one edit: generation takes tens of seconds and occasionally
/// minutes, and the deadline also covers retries and the result download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of retries after the first attempt; small, because a retried 502 or 504 can in
/// rare cases bill twice (see [`crate::Client::edit_image`]).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Default first backoff delay; it doubles per retry up to [`DEFAULT_RETRY_BACKOFF_CAP`].
pub const DEFAULT_RETRY_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Default ceiling for one backoff delay.
pub const DEFAULT_RETRY_BACKOFF_CAP: Duration = Duration::from_secs(8);
/// Default longest `Retry-After` the client waits for; a longer request fails at once with
/// [`Error::RateLimited`] carrying the wait, since the caller may prefer to come back later.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Default largest local input image: 20 MiB, comfortably above a full-resolution phone photo
/// and well within what one JSON request body should carry (it grows by a third as base64).
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 20 * 1024 * 1024;
/// Default largest result image accepted: 50 MiB, far above any image the model returns, so that
/// only a misbehaving server hits it.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 50 * 1024 * 1024;

/// Settings for a [`crate::Client`]: key, base URL, deadline, retries and size limits.
///
/// Build it with [`Config::from_env`] (or [`Config::default`]) and adjust with the `with_*`
/// methods. A missing key is not an error here: an MCP server must be able to start and list its
/// tools without one; [`crate::Client::edit_image`] reports [`Error::MissingApiKey`] instead.
///
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct Config {
    api_key: Option<SecretString>,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    max_input_bytes: u64,
    max_result_bytes: u64,
}

impl Default for Config {
    /// No key, the public API's base URL, and the documented defaults.
    fn default() -> Self {
        Config {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy {
                max_retries: DEFAULT_MAX_RETRIES,
                backoff_base: DEFAULT_RETRY_BACKOFF_BASE,
                backoff_cap: DEFAULT_RETRY_BACKOFF_CAP,
                max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            },
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

impl Config {
    /// Reads [`API_KEY_VAR`] (or [`API_KEY_ALIAS_VAR`]) and [`BASE_URL_VAR`] from the process
    /// environment.
    ///
    /// Fails only when the base URL is set and unusable; a missing key is allowed.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup`, so that tests and embedders
    /// can supply them without touching the process environment (which is unsafe to mutate).
    ///
    /// Empty or all-blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut config = Config::default();
        if let Some(key) = get(API_KEY_VAR).or_else(|| get(API_KEY_ALIAS_VAR)) {
            config = config.with_api_key(key);
        }
        if let Some(url) = get(BASE_URL_VAR) {
            config = config.with_base_url(&url).map_err(|error| match error {
                Error::InvalidConfig { reason } => Error::InvalidConfig {
                    reason: format!("{BASE_URL_VAR}: {reason}"),
                },
                other => other,
            })?;
        }
        Ok(config)
    }

    /// Sets the API key. Surrounding whitespace (a stray newline from a secrets file) is removed;
    /// a blank key counts as none.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        let key: String = key.into();
        let key = key.trim();
        self.api_key = (!key.is_empty()).then(|| SecretString::from(key));
        self
    }

    /// Sets the base URL, such as `https://api.aimlapi.com`.
    ///
    /// A trailing `/` or `/v1` is tolerated, because both spellings circulate in the AIML API's
    /// docs and SDK examples, and the endpoint path already starts with `/v1`.
    pub fn with_base_url(mut self, url: &str) -> Result<Self> {
        self.base_url = normalize_base_url(url)?;
        Ok(self)
    }

    /// Sets the overall deadline for one [`crate::Client::edit_image`] call: every attempt, every
    /// wait between attempts and the result download must fit inside it.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times a failed attempt may be retried (0 disables retries).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.retry.max_retries = max_retries;
        self
    }

    /// Sets the exponential backoff: the first retry waits about `base`, each later one twice as
    /// long, never more than `cap`.
    pub fn with_retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.retry.backoff_base = base;
        self.retry.backoff_cap = cap;
        self
    }

    /// Sets the longest server-requested `Retry-After` wait honoured; longer requests end the
    /// call at once with [`Error::RateLimited`] (or the status's error) carrying the wait.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.retry.max_retry_after = max;
        self
    }

    /// Sets the largest local image file [`crate::ImageSource::into_image_url`] reads, in bytes.
    pub fn with_max_input_bytes(mut self, max: u64) -> Self {
        self.max_input_bytes = max;
        self
    }

    /// Sets the largest result image accepted, in bytes, whether downloaded or sent as base64.
    pub fn with_max_result_bytes(mut self, max: u64) -> Self {
        self.max_result_bytes = max;
        self
    }

    /// Whether a key is configured, so that a server can warn at start-up without seeing the key.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// A fingerprint of the configured key (the start of its SHA-256, in hex), never the key:
    /// what tells a result paid under one key from one paid under another, so that a server
    /// whose key changed does not hand out results the new key never paid for. `None` without
    /// a key.
    pub fn api_key_fingerprint(&self) -> Option<String> {
        use sha2::Digest as _;
        let key = self.api_key.as_ref()?;
        let digest = sha2::Sha256::digest(key.expose_secret().as_bytes());
        Some(
            digest[..16]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        )
    }

    /// The base URL, without a trailing `/` or `/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The full URL requests are posted to.
    pub fn endpoint_url(&self) -> String {
        format!("{}{ENDPOINT_PATH}", self.base_url)
    }

    /// The overall deadline for one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many retries a call may make after its first attempt.
    pub fn max_retries(&self) -> u32 {
        self.retry.max_retries
    }

    /// The largest local input image, in bytes.
    pub fn max_input_bytes(&self) -> u64 {
        self.max_input_bytes
    }

    /// The largest result image, in bytes.
    pub fn max_result_bytes(&self) -> u64 {
        self.max_result_bytes
    }

    pub(crate) fn api_key(&self) -> Option<&str> {
        self.api_key.as_ref().map(|key| key.expose_secret())
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Refuses settings that would make every call fail in a confusing way.
    pub(crate) fn validate(&self) -> Result<()> {
        let problem = if self.timeout.is_zero() {
            Some("the timeout must be greater than zero")
        } else if self.max_input_bytes == 0 {
            Some("the input size limit must be greater than zero")
        } else if self.max_result_bytes == 0 {
            Some("the result size limit must be greater than zero")
        } else if self.retry.backoff_base > self.retry.backoff_cap {
            Some("the retry backoff base must not exceed its cap")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(Error::InvalidConfig {
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_input_bytes", &self.max_input_bytes)
            .field("max_result_bytes", &self.max_result_bytes)
            .finish()
    }
}

fn normalize_base_url(input: &str) -> Result<String> {
    let invalid = |reason: String| Error::InvalidConfig { reason };
    // A URL with credentials in it is never echoed back: errors end up in logs.
    let parsed = url::Url::parse(input.trim()).map_err(|error| {
        let shown = if input.contains('@') {
            "the URL (not shown: it may hold a password)".to_owned()
        } else {
            format!("{input:?}")
        };
        invalid(format!("{shown} is not a URL: {error}"))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // reqwest would turn them into Basic auth, replacing the Bearer key.
        return Err(invalid(
            "the base URL must not carry a user name or password (user:password@host): \
             the API is authenticated by the API key alone; remove them"
                .to_owned(),
        ));
    }
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(format!(
            "{input:?} must be an http:// or https:// URL"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(format!(
            "{input:?} must not have a query or fragment"
        )));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        tracing::warn!(
            base_url = parsed.as_str(),
            "the base URL is plain http:// to another machine: the API key and every picture \
             travel in clear; use https://"
        );
    }
    let mut url = parsed.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = url.strip_suffix("/v1") {
        url = stripped.trim_end_matches('/').to_owned();
    }
    Ok(url)
}

/// Whether `url` points at this machine, where plain http never leaves it.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn reads_the_key_from_either_variable_preferring_the_documented_one() {
        let config = Config::from_lookup(lookup(&[(API_KEY_ALIAS_VAR, "alias")])).unwrap();
        assert_eq!(config.api_key(), Some("alias"));
        let config = Config::from_lookup(lookup(&[
            (API_KEY_VAR, "main"),
            (API_KEY_ALIAS_VAR, "alias"),
        ]))
        .unwrap();
        assert_eq!(config.api_key(), Some("main"));
        let config =
            Config::from_lookup(lookup(&[(API_KEY_VAR, " "), (API_KEY_ALIAS_VAR, "alias")]))
                .unwrap();
        assert_eq!(config.api_key(), Some("alias"));
    }

    #[test]
    fn a_missing_key_is_not_an_error_at_config_time() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert!(!config.has_api_key());
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(
            config.endpoint_url(),
            "https://api.aimlapi.com/v1/images/generations"
        );
    }

    #[test]
    fn base_url_tolerates_trailing_slash_and_v1() {
        for input in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080/v1/",
        ] {
            let config = Config::default().with_base_url(input).unwrap();
            assert_eq!(config.base_url(), "http://127.0.0.1:8080", "{input}");
        }
        let config = Config::default()
            .with_base_url("https://proxy.example/aiml/v1")
            .unwrap();
        assert_eq!(
            config.endpoint_url(),
            "https://proxy.example/aiml/v1/images/generations"
        );
    }

    #[test]
    fn an_unusable_base_url_names_the_variable() {
        let error =
            Config::from_lookup(lookup(&[(BASE_URL_VAR, "ftp://example.com")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: AIML_API_BASE_URL: \"ftp://example.com\" must be an http:// or https:// URL"
        );
    }

    #[test]
    fn credentials_in_the_base_url_are_refused_and_never_repeated() {
        for url in [
            "https://user:hunter2@api.example.com",
            "https://user@api.example.com",
            "https://:hunter2@api.example.com/v1",
            "https://user:hunter2@[bad",
        ] {
            let error = Config::from_lookup(lookup(&[(BASE_URL_VAR, url)])).unwrap_err();
            let text = error.to_string();
            assert!(
                text.starts_with("invalid configuration: AIML_API_BASE_URL: "),
                "{text}"
            );
            assert!(
                !text.contains("hunter2") && !text.contains("example.com"),
                "{text}"
            );
        }
        let error = Config::default()
            .with_base_url("https://user:hunter2@api.example.com")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("must not carry a user name or password")
        );
    }

    #[test]
    fn only_loopback_counts_as_local() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080", true),
            ("http://LOCALHOST:8080", true),
            ("http://10.0.0.1", false),
            ("http://api.example.com", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(url).unwrap()), local, "{url}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let config = Config::default().with_api_key("sk-very-secret\n");
        assert_eq!(config.api_key(), Some("sk-very-secret"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn validate_refuses_a_zero_timeout() {
        let error = Config::default()
            .with_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: the timeout must be greater than zero"
        );
    }
}
