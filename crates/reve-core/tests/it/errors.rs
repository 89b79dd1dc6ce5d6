//! How each failure surfaces: the variant, its fields, its message, and that the API key never
//! appears anywhere a person or a model could read it.

use std::path::PathBuf;
use std::time::Duration;

use reve_core::{Config, Error, Phase};
use reve_tests::fake::{FakeApi, Scenario};

use crate::common::{client, config, request};

async fn failure(scenario: Scenario, config_for: impl Fn(&FakeApi) -> Config) -> Error {
    let fake = FakeApi::builder().default_scenario(scenario).start().await;
    client(config_for(&fake))
        .edit_image(&request())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn content_violation_is_a_distinct_error_with_the_request_id() {
    let error = failure(Scenario::ContentViolation, config).await;
    let Error::ContentViolation { request_id } = &error else {
        panic!("unexpected {error:?}");
    };
    let request_id = request_id.as_deref().expect("the fake sends a request id");
    assert!(request_id.starts_with("rsid-"));
    assert!(error.to_string().contains(request_id));
}

#[tokio::test]
async fn the_key_never_leaks_even_when_the_server_echoes_it() {
    let secret = "sk-aiml-super-secret-0123456789";
    let fake = FakeApi::builder()
        .api_key(secret)
        .default_scenario(Scenario::EchoAuthorization)
        .start()
        .await;
    let config = config(&fake);
    let client = client(config.clone());
    let error = client.edit_image(&request()).await.unwrap_err();

    // The fake really did echo it, so scrubbing is what keeps it out.
    let echoed = fake.generation_requests()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    assert!(echoed.contains(secret));
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{config:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(secret), "leaked in: {text}");
    }
    assert!(
        matches!(&error, Error::Api { status: 400, message, .. } if message.contains("Bearer [redacted]")),
        "{error:?}"
    );
}

#[tokio::test]
async fn statuses_map_to_errors_a_caller_can_act_on() {
    assert!(matches!(
        failure(Scenario::Status401, config).await,
        Error::Authentication { .. }
    ));
    let error = failure(Scenario::OutOfCredits403, config).await;
    assert!(
        matches!(&error, Error::InsufficientCredits { message } if message == "InsufficientCreditsError: You have run out of credits. Top up your balance to continue."),
        "{error:?}"
    );
    let error = failure(Scenario::Validation422, config).await;
    assert!(
        matches!(&error, Error::Api { status: 422, request_id: Some(_), message, .. } if message == "image_url must point to an image the provider accepts"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_an_authentication_error() {
    let fake = FakeApi::start().await;
    let error = client(config(&fake).with_api_key("not-the-key"))
        .edit_image(&request())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Authentication { .. }), "{error:?}");
    assert_eq!(fake.generation_attempts(), 1);
}

#[tokio::test]
async fn malformed_json_keeps_an_excerpt_of_the_body() {
    let error = failure(Scenario::MalformedJson, config).await;
    let Error::Decode { reason, body } = &error else {
        panic!("unexpected {error:?}");
    };
    assert!(
        reason.starts_with("the response is not the expected JSON"),
        "{reason}"
    );
    assert_eq!(
        body.as_deref(),
        Some(r#"{"data":[{"url":undefined,"b64_json":null}]"#)
    );
}

#[tokio::test]
async fn an_error_body_with_a_success_status_is_an_api_error() {
    let error = failure(Scenario::ErrorField200, config).await;
    assert!(
        matches!(&error, Error::Api { status: 200, attempts: 1, message, .. } if message == "GenerationError: The provider failed to generate the image"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_result_over_the_limit_is_refused_whether_or_not_its_length_is_declared() {
    let limit = 1024 * 1024;
    let small = |fake: &FakeApi| config(fake).with_max_result_bytes(limit);
    let error = failure(Scenario::HugeResult { bytes: 3 * limit }, small).await;
    assert!(
        matches!(error, Error::ResultTooLarge { size: Some(size), limit: l } if size == 3 * limit && l == limit),
        "{error:?}"
    );
    let error = failure(Scenario::HugeResultChunked { bytes: 3 * limit }, small).await;
    assert!(
        matches!(error, Error::ResultTooLarge { size: None, limit: l } if l == limit),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_base64_result_over_the_limit_is_refused() {
    let fake = FakeApi::start().await;
    let mut request = request();
    request.convert_base64_to_url = Some(false);
    let error = client(config(&fake).with_max_result_bytes(100))
        .edit_image(&request)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ResultTooLarge { size: Some(size), limit: 100 } if size > 100),
        "{error:?}"
    );
}

#[tokio::test]
async fn nothing_listening_at_the_base_url_names_the_address_and_the_setting() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::default()
        .with_api_key("sk-aiml-not-sent-anywhere")
        .with_base_url(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .with_max_retries(0);
    let error = client(config).edit_image(&request()).await.unwrap_err();
    let Error::Transport { phase, message, .. } = &error else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*phase, Phase::Request);
    assert!(
        message.ends_with(&format!(
            "(nothing answered at http://127.0.0.1:{port}; AIML_API_BASE_URL sets where requests go)"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn an_unusable_config_is_refused_when_the_client_is_built() {
    let error = reve_core::Client::new(Config::default().with_max_input_bytes(0)).unwrap_err();
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
}

/// Every variant's message, as a caller (often a model) reads it.
#[test]
fn error_messages_snapshot() {
    let io = |kind, text: &str| std::io::Error::new(kind, text.to_owned());
    let errors = [
        Error::InvalidInput {
            field: "prompt",
            reason: "prompt is 2561 characters; the limit is 2560".into(),
        },
        Error::InvalidConfig {
            reason: "AIML_API_BASE_URL: \"ftp://x\" must be an http:// or https:// URL".into(),
        },
        Error::MissingApiKey,
        Error::Authentication {
            message: "Unauthorized".into(),
        },
        Error::InsufficientCredits {
            message: "InsufficientCreditsError: You have run out of credits.".into(),
        },
        Error::RateLimited {
            attempts: 3,
            retry_after: Some(Duration::from_secs(30)),
            message: "ThrottlerException: Too Many Requests".into(),
        },
        Error::RateLimited {
            attempts: 1,
            retry_after: None,
            message: "ThrottlerException: Too Many Requests".into(),
        },
        Error::Api {
            status: 503,
            message: "Internal server error".into(),
            request_id: Some("7c0a1f0e-9d1b-4e3c-8a5b-2f4d6e8a0b1c".into()),
            attempts: 3,
        },
        Error::ContentViolation {
            request_id: Some("rsid-4af47c2ebb2e31f34dce88cb35873bab".into()),
        },
        Error::Timeout {
            after: Duration::from_secs(300),
            phase: Phase::Request,
        },
        Error::Timeout {
            after: Duration::from_millis(1500),
            phase: Phase::Download,
        },
        Error::Transport {
            phase: Phase::Request,
            attempts: 3,
            message: "error sending request: connection refused".into(),
        },
        Error::Download {
            status: 404,
            attempts: 1,
        },
        Error::Decode {
            reason: "the response is not the expected JSON: expected value at line 1 column 22"
                .into(),
            body: Some("{\"data\":[{\"url\":undefined}]".into()),
        },
        Error::ResultTooLarge {
            size: Some(62_914_560),
            limit: 52_428_800,
        },
        Error::ResultTooLarge {
            size: None,
            limit: 52_428_800,
        },
        Error::FileTooLarge {
            path: PathBuf::from("/photos/huge.png"),
            size: 25_165_824,
            limit: 20_971_520,
        },
        Error::NotAnImage {
            path: PathBuf::from("/photos/report.png"),
            saw: "a PDF document".into(),
        },
        Error::File {
            path: PathBuf::from("/photos/missing.png"),
            action: "open",
            source: io(std::io::ErrorKind::NotFound, "No such file or directory"),
        },
        Error::FileExists {
            path: PathBuf::from("/out/edited.png"),
        },
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("error_messages", messages.join("\n"));
}
