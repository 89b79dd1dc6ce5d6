//! What a host passes on to its model, answered by the server: every fact and instruction in
//! both the text and the structured JSON, and no structured JSON for a host that drops the
//! picture beside it (Codex). `cargo xtask hosts` checks the same against the real hosts.

use std::time::Duration;

use reve_tests::Scenario;
use reve_tests::mcp::{TestClient, result_text, structured};
use rmcp::model::ContentBlock;
use serde_json::json;

use crate::jobs::{env, input, job_id, status};
use crate::support::{World, start};

fn client_named(name: &'static str) -> TestClient {
    TestClient {
        name: Some(name),
        ..TestClient::default()
    }
}

/// What the text says of a saved result: its path and its size, and the job.
fn assert_text_has_the_facts(text: &str, path: &str, job: &str) {
    assert!(text.contains(&format!("saved to {path} (")), "{text}");
    assert!(text.contains(" bytes)"), "{text}");
    assert!(text.contains(&format!("Edit job: {job}")), "{text}");
}

#[tokio::test]
async fn codex_gets_the_picture_the_text_and_the_link_without_structured_json() {
    let world = World::new().await;
    let session = start(&env(&world, &[]), client_named("codex-mcp-client")).await;
    let tools = session.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 4);
    for tool in &tools {
        assert!(tool.output_schema.is_none(), "{}: {tool:?}", tool.name);
    }

    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert!(result.structured_content.is_none(), "{result:?}");
    let kinds: Vec<&str> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Image(_) => "image",
            ContentBlock::Text(_) => "text",
            ContentBlock::ResourceLink(_) => "resource_link",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["image", "text", "resource_link"]);
    let saved = world.saved_files();
    assert_eq!(saved.len(), 1);
    let path = saved[0].to_str().unwrap();
    let text = result_text(&result);
    let job = text
        .split("Edit job: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the text names the job")
        .to_owned();
    assert_text_has_the_facts(&text, path, &job);
    // get_edit answers the same way.
    let again = session.get_edit(&job).await.unwrap();
    assert!(again.structured_content.is_none(), "{again:?}");
    assert!(again.content[0].as_image().is_some(), "{again:?}");
    session.stop().await;

    // `--structured-content always` gives it the JSON anyway.
    let session = start(
        &env(&world, &[("REVE_STRUCTURED_CONTENT", "always")]),
        client_named("codex-mcp-client"),
    )
    .await;
    let tools = session.client.list_all_tools().await.unwrap();
    assert!(tools.iter().all(|tool| tool.output_schema.is_some()));
    let again = session.get_edit(&job).await.unwrap();
    assert_eq!(structured(&again)["path"], json!(path));
    session.stop().await;
}

#[tokio::test]
async fn the_json_alone_and_the_text_alone_each_carry_the_path_the_size_and_the_next_step() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(3)));
    // Claude Code names itself so, and shows its model the JSON in place of the text.
    let session = start(
        &env(&world, &[("REVE_MAX_WAIT_SECS", "1")]),
        client_named("claude-code"),
    )
    .await;
    let instructions = session
        .client
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .unwrap();
    for words in ["paid", "path", "preview image", "job_id", "get_edit"] {
        assert!(instructions.contains(words), "{words}: {instructions}");
    }

    let running = session
        .edit_image(json!({ "prompt": "p", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&running), "running");
    let job = job_id(&running);
    let next_step = format!("Call get_edit with job_id \"{job}\"");
    assert!(result_text(&running).contains(&next_step));
    let output = structured(&running);
    assert!(
        output["message"].as_str().unwrap().contains(&next_step),
        "{output:?}"
    );
    assert!(output["doing"].as_str().unwrap().contains("so far"));

    let done = crate::jobs::collect(&session, &job, 10).await;
    assert_eq!(status(&done), "succeeded");
    let output = structured(&done);
    let path = output["path"].as_str().unwrap();
    assert!(std::path::Path::new(path).is_file());
    assert_text_has_the_facts(output["message"].as_str().unwrap(), path, &job);
    assert_text_has_the_facts(&result_text(&done), path, &job);
    assert!(done.content[0].as_image().is_some());
    session.stop().await;
}
