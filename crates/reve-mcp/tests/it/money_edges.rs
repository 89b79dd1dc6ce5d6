//! The promises about money at their edges, through the real binary: a name clash before and
//! after payment, a kill between the result's rename and its record, reuse that must not say
//! anything false (a picture always shown, a deleted file, a URL input, the same output name,
//! another API key), the daily limit across kills and before any cost is known, private state,
//! ownership of jobs by two servers that are both pid 1, and where results go by default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reve_tests::fake::sample_png;
use reve_tests::mcp::{McpSession, TestClient, result_text, structured};
use reve_tests::{FakeApi, Scenario};
use serde_json::{Value, json};

use crate::jobs::{
    TOKENS_PER_EDIT, collect, env, input, job_id, jobs_listing, kill, newest_job_id, run, serve,
    status,
};
use crate::support::{World, binary, command, start};

/// The `reve-mcp edit` command line against the world, with `args`.
async fn edit(world: &World, extra: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    command(&world.env(extra))
        .current_dir(&world.inputs)
        .arg("edit")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text_of(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

/// The saved results in the output folder, by name, temporary files left out.
fn results_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_name_the_extension_correction_would_take_is_refused_before_paying() {
    let world = World::new().await;
    world.input_file("cat.png", &sample_png(20, 20));
    // The example of docs/command-line.md, run twice: the result is a PNG, so `hat.jpg` became `hat.png`.
    let first = edit(
        &world,
        &[],
        &["cat.png", "-p", "add a hat", "-o", "hat.jpg"],
    )
    .await;
    assert!(first.status.success(), "{first:?}");
    let hat = world.inputs.join("hat.png");
    assert_eq!(
        text_of(&first.stdout).trim(),
        hat.display().to_string(),
        "{first:?}"
    );
    let paid = std::fs::read(&hat).unwrap();

    let second = edit(
        &world,
        &[],
        &["cat.png", "-p", "add a hat", "-o", "hat.jpg"],
    )
    .await;
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stderr = text_of(&second.stderr);
    assert!(
        stderr.contains(&format!("{hat:?} already exists")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent to the API"), "{stderr}");
    assert_eq!(
        world.fake.generation_attempts(),
        1,
        "the second was not paid"
    );
    assert_eq!(std::fs::read(&hat).unwrap(), paid);

    // The MCP tool's output_path, likewise: every corrected name is checked before paying.
    std::fs::copy(&hat, world.outputs.join("hat.png")).unwrap();
    let session = start(&world.env(&[]), TestClient::default()).await;
    let refused = session
        .edit_image(json!({ "prompt": "p", "image_url": input(), "output_path": "hat.webp" }))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    let text = result_text(&refused);
    assert!(text.contains("already exists"), "{text}");
    assert!(text.contains("nothing was sent to the API"), "{text}");
    assert_eq!(world.fake.generation_attempts(), 1);
    session.stop().await;
}

#[tokio::test]
async fn a_name_taken_after_payment_saves_the_result_beside_it_and_says_so() {
    let world = World::new().await;
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(1500)));
    let session = start(&world.env(&[]), TestClient::default()).await;
    let call = session.edit_image(json!({
        "prompt": "p", "image_url": input(), "output_path": "hat.png"
    }));
    let clash = async {
        world.fake.wait_until(|c| c.generation_attempts == 1).await;
        // Another program takes the name while the API works on the paid edit.
        std::fs::write(world.outputs.join("hat.png"), b"someone else's").unwrap();
    };
    let (done, ()) = tokio::join!(call, clash);
    let done = done.unwrap();
    assert_eq!(status(&done), "succeeded", "{done:?}");
    let saved = PathBuf::from(structured(&done)["path"].as_str().unwrap());
    let name = saved.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("hat-") && name.ends_with(".png"), "{name}");
    assert_eq!(saved.parent().unwrap(), world.outputs);
    assert_eq!(
        std::fs::read(world.outputs.join("hat.png")).unwrap(),
        b"someone else's"
    );
    assert_eq!(image::image_dimensions(&saved).unwrap(), (24, 16));
    let text = result_text(&done);
    assert!(text.contains("The name hat.png was taken"), "{text}");
    assert!(done.content[0].as_image().is_some(), "the picture is shown");

    // Collected again later, from the store: the same file, and the same word of the clash.
    let again = session.get_edit(&job_id(&done)).await.unwrap();
    assert_eq!(structured(&again)["path"], structured(&done)["path"]);
    assert!(result_text(&again).contains("The name hat.png was taken"));
    assert_eq!(world.fake.generation_attempts(), 1);
    session.stop().await;
}

/// A noisy PNG, large enough that its preview takes a while after the file is renamed.
fn noisy_png(side: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let picture = image::RgbImage::from_fn(side, side, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [r, g, b, _] = seed.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// The state of job `id` as the SQLite store has it.
fn stored_state(world: &World, id: &str) -> String {
    let store = rusqlite::Connection::open(world.state_dir().join("jobs.sqlite3")).unwrap();
    store
        .query_row("SELECT state FROM jobs WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .unwrap()
}

#[tokio::test]
async fn a_kill_between_the_rename_and_its_record_is_recorded_succeeded_with_one_file() {
    // Without and with an output_path: the first used to save a second copy on restart, the
    // second to record the paid, saved result as failed.
    for output_path in [None, Some("kept.png")] {
        let world = World::new().await;
        // The preview of a large noisy picture runs on after the file is renamed: the moment
        // to kill in.
        world
            .fake
            .push(Scenario::ResultBytes(noisy_png(2048).into()));
        let server_env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
        let session = start(&server_env, TestClient::default()).await;
        let mut arguments = json!({ "prompt": "p", "image_url": input() });
        if let Some(name) = output_path {
            arguments["output_path"] = json!(name);
        }
        let call = session.edit_image(arguments);
        let killed = async {
            for _ in 0..20_000 {
                if !results_in(&world.outputs).is_empty() {
                    kill(session.pid);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("no result was saved");
        };
        let (answered, ()) = tokio::join!(call, killed);
        drop(answered);
        drop(session);
        let saved = results_in(&world.outputs);
        assert_eq!(saved.len(), 1, "{saved:?}");
        let id: String = rusqlite::Connection::open(world.state_dir().join("jobs.sqlite3"))
            .unwrap()
            .query_row("SELECT id FROM jobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            stored_state(&world, &id),
            "running",
            "the kill came after the end was recorded; the test missed its moment"
        );

        let session = start(&server_env, TestClient::default()).await;
        let done = collect(&session, &id, 20).await;
        assert_eq!(status(&done), "succeeded", "{done:?}");
        let path = structured(&done)["path"].as_str().unwrap().to_owned();
        assert_eq!(
            results_in(&world.outputs),
            saved,
            "one file, the one saved before the kill"
        );
        assert!(path.ends_with(&saved[0]), "{path}");
        if let Some(name) = output_path {
            assert_eq!(saved[0], name);
        }
        assert!(done.content[0].as_image().is_some(), "the picture is shown");
        assert_eq!(world.fake.generation_attempts(), 1, "nothing paid twice");
        assert_eq!(world.fake.file_downloads(), 1, "nothing fetched twice");
        session.stop().await;
    }
}

#[tokio::test]
async fn a_reused_result_without_a_kept_preview_still_shows_its_picture() {
    let world = World::new().await;
    let picture = input();
    // The command line keeps no preview.
    let made = edit(
        &world,
        &[],
        &[
            &picture,
            "-p",
            "p",
            "-o",
            &world.outputs.display().to_string(),
            "--json",
        ],
    )
    .await;
    assert!(made.status.success(), "{made:?}");
    let line: Value = serde_json::from_slice(&made.stdout).unwrap();
    let original = line["job_id"].as_str().unwrap().to_owned();

    let session = start(&env(&world, &[]), TestClient::default()).await;
    let reused = session
        .edit_image(json!({ "prompt": "p", "image_url": picture }))
        .await
        .unwrap();
    assert_eq!(status(&reused), "succeeded", "{reused:?}");
    assert_eq!(structured(&reused)["reused_from"], json!(original));
    let shown = reused.content[0]
        .as_image()
        .expect("a reused result shows its picture");
    assert!(!shown.data.is_empty());
    let got = session.get_edit(&original).await.unwrap();
    assert!(got.content[0].as_image().is_some(), "{got:?}");
    assert!(!result_text(&got).contains("no longer kept"));
    assert_eq!(world.fake.generation_attempts(), 1);
    session.stop().await;
}

#[tokio::test]
async fn a_result_whose_file_was_deleted_is_not_reused_and_is_said_to_be_gone() {
    let (world, session) = serve(&[], None).await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    let first = session.edit_image(arguments.clone()).await.unwrap();
    let path = structured(&first)["path"].as_str().unwrap().to_owned();
    std::fs::remove_file(&path).unwrap();

    let again = session.edit_image(arguments).await.unwrap();
    assert_eq!(status(&again), "succeeded", "{again:?}");
    assert_eq!(structured(&again)["reused_from"], Value::Null);
    let new_path = structured(&again)["path"].as_str().unwrap();
    assert_ne!(new_path, path);
    assert!(Path::new(new_path).is_file());
    assert_eq!(world.fake.generation_attempts(), 2);

    let old = session.get_edit(&job_id(&first)).await.unwrap();
    let text = result_text(&old);
    assert!(text.contains("no longer there"), "{text}");
    assert!(!text.contains("Edited image saved to"), "{text}");
    session.stop().await;
}

#[tokio::test]
async fn a_url_input_is_reused_only_while_the_identical_call_runs() {
    let world = World::new().await;
    let url = world.fake.serve_input(sample_png(24, 16), "image/png");
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(1500)));
    let session = start(&env(&world, &[]), TestClient::default()).await;
    let arguments = json!({ "prompt": "p", "image_url": url });
    let (first, second) = tokio::join!(session.edit_image(arguments.clone()), async {
        world.fake.wait_until(|c| c.generation_attempts == 1).await;
        session.edit_image(arguments.clone()).await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(structured(&second)["reused_from"], json!(job_id(&first)));
    assert_eq!(world.fake.generation_attempts(), 1);

    // Finished, the same URL may show another picture now: it is sent again.
    let third = session.edit_image(arguments).await.unwrap();
    assert_eq!(status(&third), "succeeded", "{third:?}");
    assert_eq!(structured(&third)["reused_from"], Value::Null);
    assert_eq!(world.fake.generation_attempts(), 2);
    session.stop().await;
}

#[tokio::test]
async fn the_same_output_path_gets_the_first_result_and_another_call_is_refused_unpaid() {
    let (world, session) = serve(&[], None).await;
    let arguments = json!({ "prompt": "p", "image_url": input(), "output_path": "mine.png" });
    let first = session.edit_image(arguments.clone()).await.unwrap();
    assert_eq!(status(&first), "succeeded", "{first:?}");

    let again = session.edit_image(arguments).await.unwrap();
    assert_eq!(status(&again), "succeeded", "{again:?}");
    assert_eq!(structured(&again)["reused_from"], json!(job_id(&first)));
    assert_eq!(structured(&again)["path"], structured(&first)["path"]);
    assert!(again.content[0].as_image().is_some());

    let other = session
        .edit_image(json!({ "prompt": "q", "image_url": input(), "output_path": "mine.png" }))
        .await
        .unwrap();
    assert_eq!(other.is_error, Some(true), "{other:?}");
    let text = result_text(&other);
    assert!(text.contains("already exists"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert_eq!(world.fake.generation_attempts(), 1);
    assert_eq!(results_in(&world.outputs), ["mine.png"]);
    session.stop().await;
}

#[tokio::test]
async fn a_changed_api_key_never_inherits_results_paid_under_another() {
    let world = World::new().await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    let session = start(&env(&world, &[]), TestClient::default()).await;
    let paid = session.edit_image(arguments.clone()).await.unwrap();
    assert_eq!(status(&paid), "succeeded", "{paid:?}");
    session.stop().await;

    // A wrong key: the identical call goes to the API, which refuses it, instead of looking
    // like a success through reuse.
    let session = start(
        &env(&world, &[("AIML_API_KEY", "sk-another-key")]),
        TestClient::default(),
    )
    .await;
    let refused = session.edit_image(arguments).await.unwrap();
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    assert!(!result_text(&refused).contains("sk-another-key"));
    assert_eq!(world.fake.generation_attempts(), 2);
    let store = std::fs::read(world.state_dir().join("jobs.sqlite3")).unwrap();
    for key in [world.fake.api_key(), "sk-another-key"] {
        assert!(
            !store
                .windows(key.len())
                .any(|window| window == key.as_bytes()),
            "the key is in the store"
        );
    }
    session.stop().await;
}

#[tokio::test]
async fn kills_while_the_api_works_count_against_the_limit_as_may_have_been_charged() {
    let world = World::new().await;
    // The provider's usage logs do not answer (a 503 to each restart's one ask), so what the
    // kills cost stays unknown: each counts as may have been charged.
    for _ in 0..10 {
        world
            .fake
            .push_logs(reve_tests::fake::LogsScenario::Status(503));
    }
    // Two and a half edits a day.
    let limit = (TOKENS_PER_EDIT * 2.5).to_string();
    let server_env = env(
        &world,
        &[
            ("REVE_MAX_WAIT_SECS", "1"),
            ("REVE_MAX_CREDITS_PER_DAY", &limit),
        ],
    );
    let session = start(&server_env, TestClient::default()).await;
    let done = session
        .edit_image(json!({ "prompt": "first", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&done), "succeeded", "{done:?}");
    drop(session);

    // Each call is killed while the API works on it; a billed generation each time.
    let mut refused = None;
    for round in 0..5 {
        world.fake.push(Scenario::Latency(Duration::from_secs(30)));
        let session = start(&server_env, TestClient::default()).await;
        let call = session
            .edit_image(json!({ "prompt": format!("round {round}"), "image_url": input() }))
            .await
            .unwrap();
        if call.is_error == Some(true) {
            refused = Some(result_text(&call));
            session.stop().await;
            break;
        }
        kill(session.pid);
        drop(session);
    }
    let refused = refused.expect("the limit refused an edit");
    // Below the limit by what was reported: it would be passed, not reached.
    assert!(
        refused.contains("spending limit would be passed: 210000 of the 525000"),
        "{refused}"
    );
    assert!(refused.contains("may have been charged"), "{refused}");
    assert!(refused.contains("nothing was sent"), "{refused}");
    // One paid and reported, two that may have been: at most one edit past 2.5.
    assert_eq!(world.fake.generation_attempts(), 3);

    // The restart that refused settled the last one; `usage` shows them apart.
    let usage = run(&world, &["usage"]).await;
    let total = usage
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap();
    assert!(total.contains(" 1 edits"), "{usage}");
    assert!(
        total.contains("+ 2 edits that may have been charged"),
        "{usage}"
    );
}

#[tokio::test]
async fn before_any_cost_is_known_concurrent_calls_are_held_not_refused() {
    let world = World::new().await;
    world
        .fake
        .push(Scenario::Latency(Duration::from_millis(1500)));
    let limit = (TOKENS_PER_EDIT * 10.0).to_string();
    let session = start(
        &env(&world, &[("REVE_MAX_CREDITS_PER_DAY", &limit)]),
        TestClient::default(),
    )
    .await;
    let call = |prompt: &'static str| {
        session.edit_image(json!({ "prompt": prompt, "image_url": input() }))
    };
    let (a, b, c) = tokio::join!(call("a"), call("b"), call("c"));
    for result in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(status(&result), "succeeded", "{result:?}");
        assert!(!result_text(&result).contains("limit"));
    }
    assert_eq!(world.fake.generation_attempts(), 3);
    // The held calls told the client why they waited.
    let progress = session.observed.progress.lock().unwrap().clone();
    assert!(
        progress.iter().any(|note| note
            .message
            .as_deref()
            .is_some_and(|message| message.contains("held until the edits in flight"))),
        "{progress:?}"
    );
    session.stop().await;
}

/// The mode bits of `path`.
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The server started by a shell with `umask` set, as a user's login would.
#[cfg(unix)]
async fn start_with_umask(env: &BTreeMap<String, String>, umask: &str) -> McpSession {
    let mut shell = reve_tests::mcp::child_command(Path::new("/bin/sh"), env);
    shell
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\""))
        .arg(binary());
    McpSession::start_command(shell, TestClient::default()).await
}

#[cfg(unix)]
#[tokio::test]
async fn the_state_folder_is_private_and_saved_results_follow_the_umask() {
    for (umask, result_mode) in [("022", 0o644), ("077", 0o600)] {
        let world = World::new().await;
        let session = start_with_umask(&env(&world, &[]), umask).await;
        let done = session
            .edit_image(json!({ "prompt": "a private prompt", "image_url": input() }))
            .await
            .unwrap();
        assert_eq!(status(&done), "succeeded", "{done:?}");
        let state = world.state_dir();
        assert_eq!(mode(&state), 0o700, "the state folder");
        let mut checked = 0;
        for path in crate::support::files_under(&state) {
            let expected = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&path), expected, "{}", path.display());
            checked += 1;
        }
        assert!(
            checked >= 4,
            "the store, its journal, the previews: {checked}"
        );
        for folder in ["previews", "inputs", "runs"] {
            assert_eq!(mode(&state.join(folder)), 0o700, "{folder}");
        }
        let saved = structured(&done)["path"].as_str().unwrap().to_owned();
        assert_eq!(mode(Path::new(&saved)), result_mode, "umask {umask}");
        session.stop().await;
    }
}

/// The server as pid 1 of a pid namespace of its own, as in a container: `unshare` from
/// util-linux, with a user namespace so that no privilege is needed.
fn in_own_pid_namespace(env: &BTreeMap<String, String>) -> std::process::Command {
    let unshare = reve_tests::services::program("unshare", "util-linux");
    let mut command = reve_tests::mcp::child_command(&unshare, env);
    command
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--kill-child",
        ])
        .arg(binary());
    command
}

#[tokio::test]
async fn two_servers_that_are_both_pid_1_never_take_each_others_live_jobs() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(4)));
    let server_env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
    let first =
        McpSession::start_command(in_own_pid_namespace(&server_env), TestClient::default()).await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    let running = first.edit_image(arguments.clone()).await.unwrap();
    assert_eq!(status(&running), "running", "{running:?}");
    let job = job_id(&running);

    // A second container on the same volume starts while the first one's job runs.
    let second =
        McpSession::start_command(in_own_pid_namespace(&server_env), TestClient::default()).await;
    // Its identical call attaches to the live job instead of paying again.
    let attached = second.get_edit(&job).await.unwrap();
    assert_eq!(status(&attached), "running", "{attached:?}");
    let twin = second.edit_image(arguments).await.unwrap();
    let twin = match status(&twin).as_str() {
        "running" => collect(&second, &job_id(&twin), 10).await,
        _ => twin,
    };
    assert_eq!(status(&twin), "succeeded", "{twin:?}");
    assert_eq!(structured(&twin)["reused_from"], json!(job));

    let done = collect(&first, &job, 10).await;
    assert_eq!(status(&done), "succeeded", "{done:?}");
    assert_eq!(world.fake.generation_attempts(), 1);
    assert_eq!(world.saved_files().len(), 1, "{:?}", world.saved_files());
    assert!(!jobs_listing(&world).await.contains("interrupted"));
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn without_xdg_user_dirs_results_go_to_pictures_and_the_folder_is_logged() {
    let fake = FakeApi::start().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("Pictures")).unwrap();
    let input = home.path().join("cat.png");
    std::fs::write(&input, sample_png(20, 20)).unwrap();
    let output = command(&BTreeMap::from([
        ("AIML_API_KEY".to_owned(), fake.api_key().to_owned()),
        ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
        ("HOME".to_owned(), home.path().display().to_string()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]))
    .arg("edit")
    .arg(&input)
    .args(["-p", "p"])
    .output()
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let folder = home.path().join("Pictures/reve");
    let saved = PathBuf::from(text_of(&output.stdout).trim());
    assert_eq!(saved.parent().unwrap(), folder);
    assert!(saved.is_file());
    let stderr = text_of(&output.stderr);
    assert!(
        stderr.contains("results are saved in this folder")
            && stderr.contains(&folder.display().to_string()),
        "{stderr}"
    );
    // Nothing but the job store in the hidden data folder.
    let data = home.path().join(".local/share/reve");
    assert!(
        results_in(&data).iter().all(|name| !name.ends_with(".png")),
        "{:?}",
        results_in(&data)
    );
}

/// A mount namespace of its own (with a user namespace, so that no privilege is needed) where
/// `folder` is a small tmpfs (`size` as `mount` takes it), held by a process that sleeps: servers started in it with
/// [`Namespace::enter`] see the small disk, and the test reaches its files through
/// `/proc/PID/root`.
struct Namespace {
    holder: std::process::Child,
}

impl Namespace {
    fn with_small_disk(folder: &Path, size: &str) -> Namespace {
        let unshare = reve_tests::services::program("unshare", "util-linux");
        let holder = std::process::Command::new(unshare)
            .args(["--user", "--map-root-user", "--mount", "/bin/sh", "-c"])
            .arg("mount -t tmpfs -o size=\"$1\" tmpfs \"$0\" && echo ready && exec sleep 600")
            .arg(folder)
            .arg(size)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut holder = holder;
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready.trim(), "ready", "the tmpfs could not be mounted");
        Namespace { holder }
    }

    /// `path` as the processes in the namespace see it.
    fn path(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(path.strip_prefix("/").unwrap())
    }

    /// Fills the small disk up with a file of zeros at `filler`.
    fn fill(&self, filler: &Path) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.path(filler)).unwrap();
        let block = [0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }

    /// The server, in the namespace, with `env`.
    fn enter(&self, env: &BTreeMap<String, String>) -> std::process::Command {
        let nsenter = reve_tests::services::program("nsenter", "util-linux");
        let mut command = reve_tests::mcp::child_command(&nsenter, env);
        command
            .arg(format!("--target={}", self.holder.id()))
            .args(["--user", "--mount", "--preserve-credentials"])
            .arg(binary());
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[tokio::test]
async fn a_full_output_disk_names_the_paid_result_and_saves_it_once_space_returns() {
    let world = World::new().await;
    let disk = Namespace::with_small_disk(&world.outputs, "64k");
    let filler = world.outputs.join("filler");
    disk.fill(&filler);
    let session =
        McpSession::start_command(disk.enter(&env(&world, &[])), TestClient::default()).await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    let failed = session.edit_image(arguments.clone()).await.unwrap();
    assert_eq!(failed.is_error, Some(true), "{failed:?}");
    let text = result_text(&failed);
    let files = format!("{}/files/", world.fake.base_url());
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains(&format!("can still be downloaded from {files}")),
        "{text}"
    );
    assert!(text.contains("get_edit"), "{text}");
    let listing = jobs_listing(&world).await;
    assert!(listing.contains(&files), "{listing}");
    let id = newest_job_id(&world).await;

    // get_edit tries the save again: still full, still named.
    let again = session.get_edit(&id).await.unwrap();
    assert_eq!(again.is_error, Some(true), "{again:?}");
    assert!(result_text(&again).contains(&files));
    assert_eq!(world.fake.file_downloads(), 2);

    // Space returns: an identical call attaches to the paid job rather than paying again.
    std::fs::remove_file(disk.path(&filler)).unwrap();
    let saved = session.edit_image(arguments).await.unwrap();
    assert_eq!(status(&saved), "succeeded", "{saved:?}");
    assert_eq!(structured(&saved)["reused_from"], json!(id));
    let path = PathBuf::from(structured(&saved)["path"].as_str().unwrap());
    assert_eq!(image::image_dimensions(disk.path(&path)).unwrap(), (24, 16));
    let first = session.get_edit(&id).await.unwrap();
    assert_eq!(status(&first), "succeeded", "{first:?}");
    assert_eq!(world.fake.generation_attempts(), 1, "paid once");
    session.stop().await;
}

/// The state of job `id`, as `reve-mcp jobs` run in the namespace lists it.
async fn state_in(disk: &Namespace, env: &BTreeMap<String, String>, id: &str) -> Option<String> {
    let listed = tokio::process::Command::from(disk.enter(env))
        .args(["jobs", "--all", "--json"])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|job| job["id"] == id)
        .and_then(|job| job["state"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_state_disk_that_fills_after_the_claim_is_recorded_once_it_has_room_again() {
    let world = World::new().await;
    std::fs::create_dir_all(world.state_dir()).unwrap();
    let disk = Namespace::with_small_disk(&world.state_dir(), "4m");
    world.fake.push(Scenario::Latency(Duration::from_secs(2)));
    let server_env = env(&world, &[("REVE_MAX_WAIT_SECS", "1")]);
    let session = McpSession::start_command(disk.enter(&server_env), TestClient::default()).await;
    let arguments = json!({ "prompt": "p", "image_url": input() });
    let running = session.edit_image(arguments).await.unwrap();
    assert_eq!(status(&running), "running", "{running:?}");
    let id = job_id(&running);
    // Claimed and sent; the disk fills before the API answers.
    let filler = world.state_dir().join("filler");
    disk.fill(&filler);
    let done = collect(&session, &id, 10).await;
    assert_eq!(status(&done), "succeeded", "{done:?}");
    assert_eq!(
        state_in(&disk, &server_env, &id).await.as_deref(),
        Some("running")
    );

    std::fs::remove_file(disk.path(&filler)).unwrap();
    let mut recorded = None;
    for _ in 0..100 {
        recorded = state_in(&disk, &server_env, &id).await;
        if recorded.as_deref() == Some("succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recorded.as_deref(), Some("succeeded"));
    session.stop().await;

    // A job whose record could not be written while its process lived is settled once the
    // process is gone: by `reve-mcp jobs` itself, with no server running, as by the next start.
    world.fake.push(Scenario::Latency(Duration::from_secs(30)));
    let session = McpSession::start_command(disk.enter(&server_env), TestClient::default()).await;
    let running = session
        .edit_image(json!({ "prompt": "q", "image_url": input() }))
        .await
        .unwrap();
    let id = job_id(&running);
    disk.fill(&filler);
    session.stop().await;
    std::fs::remove_file(disk.path(&filler)).unwrap();
    assert_eq!(
        state_in(&disk, &server_env, &id).await.as_deref(),
        Some("interrupted")
    );
    let session = McpSession::start_command(disk.enter(&server_env), TestClient::default()).await;
    let settled = collect(&session, &id, 5).await;
    assert_eq!(settled.is_error, Some(true), "{settled:?}");
    assert!(result_text(&settled).contains("may have charged"));
    assert_eq!(
        state_in(&disk, &server_env, &id).await.as_deref(),
        Some("interrupted")
    );
    session.stop().await;
}

/// The token of the HTTP tests here.
const TOKEN: &str = "tok-edges-5e1f0c9a7b";

/// Polls `/healthz` without the token every 4 s on one kept-alive connection, as a monitor
/// (or a flood) does, reconnecting when the server closes it; counts the responses that said
/// they close the connection.
async fn poll_health(
    addr: std::net::SocketAddr,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut connection: Option<tokio::net::TcpStream> = None;
    loop {
        let stream = match connection.as_mut() {
            Some(stream) => stream,
            None => match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => connection.insert(stream),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut answer = Vec::new();
        let asked = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let mut buffer = [0u8; 1024];
        while asked.is_ok() && !answer.ends_with(b"ok\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        if text.contains("connection: close") {
            closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            connection = None;
        } else if !answer.ends_with(b"ok\n") {
            connection = None;
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
}

#[tokio::test]
async fn clients_without_the_token_cannot_hold_the_connections_a_token_holder_needs() {
    reve_mcp::raise_limit();
    let world = World::new().await;
    let mut server_env = world.env(&[]);
    server_env.insert("REVE_HTTP_TOKEN".into(), TOKEN.into());
    let server = crate::mcp_http::HttpServer::start(
        &server_env,
        &["--stateless", "--max-connections", "200"],
    )
    .await;
    // As many kept-alive pollers without the token as there are connection slots.
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (0..200)
        .map(|_| tokio::spawn(poll_health(server.addr, closed.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A token holder is served during the flood; the client gives up after 3 s.
    for round in 0..3 {
        let request =
            json!({ "jsonrpc": "2.0", "id": round, "method": "tools/list", "params": {} });
        let response = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap()
            .post(server.url())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("mcp-protocol-version", crate::mcp_http::PROTOCOL_VERSION)
            .body(request.to_string())
            .send()
            .await
            .unwrap_or_else(|error| {
                panic!("round {round}: the token holder was not served: {error}")
            });
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(response.text().await.unwrap().contains("edit_image"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        closed.load(std::sync::atomic::Ordering::Relaxed) >= 200,
        "the server kept unauthenticated connections open"
    );
    for poller in flood {
        poller.abort();
    }
    server.stop().await;
}

#[tokio::test]
async fn a_stateless_call_without_a_progress_token_gets_its_headers_before_the_edit_ends() {
    let world = World::new().await;
    world.fake.push(Scenario::Latency(Duration::from_secs(4)));
    let server = crate::mcp_http::HttpServer::start(&env(&world, &[]), &["--stateless"]).await;
    let request = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "edit_image",
            "arguments": { "prompt": "p", "image_url": input() },
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": { "name": "reve-tests", "version": "0" },
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        }
    });
    let response = crate::mcp_http::post_to(&server.url(), &request)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "edit_image")
        .send()
        .await
        .unwrap();
    // The headers came while the API was still working on the edit.
    assert_eq!(world.fake.file_downloads(), 0, "the edit had ended already");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = response.text().await.unwrap();
    let answer = crate::mcp_http::sse_messages(&body).pop().unwrap();
    assert_eq!(answer["id"], json!(1), "{body}");
    assert_eq!(
        answer["result"]["structuredContent"]["status"],
        json!("succeeded"),
        "{body}"
    );
    assert_eq!(world.fake.file_downloads(), 1);
    server.stop().await;
}

/// Each model tool's description, by tool name, as the server lists them.
async fn descriptions(session: &McpSession) -> BTreeMap<String, String> {
    session
        .client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| {
            let description = tool.description.unwrap_or_default().into_owned();
            (tool.name.into_owned(), description)
        })
        .collect()
}

/// `--max-usd-per-day` refuses, before anything is sent, an edit that would take the day past
/// it at its model's live price, which the tools' descriptions and `reve-mcp usage` quote; a
/// pricing endpoint that is down fails nothing, and the price is then left out.
#[tokio::test]
async fn a_limit_in_dollars_refuses_before_sending_at_the_live_price() {
    let world = World::new().await;
    let session = start(
        &env(&world, &[("REVE_MAX_USD_PER_DAY", "0.2")]),
        TestClient::default(),
    )
    .await;
    // The prices are read shortly after the server starts; the listing quotes them from then.
    let mut listed = descriptions(&session).await;
    for _ in 0..100 {
        if listed["edit_image"].contains("Cost:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = descriptions(&session).await;
    }
    assert!(
        listed["edit_image"]
            .ends_with("Cost: about $0.105 per picture (the provider's price now)."),
        "{listed:?}"
    );
    assert!(
        listed["create_image"].contains("about $0.063 per picture"),
        "{listed:?}"
    );
    assert!(!listed["get_edit"].contains("Cost:"));
    // The client, which listed the tools before the prices were read, was told they changed.
    let changes = &session.observed.tool_list_changes;
    for _ in 0..100 {
        if changes.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(changes.load(std::sync::atomic::Ordering::SeqCst), 1);

    let first = session
        .edit_image(json!({ "prompt": "one", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&first), "succeeded", "{first:?}");
    // $0.105 spent; another $0.105 would make $0.21, past $0.20.
    let refused = session
        .edit_image(json!({ "prompt": "two", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    let text = result_text(&refused);
    for part in [
        "spending limit in US dollars would be passed: $0.105 of the $0.2",
        "this reve/edit-image picture costs about $0.105",
        "--max-usd-per-day",
        "nothing was sent",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    assert_eq!(world.fake.generation_attempts(), 1);
    session.stop().await;
    let usage = run(&world, &["usage"]).await;
    let price = usage.lines().last().unwrap();
    assert!(
        price.starts_with("price now") && price.contains("reve/edit-image $0.105"),
        "{usage}"
    );

    // The pricing endpoint down: a server still starts, lists its tools (without a price) and
    // edits; `usage` leaves the price out.
    world.fake.set_pricing_available(false);
    let session = start(&env(&world, &[]), TestClient::default()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listed = descriptions(&session).await;
    assert!(!listed["edit_image"].contains("Cost:"), "{listed:?}");
    let edited = session
        .edit_image(json!({ "prompt": "three", "image_url": input() }))
        .await
        .unwrap();
    assert_eq!(status(&edited), "succeeded", "{edited:?}");
    session.stop().await;
    let usage = run(&world, &["usage"]).await;
    assert!(!usage.contains("price now"), "{usage}");
}
