//! Where a redirect may take a request: the POST (key and picture) stays within the API's origin;
//! a result download follows https anywhere, or the API's own origin, for a few hops only.

use reve_core::Error;
use reve_tests::fake::{FakeApi, Scenario};

use crate::common::{client, config, request};

#[tokio::test]
async fn the_request_is_never_redirected_to_another_origin() {
    let fake = FakeApi::builder().start().await;
    let elsewhere = FakeApi::builder().api_key(fake.api_key()).start().await;
    for status in [307, 308, 302] {
        fake.push(Scenario::Redirect {
            status,
            location: elsewhere.endpoint_url(),
        });
        let error = client(config(&fake))
            .edit_image(&request())
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, Error::Transport { .. }) && text.contains("another origin"),
            "{status}: {text}"
        );
        assert!(text.contains(elsewhere.base_url()), "{text}");
    }
    // One attempt each (a refused redirect is not retried), and nothing reached the other host.
    assert_eq!(fake.generation_attempts(), 3);
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn a_download_follows_the_api_origin_but_not_plain_http_elsewhere() {
    let fake = FakeApi::builder().start().await;
    let elsewhere = FakeApi::builder().start().await;

    // Within the fake's own origin (plain http on loopback), two hops: followed.
    let direct = fake.serve_input(crate::common::input_png(), "image/png");
    let hops = fake.serve_redirect(fake.serve_redirect(direct));
    fake.push(Scenario::ResultAt(hops));
    let edited = client(config(&fake)).edit_image(&request()).await.unwrap();
    assert_eq!(edited.bytes, crate::common::input_png());

    // To plain http on another origin: refused, and that origin is never asked.
    let foreign = elsewhere.serve_input(crate::common::input_png(), "image/png");
    fake.push(Scenario::ResultAt(fake.serve_redirect(foreign)));
    let error = client(config(&fake))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("which is not https"), "{error}");
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn a_download_follows_at_most_three_redirects() {
    let fake = FakeApi::builder().start().await;
    let mut url = fake.serve_input(crate::common::input_png(), "image/png");
    for _ in 0..4 {
        url = fake.serve_redirect(url);
    }
    fake.push(Scenario::ResultAt(url));
    let error = client(config(&fake))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("more than 3 redirects"),
        "{error}"
    );
}
