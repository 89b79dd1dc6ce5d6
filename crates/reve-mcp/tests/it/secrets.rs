//! Secrets outside the tool's own error paths (those are in `faults.rs` and
//! `mcp_stdio.rs`): help, version and usage errors of every subcommand, and
//! the input pictures a client sends, which stay out of results and out of
//! logs at any level unless `RUST_LOG` asks for rmcp's own trace.

use std::collections::BTreeMap;
use std::process::Stdio;

use reve_tests::fake::{data_uri, sample_jpeg};
use reve_tests::mcp::TestClient;
use reve_tests::{FakeApi, Scenario};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{World, binary, path_string};

const KEY: &str = "sk-secret-KEY-5e4d3c2b1a09";
const TOKEN: &str = "tok-secret-TOKEN-a1b2c3d4e5";

#[test]
fn help_version_and_usage_errors_never_show_a_secret() {
    let outputs = TempDir::new().unwrap();
    let invocations: [&[&str]; 10] = [
        &["--help"],
        &["-h"],
        &["--version"],
        &["serve", "--help"],
        &["edit", "--help"],
        &["--no-such-flag"],
        &["serve", "--http", "not-an-address"],
        &["edit"],
        &["edit", "--timeout-secs", "many"],
        &["help", "serve"],
    ];
    for args in invocations {
        let env = BTreeMap::from([
            ("AIML_API_KEY".to_owned(), KEY.to_owned()),
            ("AIMLAPI_API_KEY".to_owned(), KEY.to_owned()),
            ("REVE_HTTP_TOKEN".to_owned(), TOKEN.to_owned()),
            ("REVE_OUTPUT_DIR".to_owned(), path_string(outputs.path())),
            ("RUST_LOG".to_owned(), "trace".to_owned()),
        ]);
        let output = reve_tests::mcp::child_command(binary(), &env)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.is_empty(), "{args:?} printed nothing");
        for secret in [KEY, TOKEN, "KEY-5e4d", "TOKEN-a1b2"] {
            assert!(!all.contains(secret), "{args:?} showed a secret: {all}");
        }
    }
}

#[tokio::test]
async fn input_pictures_stay_out_of_results_and_debug_logs() {
    let world = World::with_fake(FakeApi::builder().api_key(KEY).start().await);
    let fake = &world.fake;
    let env = world.env(&[("RUST_LOG", "debug")]);
    let session = crate::support::start(&env, TestClient::default()).await;
    // A JPEG, while results are PNGs: no stretch of base64 is shared by chance.
    let input = data_uri("image/jpeg", &sample_jpeg(48, 48));
    let payload = input.split_once(',').unwrap().1;
    let fragments: Vec<&str> = payload
        .as_bytes()
        .chunks(32)
        .skip(1)
        .filter(|chunk| chunk.len() == 32)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    let mut results = Vec::new();
    for scenario in [
        Scenario::Success,
        Scenario::EchoAuthorization,
        Scenario::MalformedJson,
        Scenario::ServerError(500),
        Scenario::ContentViolation,
    ] {
        fake.push(scenario);
        let result = session
            .edit_image(json!({ "prompt": "p", "image_url": input }))
            .await
            .unwrap();
        results.push(serde_json::to_string(&result).unwrap());
    }
    let logs = session.stop().await;
    for text in results.iter().chain([&logs]) {
        assert!(!text.contains(KEY), "the key leaked: {text:.2000}");
        if let Some(fragment) = fragments.iter().find(|f| text.contains(**f)) {
            panic!("the input's base64 ({fragment}) leaked: {text:.2000}");
        }
    }
}

#[tokio::test]
async fn a_base_url_with_a_password_is_refused_and_plain_http_elsewhere_is_warned_about() {
    let world = World::new().await;
    let with_password = world.env(&[("AIML_API_BASE_URL", "https://user:hunter2@api.example.com")]);
    let output = crate::support::command(&with_password)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("must not carry a user name or password"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // 192.0.2.1 (TEST-NET-1) is never called: the warning comes at start-up.
    let in_clear = world.env(&[("AIML_API_BASE_URL", "http://192.0.2.1:9")]);
    let session = crate::support::start(&in_clear, TestClient::default()).await;
    let log = session.stop().await;
    assert!(log.contains("travel in clear"), "{log}");
    let local = crate::support::start(&world.env(&[]), TestClient::default()).await;
    let log = local.stop().await;
    assert!(!log.contains("travel in clear"), "{log}");
}
