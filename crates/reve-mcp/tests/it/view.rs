//! `reve-mcp view` and `reve-mcp edit --view`: a finished job written as the viewer's page, with
//! its pictures inside, and opened in the default browser (here a stand-in `xdg-open` on PATH
//! that records what it was asked to open). The browser test (`cargo xtask browser`) renders
//! such a page in Chromium.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reve_tests::fake::sample_png;
use serde_json::Value;

use crate::support::{World, command};

async fn run(world: &World, env: &BTreeMap<String, String>, args: &[&str]) -> Output {
    command(env)
        .args(args)
        .current_dir(&world.inputs)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("reve-mcp runs")
}

/// A PATH whose `xdg-open` writes what it is asked to open to `opened`, and on which no other
/// opener is; with `None`, a PATH with no opener at all.
fn path_with_opener(world: &World, opened: Option<&Path>) -> String {
    let Some(opened) = opened else {
        let empty = world.path("no-opener");
        std::fs::create_dir_all(&empty).unwrap();
        return empty.display().to_string();
    };
    let bin = world.path("opener");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The stand-in runs on /bin/sh, by its full path: nothing else is looked up on PATH.
    bin.display().to_string()
}

/// The edit a page carries: its `arguments`, `result` and `pictures`.
fn carried(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let start = html
        .find(r#"id="reve-standalone">"#)
        .expect("the page carries an edit")
        + r#"id="reve-standalone">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The size of the picture a `data:` URL holds.
fn size_of(data_url: &str) -> (u32, u32) {
    let base64 = data_url.split_once(";base64,").expect("a data: URL").1;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .unwrap();
    image::load_from_memory(&bytes)
        .map(|picture| (picture.width(), picture.height()))
        .unwrap()
}

#[tokio::test]
async fn view_writes_a_jobs_page_with_its_pictures_and_opens_it() {
    let world = World::new().await;
    world.input_file("cat.png", &sample_png(48, 32));
    let env = world.env(&[]);
    let edit = run(
        &world,
        &env,
        &["edit", "cat.png", "-p", "give it a hat", "--json"],
    )
    .await;
    assert!(edit.status.success(), "{edit:?}");
    let output: Value = serde_json::from_slice(&edit.stdout).unwrap();
    let job_id = output["job_id"].as_str().unwrap().to_owned();

    // --last, without a browser: the page's path on stdout.
    let viewed = run(&world, &env, &["view", "--last", "--no-open"]).await;
    assert!(viewed.status.success(), "{viewed:?}");
    let page = PathBuf::from(String::from_utf8(viewed.stdout).unwrap().trim());
    assert_eq!(
        page,
        world
            .state_dir()
            .join("views")
            .join(format!("{job_id}.html"))
    );
    let edit = carried(&page);
    assert_eq!(edit["arguments"]["prompt"], "give it a hat");
    let result = &edit["result"]["structuredContent"];
    assert_eq!(result["job_id"], job_id.as_str());
    assert_eq!(result["path"], output["path"]);
    // Both pictures the result names are in the page: the input as given, the result's preview.
    let pictures = edit["pictures"].as_object().unwrap();
    let input = pictures[result["input_image"]["uri"].as_str().unwrap()]
        .as_str()
        .unwrap();
    let preview = pictures[result["preview_uri"].as_str().unwrap()]
        .as_str()
        .unwrap();
    assert_eq!(size_of(input), (48, 32));
    assert_eq!(size_of(preview), (48, 32));
    assert_eq!(world.fake.generation_attempts(), 1, "viewing sends nothing");

    // By the start of its id, as `reve-mcp jobs` prints it, opened with the default browser.
    let opened = world.path("opened");
    let with_opener = {
        let mut env = env.clone();
        env.insert("PATH".into(), path_with_opener(&world, Some(&opened)));
        env
    };
    let viewed = run(&world, &with_opener, &["view", &job_id[..8]]).await;
    assert!(viewed.status.success(), "{viewed:?}");
    let asked = wait_for_file(&opened).await;
    assert_eq!(PathBuf::from(asked), page);

    // Nothing to open it with: said, and the page is still there.
    let mut without = env.clone();
    without.insert("PATH".into(), path_with_opener(&world, None));
    let viewed = run(&world, &without, &["view", &job_id]).await;
    assert!(viewed.status.success(), "{viewed:?}");
    let stderr = String::from_utf8_lossy(&viewed.stderr);
    assert!(stderr.contains("no browser could be started"), "{stderr}");

    // An id that is no job's.
    let unknown = run(&world, &env, &["view", "ffffffff", "--no-open"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.starts_with("error: no job \"ffffffff\""), "{stderr}");
}

#[tokio::test]
async fn edit_with_view_opens_the_result_once_it_is_saved() {
    let world = World::new().await;
    world.input_file("dog.png", &sample_png(40, 24));
    let opened = world.path("opened");
    let mut env = world.env(&[]);
    env.insert("PATH".into(), path_with_opener(&world, Some(&opened)));
    let edit = run(
        &world,
        &env,
        &["edit", "dog.png", "-p", "in the snow", "--view"],
    )
    .await;
    assert!(edit.status.success(), "{edit:?}");
    let stdout = String::from_utf8(edit.stdout).unwrap();
    let mut lines = stdout.lines();
    let saved = lines.next().unwrap();
    let page = PathBuf::from(lines.next().expect("the page's path follows the result's"));
    assert_eq!(PathBuf::from(wait_for_file(&opened).await), page);
    let result = &carried(&page)["result"]["structuredContent"];
    assert_eq!(result["path"], saved);
}

/// What the stand-in opener wrote, once it has (it runs detached).
async fn wait_for_file(path: &Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} was never written: no browser was asked to open the page",
        path.display()
    );
}
