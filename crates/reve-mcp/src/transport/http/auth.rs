//! The bearer token: checked in constant time, then replaced by the principal it stands for; and
//! connections of requests without it closed after their response.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::refusal::Refusal;
use crate::jobs::Principal;

/// Marks a response to a request that carried the right token.
#[derive(Debug, Clone, Copy)]
struct Authenticated;

/// Closes the connection after any response to a request that did not carry the token (see
/// the module's documentation): a client without it never holds a connection between
/// requests.
pub(super) async fn close_unauthenticated(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.extensions().get::<Authenticated>().is_none() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Rejects a request unless it carries `Authorization: Bearer <token>`.
pub(super) async fn require_token(
    State(token): State<Arc<SecretString>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer_credentials(value.as_bytes()));
    if let Some(presented) = presented.filter(|presented| token_matches(&token, presented)) {
        // rmcp hands the request's headers to the handler and may log them;
        // the token has done its job and goes no further. Whose jobs the
        // request may see goes in its place.
        let principal = Principal::of_token(presented);
        request.headers_mut().remove(header::AUTHORIZATION);
        request.extensions_mut().insert(principal);
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Authenticated);
        return response;
    }
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        "rejected a request without the right bearer token"
    );
    Refusal::Unauthorized.into_response()
}

/// The credentials of an `Authorization: Bearer ...` header (RFC 6750; the
/// scheme is case-insensitive).
pub(super) fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, credentials) = value.split_at_checked(b"Bearer ".len())?;
    scheme
        .eq_ignore_ascii_case(b"Bearer ")
        .then(|| credentials.trim_ascii())
        .filter(|credentials| !credentials.is_empty())
}

/// Compares in constant time, so response timing cannot reveal how many
/// leading bytes of a guess were right. `subtle` is used rather than a
/// hand-written loop because it keeps the optimiser from reintroducing an
/// early exit. Only the token's length can leak, which a long random token
/// makes worthless.
pub(super) fn token_matches(expected: &SecretString, presented: &[u8]) -> bool {
    expected.expose_secret().as_bytes().ct_eq(presented).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        assert_eq!(bearer_credentials(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"Basic abc"), None);
        assert_eq!(bearer_credentials(b"Bearer "), None);
        assert_eq!(bearer_credentials(b"Bearer"), None);
    }

    #[test]
    fn tokens_must_match_exactly() {
        let token = SecretString::from("s3cret-token");
        assert!(token_matches(&token, b"s3cret-token"));
        for wrong in [&b"s3cret-tokeN"[..], b"s3cret-token ", b"s3cret", b""] {
            assert!(!token_matches(&token, wrong));
        }
    }
}
