//! Which browser origins and `Host` names are served: this machine's, and those the operator
//! lists; and the CORS answers a browser's preflight gets.

use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::{HttpError, HttpOptions};

/// Hosts that mean "this machine" in a `Host` header; rmcp's own default.
pub(super) const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Browser origins served without configuration: pages this machine serves
/// itself, on any port (local development tools such as the MCP Inspector).
pub(super) const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// The browser origins served: this machine's, and those the operator added.
pub(super) fn allowed_origins(options: &HttpOptions) -> Result<Vec<String>, HttpError> {
    let mut origins: Vec<String> = LOOPBACK_ORIGINS
        .iter()
        .map(|&origin| origin.to_owned())
        .collect();
    for origin in &options.allowed_origins {
        origins.push(normalize_origin(origin)?);
    }
    Ok(origins)
}

/// CORS for the allowed browser origins, so that a web page served from one
/// of them (a browser-based MCP client) can call the server.
pub(super) fn cors(origins: Vec<String>) -> CorsLayer {
    let listed = move |origin: &HeaderValue, _: &Parts| {
        origin
            .to_str()
            .is_ok_and(|origin| origin_is_listed(origin, &origins))
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(listed))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            // 2026-07-28 (SEP-2243): every request names its method, and a call its tool or
            // resource, in headers too. (`Mcp-Param-*` headers come only from tool parameters
            // that ask for them; these tools have none.)
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
        ])
        .expose_headers([HeaderName::from_static("mcp-session-id")])
        .max_age(Duration::from_secs(600))
}

/// Whether `origin` (as a browser sends it) is one of `listed`, in the forms
/// [`allowed_origins`] produces: `scheme://host:*` for any port, otherwise
/// `scheme://host:port`; the same rule rmcp applies to every other request.
pub(super) fn origin_is_listed(origin: &str, listed: &[String]) -> bool {
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    listed.iter().any(|entry| {
        let (base, any_port) = match entry.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (entry.as_str(), false),
        };
        url::Url::parse(base).is_ok_and(|allowed| {
            allowed.scheme() == origin.scheme()
                && allowed.host_str() == origin.host_str()
                && (any_port || allowed.port_or_known_default() == origin.port_or_known_default())
        })
    })
}

/// `--allow-host` accepts what a `Host` header carries: a name or IP,
/// optionally with a port (without one, any port matches).
pub(super) fn check_host(host: &str) -> Result<String, HttpError> {
    let host = host.trim();
    axum::http::uri::Authority::try_from(host)
        .ok()
        .filter(|authority| authority.as_str() == host && !host.contains('@'))
        .map(|_| host.to_ascii_lowercase())
        .ok_or_else(|| HttpError::BadHost(host.to_owned()))
}

/// Turns an `--allow-origin` value into the form rmcp matches on. An origin
/// without a port means its scheme's default port, as browsers send it;
/// rmcp would match any port for such an entry today, and will stop doing
/// so, so the port is made explicit. `:*` keeps any port.
pub(super) fn normalize_origin(origin: &str) -> Result<String, HttpError> {
    let bad = || HttpError::BadOrigin(origin.to_owned());
    let trimmed = origin.trim();
    let (base, any_port) = match trimmed.strip_suffix(":*") {
        Some(base) => (base, true),
        None => (trimmed, false),
    };
    let url = url::Url::parse(base).map_err(|_| bad())?;
    // `Url` forgets a default port written out; `https://h:443:*` is still wrong.
    let explicit_port = axum::http::Uri::try_from(base)
        .ok()
        .and_then(|uri| uri.port_u16())
        .is_some();
    let bare = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !base.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    let host = url.host_str().filter(|_| bare).ok_or_else(bad)?;
    match (any_port, url.port(), url.port_or_known_default()) {
        (true, None, _) if !explicit_port => Ok(format!("{}://{host}:*", url.scheme())),
        (false, _, Some(port)) => Ok(format!("{}://{host}:{port}", url.scheme())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_get_an_explicit_port() {
        let cases = [
            ("https://app.example.com", "https://app.example.com:443"),
            ("http://app.example.com", "http://app.example.com:80"),
            (
                "HTTPS://App.Example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://localhost:*", "http://localhost:*"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        for (given, expected) in cases {
            assert_eq!(normalize_origin(given).unwrap(), expected, "{given}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com:443:*",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "null",
            "*",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cors_admits_the_origins_rmcp_admits() {
        let listed = [
            "http://localhost:*".to_owned(),
            "http://[::1]:*".to_owned(),
            normalize_origin("https://app.example.com").unwrap(),
        ];
        for (origin, expected) in [
            ("http://localhost:5173", true),
            ("http://localhost", true),
            ("http://[::1]:8080", true),
            ("https://app.example.com", true),
            ("https://APP.example.com:443", true),
            ("https://app.example.com:8443", false),
            ("http://app.example.com", false),
            ("https://localhost:5173", false),
            ("http://localhost.evil.example", false),
            ("null", false),
        ] {
            assert_eq!(origin_is_listed(origin, &listed), expected, "{origin}");
        }
    }

    #[test]
    fn hosts_are_names_with_an_optional_port() {
        assert_eq!(
            check_host("MCP.example.com").unwrap(),
            "mcp.example.com".to_owned()
        );
        assert_eq!(
            check_host("mcp.example.com:443").unwrap(),
            "mcp.example.com:443"
        );
        assert_eq!(check_host("[::1]:8787").unwrap(), "[::1]:8787");
        for bad in ["https://mcp.example.com", "mcp.example.com/mcp", "a@b", ""] {
            assert!(check_host(bad).is_err(), "{bad} accepted");
        }
    }
}
