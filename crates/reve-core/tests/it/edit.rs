//! Successful edits against the fake API: what is sent, what comes back, in both response modes,
//! and local files turned into data: URIs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reve_core::{EditImageRequest, Error, ImageFormat, ImageSource, Usage};
use reve_tests::fake::{self, FakeApi, ResultFormat};

use crate::common::{client, config, input_png, request};

fn expected_pixels() -> image::RgbaImage {
    fake::edit(&image::load_from_memory(&input_png()).unwrap(), None)
}

#[tokio::test]
async fn sends_bearer_key_user_agent_and_the_request_body_snapshot() {
    let fake = FakeApi::start().await;
    client(config(&fake)).edit_image(&request()).await.unwrap();

    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 1);
    let sent = &sent[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", fake.api_key()).as_str())
    );
    assert_eq!(
        sent.header("user-agent"),
        Some(concat!("reve-core/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json.as_ref().expect("the body is JSON");
    assert_eq!(
        body["image_url"],
        fake::data_uri("image/png", &input_png()).as_str()
    );
    insta::assert_json_snapshot!("request_body", body, {
        ".image_url" => insta::dynamic_redaction(|value, _| {
            let uri = value.as_str().unwrap_or_default();
            let (header, payload) = uri.split_once(',').unwrap_or_default();
            format!("{header},[{} base64 characters]", payload.len())
        }),
    });
}

#[tokio::test]
async fn url_mode_downloads_the_result_through_the_client() {
    let fake = FakeApi::start().await;
    let edited = client(config(&fake)).edit_image(&request()).await.unwrap();

    assert_eq!(fake.file_downloads(), 1);
    let url = edited.metadata.url.clone().expect("url mode returns a url");
    assert!(
        url.starts_with(&format!("{}/files/", fake.base_url())),
        "{url}"
    );
    let served = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        edited.bytes, served,
        "the bytes are exactly what was served"
    );

    assert_eq!(edited.metadata.format, ImageFormat::Png);
    assert_eq!(edited.metadata.mime_type(), "image/png");
    assert_eq!(edited.metadata.extension(), "png");
    assert_eq!(edited.dimensions().unwrap(), (40, 30));
    assert_eq!(
        image::load_from_memory(&edited.bytes).unwrap().to_rgba8(),
        expected_pixels()
    );
    assert!(
        edited
            .metadata
            .request_id
            .as_deref()
            .unwrap()
            .starts_with("rsid-")
    );
    assert_eq!(edited.metadata.content_violation, Some(false));
    assert_eq!(
        edited.metadata.usage,
        Some(Usage {
            credits_used: None,
            tokens_used: Some(210_000.0)
        })
    );
}

/// A body's client request id goes out as `X-Client-Request-Id` on every attempt, outside the
/// JSON; the answer's headers come back as the charge, under the id the provider's logs show.
#[tokio::test]
async fn the_client_request_id_is_sent_and_the_charge_read_from_the_headers() {
    let fake = FakeApi::start().await;
    fake.push(reve_tests::Scenario::ServerError(503));
    let config = config(&fake);
    let body = reve_core::RequestBody::new(&request(), config.max_input_bytes())
        .unwrap()
        .with_client_request_id(reve_core::ClientRequestId::new("job-42.a").unwrap());
    let edited = client(config).edit(&body).await.unwrap();

    let sent = fake.generation_requests();
    assert_eq!(sent.len(), 2, "the 503, then the retry");
    for attempt in &sent {
        assert_eq!(
            attempt
                .headers
                .get("x-client-request-id")
                .map(String::as_str),
            Some("job-42.a")
        );
        assert!(
            !attempt
                .json
                .as_ref()
                .unwrap()
                .to_string()
                .contains("job-42"),
            "the id is not part of the JSON"
        );
    }
    let charges = fake.charges();
    assert_eq!(charges.len(), 2);
    assert_eq!((charges[0].succeeded, charges[0].credits), (false, 0));
    assert_eq!((charges[1].succeeded, charges[1].credits), (true, 210_000));
    assert_eq!(
        edited.metadata.charge,
        reve_core::Charge {
            inference_id: Some(charges[1].inference_id.clone()),
            client_request_id: Some("job-42.a".to_owned()),
            credits_used: Some(210_000),
            usd_spent: Some(0.105),
        }
    );

    // Without one, nothing is sent and nothing echoed; the charge is still read.
    let plain = client(crate::common::config(&fake))
        .edit_image(&request())
        .await
        .unwrap();
    let last = fake.generation_requests().pop().unwrap();
    assert!(!last.headers.contains_key("x-client-request-id"));
    assert_eq!(plain.metadata.charge.client_request_id, None);
    assert_eq!(plain.metadata.charge.usd_spent, Some(0.105));
}

#[tokio::test]
async fn base64_mode_decodes_the_result_without_downloading() {
    let fake = FakeApi::start().await;
    let mut request = request();
    request.convert_base64_to_url = Some(false);
    let edited = client(config(&fake)).edit_image(&request).await.unwrap();

    assert_eq!(fake.file_downloads(), 0);
    assert_eq!(
        fake.generation_requests()[0].json.as_ref().unwrap()["convert_base64_to_url"],
        false
    );
    assert_eq!(edited.metadata.url, None);
    assert_eq!(edited.metadata.format, ImageFormat::Png);
    assert_eq!(
        image::load_from_memory(&edited.bytes).unwrap().to_rgba8(),
        expected_pixels()
    );
}

#[tokio::test]
async fn the_result_type_comes_from_the_bytes_not_the_url() {
    for (format, expected, extension) in [
        (ResultFormat::Jpeg, ImageFormat::Jpeg, "jpg"),
        (ResultFormat::WebP, ImageFormat::WebP, "webp"),
    ] {
        let fake = FakeApi::builder().result_format(format).start().await;
        let edited = client(config(&fake)).edit_image(&request()).await.unwrap();
        assert!(edited.metadata.url.as_deref().unwrap().ends_with(".png"));
        assert_eq!(edited.metadata.format, expected);
        assert_eq!(edited.metadata.extension(), extension);
        assert_eq!(edited.dimensions().unwrap(), (40, 30));
    }
}

#[tokio::test]
async fn a_local_file_is_sent_as_a_data_uri_of_exactly_its_bytes() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A JPEG named .png: the bytes decide the MIME type.
    let photo = dir.path().join("photo.png");
    let bytes = fake::sample_jpeg(40, 30);
    std::fs::write(&photo, &bytes).unwrap();

    let source = ImageSource::parse(photo.to_str().unwrap()).unwrap();
    assert_eq!(source, ImageSource::File(photo.clone()));
    let image_url = source.into_image_url(1 << 20).unwrap();
    client(config(&fake))
        .edit_image(&EditImageRequest::new(image_url, "Invert the colours"))
        .await
        .unwrap();

    let sent = fake.generation_requests();
    let sent = sent[0].json.as_ref().unwrap()["image_url"]
        .as_str()
        .unwrap();
    let payload = sent.strip_prefix("data:image/jpeg;base64,").expect(sent);
    assert_eq!(STANDARD.decode(payload).unwrap(), bytes);
}

#[tokio::test]
async fn a_non_image_file_is_refused_before_anything_is_sent() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.png");
    std::fs::write(&notes, "shopping list: eggs").unwrap();

    let error = ImageSource::parse(notes.to_str().unwrap())
        .unwrap()
        .into_image_url(1 << 20)
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotAnImage { path, saw } if path == &notes && saw == "text, not an image"),
        "{error:?}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn invalid_requests_never_reach_the_api_snapshot() {
    let fake = FakeApi::start().await;
    let client = client(config(&fake));
    let too_long = "x".repeat(2561);
    let cases = [
        EditImageRequest::new(fake::data_uri("image/png", &input_png()), "   "),
        EditImageRequest::new(fake::data_uri("image/png", &input_png()), too_long),
        EditImageRequest::new("data:text/plain;base64,aGVsbG8=", "Invert the colours"),
        EditImageRequest::new("data:image/png;base64,not base64!", "Invert the colours"),
        EditImageRequest::new("/home/me/photo.png", "Invert the colours"),
        EditImageRequest::new("ftp://example.com/photo.png", "Invert the colours"),
    ];
    let mut messages = Vec::new();
    for request in &cases {
        let error = client.edit_image(request).await.unwrap_err();
        let Error::InvalidInput { field, .. } = &error else {
            panic!("expected InvalidInput, got {error:?}");
        };
        messages.push(format!("{field}: {error}"));
    }
    assert!(fake.requests().is_empty());
    insta::assert_snapshot!("invalid_request_messages", messages.join("\n"));
}

#[tokio::test]
async fn a_missing_key_fails_the_call_not_the_config() {
    let fake = FakeApi::start().await;
    let config = reve_core::Config::from_lookup(|name| {
        (name == reve_core::BASE_URL_VAR).then(|| fake.base_url().to_owned())
    })
    .unwrap();
    assert!(!config.has_api_key());
    let error = client(config).edit_image(&request()).await.unwrap_err();
    assert!(matches!(error, Error::MissingApiKey));
    assert!(error.to_string().contains("AIML_API_KEY"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn clones_share_the_client_and_results_can_be_saved() {
    let fake = FakeApi::start().await;
    let first = client(config(&fake));
    let second = first.clone();
    let request = request();
    let (a, b) = tokio::join!(first.edit_image(&request), second.edit_image(&request));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.metadata.request_id, b.metadata.request_id);
    assert_eq!(fake.generation_attempts(), 2);

    let dir = tempfile::tempdir().unwrap();
    let path = a.save_in(dir.path(), Some("edited")).unwrap();
    assert_eq!(path, dir.path().join("edited.png"));
    assert_eq!(std::fs::read(&path).unwrap(), a.bytes);
}
