//! What a person at a terminal meets: a bare `reve-mcp` says what it is (only when its input is
//! a terminal: a client's pipe gets nothing but the protocol), and an ordinary failure is one
//! `error:` line, never a stack trace, even with `RUST_BACKTRACE` set.
//!
//! The terminal is a real pseudo-terminal, made by util-linux's `script` (in every Debian
//! installation, as part of the essential `bsdutils`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use reve_tests::Scenario;
use reve_tests::fake::sample_png;

use crate::support::{World, binary, command};

/// The size of the test's terminal.
const ROWS: u16 = 48;
const COLUMNS: u16 = 80;

/// `reve-mcp` run on a pseudo-terminal (its stdin, stdout and stderr), read as a person sees it and
/// typed at as a person types.
struct Terminal {
    child: tokio::process::Child,
    keys: tokio::process::ChildStdin,
    screen: tokio::process::ChildStdout,
    seen: Vec<u8>,
}

impl Terminal {
    /// `reve-mcp ARGS` with exactly `env` (plus `PATH`, and `HOME` unless `env` sets it), in `cwd`.
    fn start(args: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Terminal {
        // `script` runs its command through a shell: each argument is quoted for it. The terminal
        // gets a size first, as a real one has (one whose input is a pipe starts at 0x0).
        let line = std::iter::once(binary().to_str().unwrap())
            .chain(args.iter().copied())
            .map(|arg| format!("'{}'", arg.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("stty rows {ROWS} cols {COLUMNS} && exec {line}");
        let mut script = tokio::process::Command::new("script");
        script
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("TERM", "xterm-256color")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = script
            .spawn()
            .expect("util-linux's `script` runs (apt-get install -y bsdutils)");
        Terminal {
            keys: child.stdin.take().unwrap(),
            screen: child.stdout.take().unwrap(),
            child,
            seen: Vec::new(),
        }
    }

    /// What the terminal has shown so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until `text` is on the screen, or until `within` has passed (then whatever came).
    async fn read_until(&mut self, text: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let mut buffer = [0u8; 4096];
        while !self.text().contains(text) {
            match tokio::time::timeout_at(deadline, self.screen.read(&mut buffer)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(read)) => self.seen.extend_from_slice(&buffer[..read]),
                Ok(Err(error)) => panic!("reading the terminal: {error}"),
            }
        }
        self.text()
    }

    /// Types `keys` (`"\x03"` is Ctrl-C: the terminal sends SIGINT to the program).
    async fn press(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).await.unwrap();
        self.keys.flush().await.unwrap();
    }

    /// Everything shown until the program ends, and its exit code.
    async fn finish(mut self) -> (Option<i32>, String) {
        let text = self
            .read_until("\u{0}never shown", Duration::from_secs(60))
            .await;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the program ends")
            .unwrap();
        (status.code(), text)
    }
}

/// What `reve-mcp` with `env` and no arguments writes to a terminal in its first moments, its
/// stdin being that terminal.
async fn bare_run_on_a_terminal(env: &BTreeMap<String, String>) -> String {
    let mut terminal = Terminal::start(&[], env, Path::new("/"));
    terminal
        .read_until("Ctrl-C to quit", Duration::from_secs(20))
        .await;
    // One more moment for the key's warning, printed just after.
    terminal
        .read_until("\u{0}never shown", Duration::from_millis(500))
        .await
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

/// What a person sees of `raw` on an 80-column screen, row by row: the output drawn by a terminal
/// emulator, progress lines redrawn in place and cleared, long lines wrapped onto the next row
/// (each row is a line here; a test looks for a message by its start, or in the rows joined).
fn drawn(raw: &str) -> String {
    let size = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut parser = vt100::Parser::new(size(ROWS), size(COLUMNS), 0);
    parser.process(raw.as_bytes());
    let rows: Vec<String> = parser
        .screen()
        .rows(0, COLUMNS)
        .map(|row| row.trim_end().to_owned())
        .collect();
    rows.join("\n").trim_end().to_owned()
}

/// `screen`'s rows joined, for a message that a narrow screen wrapped.
fn unwrapped(screen: &str) -> String {
    screen.replace('\n', "")
}

/// Each picture ends with a finish line that stays, `✓ a.png → ~/outputs/... (0.1 s)`, in colour on
/// a terminal unless NO_COLOR or `--color never` says otherwise (and `--color always` overrides
/// NO_COLOR).
#[tokio::test]
async fn finish_lines_on_a_terminal_are_coloured_unless_told_otherwise() {
    let world = World::new().await;
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.png", &sample_png(16, 16));
    // The output folder is under HOME, so it is shown from `~`.
    let home = world.outputs.parent().unwrap().to_str().unwrap().to_owned();
    let green = "\x1b[32m";
    for (extra, color, coloured) in [
        (None, None, true),
        (Some(("NO_COLOR", "1")), None, false),
        (None, Some("never"), false),
        (Some(("NO_COLOR", "1")), Some("always"), true),
    ] {
        let mut env = world.env(&[("HOME", &home)]);
        env.extend(extra.map(|(name, value)| (name.to_owned(), value.to_owned())));
        let mut args = vec!["edit", "a.png", "b.png", "-p", "make it night"];
        args.extend(color.iter().flat_map(|color| ["--color", *color]));
        let (code, raw) = Terminal::start(&args, &env, &world.inputs).finish().await;
        assert_eq!(code, Some(0), "{raw}");
        let screen = drawn(&raw);
        for input in ["a.png", "b.png"] {
            let finish = screen
                .lines()
                .find(|line| line.starts_with(&format!("✓ {input} → ~/outputs/reve-")))
                .unwrap_or_else(|| panic!("no finish line for {input}:\n{screen}"));
            assert!(finish.trim_end().ends_with(" s)"), "{finish:?}");
        }
        // The progress lines are gone.
        assert!(
            !screen.contains("queued") && !screen.contains("saving"),
            "{screen}"
        );
        assert_eq!(
            raw.contains(green),
            coloured,
            "{extra:?} {color:?}: {raw:?}"
        );
    }
}

/// Ctrl-C on a terminal, twice: the first sends nothing more and says how many edits were already
/// sent (they may be charged) and are being saved; the second abandons them, on a line of its own.
#[tokio::test]
async fn ctrl_c_on_a_terminal_first_keeps_what_was_sent_then_abandons_it() {
    let world = World::new().await;
    world
        .fake
        .set_default(Scenario::Latency(Duration::from_secs(120)));
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.png", &sample_png(16, 16));
    let args = [
        "edit",
        "a.png",
        "b.png",
        "-p",
        "make it night",
        "--jobs",
        "1",
    ];
    let mut terminal = Terminal::start(&args, &world.env(&[]), &world.inputs);
    tokio::time::timeout(
        Duration::from_secs(30),
        world.fake.wait_until(|c| c.generation_attempts == 1),
    )
    .await
    .expect("one picture was sent");
    terminal.press("\x03").await;
    terminal
        .read_until("Ctrl-C again abandons it.", Duration::from_secs(20))
        .await;
    // The progress lines are drawn again below the message.
    let raw = terminal
        .read_until("\u{0}never shown", Duration::from_millis(500))
        .await;
    let screen = drawn(&raw);
    assert!(
        unwrapped(&screen).contains(
            "Ctrl-C: stopped the edits not yet sent; 1 edit was already sent (it may be charged) \
             and is saved when it finishes. Ctrl-C again abandons it."
        ),
        "{screen}"
    );
    // Still running, and the sent edit still open at the fake.
    assert!(screen.contains(" waiting for reve/edit-image"), "{screen}");
    assert_eq!(world.fake.counters().cancelled_requests, 0);
    terminal.press("\x03").await;
    let (code, raw) = terminal.finish().await;
    assert_eq!(code, Some(130), "{raw}");
    let screen = drawn(&raw);
    assert!(
        screen.lines().any(|line| line.starts_with(
            "Ctrl-C again: abandoned 1 edit that was already sent; it may have been charged"
        )),
        "{screen}"
    );
    assert!(
        unwrapped(&screen)
            .contains(": cancelled by Ctrl-C before it was sent; nothing was charged"),
        "{screen}"
    );
    assert_eq!(
        world.fake.generation_attempts(),
        1,
        "the other was never sent"
    );
    assert!(world.saved_files().is_empty(), "{:?}", world.saved_files());
}
