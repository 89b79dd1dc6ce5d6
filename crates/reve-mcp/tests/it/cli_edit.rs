//! End-to-end: `reve-mcp edit`, the real binary, against the fake API.

use std::path::PathBuf;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reve_tests::Scenario;
use reve_tests::fake::{sample_jpeg, sample_png};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use crate::support::{RESULT_KEYS, World, command, files_under};

/// What one run of the binary left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// `reve-mcp edit ARGS...` run with the input folder as its working
/// directory.
fn edit_command(world: &World, args: &[&str]) -> Command {
    let mut command = command(&world.env(&[]));
    command
        .arg("edit")
        .args(args)
        .current_dir(&world.inputs)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run_edit(world: &World, args: &[&str]) -> Run {
    Run::from(
        edit_command(world, args)
            .output()
            .await
            .expect("reve-mcp runs"),
    )
}

/// The bytes the fake serves at the result URLs it handed out, in the
/// order they were downloaded.
async fn served_results(world: &World) -> Vec<Vec<u8>> {
    let mut served = Vec::new();
    for request in world.fake.requests() {
        if request.method == "GET" && request.path.starts_with("/files/") {
            let url = format!("{}{}", world.fake.base_url(), request.path);
            let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            served.push(bytes.to_vec());
        }
    }
    served
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            status: output.status,
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(!self.stdout.contains(reve_tests::fake::TEST_API_KEY));
        assert!(!self.stderr.contains(reve_tests::fake::TEST_API_KEY));
    }

    fn json_lines(&self) -> Vec<serde_json::Map<String, Value>> {
        self.stdout
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(object)) => object,
                other => panic!("{line:?} is not a JSON object: {other:?}"),
            })
            .collect()
    }
}

fn keys(object: &serde_json::Map<String, Value>) -> Vec<&str> {
    object.keys().map(String::as_str).collect()
}

/// The image bytes inside a `data:` URI the fake received.
fn sent_image(request: &reve_tests::RecordedRequest) -> (String, Vec<u8>) {
    let image_url = request.json.as_ref().unwrap()["image_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (header, payload) = image_url.split_once(',').unwrap();
    (header.to_owned(), STANDARD.decode(payload).unwrap())
}

#[tokio::test]
async fn edits_one_file_and_prints_where_it_was_saved() {
    let world = World::new().await;
    let input = sample_png(48, 32);
    world.input_file("photo.png", &input);
    // The MCP tool's guard on model-supplied paths does not apply to paths
    // the user types: this folder does not hold the input.
    let elsewhere = TempDir::new().unwrap();
    let run = Run::from(
        edit_command(&world, &["photo.png", "--prompt", "make it night"])
            .env("REVE_ALLOWED_DIRS", elsewhere.path())
            .output()
            .await
            .unwrap(),
    );
    run.assert_code(0);

    let saved = world.saved_files();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(run.stdout, format!("{}\n", saved[0].display()));
    assert_eq!(saved[0].extension().unwrap(), "png");
    let on_disk = std::fs::read(&saved[0]).unwrap();
    assert_eq!(served_results(&world).await, std::slice::from_ref(&on_disk));
    let decoded = image::load_from_memory(&on_disk).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (48, 32));

    let sent = world.fake.generation_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json.as_ref().unwrap();
    assert_eq!(body["model"], "reve/edit-image");
    assert_eq!(body["prompt"], "make it night");
    assert_eq!(body["convert_base64_to_url"], true);
    assert_eq!(
        sent_image(&sent[0]),
        ("data:image/png;base64".to_owned(), input)
    );
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {}", world.fake.api_key()).as_str())
    );
}

#[tokio::test]
async fn a_batch_reports_each_input_and_fails_if_one_fails() {
    let world = World::new().await;
    let first = sample_png(40, 30);
    world.input_file("a.png", &first);
    world.input_file("notes.png", b"just some text, not a picture");
    let url = world.fake.serve_input(sample_jpeg(24, 16), "image/jpeg");

    let run = run_edit(
        &world,
        &[
            "a.png",
            "notes.png",
            &url,
            "missing.png",
            "-p",
            "in watercolour",
            "--json",
        ],
    )
    .await;
    run.assert_code(1);

    let lines = run.json_lines();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    // Lines come in the order the inputs were given.
    assert_eq!(lines[0]["input"], "a.png");
    assert_eq!(lines[1]["input"], "notes.png");
    assert_eq!(lines[2]["input"], url.as_str());
    assert_eq!(lines[3]["input"], "missing.png");
    // The tool's structured result keys, after the input they belong to.
    let success_keys: Vec<&str> = ["input"].into_iter().chain(RESULT_KEYS).collect();
    assert_eq!(keys(&lines[0]), success_keys);
    assert_eq!(keys(&lines[2]), success_keys);
    assert_eq!(keys(&lines[1]), ["input", "error"]);
    assert_eq!(keys(&lines[3]), ["input", "error"]);
    let work = world.inputs.as_path().canonicalize().unwrap();
    let not_an_image = format!(
        "{:?} is text, not an image; expected a PNG, JPEG, WebP or GIF image",
        work.join("notes.png")
    );
    assert_eq!(lines[1]["error"]["message"], not_an_image.as_str());
    let missing = format!(
        "could not open {:?}: No such file or directory (os error 2)",
        work.join("missing.png")
    );
    assert_eq!(lines[3]["error"]["message"], missing.as_str());

    for (line, size) in [(&lines[0], (40u32, 30u32)), (&lines[2], (24, 16))] {
        let path = PathBuf::from(line["path"].as_str().unwrap());
        assert_eq!(path.parent().unwrap(), world.outputs.as_path());
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(line["bytes"], on_disk.len());
        assert_eq!(line["mime_type"], "image/png");
        assert_eq!(
            (&line["width"], &line["height"]),
            (&size.0.into(), &size.1.into())
        );
        let served = reqwest::get(line["url"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(on_disk, served.as_ref());
        assert!(line["request_id"].as_str().unwrap().starts_with("rsid-"));
    }
    assert_eq!(world.saved_files().len(), 2);

    // The unreadable input never reached the API; the URL went as given.
    let sent = world.fake.generation_requests();
    assert_eq!(sent.len(), 2);
    let mut image_urls: Vec<String> = sent
        .iter()
        .map(|request| request.json.as_ref().unwrap()["image_url"].to_string())
        .collect();
    image_urls.sort();
    assert!(image_urls[0].starts_with("\"data:image/png;base64,"));
    assert_eq!(image_urls[1], format!("\"{url}\""));

    assert!(
        run.stderr.ends_with(&format!(
            "error: 2 of 4 edits failed:\n  notes.png: {not_an_image}\n  missing.png: {missing}\n"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_api_failure_fails_only_its_own_input() {
    let world = World::new().await;
    for name in ["a.png", "b.png", "c.png"] {
        world.input_file(name, &sample_png(16, 16));
    }
    world.fake.push(Scenario::BadRequest400);

    let run = run_edit(
        &world,
        &["a.png", "b.png", "c.png", "-p", "p", "--jobs", "2"],
    )
    .await;
    run.assert_code(1);

    assert_eq!(world.fake.generation_attempts(), 3);
    let saved = world.saved_files();
    assert_eq!(saved.len(), 2);
    let printed: Vec<PathBuf> = run.stdout.lines().map(PathBuf::from).collect();
    let mut sorted = printed.clone();
    sorted.sort();
    assert_eq!(sorted, saved);
    assert!(run.stderr.contains("1 of 3 edits failed"), "{}", run.stderr);
    assert!(run.stderr.contains("HTTP 400"), "{}", run.stderr);
}

#[tokio::test]
async fn output_to_a_folder() {
    let world = World::new().await;
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.jpg", &sample_jpeg(16, 16));

    // An existing folder, by relative path.
    std::fs::create_dir(world.inputs.as_path().join("out")).unwrap();
    let run = run_edit(&world, &["a.png", "b.jpg", "-p", "p", "-o", "out"]).await;
    run.assert_code(0);
    let out = world.inputs.as_path().join("out");
    let saved = files_under(&out);
    assert_eq!(saved.len(), 2);
    let mut printed: Vec<PathBuf> = run.stdout.lines().map(PathBuf::from).collect();
    printed.sort();
    assert_eq!(printed, saved);

    // A trailing slash names a folder that does not exist yet.
    let run = run_edit(&world, &["a.png", "b.jpg", "-p", "p", "-o", "new/sub/"]).await;
    run.assert_code(0);
    assert_eq!(
        files_under(&world.inputs.as_path().join("new/sub")).len(),
        2
    );
    assert!(world.saved_files().is_empty());
}

#[tokio::test]
async fn output_to_a_file_corrects_the_extension_and_never_overwrites() {
    let world = World::new().await;
    world.input_file("a.png", &sample_png(16, 16));

    // The result is a PNG, so `result.jpg` is saved as `result.png`.
    let run = run_edit(&world, &["a.png", "-p", "p", "-o", "result.jpg"]).await;
    run.assert_code(0);
    let expected = world.inputs.as_path().join("result.png");
    assert_eq!(run.stdout, format!("{}\n", expected.display()));
    assert_eq!(
        served_results(&world).await,
        [std::fs::read(&expected).unwrap()]
    );
    assert!(!world.inputs.as_path().join("result.jpg").exists());

    // Asking for a file that exists is refused before any request.
    let existing = world.input_file("keep.png", b"precious");
    let run = run_edit(&world, &["a.png", "-p", "p", "-o", "keep.png"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    assert_eq!(world.fake.generation_attempts(), 1);

    // The corrected name existing is found only once the type is known;
    // the result is not saved over it either.
    let run = run_edit(&world, &["a.png", "-p", "p", "-o", "result"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&expected).unwrap(),
        served_results(&world).await[0]
    );
    assert!(world.saved_files().is_empty());
}

#[tokio::test]
async fn several_inputs_and_one_output_file_are_refused_before_any_request() {
    let world = World::new().await;
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.png", &sample_png(16, 16));

    let run = run_edit(&world, &["a.png", "b.png", "-p", "p", "-o", "result.png"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("not a folder"), "{}", run.stderr);
    assert_eq!(world.fake.requests().len(), 0);
    assert!(!world.inputs.as_path().join("result.png").exists());
}

#[tokio::test]
async fn zero_jobs_and_a_missing_key_are_refused_before_any_request() {
    let world = World::new().await;
    world.input_file("a.png", &sample_png(16, 16));

    let run = run_edit(&world, &["a.png", "-p", "p", "--jobs", "0"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("--jobs"), "{}", run.stderr);
    assert!(run.stderr.contains("at least 1"), "{}", run.stderr);

    let run = Run::from(
        edit_command(&world, &["a.png", "-p", "p"])
            .env_remove("AIML_API_KEY")
            .output()
            .await
            .unwrap(),
    );
    run.assert_code(1);
    assert!(run.stderr.contains("AIML_API_KEY"), "{}", run.stderr);

    assert_eq!(world.fake.requests().len(), 0);
    assert!(world.saved_files().is_empty());
}

fn interrupt(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn a_second_ctrl_c_abandons_the_requests_in_flight_and_saves_nothing() {
    let world = World::new().await;
    world
        .fake
        .set_default(Scenario::Latency(Duration::from_secs(120)));
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.png", &sample_png(16, 16));

    let child = edit_command(&world, &["a.png", "b.png", "-p", "p", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        world.fake.wait_until(|c| c.generation_attempts == 2),
    )
    .await
    .expect("both requests reached the fake");
    let pid = child.id().unwrap();
    interrupt(pid);
    // The first Ctrl-C stops nothing that was sent: the requests stay open at the fake.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(world.fake.counters().cancelled_requests, 0);
    interrupt(pid);

    let run = Run::from(child.wait_with_output().await.unwrap());
    run.assert_code(130);
    assert!(
        run.stderr
            .contains("Ctrl-C: stopped the edits not yet sent; 2 edits were already sent"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "Ctrl-C again: abandoned 2 edits that were already sent; they may have been charged"
        ),
        "{}",
        run.stderr
    );
    // Still one line per input for a script to read.
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for (line, input) in lines.iter().zip(["a.png", "b.png"]) {
        assert_eq!(line["input"], input);
        assert_eq!(
            line["error"]["message"],
            "cancelled by Ctrl-C before it finished"
        );
    }
    tokio::time::timeout(
        Duration::from_secs(20),
        world.fake.wait_until(|c| c.cancelled_requests == 2),
    )
    .await
    .expect("the fake saw both requests abandoned");
    assert!(world.saved_files().is_empty(), "{:?}", world.saved_files());
}

/// The first Ctrl-C respects money: the edit already sent is waited for and saved, the one still
/// queued is never sent.
#[tokio::test]
async fn the_first_ctrl_c_sends_nothing_more_and_saves_what_was_sent() {
    let world = World::new().await;
    world
        .fake
        .set_default(Scenario::Latency(Duration::from_secs(2)));
    world.input_file("a.png", &sample_png(16, 16));
    world.input_file("b.png", &sample_png(16, 16));

    let child = edit_command(
        &world,
        &["a.png", "b.png", "-p", "p", "--json", "--jobs", "1"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        world.fake.wait_until(|c| c.generation_attempts == 1),
    )
    .await
    .expect("the first request reached the fake");
    interrupt(child.id().unwrap());

    let run = Run::from(child.wait_with_output().await.unwrap());
    run.assert_code(130);
    assert!(
        run.stderr.contains(
            "Ctrl-C: stopped the edits not yet sent; 1 edit was already sent (it may be charged) \
             and is saved when it finishes. Ctrl-C again abandons it."
        ),
        "{}",
        run.stderr
    );
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let saved = lines[0]
        .get("path")
        .and_then(|path| path.as_str())
        .unwrap_or_else(|| {
            panic!(
                "a.png's result is not saved: {:?}\n{}",
                lines[0], run.stderr
            )
        });
    assert_eq!(world.saved_files(), [PathBuf::from(saved)]);
    assert_eq!(
        lines[1]["error"]["message"],
        "cancelled by Ctrl-C before it was sent; nothing was charged"
    );
    assert_eq!(world.fake.generation_attempts(), 1, "b.png was never sent");
}

#[tokio::test]
async fn a_single_failed_picture_is_one_error_line_naming_it() {
    let world = World::new().await;
    world.input_file("notes.png", b"these are notes, not a picture");

    let run = run_edit(&world, &["notes.png", "-p", "make it night"]).await;
    run.assert_code(1);
    assert!(
        run.stderr.starts_with("error: notes.png: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not an image"), "{}", run.stderr);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("edits failed"), "{}", run.stderr);
    assert_eq!(world.fake.requests().len(), 0);
}

/// `reve-mcp jobs` for a person (a header, short ids, how long ago, the prompt, where the
/// result went; refusals made before sending left out) and `--json` for a script.
#[tokio::test]
async fn jobs_lists_what_was_made_for_a_person_and_for_a_script() {
    let world = World::new().await;
    world.input_file("cat.png", &sample_png(16, 16));
    world.input_file("notes.png", b"not a picture");
    run_edit(&world, &["cat.png", "-p", "make it night"])
        .await
        .assert_code(0);
    run_edit(&world, &["notes.png", "-p", "make it day"])
        .await
        .assert_code(1);
    assert_eq!(world.fake.generation_attempts(), 1);

    // The world's folder as the home folder: the table writes paths under it from `~`.
    let home = world.path("");
    let home_text = home.display().to_string();
    let jobs = |args: &'static [&'static str]| {
        let env = world.env(&[("HOME", home_text.as_str())]);
        async move {
            let output = command(&env).arg("jobs").args(args).output().await.unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let table = jobs(&[]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("JOB ") && lines[0].contains("PROMPT"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "the refusal is left out: {table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0].len(), 8, "{table}");
    assert_eq!(row[1], "succeeded", "{table}");
    assert!(
        lines[1].contains("just now") && lines[1].contains("make it night"),
        "{table}"
    );
    let saved = world.saved_files();
    assert_eq!(saved.len(), 1);
    let from_home = saved[0].strip_prefix(&home).unwrap();
    assert!(
        lines[1].contains(&format!("~/{}", from_home.display())),
        "{table}"
    );

    let parse = |text: String| -> Vec<Value> {
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let listed = parse(jobs(&["--json"]).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let job = &listed[0];
    assert!(job["id"].as_str().unwrap().starts_with(row[0]));
    assert!(job["id"].as_str().unwrap().len() > 8);
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["prompt"], "make it night");
    assert_eq!(job["model"], "reve/edit-image");
    assert_eq!(job["sent"], true);
    assert_eq!(
        job["result"]["path"].as_str().unwrap(),
        saved[0].display().to_string()
    );
    assert!(job["created"].as_str().unwrap().ends_with('Z'));

    // With --all, the refusal is there too, marked as never sent.
    let everything = parse(jobs(&["--all", "--json"]).await);
    assert_eq!(everything.len(), 2, "{everything:?}");
    let refused = &everything[0];
    assert_eq!(refused["state"], "failed", "{refused}");
    assert_eq!(refused["sent"], false, "{refused}");
    assert_eq!(refused["prompt"], "make it day");
    assert!(refused["result"].is_null());
}
