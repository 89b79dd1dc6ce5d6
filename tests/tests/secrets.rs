//! Secrets outside the tool's own error paths (those are in `faults.rs` and
//! `mcp_stdio.rs`): help, version and usage errors of every subcommand, and
//! the input pictures a client sends, which stay out of results and out of
//! logs at any level unless `RUST_LOG` asks for rmcp's own trace.

use std::collections::BTreeMap;
use std::process::Stdio;

use reve_tests::fake::{data_uri, sample_jpeg};
use reve_tests::mcp::{McpSession, TestClient, reve_mcp_binary};
use reve_tests::{FakeApi, Scenario};
use serde_json::json;
use tempfile::TempDir;

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
        let output = std::process::Command::new(reve_mcp_binary())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AIML_API_KEY", KEY)
            .env("AIMLAPI_API_KEY", KEY)
            .env("REVE_HTTP_TOKEN", TOKEN)
            .env("REVE_OUTPUT_DIR", outputs.path())
            .env("RUST_LOG", "trace")
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
    let fake = FakeApi::builder().api_key(KEY).start().await;
    let outputs = TempDir::new().unwrap();
    let env = BTreeMap::from([
        ("AIML_API_KEY".to_owned(), KEY.to_owned()),
        ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
        (
            "REVE_OUTPUT_DIR".to_owned(),
            outputs.path().to_str().unwrap().to_owned(),
        ),
        ("REVE_MAX_RETRIES".to_owned(), "0".to_owned()),
        ("RUST_LOG".to_owned(), "debug".to_owned()),
    ]);
    let session = McpSession::start(&env, TestClient::default()).await;
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
