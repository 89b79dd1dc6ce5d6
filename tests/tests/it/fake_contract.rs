//! The fake AIML API honours the published contract: authentication, request
//! validation against the spec's schema, and the example response's shape in
//! both result modes. Plain reqwest, no reve-core, so these tests check the
//! fake and nothing else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat};
use reve_tests::fake::{self, FakeApi, ResultFormat};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn body(image_url: &str) -> Value {
    json!({ "model": "reve/edit-image", "image_url": image_url, "prompt": "invert it" })
}

async fn post(fake: &FakeApi, body: &Value) -> reqwest::Response {
    client()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .json(body)
        .send()
        .await
        .unwrap()
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn sample(width: u32, height: u32) -> (Vec<u8>, DynamicImage) {
    let png = fake::sample_png(width, height);
    let decoded = image::load_from_memory(&png).unwrap();
    (png, decoded)
}

/// The documented error body, checked field by field; returns its `message`.
fn documented_message(body: &Value, status: u16, path: &str) -> Value {
    assert_eq!(
        keys(body),
        ["message", "path", "requestId", "statusCode", "timestamp"]
    );
    assert_eq!(body["statusCode"], status);
    assert_eq!(body["path"], path);
    assert_eq!(body["requestId"].as_str().unwrap().len(), 36);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    body["message"].clone()
}

#[tokio::test]
async fn url_mode_answers_like_the_published_example_and_serves_the_edit() {
    let fake = FakeApi::start().await;
    let (png, input) = sample(64, 48);
    let sent = body(&fake::data_uri("image/png", &png));

    let response = post(&fake, &sent).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(keys(&answer), ["data", "meta"]);
    let item = &answer["data"][0];
    assert_eq!(answer["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        keys(item),
        ["url", "b64_json", "request_id", "content_violation"]
    );
    assert_eq!(item["b64_json"], Value::Null);
    assert_eq!(item["content_violation"], false);
    assert!(item["request_id"].as_str().unwrap().starts_with("rsid-"));
    assert_eq!(
        answer["meta"],
        json!({ "usage": { "tokens_used": 210000 } })
    );

    let url = item["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/files/", fake.base_url())));
    assert!(url.ends_with(".png"));
    let download = client().get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "image/png");
    let result = image::load_from_memory(&download.bytes().await.unwrap()).unwrap();
    assert_eq!(result.to_rgba8(), fake::edit(&input, None));

    let recorded = fake.generation_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].json.as_ref(), Some(&sent));
    assert_eq!(recorded[0].body_len, sent.to_string().len());
    assert_eq!(
        recorded[0].header("Authorization"),
        Some(format!("Bearer {}", fake.api_key()).as_str())
    );
    assert_eq!(recorded[0].headers["content-type"], "application/json");
    assert_eq!(fake.generation_attempts(), 1);
    assert_eq!(fake.file_downloads(), 1);
    assert_eq!(fake.cancelled_requests(), 0);
}

#[tokio::test]
async fn base64_mode_inlines_the_edit_and_has_no_url() {
    let fake = FakeApi::start().await;
    let (png, input) = sample(20, 30);
    let mut sent = body(&fake::data_uri("image/png", &png));
    sent["convert_base64_to_url"] = json!(false);

    let answer: Value = post(&fake, &sent).await.json().await.unwrap();
    let item = &answer["data"][0];
    assert_eq!(
        keys(item),
        ["url", "b64_json", "request_id", "content_violation"]
    );
    assert_eq!(item["url"], Value::Null);
    let bytes = STANDARD.decode(item["b64_json"].as_str().unwrap()).unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Png);
    let result = image::load_from_memory(&bytes).unwrap();
    assert_eq!(result.to_rgba8(), fake::edit(&input, None));
    assert_eq!(fake.file_downloads(), 0);
}

#[tokio::test]
async fn result_size_and_format_are_configurable_while_the_url_still_says_png() {
    let fake = FakeApi::builder()
        .result_size(300, 200)
        .result_format(ResultFormat::Jpeg)
        .start()
        .await;
    let jpeg = fake::sample_jpeg(40, 40);

    let answer: Value = post(&fake, &body(&fake::data_uri("image/jpeg", &jpeg)))
        .await
        .json()
        .await
        .unwrap();
    let url = answer["data"][0]["url"].as_str().unwrap();
    assert!(url.ends_with(".png"));
    let download = client().get(url).send().await.unwrap();
    assert_eq!(download.headers()["content-type"], "image/jpeg");
    let bytes = download.bytes().await.unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Jpeg);
    let result = image::load_from_memory(&bytes).unwrap();
    assert_eq!((result.width(), result.height()), (300, 200));
}

#[tokio::test]
async fn a_canned_result_is_served_for_any_input_without_fetching_it() {
    let canned = fake::sample_webp(7, 5);
    let fake = FakeApi::builder()
        .canned_result(canned.clone(), ResultFormat::WebP)
        .start()
        .await;
    let never_served = format!("{}/inputs/missing", fake.base_url());

    for sent in [
        body(&never_served),
        body(&fake::data_uri("image/png", &fake::sample_png(3, 3))),
    ] {
        let answer: Value = post(&fake, &sent).await.json().await.unwrap();
        let url = answer["data"][0]["url"].as_str().unwrap();
        let download = client().get(url).send().await.unwrap();
        assert_eq!(download.headers()["content-type"], "image/webp");
        assert_eq!(download.bytes().await.unwrap(), canned);
    }
    assert!(
        fake.requests()
            .iter()
            .all(|request| request.path != "/inputs/missing")
    );
}

#[tokio::test]
async fn a_prompt_one_character_too_long_is_rejected_with_an_array_message() {
    let fake = FakeApi::start().await;
    let mut sent = body(&fake::data_uri("image/png", &fake::sample_png(8, 8)));
    sent["prompt"] = json!("p".repeat(2561));

    let response = post(&fake, &sent).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        documented_message(&error, 400, "/v1/images/generations"),
        json!(["prompt must be shorter than or equal to 2560 characters"])
    );

    sent["prompt"] = json!("p".repeat(2560));
    assert_eq!(post(&fake, &sent).await.status(), 200);
}

#[tokio::test]
async fn a_missing_model_is_rejected_with_an_array_message() {
    let fake = FakeApi::start().await;
    let mut sent = body(&fake::data_uri("image/png", &fake::sample_png(8, 8)));
    sent.as_object_mut().unwrap().remove("model");

    let response = post(&fake, &sent).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        documented_message(&error, 400, "/v1/images/generations"),
        json!(["model should not be empty"])
    );
}

#[tokio::test]
async fn a_body_without_json_content_type_is_seen_as_empty() {
    let fake = FakeApi::start().await;
    let response = client()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .body(body("data:image/png;base64,AAAA").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let mut messages: Vec<String> = serde_json::from_value(error["message"].clone()).unwrap();
    messages.sort();
    assert_eq!(
        messages,
        [
            "image_url should not be empty",
            "model should not be empty",
            "prompt should not be empty"
        ]
    );
}

#[tokio::test]
async fn invalid_json_is_a_400_with_a_string_message() {
    let fake = FakeApi::start().await;
    let response = client()
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let message = documented_message(&error, 400, "/v1/images/generations");
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with("Unexpected token in JSON")
    );
    assert_eq!(fake.generation_requests()[0].json, None);
}

#[tokio::test]
async fn requests_without_the_right_bearer_key_get_401() {
    let fake = FakeApi::builder().api_key("my-own-key").start().await;
    assert_eq!(fake.api_key(), "my-own-key");
    let sent = body(&fake::data_uri("image/png", &fake::sample_png(8, 8)));

    let missing = client()
        .post(fake.endpoint_url())
        .json(&sent)
        .send()
        .await
        .unwrap();
    let wrong = client()
        .post(fake.endpoint_url())
        .bearer_auth(fake::TEST_API_KEY)
        .json(&sent)
        .send()
        .await
        .unwrap();
    for response in [missing, wrong] {
        assert_eq!(response.status(), 401);
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            documented_message(&error, 401, "/v1/images/generations"),
            "Unauthorized"
        );
    }
    assert_eq!(post(&fake, &sent).await.status(), 200);
    assert_eq!(fake.generation_attempts(), 3);
}

#[tokio::test]
async fn loopback_urls_are_fetched_and_remote_ones_refused() {
    let fake = FakeApi::start().await;
    let (png, input) = sample(16, 16);
    let input_url = fake.serve_input(png, "image/png");
    assert!(input_url.starts_with(fake.base_url()));

    let answer: Value = post(&fake, &body(&input_url)).await.json().await.unwrap();
    let url = answer["data"][0]["url"].as_str().unwrap();
    let bytes = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let result = image::load_from_memory(&bytes).unwrap();
    assert_eq!(result.to_rgba8(), fake::edit(&input, None));
    let input_path = input_url.strip_prefix(fake.base_url()).unwrap();
    assert!(fake.requests().iter().any(|r| r.path == input_path));

    for unreachable in [
        "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/t-rex.png",
        &format!("{}/inputs/absent", fake.base_url()),
    ] {
        let response = post(&fake, &body(unreachable)).await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            documented_message(&error, 400, "/v1/images/generations"),
            "image_url could not be fetched"
        );
    }
}

#[tokio::test]
async fn an_image_url_that_is_not_an_image_is_a_400() {
    let fake = FakeApi::start().await;
    let response = post(&fake, &body(&fake::data_uri("image/png", b"not a picture"))).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["message"],
        "image_url does not contain a supported image"
    );
}

#[tokio::test]
async fn webp_and_gif_inputs_are_accepted() {
    let fake = FakeApi::start().await;
    for (mime, bytes) in [
        ("image/webp", fake::sample_webp(10, 12)),
        ("image/gif", fake::sample_gif(10, 12)),
    ] {
        let response = post(&fake, &body(&fake::data_uri(mime, &bytes))).await;
        assert_eq!(response.status(), 200, "{mime}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_nests_404() {
    let fake = FakeApi::start().await;
    let get = client().get(fake.endpoint_url()).send().await.unwrap();
    assert_eq!(get.status(), 404);
    let error: Value = get.json().await.unwrap();
    assert_eq!(
        documented_message(&error, 404, "/v1/images/generations"),
        "Cannot GET /v1/images/generations"
    );

    let other = client()
        .post(format!("{}/v1/chat/completions?x=1", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let recorded = fake.requests();
    assert_eq!(recorded[1].path, "/v1/chat/completions");
    assert_eq!(recorded[1].query.as_deref(), Some("x=1"));
    assert_eq!(fake.generation_attempts(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let fake = FakeApi::builder().max_body_bytes(1024).start().await;
    let response = post(&fake, &body(&"x".repeat(2048))).await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        documented_message(&error, 413, "/v1/images/generations"),
        "request entity too large"
    );
    assert_eq!(fake.generation_attempts(), 1);
}

/// The result a success body names, downloaded and decoded, with the tokens it reported.
async fn made(fake: &FakeApi, sent: &Value) -> (DynamicImage, Value) {
    let response = post(fake, sent).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(keys(&answer), ["data", "meta"]);
    let url = answer["data"][0]["url"].as_str().unwrap();
    let download = client().get(url).send().await.unwrap();
    let picture = image::load_from_memory(&download.bytes().await.unwrap()).unwrap();
    (picture, answer["meta"]["usage"]["tokens_used"].clone())
}

/// Create and remix answer as their pages' examples do: a 16:9 create is 1360x768 and reports
/// 126000 tokens; a remix fetches every picture, makes its result from the first at its aspect
/// ratio (3:2 by default) and reports 210000.
#[tokio::test]
async fn create_and_remix_answer_as_their_published_examples() {
    let fake = FakeApi::start().await;
    let create =
        json!({ "model": "reve/create-image", "prompt": "a hedgehog", "aspect_ratio": "16:9" });
    let (picture, tokens) = made(&fake, &create).await;
    assert_eq!((picture.width(), picture.height()), (1360, 768));
    assert_eq!(tokens, 126_000);
    assert_eq!(picture.to_rgba8(), fake::sample_image(1360, 768));

    let (first, first_picture) = sample(64, 48);
    let (second, _) = sample(30, 20);
    let input = fake.serve_input(second, "image/png");
    let remix = json!({
        "model": "reve/remix-edit-image",
        "prompt": "the dinosaur holds the mug",
        "image_urls": [fake::data_uri("image/png", &first), input],
    });
    let (picture, tokens) = made(&fake, &remix).await;
    assert_eq!(tokens, 210_000);
    assert_eq!(
        picture.to_rgba8(),
        fake::edit(&first_picture, Some((1248, 832)))
    );
    // Every picture is fetched and decoded: a second one that is not a picture fails the call.
    let not_a_picture = fake.serve_input(b"just text".to_vec(), "text/plain");
    let broken = json!({
        "model": "reve/remix-edit-image",
        "prompt": "p",
        "image_urls": [fake::data_uri("image/png", &first), not_a_picture],
    });
    assert_eq!(post(&fake, &broken).await.status(), 400);
}

/// Bad input for each model is refused with the API's error shape, naming the limit or the
/// allowed values, and nothing is made.
#[tokio::test]
async fn each_models_limits_are_refused_with_the_documented_body() {
    let fake = FakeApi::start().await;
    let picture = fake::data_uri("image/png", &sample(8, 8).0);
    let cases = [
        (
            json!({ "model": "reve/remix-edit-image", "prompt": "p", "image_urls": vec![picture.as_str(); 5] }),
            json!(["image_urls must contain no more than 4 elements"]),
        ),
        (
            json!({ "model": "reve/create-image", "prompt": "p", "aspect_ratio": "21:9" }),
            json!([
                "aspect_ratio must be one of the following values: 16:9, 9:16, 3:2, 2:3, 4:3, 3:4, 1:1"
            ]),
        ),
        (
            json!({ "model": "reve/imagine", "prompt": "p", "image_url": picture }),
            json!([
                "model must be one of the following values: reve/create-image, reve/edit-image, reve/remix-edit-image"
            ]),
        ),
    ];
    for (sent, expected) in cases {
        let response = post(&fake, &sent).await;
        assert_eq!(response.status(), 400, "{sent}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            documented_message(&body, 400, "/v1/images/generations"),
            expected
        );
    }
    assert_eq!(fake.file_downloads(), 0);
}

/// `X-Client-Request-Id` is kept and echoed in the documented alphabet only (dropped silently
/// otherwise, the request still billed); every answer names its inference and JSON answers
/// their cost; `/v2/logs` lists every request with the key, failed ones at cost 0, newest first,
/// paged, filtered by repeated `status`, with the documented 400s.
#[tokio::test]
async fn requests_are_traced_charged_and_listed_in_the_logs() {
    let fake = FakeApi::start().await;
    let image = fake::data_uri("image/png", &fake::sample_png(8, 8));
    for id in ["job-1", "not kept!"] {
        let answer = client()
            .post(fake.endpoint_url())
            .bearer_auth(fake.api_key())
            .header("x-client-request-id", id)
            .json(&body(&image))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let headers = answer.headers();
        let echoed = headers
            .get("x-client-request-id")
            .map(|v| v.to_str().unwrap());
        assert_eq!(echoed, (id == "job-1").then_some("job-1"));
        assert_eq!(headers["x-aimlapi-credits-used"], "210000");
        assert_eq!(headers["x-aimlapi-usd-spent"], "0.105000000");
        assert_eq!(headers["x-inference-id"].len(), 21);
    }
    let refused = post(&fake, &json!({ "model": "reve/edit-image", "prompt": "p" })).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.headers()["x-aimlapi-usd-spent"], "0.000000000");

    let logs = |query: &str| {
        let url = format!("{}/v2/logs?{query}", fake.base_url());
        let key = fake.api_key().to_owned();
        async move {
            let answer = client().get(url).bearer_auth(key).send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = logs("period=24h").await;
    assert_eq!(status, 200, "{page}");
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "failed", "newest first");
    assert_eq!(rows[0]["cost"], json!({ "usd": 0.0, "credits": 0 }));
    assert_eq!(
        rows[1]["client_request_id"],
        Value::Null,
        "dropped, still billed"
    );
    assert_eq!(rows[1]["cost"], json!({ "usd": 0.105, "credits": 210000 }));
    assert_eq!(rows[2]["client_request_id"], "job-1");
    // The documented `required` list, in its order.
    let required = [
        "created",
        "status",
        "origin",
        "model",
        "cost",
        "tokens",
        "request_id",
        "inference_id",
        "client_request_id",
    ];
    assert_eq!(keys(&rows[2]), required);
    assert_eq!(
        page["pagination"],
        json!({ "limit": 50, "offset": 0, "total": 3, "has_more": false })
    );

    let (_, page) = logs("period=24h&limit=1&offset=1&status=succeeded&status=failed").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["pagination"]["has_more"], true);
    let (_, page) = logs("period=24h&status=succeeded&model=reve/edit-image").await;
    assert_eq!(page["pagination"]["total"], 2);
    let (_, page) = logs("period=24h&model=reve/edit-image,reve/create-image").await;
    assert_eq!(
        page["pagination"]["total"], 0,
        "a comma is part of the name"
    );
    for bad in [
        "",
        "period=7d&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        "start=2026-01-01T00:00:00Z&end=2026-06-01T00:00:00Z",
        "period=24h&status=succeeded,failed",
    ] {
        let (status, body) = logs(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["path"], "/v2/logs");
    }
}

/// A charge may show in the logs late; past 200 requests a minute the logs answer 429; a
/// queued fault answers instead of the rows.
#[tokio::test]
async fn the_logs_show_charges_late_and_limit_their_callers() {
    let fake = FakeApi::builder()
        .log_delay(std::time::Duration::from_millis(300))
        .logs_requests_per_window(3)
        .start()
        .await;
    let image = fake::data_uri("image/png", &fake::sample_png(8, 8));
    assert_eq!(post(&fake, &body(&image)).await.status(), 200);
    let get = || async {
        client()
            .get(format!("{}/v2/logs?period=1h", fake.base_url()))
            .bearer_auth(fake.api_key())
            .send()
            .await
            .unwrap()
    };
    let early: Value = get().await.json().await.unwrap();
    assert_eq!(early["pagination"]["total"], 0, "not recorded yet");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    fake.push_logs(fake::LogsScenario::Status(500));
    assert_eq!(get().await.status(), 500);
    let late: Value = get().await.json().await.unwrap();
    assert_eq!(late["pagination"]["total"], 1);
    assert_eq!(get().await.status(), 429);
    assert_eq!(fake.charges().len(), 1);
}

/// `/model/{id}` (singular, not under /v1) gives the price with `include=pricing`, an ETag that
/// earns a 304, a new ETag when the price changes, a 404 for an unknown model.
#[tokio::test]
async fn the_price_is_served_with_an_etag() {
    let fake = FakeApi::start().await;
    let url = format!("{}/model/reve/edit-image?include=pricing", fake.base_url());
    let answer = client().get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let etag = answer.headers()["etag"].to_str().unwrap().to_owned();
    let model: Value = answer.json().await.unwrap();
    assert_eq!(model["object"], "model");
    let unit = &model["data"]["pricing"]["units"][0];
    assert_eq!(
        (unit["price"].as_f64(), unit["per"].as_u64()),
        (Some(0.105), Some(1))
    );

    let again = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    fake.set_price_factor(2.0);
    let changed = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let model: Value = changed.json().await.unwrap();
    assert_eq!(model["data"]["pricing"]["units"][0]["price"], 0.21);

    let without = client()
        .get(format!("{}/model/reve/create-image", fake.base_url()))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(without["data"].get("pricing"), None);
    let unknown = client()
        .get(format!(
            "{}/model/reve/nope?include=pricing",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    fake.set_pricing_available(false);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 503);
}
