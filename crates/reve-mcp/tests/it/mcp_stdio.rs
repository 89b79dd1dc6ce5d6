//! End-to-end: the real `reve-mcp` binary over stdio against the fake API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reve_mcp::{PreviewLimits, make_preview};
use reve_tests::fake::{data_uri, noise_png, sample_png};
use reve_tests::mcp::{McpSession, TestClient, result_text, structured};
use reve_tests::{FakeApi, Scenario};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{RESULT_KEYS, World, path_string, start};

/// The server's environment in these tests: inputs readable, every log line kept.
fn stdio_env(world: &World) -> BTreeMap<String, String> {
    world.env(&[
        ("REVE_ALLOWED_DIRS", &path_string(&world.inputs)),
        ("RUST_LOG", "debug"),
    ])
}

async fn session(world: &World) -> McpSession {
    start(&stdio_env(world), TestClient::default()).await
}

fn assert_tool_error(result: &CallToolResult, expected_fragment: &str) {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an error, got {result:?}"
    );
    let text = result_text(result);
    assert!(
        text.contains(expected_fragment),
        "error text {text:?} lacks {expected_fragment:?}"
    );
}

#[tokio::test]
async fn lists_the_edit_image_tool_snapshot() {
    let world = World::new().await;
    // The descriptions without a price, however soon it would be read: a test of the money
    // edges checks the price they quote.
    world.fake.set_pricing_available(false);
    let session = session(&world).await;
    let tools = session.client.peer().list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    // The known models' tools first, then any other model's (one added by its document in
    // spec/), then get_edit; each its own snapshot, named after the tool.
    assert_eq!(names[..3], ["edit_image", "create_image", "remix_images"]);
    assert_eq!(names.last(), Some(&"get_edit"));
    for tool in &tools {
        insta::assert_json_snapshot!(format!("{}_tool", tool.name), tool);
    }
    session.stop().await;
}

/// The prompt a person picks from the host's menu: it asks for the two things an edit needs,
/// and hands the model a request that names the tool and says what to report.
#[tokio::test]
async fn the_edit_image_prompt_asks_for_a_picture_and_an_instruction() {
    let world = World::new().await;
    let session = session(&world).await;
    let peer = session.client.peer();
    let prompts = peer.list_all_prompts().await.unwrap();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "edit_image");
    let arguments: Vec<(&str, Option<bool>)> = prompts[0]
        .arguments
        .iter()
        .flatten()
        .map(|argument| (argument.name.as_str(), argument.required))
        .collect();
    assert_eq!(
        arguments,
        [("image", Some(true)), ("instruction", Some(true))]
    );

    let filled = peer
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("edit_image").with_arguments(
                json!({ "image": "/home/ana/cat.png", "instruction": "give the cat a hat" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(filled.messages.len(), 1);
    assert_eq!(filled.messages[0].role, rmcp::model::Role::User);
    let text = filled.messages[0].content.as_text().unwrap().text.clone();
    for fragment in [
        "edit_image tool",
        "Picture: /home/ana/cat.png",
        "Instruction: give the cat a hat",
        "the path it was saved to",
    ] {
        assert!(text.contains(fragment), "{fragment:?} is not in {text:?}");
    }

    // docs/tools.md shows the message the prompt makes: it is what the server sends.
    let documented = peer
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("edit_image").with_arguments(
                json!({ "image": "~/Pictures/cat.png", "instruction": "make the sky stormy" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    let sent = documented.messages[0]
        .content
        .as_text()
        .unwrap()
        .text
        .clone();
    let tools = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tools.md"),
    )
    .unwrap();
    let block = tools
        .split("```text\n")
        .find(|block| block.starts_with("Edit this picture"))
        .and_then(|block| block.split("\n```").next())
        .expect("docs/tools.md shows the prompt's message");
    assert_eq!(block, sent, "docs/tools.md's edit_image prompt");

    let missing = peer
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("edit_image").with_arguments(
                json!({ "image": "/home/ana/cat.png" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("\"instruction\""), "{missing}");
    let unknown = peer
        .get_prompt(rmcp::model::GetPromptRequestParams::new("paint"))
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown prompt \"paint\""), "{unknown}");
    assert_eq!(
        world.fake.generation_attempts(),
        0,
        "a prompt sends nothing"
    );
    session.stop().await;
}

#[tokio::test]
async fn edits_a_url_input_and_saves_the_full_result() {
    let world = World::new().await;
    let input_url = world.fake.serve_input(sample_png(320, 240), "image/png");
    let session = session(&world).await;

    let result = session
        .edit_image(json!({ "prompt": "make it night", "image_url": input_url }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");

    let sent = world.fake.generation_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json.as_ref().unwrap();
    assert_eq!(body["model"], "reve/edit-image");
    assert_eq!(body["prompt"], "make it night");
    assert_eq!(body["image_url"], input_url.as_str());
    assert_eq!(body["convert_base64_to_url"], true);

    // Content blocks in the promised order: image, text, resource link.
    let kinds: Vec<&str> = result
        .content
        .iter()
        .map(|block| match block {
            rmcp::model::ContentBlock::Image(_) => "image",
            rmcp::model::ContentBlock::Text(_) => "text",
            rmcp::model::ContentBlock::ResourceLink(_) => "resource_link",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["image", "text", "resource_link"]);

    let output = structured(&result);
    let keys: Vec<&str> = output.keys().map(String::as_str).collect();
    assert_eq!(keys, RESULT_KEYS);
    let saved = PathBuf::from(output["path"].as_str().unwrap());
    assert_eq!(world.saved_files(), std::slice::from_ref(&saved));
    assert_eq!(saved.extension().unwrap(), "png");
    assert_eq!(output["mime_type"], "image/png");
    assert_eq!(
        (output["width"].clone(), output["height"].clone()),
        (json!(320), json!(240))
    );
    assert!(output["request_id"].as_str().unwrap().starts_with("rsid-"));
    assert_eq!(output["content_violation"], false);

    // The saved file is byte for byte what the API serves at the result URL.
    let url = output["url"].as_str().unwrap();
    let served = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let on_disk = std::fs::read(&saved).unwrap();
    assert_eq!(on_disk, served.as_ref());
    assert_eq!(output["bytes"], json!(on_disk.len()));

    // A small result is shown as is.
    let image = result.content[0].as_image().unwrap();
    assert_eq!(image.mime_type, "image/png");
    assert_eq!(STANDARD.decode(&image.data).unwrap(), on_disk);

    let text = result_text(&result);
    assert!(text.contains(&path_string(&saved)), "{text}");
    assert!(text.contains(url), "{text}");
    let link = match &result.content[2] {
        rmcp::model::ContentBlock::ResourceLink(link) => link,
        other => panic!("{other:?}"),
    };
    // The link is the saved file's resource, named as the file is.
    assert_eq!(link.uri, output["result_uri"].as_str().unwrap());
    assert_eq!(link.name, saved.file_name().unwrap().to_str().unwrap());
    assert_eq!(link.mime_type.as_deref(), Some("image/png"));
    session.stop().await;
}

#[tokio::test]
async fn sends_a_local_file_as_a_data_uri_of_its_exact_bytes() {
    let world = World::new().await;
    let bytes = sample_png(64, 64);
    // The extension lies; the type comes from the bytes.
    let path = world.input_file("photo.jpg", &bytes);
    let session = session(&world).await;

    for image_url in [
        path_string(&path),
        url::Url::from_file_path(&path).unwrap().to_string(),
    ] {
        let result = session
            .edit_image(json!({ "prompt": "p", "image_url": image_url }))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    for request in world.fake.generation_requests() {
        let sent = request.json.unwrap()["image_url"]
            .as_str()
            .unwrap()
            .to_owned();
        let encoded = sent
            .strip_prefix("data:image/png;base64,")
            .expect(&sent[..40]);
        assert_eq!(STANDARD.decode(encoded).unwrap(), bytes);
    }
    assert_eq!(world.fake.generation_attempts(), 2);
    session.stop().await;
}

#[tokio::test]
async fn passes_a_data_uri_through_and_handles_base64_results() {
    let world = World::new().await;
    let input = data_uri("image/png", &sample_png(40, 30));
    let mut env = stdio_env(&world);
    env.insert("REVE_RESPONSE_MODE".into(), "base64".into());
    let session = start(&env, TestClient::default()).await;

    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let body = world.fake.generation_requests()[0].json.clone().unwrap();
    assert_eq!(body["image_url"], input.as_str());
    assert_eq!(body["convert_base64_to_url"], false);
    let output = structured(&result);
    assert_eq!(output["url"], Value::Null);
    assert_eq!(world.fake.file_downloads(), 0);
    let saved = std::fs::read(output["path"].as_str().unwrap()).unwrap();
    image::load_from_memory(&saved).unwrap();
    session.stop().await;
}

#[tokio::test]
async fn a_large_result_is_previewed_within_budget_and_saved_in_full() {
    let fake = FakeApi::builder().result_size(4096, 4096).start().await;
    let world = World::with_fake(fake);
    let input = data_uri("image/png", &sample_png(64, 64));
    let session = session(&world).await;

    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let image = result.content[0].as_image().unwrap();
    assert!(
        image.data.len() <= 750 * 1024,
        "preview is {} bytes",
        image.data.len()
    );
    let preview = image::load_from_memory(&STANDARD.decode(&image.data).unwrap()).unwrap();
    assert_eq!((preview.width(), preview.height()), (1568, 1568));

    let output = structured(&result);
    assert_eq!(
        (output["width"].clone(), output["height"].clone()),
        (json!(4096), json!(4096))
    );
    let saved = image::open(output["path"].as_str().unwrap()).unwrap();
    assert_eq!((saved.width(), saved.height()), (4096, 4096));
    session.stop().await;
}

#[tokio::test]
async fn a_preview_begun_on_a_download_that_starts_over_is_made_again_from_the_whole_file() {
    let fake = FakeApi::start().await;
    fake.push(Scenario::TruncatedResultOnce);
    let world = World::with_fake(fake);
    // Noise, so that the first half of the result fills several file writes the preview reads.
    let input = data_uri("image/png", &noise_png(1024));
    let mut env = stdio_env(&world);
    env.insert("REVE_MAX_RETRIES".to_owned(), "1".to_owned());
    let session = start(&env, TestClient::default()).await;

    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    let logs = session.stop().await;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(world.fake.file_downloads(), 2);
    assert!(
        logs.contains("the preview made during the download failed"),
        "{logs}"
    );
    let saved = std::fs::read(structured(&result)["path"].as_str().unwrap()).unwrap();
    let expected = make_preview(&saved, PreviewLimits::default()).unwrap();
    let image = result.content[0].as_image().unwrap();
    assert_eq!(STANDARD.decode(&image.data).unwrap(), expected.bytes);
    assert_eq!(image.mime_type, expected.mime_type);
}

#[tokio::test]
async fn refusals_never_reach_the_api() {
    let world = World::new().await;
    let outside = TempDir::new().unwrap();
    let secret = outside.path().join("secret.png");
    std::fs::write(&secret, sample_png(8, 8)).unwrap();
    let link = world.inputs.as_path().join("link.png");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let text_file = world.input_file("notes.png", b"just some text, not a picture");
    let good = data_uri("image/png", &sample_png(8, 8));
    let session = session(&world).await;

    let too_long = "x".repeat(2561);
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "prompt": too_long, "image_url": good }), "2561"),
        (json!({ "prompt": "   ", "image_url": good }), "prompt"),
        (json!({ "image_url": good }), "prompt"),
        (json!({ "prompt": "p" }), "image_url"),
        (
            json!({ "prompt": "p", "image_url": good, "colour": "red" }),
            "unknown argument \"colour\"; edit_image takes `image_url`, `prompt`, `output_path`",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "model": "other" }),
            "model",
        ),
        (json!({ "prompt": 3, "image_url": good }), "prompt"),
        (
            json!({ "prompt": "p", "image_url": path_string(&secret) }),
            "outside",
        ),
        (
            json!({ "prompt": "p", "image_url": path_string(&link) }),
            "outside",
        ),
        (
            json!({ "prompt": "p", "image_url": "/etc/passwd" }),
            "outside",
        ),
        (
            json!({ "prompt": "p", "image_url": path_string(world.inputs.as_path()) }),
            "not a regular file",
        ),
        (
            json!({ "prompt": "p", "image_url": path_string(&text_file) }),
            "not",
        ),
        (
            json!({ "prompt": "p", "image_url": "relative/cat.png" }),
            "relative",
        ),
        (
            json!({ "prompt": "p", "image_url": "file://elsewhere/cat.png" }),
            "remote host",
        ),
        (
            json!({ "prompt": "p", "image_url": "data:text/plain;base64,aGk=" }),
            "image",
        ),
        (
            json!({ "prompt": "p", "image_url": "data:image/png;base64,@@@" }),
            "base64",
        ),
        (
            json!({ "prompt": "p", "image_url": "ftp://example.com/a.png" }),
            "http(s) URL",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": "../escape.png" }),
            "output_path",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": "/etc/x.png" }),
            "output_path",
        ),
        // Names that saving would refuse are refused before the paid call.
        (
            json!({ "prompt": "p", "image_url": good, "output_path": ".hidden.png" }),
            "leading dot",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": "back\\slash.png" }),
            "backslashes",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": "new\nline.png" }),
            "control characters",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": "nul\u{0}.png" }),
            "output_path",
        ),
        (
            json!({ "prompt": "p", "image_url": good, "output_path": format!("{}.png", "n".repeat(251)) }),
            "the limit is 255 bytes",
        ),
    ];
    let taken = world.outputs.as_path().join("taken.png");
    std::fs::write(&taken, b"the user's own picture").unwrap();
    let cases = cases.into_iter().chain([(
        json!({ "prompt": "p", "image_url": good, "output_path": "taken.png" }),
        "already exists; choose another output_path",
    )]);
    for (arguments, fragment) in cases {
        let result = session.edit_image(arguments.clone()).await.unwrap();
        assert_tool_error(&result, fragment);
        let text = result_text(&result);
        if fragment == "outside" {
            assert!(
                text.contains(&path_string(
                    &world.inputs.as_path().canonicalize().unwrap()
                )),
                "{text}"
            );
        }
    }
    assert_eq!(
        world.fake.generation_attempts(),
        0,
        "a refused call reached the API"
    );
    let mut huge_name = json!({ "prompt": "p", "image_url": good });
    huge_name[&"n".repeat(100_000)] = json!(1);
    let result = session.edit_image(huge_name).await.unwrap();
    assert_tool_error(&result, "unknown argument");
    assert!(
        result_text(&result).len() < 1_000,
        "the message quotes a bounded part"
    );

    assert_eq!(world.saved_files(), std::slice::from_ref(&taken));
    assert_eq!(std::fs::read(&taken).unwrap(), b"the user's own picture");
    // The server is still serving.
    session.client.peer().list_all_tools().await.unwrap();
    session.stop().await;
}

#[tokio::test]
async fn api_failures_become_actionable_tool_errors() {
    let world = World::new().await;
    let session = session(&world).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let cases = [
        (Scenario::Status401, "AIML_API_KEY"),
        (Scenario::OutOfCredits403, "credits"),
        (Scenario::RateLimited { retry_after: None }, "rate"),
        (Scenario::ServerError(500), "500"),
        (Scenario::GatewayTimeout504, "504"),
        (Scenario::ContentViolation, "rsid-"),
        (Scenario::BadRequest400, "400"),
    ];
    for (scenario, fragment) in cases {
        world.fake.push(scenario.clone());
        let result = session
            .edit_image(json!({ "prompt": "p", "image_url": input }))
            .await
            .unwrap();
        assert_tool_error(&result, fragment);
    }
    assert!(world.saved_files().is_empty(), "{:?}", world.saved_files());
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(
        result.is_error,
        Some(true),
        "the server recovers: {result:?}"
    );
    session.stop().await;
}

#[tokio::test]
async fn a_missing_key_is_a_tool_error_naming_the_variable() {
    let world = World::new().await;
    let mut env = stdio_env(&world);
    env.remove("AIML_API_KEY");
    let session = start(&env, TestClient::default()).await;
    assert_eq!(
        session.client.peer().list_all_tools().await.unwrap().len(),
        4
    );
    let input = data_uri("image/png", &sample_png(16, 16));
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_tool_error(&result, "AIML_API_KEY");
    assert_eq!(world.fake.generation_attempts(), 0);
    session.stop().await;
}

#[tokio::test]
async fn reports_progress_while_the_api_works() {
    let world = World::new().await;
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(3500)));
    let session = session(&world).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let progress = session.observed.progress.lock().unwrap().clone();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(
        progress
            .iter()
            .all(|p| p.progress_token == progress[0].progress_token),
        "{progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0].progress < w[1].progress));
    assert!(
        progress[0]
            .message
            .as_deref()
            .unwrap()
            .contains("reve/edit-image")
    );
    session.stop().await;
}

#[tokio::test]
async fn slow_calls_do_not_block_each_other_or_listing() {
    let fake = FakeApi::builder()
        .latency(Duration::from_secs(2))
        .start()
        .await;
    let world = World::with_fake(fake);
    let session = session(&world).await;
    let input = data_uri("image/png", &sample_png(16, 16));
    let calls = (0..4)
        .map(|i| session.edit_image(json!({ "prompt": format!("edit {i}"), "image_url": input })));
    let all = futures::future::join_all(calls);
    let listing = async {
        // Listing completes while every edit is still waiting on the fake.
        tokio::time::timeout(Duration::from_secs(1), async {
            world.fake.wait_until(|c| c.generation_attempts == 4).await;
            session.client.peer().list_all_tools().await.unwrap()
        })
        .await
        .map(|tools| (tools.len(), world.saved_files()))
    };
    let (results, listed) = tokio::join!(all, listing);
    let (tools, in_flight) = listed.expect("listing was blocked");
    assert_eq!(tools, 4);
    // Each waiting call has only the hidden file its result will stream into.
    assert_eq!(in_flight.len(), 4, "{in_flight:?}");
    for staging in &in_flight {
        let name = staging.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(".reve-") && name.ends_with(".partial"),
            "{in_flight:?}"
        );
    }
    for result in results {
        assert_ne!(result.unwrap().is_error, Some(true));
    }
    assert_eq!(world.saved_files().len(), 4);
    session.stop().await;
}

#[tokio::test]
async fn the_api_key_never_leaks() {
    let key = "sk-reve-DISTINCTIVE-9f8e7d6c5b4a";
    let fake = FakeApi::builder().api_key(key).start().await;
    let world = World::with_fake(fake);
    let input = data_uri("image/png", &sample_png(16, 16));
    let mut env = stdio_env(&world);
    env.insert("RUST_LOG".into(), "trace".into());
    let session = start(&env, TestClient::default()).await;
    let mut texts = Vec::new();
    for scenario in [
        Scenario::EchoAuthorization,
        Scenario::Status401,
        Scenario::MalformedJson,
        Scenario::HtmlErrorPage,
        Scenario::ServerError(502),
        Scenario::ContentViolation,
        Scenario::Success,
    ] {
        world.fake.push(scenario);
        let result = session
            .edit_image(json!({ "prompt": "p", "image_url": input }))
            .await
            .unwrap();
        texts.push(serde_json::to_string(&result).unwrap());
    }
    // A key the server rejects outright, echoed back too.
    let mut wrong = stdio_env(&world);
    wrong.insert("AIML_API_KEY".into(), format!("{key}-wrong"));
    let other = start(&wrong, TestClient::default()).await;
    let result = other
        .edit_image(json!({ "prompt": "p", "image_url": input }))
        .await
        .unwrap();
    texts.push(serde_json::to_string(&result).unwrap());
    texts.push(other.stop().await);
    texts.push(session.stop().await);
    for text in texts {
        assert!(!text.contains(key), "the key leaked: {text}");
        assert!(
            !text.contains("DISTINCTIVE"),
            "part of the key leaked: {text}"
        );
    }
}
