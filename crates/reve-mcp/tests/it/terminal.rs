//! What a person at a terminal meets: a bare `reve-mcp` says what it is (only when its input is
//! a terminal: a client's pipe gets nothing but the protocol), and an ordinary failure is one
//! `error:` line, never a stack trace, even with `RUST_BACKTRACE` set.
//!
//! The terminal is a real pseudo-terminal, made by util-linux's `script` (in every Debian
//! installation, as part of the essential `bsdutils`).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::support::{World, binary, command};

/// What `reve-mcp` with `env` and no arguments writes to a terminal in its first moments, its
/// stdin being that terminal.
async fn bare_run_on_a_terminal(env: &BTreeMap<String, String>) -> String {
    let mut script = tokio::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command"])
        .arg(binary())
        .arg("/dev/null")
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = script
        .spawn()
        .expect("util-linux's `script` runs (apt-get install -y bsdutils)");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("Ctrl-C to quit") {
        match tokio::time::timeout_at(deadline, stdout.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(read)) => seen.extend_from_slice(&buffer[..read]),
            Ok(Err(error)) => panic!("reading the terminal: {error}"),
        }
    }
    // One more moment for the key's warning, printed just after.
    if let Ok(Ok(read)) =
        tokio::time::timeout(Duration::from_millis(500), stdout.read(&mut buffer)).await
    {
        seen.extend_from_slice(&buffer[..read]);
    }
    child.kill().await.ok();
    String::from_utf8_lossy(&seen).replace("\r\n", "\n")
}

#[tokio::test]
async fn a_bare_reve_mcp_on_a_terminal_says_what_it_is_and_that_the_key_is_missing() {
    let world = World::new().await;
    let mut env = world.env(&[]);
    env.remove("AIML_API_KEY");
    let said = bare_run_on_a_terminal(&env).await;
    assert!(said.contains("reve-mcp is an MCP server"), "{said}");
    assert!(
        said.contains("https://github.com/reve-mcp/reve#set-up-a-client"),
        "{said}"
    );
    assert!(said.contains("reve-mcp edit --help"), "{said}");
    assert!(said.contains("warning: AIML_API_KEY is not set"), "{said}");

    let with_key = bare_run_on_a_terminal(&world.env(&[])).await;
    assert!(with_key.contains("reve-mcp is an MCP server"), "{with_key}");
    assert!(!with_key.contains("AIML_API_KEY is not set"), "{with_key}");
}

#[tokio::test]
async fn a_client_on_a_pipe_gets_no_greeting() {
    let world = World::new().await;
    let mut env = world.env(&[]);
    env.remove("AIML_API_KEY");
    let output = command(&env).stdin(Stdio::null()).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("reve-mcp is an MCP server"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn an_ordinary_error_is_one_line_without_a_backtrace_or_the_secret() {
    let world = World::new().await;
    let output = command(&world.env(&[("RUST_BACKTRACE", "1")]))
        .args([
            "edit",
            "--base-url",
            "https://someone:hunter2@api.example.com",
            "cat.png",
            "-p",
            "make it night",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.starts_with("error: --base-url"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// A bare `reve-mcp` serves stdio, so serve's flags work without the word `serve`, as a desktop
/// configuration's `args` give them.
#[tokio::test]
async fn serve_flags_work_without_the_word_serve() {
    let world = World::new().await;
    let mut server = reve_tests::mcp::child_command(binary(), &world.env(&[]));
    server.args(["--max-wait-secs", "30", "--structured-content", "never"]);
    let session =
        reve_tests::mcp::McpSession::start_command(server, reve_tests::mcp::TestClient::default())
            .await;
    let tools = session.tool_names().await.unwrap();
    assert!(tools.iter().any(|tool| tool == "edit_image"), "{tools:?}");
    let schema_free = session
        .client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .all(|tool| tool.output_schema.is_none());
    assert!(schema_free, "--structured-content never reached the server");
    session.stop().await;

    // The errors stay those of what was typed.
    let run = |args: &'static [&'static str]| {
        let env = world.env(&[]);
        async move {
            let output = command(&env)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (code, stderr) = run(&["--max-wait-secs", "soon"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("'soon'") && stderr.contains("--max-wait-secs"),
        "{stderr}"
    );
    let (code, stderr) = run(&["edti", "cat.png"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unrecognized subcommand 'edti'"),
        "{stderr}"
    );
    let (code, stderr) = run(&["jobs", "--max-wait-secs", "30"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--max-wait-secs"), "{stderr}");
    assert!(!stderr.contains("serving MCP"), "{stderr}");
}
