//! Editing in rounds: a previous result given again by reference (`job:ID` or its
//! `reve://jobs/ID/result`), over HTTP with no local file at all, the line of versions each
//! job records, and references that are not the caller's refused as unknown.

use base64::Engine as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

use reve_tests::mcp::{McpSession, TestClient, result_text, structured};

use crate::jobs::{run, status};
use crate::mcp_http::HttpServer;
use crate::support::{World, start};

async fn call(
    client: &RunningService<RoleClient, TestClient>,
    tool: &'static str,
    arguments: Value,
) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object");
    };
    client
        .peer()
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap()
}

/// The picture the last generation request carried in `field`.
fn last_sent(world: &World, field: &str) -> String {
    let sent = world.fake.generation_requests();
    let body = sent.last().unwrap().json.clone().unwrap();
    body[field].as_str().unwrap().to_owned()
}

/// The newest job, as `reve-mcp jobs --json` gives it.
async fn newest(world: &World) -> Value {
    let listed = run(world, &["jobs", "--json", "-n", "1"]).await;
    serde_json::from_str(listed.lines().next().unwrap()).unwrap()
}

/// `path`'s bytes as the `data:` URI a reference to it is sent as.
fn data_uri_of(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Four rounds over HTTP, where the server reads no local file: a picture made from words,
/// edited by its result URI, that result edited by `job:ID`, then a branch from the first
/// version. Each round is one generation, sent the saved picture it names, and records its
/// parent; `get_edit` and `reve-mcp jobs --tree` show the line of versions.
#[tokio::test]
async fn rounds_over_http_reuse_each_result_by_reference_and_keep_the_line_of_versions() {
    let world = World::new().await;
    let server = HttpServer::start(&crate::mcp_http::env(&world), &[]).await;
    let session = server.client(None, TestClient::default()).await;

    let first = call(&session, "create_image", json!({ "prompt": "a red kite" })).await;
    assert_eq!(status(&first), "succeeded", "{first:?}");
    let first = structured(&first);
    assert_eq!(first["parents"], json!([]));
    let first_id = first["job_id"].as_str().unwrap().to_owned();
    let first_uri = first["result_uri"].as_str().unwrap().to_owned();
    assert_eq!(first_uri, format!("reve://jobs/{first_id}/result"));

    let second = call(
        &session,
        "edit_image",
        json!({ "prompt": "a darker sky", "image_url": first_uri }),
    )
    .await;
    assert_eq!(status(&second), "succeeded", "{second:?}");
    assert!(
        result_text(&second).contains(&format!("Made from the result of edit job {first_id}")),
        "{second:?}"
    );
    let second = structured(&second);
    assert_eq!(second["parents"], json!([first_id]));
    assert_eq!(
        last_sent(&world, "image_url"),
        data_uri_of(first["path"].as_str().unwrap())
    );
    let second_id = second["job_id"].as_str().unwrap().to_owned();

    let third = call(
        &session,
        "edit_image",
        json!({ "prompt": "add a hat", "image_url": format!("job:{second_id}") }),
    )
    .await;
    let third = structured(&third);
    assert_eq!(third["status"], "succeeded", "{third:?}");
    assert_eq!(third["parents"], json!([second_id]));
    assert_eq!(
        last_sent(&world, "image_url"),
        data_uri_of(second["path"].as_str().unwrap())
    );
    let third_id = third["job_id"].as_str().unwrap().to_owned();

    // Back to the first version, another way.
    let branch = call(
        &session,
        "edit_image",
        json!({ "prompt": "a green kite", "image_url": format!("job:{first_id}") }),
    )
    .await;
    let branch = structured(&branch);
    assert_eq!(branch["parents"], json!([first_id]));
    let branch_id = branch["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        world.fake.generation_attempts(),
        4,
        "one generation a round"
    );

    // get_edit tells the same line.
    let again = call(&session, "get_edit", json!({ "job_id": third_id })).await;
    assert_eq!(structured(&again)["parents"], json!([second_id]));

    // The resources say where each result came from.
    let resources = session.peer().list_all_resources().await.unwrap();
    let described = |id: &str| {
        resources
            .iter()
            .find(|resource| resource.uri == format!("reve://jobs/{id}/result"))
            .and_then(|resource| resource.description.clone())
            .unwrap_or_default()
    };
    assert!(
        described(&third_id).ends_with(&format!("(made from reve://jobs/{second_id}/result)")),
        "{resources:?}"
    );
    assert!(!described(&first_id).contains("made from"), "{resources:?}");

    // The same line, drawn: the first version with its two branches, the second with its one.
    let tree = run(&world, &["jobs", "--tree"]).await;
    let rows: Vec<&str> = tree.lines().skip(1).collect();
    let short = |id: &str| id[..8].to_owned();
    assert_eq!(rows.len(), 4, "{tree}");
    assert!(rows[0].starts_with(&short(&first_id)), "{tree}");
    assert!(
        rows[1].starts_with(&format!("├─ {}", short(&second_id))),
        "{tree}"
    );
    assert!(
        rows[2].starts_with(&format!("│  └─ {}", short(&third_id))),
        "{tree}"
    );
    assert!(
        rows[3].starts_with(&format!("└─ {}", short(&branch_id))),
        "{tree}"
    );
    assert_eq!(newest(&world).await["parents"], json!([first_id]));

    session.cancel().await.unwrap();
    server.stop().await;
}

/// With `--no-save` nothing is on this machine to send: a result given by reference goes to
/// the API as the URL it published the picture at, and the new job records where it came from.
#[tokio::test]
async fn without_saving_a_reference_sends_the_providers_url() {
    let world = World::new().await;
    let server = HttpServer::start(&crate::mcp_http::env(&world), &["--no-save"]).await;
    let session = server.client(None, TestClient::default()).await;
    let first = call(&session, "create_image", json!({ "prompt": "a red kite" })).await;
    let first = structured(&first);
    assert_eq!(first["status"], "succeeded", "{first:?}");
    assert_eq!(first["result_uri"], Value::Null, "nothing saved");
    let first_id = first["job_id"].as_str().unwrap().to_owned();
    let published = first["url"].as_str().unwrap().to_owned();

    let second = call(
        &session,
        "edit_image",
        json!({ "prompt": "a darker sky", "image_url": format!("job:{first_id}") }),
    )
    .await;
    let second = structured(&second);
    assert_eq!(second["status"], "succeeded", "{second:?}");
    assert_eq!(second["parents"], json!([first_id]));
    assert_eq!(last_sent(&world, "image_url"), published);
    assert_eq!(world.fake.generation_attempts(), 2);
    assert!(world.saved_files().is_empty(), "{:?}", world.saved_files());
    session.cancel().await.unwrap();
    server.stop().await;
}

/// A saved result that is no longer a plain file (moved away, or swapped for a symlink to
/// something else) is not read: the provider's URL goes instead, while it keeps the picture.
#[tokio::test]
async fn a_saved_result_swapped_or_gone_is_sent_as_the_providers_url() {
    let world = World::new().await;
    let server = HttpServer::start(&crate::mcp_http::env(&world), &[]).await;
    let session = server.client(None, TestClient::default()).await;
    let secret = world.path("secret.png");
    std::fs::write(&secret, reve_tests::fake::sample_png(8, 8)).unwrap();
    for (round, swap) in ["symlink", "gone"].into_iter().enumerate() {
        let made = call(
            &session,
            "create_image",
            json!({ "prompt": format!("a kite, round {round}") }),
        )
        .await;
        let made = structured(&made);
        let path = made["path"].as_str().unwrap().to_owned();
        std::fs::remove_file(&path).unwrap();
        if swap == "symlink" {
            std::os::unix::fs::symlink(&secret, &path).unwrap();
        }
        let again = call(
            &session,
            "edit_image",
            json!({ "prompt": "darker", "image_url": made["result_uri"] }),
        )
        .await;
        assert_eq!(status(&again), "succeeded", "{swap}: {again:?}");
        assert_eq!(
            last_sent(&world, "image_url"),
            made["url"].as_str().unwrap(),
            "{swap}"
        );
    }
    session.cancel().await.unwrap();
    server.stop().await;
}

/// From the command line: `--from` the start of a job's id, as `reve-mcp jobs` shows it, and a
/// result's URI among the pictures of a verb.
#[tokio::test]
async fn the_command_line_edits_a_result_again_from_its_id() {
    let world = World::new().await;
    std::fs::write(world.path("cat.png"), reve_tests::fake::sample_png(32, 24)).unwrap();
    let edit = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let world = &world;
        async move {
            let output = crate::support::command(&world.env(&[]))
                .args(&args)
                .current_dir(world.path(""))
                .output()
                .await
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let saved = edit(&["edit", "cat.png", "-p", "make it night"]).await;
    let first_id = newest(&world).await["id"].as_str().unwrap().to_owned();

    edit(&["edit", "--from", &first_id[..8], "-p", "add a moon"]).await;
    assert_eq!(last_sent(&world, "image_url"), data_uri_of(saved.trim()));
    assert_eq!(newest(&world).await["parents"], json!([first_id]));

    let result_uri = format!("reve://jobs/{first_id}/result");
    edit(&["remix", &result_uri, "cat.png", "-p", "side by side"]).await;
    assert_eq!(newest(&world).await["parents"], json!([first_id]));
    assert_eq!(world.fake.generation_attempts(), 3);
}

/// A reference to another user's result is refused exactly as one to no job at all, before
/// anything is sent; so is one to a job with no result, or to a picture that is not a result.
#[tokio::test]
async fn references_that_are_not_the_callers_results_are_refused_unpaid() {
    let world = World::new().await;
    // A job of a token's holder, over HTTP...
    let mut env = crate::mcp_http::env(&world);
    env.insert(
        "REVE_HTTP_TOKEN".into(),
        "tok-iterate-0123456789abcdef".into(),
    );
    let server = HttpServer::start(&env, &[]).await;
    let theirs = server
        .client(Some("tok-iterate-0123456789abcdef"), TestClient::default())
        .await;
    let made = call(&theirs, "create_image", json!({ "prompt": "a red kite" })).await;
    let their_id = structured(&made)["job_id"].as_str().unwrap().to_owned();
    theirs.cancel().await.unwrap();
    server.stop().await;

    // ...is unknown to this machine's own user, sharing the store.
    let session: McpSession = start(&world.env(&[]), TestClient::default()).await;
    let before = world.fake.generation_attempts();
    let unknown = "0123456789abcdef0123456789abcdef";
    let refusal = |result: &CallToolResult| {
        assert_eq!(result.is_error, Some(true), "{result:?}");
        result_text(result)
    };
    let theirs = refusal(
        &session
            .edit_image(json!({ "prompt": "p", "image_url": format!("job:{their_id}") }))
            .await
            .unwrap(),
    );
    let nobody = refusal(
        &session
            .edit_image(
                json!({ "prompt": "p", "image_url": format!("reve://jobs/{unknown}/result") }),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        theirs.replace(&their_id, "ID"),
        nobody.replace(unknown, "ID"),
        "another's job is refused as an unknown one"
    );
    assert!(theirs.contains("no edit job"), "{theirs}");
    let preview = refusal(
        &session
            .edit_image(
                json!({ "prompt": "p", "image_url": format!("reve://jobs/{their_id}/preview") }),
            )
            .await
            .unwrap(),
    );
    assert!(preview.contains("reve://jobs/JOB_ID/result"), "{preview}");
    assert_eq!(world.fake.generation_attempts(), before, "nothing sent");
    session.stop().await;
}
