//! Each scenario of the fake AIML API does what it promises, seen from a
//! plain reqwest client.

use std::time::{Duration, UNIX_EPOCH};

use reve_tests::bounded;
use reve_tests::fake::{self, FakeApi, RetryAfter, Scenario};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn body() -> Value {
    json!({
        "model": "reve/edit-image",
        "image_url": fake::data_uri("image/png", &fake::sample_png(32, 32)),
        "prompt": "invert it",
    })
}

async fn send(fake: &FakeApi) -> Result<reqwest::Response, reqwest::Error> {
    client()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .json(&body())
        .send()
        .await
}

async fn post(fake: &FakeApi) -> reqwest::Response {
    send(fake).await.unwrap()
}

async fn result_url(response: reqwest::Response) -> String {
    let answer: Value = response.json().await.unwrap();
    answer["data"][0]["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn queued_scenarios_apply_in_order_then_the_default() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::ServerError(503));
    fake.push(Scenario::ServerError(502));
    assert_eq!(post(&fake).await.status(), 503);
    assert_eq!(post(&fake).await.status(), 502);
    assert_eq!(post(&fake).await.status(), 200);

    fake.set_default(Scenario::GatewayTimeout504);
    fake.push(Scenario::Success);
    assert_eq!(post(&fake).await.status(), 200);
    assert_eq!(post(&fake).await.status(), 504);
    assert_eq!(post(&fake).await.status(), 504);
    assert_eq!(fake.generation_attempts(), 6);
}

#[tokio::test]
async fn a_default_scenario_can_be_set_at_start() {
    let fake = FakeApi::builder()
        .default_scenario(Scenario::ServerError(500))
        .start()
        .await;
    let response = post(&fake).await;
    assert_eq!(response.status(), 500);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["message"], "Internal server error");
    assert_eq!(error["statusCode"], 500);
}

#[tokio::test]
async fn rate_limits_carry_each_form_of_retry_after() {
    let fake = FakeApi::start().await;
    let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    fake.push(Scenario::RateLimited { retry_after: None });
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::Seconds(7)),
    });
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::HttpDate(at)),
    });
    fake.push(Scenario::RateLimited {
        retry_after: Some(RetryAfter::Raw("soon".to_owned())),
    });

    let mut seen = Vec::new();
    for _ in 0..4 {
        let response = post(&fake).await;
        assert_eq!(response.status(), 429);
        seen.push(
            response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_owned()),
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["message"], "ThrottlerException: Too Many Requests");
    }
    assert_eq!(
        seen,
        [
            None,
            Some("7".to_owned()),
            Some("Sun, 17 Mar 2030 17:46:40 GMT".to_owned()),
            Some("soon".to_owned()),
        ]
    );
}

#[tokio::test]
async fn error_statuses_use_the_documented_body() {
    let fake = FakeApi::start().await;
    for (scenario, status, message) in [
        (Scenario::Status401, 401, json!("Unauthorized")),
        (
            Scenario::BadRequest400,
            400,
            json!("The provider could not process the reference image"),
        ),
        (
            Scenario::Validation422,
            422,
            json!(["image_url must point to an image the provider accepts"]),
        ),
        (Scenario::GatewayTimeout504, 504, json!("Gateway Timeout")),
        (
            Scenario::NotFound404,
            404,
            json!("Cannot POST /v1/images/generations"),
        ),
    ] {
        fake.push(scenario);
        let response = post(&fake).await;
        assert_eq!(response.status(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["statusCode"], status);
        assert_eq!(error["message"], message);
        assert_eq!(error["path"], "/v1/images/generations");
    }
}

#[tokio::test]
async fn out_of_credits_and_error_field_use_the_error_shape() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::OutOfCredits403);
    fake.push(Scenario::ErrorField200);
    for status in [403, 200] {
        let response = post(&fake).await;
        assert_eq!(response.status(), status);
        let error: Value = response.json().await.unwrap();
        let object = error.as_object().unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["error"]);
        assert!(error["error"]["name"].is_string());
        assert!(error["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn content_violation_has_neither_url_nor_base64() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::ContentViolation);
    let response = post(&fake).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let item = &answer["data"][0];
    assert_eq!(item["content_violation"], true);
    assert_eq!(item["url"], Value::Null);
    assert_eq!(item["b64_json"], Value::Null);
}

#[tokio::test]
async fn malformed_json_and_html_pages_are_not_json() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::MalformedJson);
    fake.push(Scenario::HtmlErrorPage);

    let malformed = post(&fake).await;
    assert_eq!(malformed.status(), 200);
    assert!(
        malformed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let text = malformed.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    let html = post(&fake).await;
    assert_eq!(html.status(), 502);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().await.unwrap().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn echo_authorization_repeats_the_key_in_the_error_body() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::EchoAuthorization);
    let response = post(&fake).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains(fake.api_key()));
}

#[tokio::test]
async fn drop_connection_closes_without_any_response() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::DropConnection);
    let error = send(&fake).await.unwrap_err();
    assert!(error.status().is_none());
    assert!(error.is_request(), "{error:?}");
    assert_eq!(fake.generation_attempts(), 1);
    assert_eq!(post(&fake).await.status(), 200);
}

/// Reads a body that is expected to break off; returns what arrived first.
async fn read_until_broken(mut response: reqwest::Response) -> (Vec<u8>, reqwest::Error) {
    let mut received = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the body was complete"),
            Err(error) => return (received, error),
        }
    }
}

#[tokio::test]
async fn truncated_body_sends_headers_then_half_the_json() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::TruncatedBody);
    let response = post(&fake).await;
    assert_eq!(response.status(), 200);
    let declared = usize::try_from(response.content_length().unwrap()).unwrap();
    let (received, error) = read_until_broken(response).await;
    assert_eq!(received.len(), declared / 2);
    assert!(received.starts_with(br#"{"data":[{"url":""#));
    assert!(error.is_body() || error.is_decode(), "{error:?}");
}

#[tokio::test]
async fn drop_after_headers_sends_a_success_head_and_no_body() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::DropAfterHeaders);
    let response = post(&fake).await;
    assert_eq!(response.status(), 200);
    assert!(response.content_length().unwrap() > 0);
    let (received, error) = read_until_broken(response).await;
    assert!(received.is_empty(), "{received:?}");
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    assert_eq!(fake.generation_attempts(), 1);
}

#[tokio::test]
async fn truncated_result_breaks_off_the_download() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::TruncatedResult);
    let url = result_url(post(&fake).await).await;
    let download = client().get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let declared = usize::try_from(download.content_length().unwrap()).unwrap();
    let (received, _) = read_until_broken(download).await;
    assert_eq!(received.len(), declared / 2);
}

#[tokio::test]
async fn result_url_404_points_nowhere() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::ResultUrl404);
    let url = result_url(post(&fake).await).await;
    assert!(url.starts_with(&format!("{}/files/", fake.base_url())));
    let download = client().get(url).send().await.unwrap();
    assert_eq!(download.status(), 404);
    assert_eq!(fake.file_downloads(), 1);
}

/// Reads `limit` bytes of a download and hangs up.
async fn first_bytes(mut download: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut received = Vec::new();
    while received.len() < limit {
        let chunk = download.chunk().await.unwrap().expect("more bytes follow");
        received.extend_from_slice(&chunk);
    }
    received
}

#[tokio::test]
async fn huge_results_stream_far_more_than_anyone_should_keep() {
    let huge: u64 = 1 << 40;
    let fake = FakeApi::start().await;
    fake.push(Scenario::HugeResult { bytes: huge });
    fake.push(Scenario::HugeResultChunked { bytes: huge });

    let declared = client()
        .get(result_url(post(&fake).await).await)
        .send()
        .await
        .unwrap();
    assert_eq!(declared.content_length(), Some(huge));
    assert_eq!(declared.headers()["content-type"], "image/png");
    let start = first_bytes(declared, 1 << 20).await;
    assert_eq!(
        image::guess_format(&start).unwrap(),
        image::ImageFormat::Png
    );

    let chunked = client()
        .get(result_url(post(&fake).await).await)
        .send()
        .await
        .unwrap();
    assert!(chunked.headers().get("content-length").is_none());
    assert_eq!(chunked.headers()["transfer-encoding"], "chunked");
    assert!(first_bytes(chunked, 1 << 20).await.len() >= 1 << 20);
}

#[tokio::test]
async fn huge_results_end_exactly_at_their_size() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::HugeResultChunked { bytes: 200_003 });
    let download = client()
        .get(result_url(post(&fake).await).await)
        .send()
        .await
        .unwrap();
    assert_eq!(download.bytes().await.unwrap().len(), 200_003);
}

#[tokio::test]
async fn slow_bodies_still_arrive_whole() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::SlowBody {
        chunk_delay: Duration::from_millis(5),
    });
    let response = post(&fake).await;
    assert_eq!(response.status(), 200);
    let url = result_url(response).await;
    let bytes = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let result = image::load_from_memory(&bytes).unwrap();
    assert_eq!((result.width(), result.height()), (32, 32));
}

#[tokio::test]
async fn a_client_that_gives_up_during_latency_is_counted_as_cancelled() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::Latency(Duration::from_secs(600)));
    let gave_up = client()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .json(&body())
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(gave_up.is_timeout());

    let counters = bounded(fake.wait_until(|c| c.cancelled_requests == 1)).await;
    assert_eq!(counters.generation_attempts, 1);
    assert_eq!(post(&fake).await.status(), 200);
    assert_eq!(fake.cancelled_requests(), 1);
}

#[tokio::test]
async fn configured_latency_applies_to_every_generation() {
    let fake = FakeApi::builder()
        .latency(Duration::from_secs(600))
        .start()
        .await;
    let request = tokio::spawn({
        let client = client();
        let url = fake.endpoint_url();
        let key = fake.api_key().to_owned();
        async move { client.post(url).bearer_auth(key).json(&body()).send().await }
    });
    bounded(fake.wait_until(|c| c.generation_attempts == 1)).await;
    request.abort();
    bounded(fake.wait_until(|c| c.cancelled_requests == 1)).await;
}

#[tokio::test]
async fn dropping_the_fake_closes_its_port() {
    let fake = FakeApi::start().await;
    let url = fake.endpoint_url();
    drop(fake);
    let refused = bounded(async {
        loop {
            match client().post(&url).send().await {
                Err(error) if error.is_connect() => break error,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(refused.is_connect());
}
