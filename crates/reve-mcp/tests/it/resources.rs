//! The jobs' pictures as MCP resources and the viewer as an MCP App, through the real binary:
//! what a client that renders apps sees and one that does not, listing, reading, templates and
//! pages, and over HTTP, that a token's holder reads only its own.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reve_tests::Scenario;
use reve_tests::fake::{TWO_COLOURS, data_uri, sample_png, two_colour_png};
use reve_tests::mcp::{McpSession, TestClient, structured};
use rmcp::model::{ErrorCode, PaginatedRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

use crate::mcp_http::{HttpServer, sse_messages};
use crate::support::{World, path_string, start};

const VIEWER: &str = "ui://reve/viewer";
/// The skill's file, listed on every client's first page, after the results.
const SKILL: &str = "skill://reve-pictures/SKILL.md";

/// The URIs of `resources`, in order.
fn uris(resources: &[rmcp::model::Resource]) -> Vec<&str> {
    resources
        .iter()
        .map(|resource| resource.uri.as_str())
        .collect()
}
const APP_MIME: &str = "text/html;profile=mcp-app";

async fn serve(world: &World, apps: bool) -> McpSession {
    let env = world.env(&[("REVE_ALLOWED_DIRS", &path_string(&world.inputs))]);
    let client = TestClient {
        apps,
        ..TestClient::default()
    };
    start(&env, client).await
}

pub(crate) async fn read(
    session: &McpSession,
    uri: &str,
) -> Result<ResourceContents, rmcp::ErrorData> {
    let read = session
        .client
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri))
        .await;
    match read {
        Ok(mut read) => {
            assert_eq!(read.contents.len(), 1, "{read:?}");
            Ok(read.contents.remove(0))
        }
        Err(rmcp::ServiceError::McpError(error)) => Err(error),
        Err(other) => panic!("resources/read {uri}: {other}"),
    }
}

/// A blob's bytes and MIME type.
pub(crate) fn blob(contents: &ResourceContents) -> (Vec<u8>, String) {
    match contents {
        ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        } => (
            STANDARD.decode(blob).unwrap(),
            mime_type.clone().unwrap_or_default(),
        ),
        other => panic!("expected a blob, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_renders_apps_gets_the_viewer_and_one_that_does_not_sees_no_change() {
    let world = World::new().await;
    let plain = serve(&world, false).await;
    let apps = serve(&world, true).await;

    let plain_tools = plain.client.peer().list_all_tools().await.unwrap();
    assert!(
        plain_tools.iter().all(|tool| tool.meta.is_none()),
        "{plain_tools:?}"
    );
    let app_tools = apps.client.peer().list_all_tools().await.unwrap();
    for (with_app, without) in app_tools.iter().zip(&plain_tools) {
        let meta = serde_json::to_value(&with_app.meta).unwrap();
        assert_eq!(meta["ui"]["resourceUri"], VIEWER, "{}", with_app.name);
        assert_eq!(meta["ui/resourceUri"], VIEWER, "the key older hosts read");
        // Apart from the link, the tools are the same for both.
        let mut unlinked = with_app.clone();
        unlinked.meta = None;
        assert_eq!(&unlinked, without);
    }

    // The viewer is listed for the client that renders it, and readable as an app.
    let listed = |session: &McpSession| {
        let peer = session.client.peer().clone();
        async move { peer.list_all_resources().await.unwrap() }
    };
    assert_eq!(listed(&apps).await[0].uri, VIEWER);
    assert_eq!(uris(&listed(&plain).await), [SKILL]);
    let viewer = read(&apps, VIEWER).await.unwrap();
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &viewer
    else {
        panic!("the viewer is text: {viewer:?}")
    };
    assert_eq!(mime_type.as_deref(), Some(APP_MIME));
    assert!(text.contains("ui/initialize") && text.contains("resources/read"));
    // Self-contained: nothing is loaded from any origin.
    for loads in [
        "<script src",
        "<link",
        "@import",
        "url(",
        "http://",
        "https://",
    ] {
        assert!(!text.contains(loads), "the viewer loads something: {loads}");
    }
    plain.stop().await;
    apps.stop().await;
}

#[tokio::test]
async fn an_edit_is_listed_and_read_as_resources_with_its_input_as_sent() {
    let world = World::new().await;
    let input = two_colour_png(64, 40);
    let input_path = world.input_file("two-colours.png", &input);
    let session = serve(&world, true).await;
    let result = session
        .edit_image(json!({ "prompt": "invert it", "image_url": path_string(&input_path) }))
        .await
        .unwrap();
    let output = structured(&result).clone();
    let job = output["job_id"].as_str().unwrap();
    assert_eq!(output["result_uri"], format!("reve://jobs/{job}/result"));
    assert_eq!(output["preview_uri"], format!("reve://jobs/{job}/preview"));
    assert_eq!(
        output["input_image"],
        json!({
            "uri": format!("reve://jobs/{job}/input"),
            "mime_type": "image/png", "width": 64, "height": 40, "bytes": input.len(),
        })
    );
    // The link in the result is the result's resource.
    let link = result
        .content
        .iter()
        .find_map(|block| block.as_resource_link())
        .expect("a resource link");
    assert_eq!(link.uri, output["result_uri"].as_str().unwrap());
    // The model still reads one picture, and nothing of it in the structured content.
    let images = result.content.iter().filter(|b| b.as_image().is_some());
    assert_eq!(images.count(), 1);
    assert!(serde_json::to_string(&output).unwrap().len() < 2048);

    // The result is the saved file, byte for byte; the preview is what the model saw; the
    // input is the picture as it was sent (small enough to pass through as it was).
    let saved = std::fs::read(output["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        blob(&read(&session, &link.uri).await.unwrap()),
        (saved, "image/png".into())
    );
    let shown = result.content.iter().find_map(|b| b.as_image()).unwrap();
    let (preview, preview_mime) = blob(
        &read(&session, output["preview_uri"].as_str().unwrap())
            .await
            .unwrap(),
    );
    assert_eq!(
        (STANDARD.encode(&preview), preview_mime),
        (shown.data.clone(), shown.mime_type.clone())
    );
    let decoded = image::load_from_memory(&preview).unwrap().to_rgb8();
    let inverted = TWO_COLOURS[0].map(|channel| 255 - channel);
    assert_eq!(
        decoded.get_pixel(2, 2).0,
        inverted,
        "the fake inverts colours"
    );
    let uri = output["input_image"]["uri"].as_str().unwrap();
    assert_eq!(
        blob(&read(&session, uri).await.unwrap()),
        (input.clone(), "image/png".into())
    );

    let listed = session.client.peer().list_all_resources().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0].uri, VIEWER);
    assert_eq!(listed[2].uri, SKILL);
    assert_eq!(listed[1].uri, link.uri);
    assert_eq!(listed[1].mime_type.as_deref(), Some("image/png"));
    assert_eq!(listed[1].size, output["bytes"].as_u64());
    assert_eq!(listed[1].title.as_deref(), Some("invert it"));

    let templates = session
        .client
        .peer()
        .list_all_resource_templates()
        .await
        .unwrap();
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        templates,
        [
            "reve://jobs/{job_id}/result",
            "reve://jobs/{job_id}/preview",
            "reve://jobs/{job_id}/input",
            "reve://jobs/{job_id}/input-{n}"
        ]
    );
    session.stop().await;
}

#[tokio::test]
async fn a_url_input_has_no_input_picture_and_unknown_or_gone_resources_are_refused() {
    let world = World::new().await;
    let session = serve(&world, false).await;
    let url = world.fake.serve_input(sample_png(32, 32), "image/png");
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": url }))
        .await
        .unwrap();
    let output = structured(&result).clone();
    assert_eq!(output["input_image"], Value::Null);
    let job = output["job_id"].as_str().unwrap();
    let missing = read(&session, &format!("reve://jobs/{job}/input"))
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::RESOURCE_NOT_FOUND);
    assert!(
        missing.message.contains("its input was a URL"),
        "{}",
        missing.message
    );

    for unknown in [
        format!("reve://jobs/{}/result", "0".repeat(32)),
        format!("reve://jobs/{job}/thumbnail"),
        "file:///etc/passwd".to_owned(),
    ] {
        let error = read(&session, &unknown).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::RESOURCE_NOT_FOUND, "{unknown}");
        assert!(
            error.message.starts_with("no resource"),
            "{}",
            error.message
        );
    }
    // A saved result the user has since deleted is said to be gone, with its path.
    let saved = output["path"].as_str().unwrap();
    std::fs::remove_file(saved).unwrap();
    let gone = read(&session, output["result_uri"].as_str().unwrap())
        .await
        .unwrap_err();
    assert_eq!(gone.code, ErrorCode::RESOURCE_NOT_FOUND);
    assert!(
        gone.message.contains(saved) && gone.message.contains("cannot be read now"),
        "{}",
        gone.message
    );
    // A refused read leaves the server serving.
    assert!(session.client.peer().list_all_tools().await.is_ok());
    session.stop().await;
}

#[tokio::test]
async fn a_running_edit_shows_its_input_and_its_result_once_done() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(3)));
    let env = world.env(&[("REVE_MAX_WAIT_SECS", "1")]);
    let session = start(&env, TestClient::default()).await;
    let input = two_colour_png(40, 20);
    let result = session
        .edit_image(json!({ "prompt": "p", "image_url": data_uri("image/png", &input) }))
        .await
        .unwrap();
    let running = structured(&result).clone();
    assert_eq!(running["status"], "running", "{running:?}");
    let job = running["job_id"].as_str().unwrap();
    // The input was previewed while the API works; the result is not there yet.
    let read_input = read(&session, &format!("reve://jobs/{job}/input"))
        .await
        .unwrap();
    assert_eq!(blob(&read_input), (input, "image/png".into()));
    let early = read(&session, &format!("reve://jobs/{job}/result"))
        .await
        .unwrap_err();
    assert!(
        early.message.contains("has not succeeded"),
        "{}",
        early.message
    );
    let listed = session.client.peer().list_all_resources().await.unwrap();
    assert_eq!(uris(&listed), [SKILL], "no result while it runs");

    let mut done = session.get_edit(job).await.unwrap();
    for _ in 0..5 {
        if structured(&done)["status"] != "running" {
            break;
        }
        done = session.get_edit(job).await.unwrap();
    }
    let output = structured(&done);
    assert_eq!(output["status"], "succeeded", "{output:?}");
    let saved = std::fs::read(output["path"].as_str().unwrap()).unwrap();
    let uri = output["result_uri"].as_str().unwrap();
    assert_eq!(blob(&read(&session, uri).await.unwrap()).0, saved);
    session.stop().await;
}

#[tokio::test]
async fn results_are_listed_newest_first_in_pages() {
    let world = World::new().await;
    let session = serve(&world, false).await;
    // One after another, so that each job is created at a later millisecond than the last.
    let mut made = Vec::new();
    for index in 0..53 {
        let result = session
            .edit_image(json!({
                "prompt": format!("edit number {index}"),
                "image_url": data_uri("image/png", &sample_png(8, 8)),
            }))
            .await
            .unwrap();
        made.push(
            structured(&result)["result_uri"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let peer = session.client.peer();
    let first = peer.list_resources(None).await.unwrap();
    assert_eq!(first.resources.len(), 51, "50 results and the skill");
    assert_eq!(first.resources[50].uri, SKILL);
    let cursor = first.next_cursor.clone().expect("a second page");
    let second = peer
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert_eq!(second.resources.len(), 3);
    assert_eq!(second.next_cursor, None);
    let listed: Vec<String> = first.resources[..50]
        .iter()
        .chain(&second.resources)
        .map(|resource| resource.uri.clone())
        .collect();
    made.reverse();
    assert_eq!(listed, made, "every result once, newest first");

    let bad = peer
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("nonsense".into())),
        ))
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(bad) = bad else {
        panic!("{bad}")
    };
    assert_eq!(bad.code, ErrorCode::INVALID_PARAMS);
    assert!(bad.message.contains("invalid cursor"), "{}", bad.message);
    session.stop().await;
}

/// One stateless request of the 2026-07-28 protocol at `server`, as `token`'s holder.
async fn request(server: &HttpServer, token: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "reve-tests", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = json!({ "jsonrpc": "2.0", "id": 3, "method": method, "params": params });
    let mut post = server
        .post(&body)
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    // What the request names (a tool, a resource) goes in a header too.
    if let Some(name) = params["name"].as_str().or(params["uri"].as_str()) {
        post = post.header("mcp-name", name);
    }
    let response = post.send().await.unwrap();
    let text = response.text().await.unwrap();
    sse_messages(&text)
        .pop()
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {text}"))
}

#[tokio::test]
async fn over_http_a_token_reads_only_its_own_results() {
    let world = World::new().await;
    let (alice, bob) = ("tok-alice-5e1f0c9a3b", "tok-bob-8a2d4f6c1e");
    let env = |token: &str| {
        let mut env = world.env(&[]);
        env.insert("REVE_HTTP_TOKEN".into(), token.into());
        env
    };
    let for_alice = HttpServer::start(&env(alice), &["--stateless"]).await;
    let for_bob = HttpServer::start(&env(bob), &["--stateless"]).await;
    let edited = request(
        &for_alice,
        alice,
        "tools/call",
        json!({ "name": "edit_image", "arguments": {
            "prompt": "p", "image_url": data_uri("image/png", &sample_png(16, 16)) } }),
    )
    .await;
    let output = &edited["result"]["structuredContent"];
    let result_uri = output["result_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("{edited}"));
    let job = output["job_id"].as_str().unwrap();

    let own = request(
        &for_alice,
        alice,
        "resources/read",
        json!({ "uri": result_uri }),
    )
    .await;
    assert_eq!(
        own["result"]["contents"][0]["mimeType"], "image/png",
        "{own}"
    );
    let listed = request(&for_alice, alice, "resources/list", json!({})).await;
    assert_eq!(
        listed["result"]["resources"][0]["uri"], result_uri,
        "{listed}"
    );

    // Bob's server shares the store; Bob is told Alice's job does not exist, in the words
    // and code an unknown URI gets.
    let refused = request(
        &for_bob,
        bob,
        "resources/read",
        json!({ "uri": result_uri }),
    )
    .await;
    let unknown_uri = result_uri.replace(job, &"0".repeat(32));
    let unknown = request(
        &for_bob,
        bob,
        "resources/read",
        json!({ "uri": unknown_uri }),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    // Each error names the URI it did not find (SEP-2164), and nothing more.
    assert_eq!(
        refused["error"]["data"],
        json!({ "uri": result_uri }),
        "{refused}"
    );
    assert_eq!(
        unknown["error"]["data"],
        json!({ "uri": unknown_uri }),
        "{unknown}"
    );
    assert_eq!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .replace(job, "ID"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&"0".repeat(32), "ID")
    );
    for picture in ["preview", "input"] {
        let uri = format!("reve://jobs/{job}/{picture}");
        let refused = request(&for_bob, bob, "resources/read", json!({ "uri": uri })).await;
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
    }
    let listed = request(&for_bob, bob, "resources/list", json!({})).await;
    assert_eq!(
        listed["result"]["resources"]
            .as_array()
            .map(|resources| resources
                .iter()
                .map(|resource| resource["uri"].clone())
                .collect::<Vec<_>>()),
        Some(vec![json!(SKILL)]),
        "{listed}"
    );
    for server in [for_alice, for_bob] {
        server.stop().await;
    }
}
