//! `cargo xtask browser`: the viewer (an MCP App) in a real browser. A test host page built on
//! the MCP Apps SDK's host side (`@modelcontextprotocol/ext-apps/app-bridge`) and the MCP
//! TypeScript client drives `reve-mcp serve --http`, itself against the fake API, and renders
//! the viewer in a sandboxed iframe under the hosts' default Content Security Policy, in
//! headless Chromium (Debian's package).
//!
//! The edit outlasts the server's wait, so the viewer first shows the running job and then
//! collects it through the host. What the page showed is checked here: both pictures with their
//! real pixels (the fake inverts colours), the slider moved by keyboard, the host's dark theme,
//! the size the view asked for, and no request to anything but loopback. Its result is then
//! edited again by reference in a host that declares what the view's controls need: the line
//! of versions, each version against the one it came from, and what the host receives from
//! "use this one" (`ui/update-model-context`, with the picture), "download"
//! (`ui/download-file`), "edit again from here" (`ui/message`) and fullscreen; the first host,
//! which declares none of that, shows none of those controls. The screenshots stay
//! in `target/browser/`. The driver (`tests/browser/run.mjs`) and the host page are test
//! tooling, as are their npm packages, installed pinned under `target/tools/browser`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reve_tests::fake::{TWO_COLOURS, two_colour_png};
use reve_tests::{FakeApi, Scenario};
use serde_json::Value;

use crate::demo::path_text;
use crate::harness::{NodeTools, serve_http};

/// The test host's packages, pinned: the MCP Apps SDK (host side) and the client it needs,
/// the bundler for the host page, and the browser driver.
const PACKAGES: [&str; 6] = [
    "@modelcontextprotocol/ext-apps@2.0.4",
    "@modelcontextprotocol/client@2.4.0",
    "@modelcontextprotocol/core@2.4.0",
    "zod@4.2.1",
    "esbuild@0.25.12",
    "playwright-core@1.64.1",
];

/// Where Debian puts Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The picture edited: two flat halves, big enough to sample well inside each.
const INPUT_SIZE: (u32, u32) = (320, 200);
/// The second picture a remix gets: another shape, so the strip shows which is which.
const SECOND_SIZE: (u32, u32) = (120, 160);

/// How far a rendered pixel may stray from the colour expected (scaling, colour management).
const TOLERANCE: u8 = 12;

/// `photo`: the picture the viewed page's edit is made of (the README's screenshots), in place of
/// the two-coloured one whose colours are checked.
pub fn run(root: &Path, photo: Option<&Path>) -> Result<()> {
    let binary = std::env::var_os("REVE_MCP_BIN")
        .map(PathBuf::from)
        .context("REVE_MCP_BIN must name the reve-mcp binary: run `cargo xtask browser`")?;
    let chromium =
        std::env::var_os("REVE_CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    if !chromium.exists() {
        bail!(
            "Chromium is not installed at {}: install it with `apt-get install -y chromium` \
             (or set REVE_CHROMIUM to its executable)",
            chromium.display()
        );
    }
    let tools = NodeTools::install(
        root.join("target/tools/browser"),
        &PACKAGES,
        "playwright-core/package.json",
    )?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            check(root, &binary, &chromium, &tools).await?;
            view(root, &binary, &chromium, &tools, photo).await
        })
}

async fn check(root: &Path, binary: &Path, chromium: &Path, tools: &NodeTools) -> Result<()> {
    let fake = FakeApi::start().await;
    // Longer than the server waits (2 s), so the first answer is "still running".
    fake.push(Scenario::Latency(Duration::from_secs(4)));
    let work = root.join("target/browser");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (_server, url) = serve_http(binary, &fake, &work, &[("REVE_MAX_WAIT_SECS", "2")]).await?;
    let input = work.join("input.png");
    std::fs::write(&input, two_colour_png(INPUT_SIZE.0, INPUT_SIZE.1))?;
    let second = work.join("second.png");
    std::fs::write(&second, two_colour_png(SECOND_SIZE.0, SECOND_SIZE.1))?;
    println!(
        "reve-mcp serves {url}; rendering the viewer in {}",
        chromium.display()
    );

    let report = drive(
        root,
        tools,
        chromium,
        &work,
        ("run.mjs", "report.json"),
        &[
            ("REVE_MCP_URL", url.as_ref()),
            ("REVE_INPUT", input.as_ref()),
            ("REVE_SECOND_INPUT", second.as_ref()),
        ],
    )
    .await?;
    let mut failures = Checks::default();
    failures.page(&report, &path_text(&work.join("results"))?);
    failures.pixels(&work, &report)?;
    failures.kinds(&report);
    failures.versions(&work, &report)?;
    failures.modern(&report);
    // The edit, the edit of its result, the edit on the 2026 wire, the create and the remix:
    // one generation each.
    failures.expect(
        fake.generation_attempts() == 5,
        format!("{} generations, not 5", fake.generation_attempts()),
    );
    if !failures.0.is_empty() {
        bail!(
            "the viewer failed {} check(s):\n  {}\n(screenshots and report.json in {})",
            failures.0.len(),
            failures.0.join("\n  "),
            work.display()
        );
    }
    println!(
        "The viewer showed the running edit, then both pictures with their real pixels; the \
         slider and the dark theme work; its result edited again by reference showed the line \
         of versions, each against the one it came from, and each control reached the host that \
         declared it (none showed in the host that did not); a host on the 2026-07-28 wire, \
         where ping is gone, showed the edit the same; a \
         created picture showed alone and a remix with its pictures as a strip; every request \
         stayed on loopback.\nScreenshots: {}",
        work.join("viewer.png").display()
    );
    Ok(())
}

/// Runs the browser driver `script` of `tests/browser/` with the tools, Chromium, the folder it
/// writes into and `env`, and reads the report it wrote there, `report`.
async fn drive(
    root: &Path,
    tools: &NodeTools,
    chromium: &Path,
    work: &Path,
    (script, report): (&str, &str),
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<Value> {
    let status = tokio::process::Command::new(tools.node())
        .arg(root.join("tests/browser").join(script))
        .env("REVE_BROWSER_TOOLS", tools.dir())
        .env("REVE_CHROMIUM", chromium)
        .env("REVE_BROWSER_OUT", work)
        .envs(env.iter().copied())
        .status()
        .await
        .with_context(|| format!("running the browser driver {script}"))?;
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(work.join(report))
            .with_context(|| format!("the browser driver {script} wrote no report"))?,
    )?;
    if !status.success() {
        bail!(
            "the browser driver {script} failed ({status}); the page's console: {}",
            report["console"]
        );
    }
    Ok(report)
}

/// The prompt of the viewed page's edit.
const VIEW_PROMPT: &str = "Invert the colours";

/// How far apart the slider's thumb and the line may be, in pixels.
const ALIGNED: f64 = 2.0;

/// `reve-mcp edit` of a picture from the command line, then `reve-mcp view --last --no-open`,
/// and the page it wrote opened from disk in Chromium: both pictures shown, with the same labels
/// in both modes and nothing around them; the slider's thumb on the line; the saved path copied
/// by its button and linked as a file.
async fn view(
    root: &Path,
    binary: &Path,
    chromium: &Path,
    tools: &NodeTools,
    photo: Option<&Path>,
) -> Result<()> {
    let fake = FakeApi::start().await;
    let work = root.join("target/browser");
    let input = match photo {
        Some(photo) => photo.to_owned(),
        None => {
            let input = work.join("view-input.png");
            std::fs::write(&input, two_colour_png(INPUT_SIZE.0, INPUT_SIZE.1))?;
            input
        }
    };
    let size =
        image::image_dimensions(&input).with_context(|| format!("reading {}", input.display()))?;
    // A home folder of its own, so that the page shows the result where a person's would be,
    // `~/Pictures/reve/...`, and no path of this machine appears in a screenshot.
    let home = work.join("view-home");
    let env = std::collections::BTreeMap::from([
        ("AIML_API_KEY".to_owned(), fake.api_key().to_owned()),
        ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
        ("HOME".to_owned(), path_text(&home)?),
        (
            "REVE_OUTPUT_DIR".to_owned(),
            path_text(&home.join("Pictures/reve"))?,
        ),
        (
            "REVE_STATE_DIR".to_owned(),
            path_text(&work.join("view-state"))?,
        ),
    ]);
    let run = |args: Vec<String>| {
        let mut command =
            tokio::process::Command::from(reve_tests::mcp::child_command(binary, &env));
        command.args(args).stdin(std::process::Stdio::null());
        async move { command.output().await }
    };
    let edited = run(vec![
        "edit".into(),
        path_text(&input)?,
        "-p".into(),
        VIEW_PROMPT.into(),
    ])
    .await?;
    if !edited.status.success() {
        bail!(
            "reve-mcp edit failed: {}",
            String::from_utf8_lossy(&edited.stderr)
        );
    }
    let saved = String::from_utf8(edited.stdout)?.trim().to_owned();
    let viewed = run(vec!["view".into(), "--last".into(), "--no-open".into()]).await?;
    if !viewed.status.success() {
        bail!(
            "reve-mcp view failed: {}",
            String::from_utf8_lossy(&viewed.stderr)
        );
    }
    let page = String::from_utf8(viewed.stdout)?.trim().to_owned();
    println!(
        "reve-mcp view wrote {page}; opening it in {}",
        chromium.display()
    );
    // That result edited again (`--from` its job), and the page of the new one.
    let newest_job = || async {
        let listed = run(vec![
            "jobs".into(),
            "--json".into(),
            "-n".into(),
            "1".into(),
        ])
        .await?;
        serde_json::from_slice::<Value>(&listed.stdout).context("reve-mcp jobs --json")
    };
    let first = newest_job().await?["id"]
        .as_str()
        .context("the first job's id")?
        .to_owned();
    let again = run(vec![
        "edit".into(),
        "--from".into(),
        first[..8].to_owned(),
        "-p".into(),
        "Invert them back".into(),
    ])
    .await?;
    if !again.status.success() {
        bail!(
            "reve-mcp edit --from failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
    }
    let history = run(vec!["view".into(), "--last".into(), "--no-open".into()]).await?;
    let history_page = String::from_utf8(history.stdout)?.trim().to_owned();
    let latest = newest_job().await?;

    let report = drive(
        root,
        tools,
        chromium,
        &work,
        ("view.mjs", "view-report.json"),
        &[
            ("REVE_VIEW_PAGE", page.as_ref()),
            ("REVE_VIEW_HISTORY_PAGE", history_page.as_ref()),
        ],
    )
    .await?;
    let mut failures = Checks::default();
    failures.viewed(&report, size, &saved, &path_text(&home)?);
    failures.equal(
        "view: the line of versions (job, chosen)",
        &serde_json::json!(
            (report["history"].as_array().into_iter().flatten())
                .map(|version| serde_json::json!([
                    version["job"],
                    version["current"],
                    version["thumbnail"].as_u64().is_some_and(|width| width > 0)
                ]))
                .collect::<Vec<_>>()
        ),
        &serde_json::json!([[first, "false", true], [latest["id"], "true", true]]),
    );
    failures.equal(
        "view: the page's controls for a host",
        &report["historyControls"],
        &false.into(),
    );
    failures.equal(
        "view: the new job's parents",
        &latest["parents"],
        &serde_json::json!([first]),
    );
    failures.thumb_on_the_line(&work, &report)?;
    if photo.is_none() {
        failures.viewed_pixels(&work, &report)?;
    }
    if !failures.0.is_empty() {
        bail!(
            "the viewed page failed {} check(s):\n  {}\n(screenshots and view-report.json in {})",
            failures.0.len(),
            failures.0.join("\n  "),
            work.display()
        );
    }
    println!(
        "The page reve-mcp view wrote showed both pictures, the same labels in both modes, no \
         band around either, the slider's thumb on the line, and the saved path copied and \
         linked; the page of its result edited again showed the line of versions.\nScreenshots: {}, {}",
        work.join("view-side.png").display(),
        work.join("view-slider.png").display()
    );
    Ok(())
}

/// The checks that failed, each saying what was seen.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn expect(&mut self, holds: bool, otherwise: impl Into<String>) {
        if !holds {
            self.0.push(otherwise.into());
        }
    }

    fn equal(&mut self, what: &str, seen: &Value, expected: &Value) {
        self.expect(
            seen == expected,
            format!("{what}: {seen}, expected {expected}"),
        );
    }

    /// What the page and the host reported.
    fn page(&mut self, report: &Value, results_dir: &str) {
        let (width, height) = INPUT_SIZE;
        self.equal("host error", &report["hostError"], &Value::Null);
        self.equal("first result", &report["firstStatus"], &"running".into());
        let running = report["runningMessage"].as_str().unwrap_or_default();
        self.expect(
            running.contains("still running") || running.contains("waiting"),
            format!("the running view said {running:?}"),
        );
        self.equal(
            "prompt while running",
            &report["runningPrompt"],
            &"Invert the colours".into(),
        );
        self.equal(
            "result hidden while the input shows",
            &report["resultHiddenWhileRunning"],
            &true.into(),
        );
        self.equal("status", &report["status"], &"done".into());
        for picture in ["before", "after"] {
            self.equal(
                &format!("{picture} picture's natural size"),
                &report[picture]["natural"],
                &serde_json::json!([width, height]),
            );
            let info = report[format!("{picture}Info")]
                .as_str()
                .unwrap_or_default();
            self.expect(
                info.starts_with(&format!("{width}×{height} image/png")),
                format!("{picture} caption {info:?}"),
            );
        }
        let saved = report["savedPath"].as_str().unwrap_or_default();
        self.expect(
            saved.starts_with(results_dir),
            format!("saved path {saved:?}"),
        );
        self.equal("slider at Home", &report["sliderAtHome"], &"0".into());
        self.equal("slider at End", &report["sliderAtEnd"], &"100".into());
        self.equal(
            "dark background",
            &report["darkBackground"],
            &"rgb(31, 31, 34)".into(),
        );
        // The iframe takes the height the view asked for (its box adds the two borders).
        let asked = report["sizes"]
            .as_array()
            .and_then(|sizes| sizes.last())
            .and_then(Value::as_f64);
        let frame = report["frameHeight"].as_f64().unwrap_or_default();
        self.expect(
            asked.is_some_and(|asked| asked > 300.0 && (frame - asked).abs() <= 2.0),
            format!("the iframe is {frame} px high; the view asked for {asked:?}"),
        );
        let origin = report["origin"].as_str().unwrap_or("?");
        for url in report["requests"].as_array().into_iter().flatten() {
            let url = url.as_str().unwrap_or_default();
            self.expect(
                url.starts_with("data:")
                    || url.starts_with("about:")
                    || url.starts_with("http://127.0.0.1:"),
                format!("a request left loopback: {url} (the page is {origin})"),
            );
        }
        for line in report["console"].as_array().into_iter().flatten() {
            let line = line.as_str().unwrap_or_default();
            self.expect(
                !line.contains("Content Security Policy") && !line.starts_with("pageerror"),
                format!("the page said {line:?}"),
            );
        }
    }

    /// The edit in a host whose client speaks 2026-07-28, where `ping` is gone (the MCP client
    /// refuses to send it; rmcp would answer -32601): the view, which never pings and answers
    /// its host's pings itself, renders both pictures all the same.
    fn modern(&mut self, report: &Value) {
        let modern = &report["modern"];
        self.equal("2026-07-28: host error", &modern["hostError"], &Value::Null);
        self.equal(
            "2026-07-28: the protocol spoken",
            &modern["protocol"],
            &"2026-07-28".into(),
        );
        self.equal(
            "2026-07-28: ping works",
            &modern["ping"]["ok"],
            &false.into(),
        );
        self.equal("2026-07-28: status", &modern["status"], &"done".into());
        self.equal(
            "2026-07-28: both pictures, at their size",
            &modern["pictures"],
            &serde_json::json!([[INPUT_SIZE.0, INPUT_SIZE.1], [INPUT_SIZE.0, INPUT_SIZE.1]]),
        );
    }

    /// A created picture alone (no "before", no comparing), and a remix's given pictures as a
    /// strip beside its result.
    fn kinds(&mut self, report: &Value) {
        use serde_json::json;
        let create = &report["create"];
        self.equal("create: host error", &create["hostError"], &Value::Null);
        self.equal("create: title", &create["title"], &"Create".into());
        self.equal("create: status", &create["status"], &"done".into());
        self.equal(
            "create: a before shown",
            &create["beforeShown"],
            &false.into(),
        );
        self.equal(
            "create: comparing offered",
            &create["modesShown"],
            &false.into(),
        );
        self.equal(
            "create: result label",
            &create["afterLabel"],
            &"Result".into(),
        );
        // 1:1 is 1024x1024 in the fake, as in the published sizes; the view shows its preview,
        // which keeps the shape (and may be smaller).
        self.shape("create: result", &create["after"], (1024, 1024));
        let remix = &report["remix"];
        self.equal("remix: host error", &remix["hostError"], &Value::Null);
        self.equal("remix: title", &remix["title"], &"Remix".into());
        self.equal(
            "remix: the given pictures shown",
            &remix["beforeShown"],
            &true.into(),
        );
        self.equal(
            "remix: comparing offered",
            &remix["modesShown"],
            &false.into(),
        );
        self.equal(
            "remix: the strip's pictures, in order",
            &remix["strip"],
            &json!([[INPUT_SIZE.0, INPUT_SIZE.1], [SECOND_SIZE.0, SECOND_SIZE.1]]),
        );
        self.equal("remix: caption", &remix["beforeInfo"], &"2 pictures".into());
        // 3:2, the document's default.
        self.shape("remix: result", &remix["after"], (1248, 832));
    }

    /// A picture shown at `seen` (`[width, height]`) has the shape of `full`, to the pixel.
    fn shape(&mut self, what: &str, seen: &Value, full: (u32, u32)) {
        let size = |index: usize| seen[index].as_f64().unwrap_or_default();
        let (width, height) = (size(0), size(1));
        let expected_height = width * f64::from(full.1) / f64::from(full.0);
        self.expect(
            width > 0.0 && width <= f64::from(full.0) && (height - expected_height).abs() <= 1.0,
            format!(
                "{what} shows at {seen}, not the shape of {}x{}",
                full.0, full.1
            ),
        );
    }

    /// The colours on screen, sampled a quarter and three quarters across each picture.
    fn pixels(&mut self, work: &Path, report: &Value) -> Result<()> {
        let [left, right] = TWO_COLOURS;
        let inverted = |colour: [u8; 3]| colour.map(|channel| 255 - channel);
        let samples = [
            ("side-by-side.png", "before", left, right),
            ("side-by-side.png", "after", inverted(left), inverted(right)),
            // The line at the left: all after; at the right: all before.
            (
                "slider-home.png",
                "compare",
                inverted(left),
                inverted(right),
            ),
            ("slider-end.png", "compare", left, right),
        ];
        for (screenshot, element, at_left, at_right) in samples {
            self.colours(
                work,
                screenshot,
                element,
                &report[element],
                [at_left, at_right],
            )?;
        }
        Ok(())
    }

    /// The colours the screenshot `screenshot` shows in `area` (a box the page reported) a
    /// quarter and three quarters across: `expected`, left then right.
    fn colours(
        &mut self,
        work: &Path,
        screenshot: &str,
        element: &str,
        area: &Value,
        expected: [[u8; 3]; 2],
    ) -> Result<()> {
        let image = image::open(work.join(screenshot))
            .with_context(|| format!("reading {screenshot}"))?
            .to_rgb8();
        let (x, y, width, height) = (
            area["x"].as_f64().unwrap_or_default(),
            area["y"].as_f64().unwrap_or_default(),
            area["width"].as_f64().unwrap_or_default(),
            area["height"].as_f64().unwrap_or_default(),
        );
        for (fraction, expected) in [0.25, 0.75].into_iter().zip(expected) {
            let (px, py) = ((x + width * fraction) as u32, (y + height / 2.0) as u32);
            let seen = image
                .get_pixel_checked(px, py)
                .map_or([0, 0, 0], |pixel| pixel.0);
            let close = seen
                .iter()
                .zip(expected)
                .all(|(seen, expected)| seen.abs_diff(expected) <= TOLERANCE);
            self.expect(
                close,
                format!(
                    "{screenshot}: {element} at {fraction} across ({px}, {py}) is {seen:?}, expected {expected:?}"
                ),
            );
        }
        Ok(())
    }

    /// The first result edited again by reference, in a host with every capability the view's
    /// controls need: the line of versions, each version against the one it came from (the
    /// fake inverts colours, so they alternate), and what the host received from each control;
    /// and, in the first host, which declared none of them, no control at all.
    fn versions(&mut self, work: &Path, report: &Value) -> Result<()> {
        use serde_json::json;
        let versions = &report["versions"];
        let first = report["firstJob"].as_str().unwrap_or_default();
        let latest = versions["jobId"].as_str().unwrap_or_default();
        self.equal(
            "the first host's controls (it declared no capability for them)",
            &report["controlsShown"],
            &json!([]),
        );
        self.equal("versions: host error", &versions["hostError"], &Value::Null);
        let line: Vec<Value> = (versions["line"].as_array().cloned().unwrap_or_default())
            .iter()
            .map(|version| json!([version["job"], version["current"]]))
            .collect();
        self.equal(
            "versions: the line (job, chosen)",
            &json!(line),
            &json!([[first, "false"], [latest, "true"]]),
        );
        self.expect(
            (versions["line"].as_array().into_iter().flatten())
                .all(|version| version["thumbnail"].as_u64().unwrap_or_default() > 0),
            format!("versions: a thumbnail did not show: {}", versions["line"]),
        );
        self.equal(
            "versions: the job shown once the first is chosen",
            &versions["afterFirst"],
            &first.into(),
        );
        self.equal(
            "versions: the controls shown",
            &versions["controls"],
            &json!(["use-this", "download", "fullscreen", "again-form"]),
        );
        let [left, right] = TWO_COLOURS;
        let inverted = |colour: [u8; 3]| colour.map(|channel| 255 - channel);
        for (screenshot, shown, before, after) in [
            // The latest against the first version, whose colours it inverted back.
            (
                "versions.png",
                "latest",
                [inverted(left), inverted(right)],
                [left, right],
            ),
            // The first version against the picture it was given.
            (
                "versions-first.png",
                "first",
                [left, right],
                [inverted(left), inverted(right)],
            ),
        ] {
            self.colours(
                work,
                screenshot,
                "before",
                &versions[shown]["before"],
                before,
            )?;
            self.colours(work, screenshot, "after", &versions[shown]["after"], after)?;
        }
        let received = versions["received"].as_array().cloned().unwrap_or_default();
        let methods: Vec<&str> = received
            .iter()
            .filter_map(|message| message["method"].as_str())
            .collect();
        self.equal(
            "versions: what the host received, in order",
            &json!(methods),
            &json!([
                "ui/update-model-context",
                "ui/download-file",
                "ui/message",
                "ui/request-display-mode"
            ]),
        );
        let reference = format!("job:{latest}");
        let context = &received.first().cloned().unwrap_or_default()["params"];
        self.expect(
            (context["content"][0]["text"].as_str().unwrap_or_default()).contains(&reference)
                && context["content"][1]["type"] == "image"
                && (context["content"][1]["mimeType"]
                    .as_str()
                    .unwrap_or_default())
                .starts_with("image/")
                && context["content"][1]["data"]
                    .as_str()
                    .unwrap_or_default()
                    .len()
                    > 100
                && context["structuredContent"]["job_id"] == latest,
            format!("versions: ui/update-model-context carried {context}"),
        );
        let download = &received.get(1).cloned().unwrap_or_default()["params"];
        self.equal(
            "versions: the file downloaded",
            &json!([
                download["contents"][0]["type"],
                download["contents"][0]["uri"]
            ]),
            &json!(["resource_link", format!("reve://jobs/{latest}/result")]),
        );
        let message = &received.get(2).cloned().unwrap_or_default()["params"];
        let text = message["content"][0]["text"].as_str().unwrap_or_default();
        self.expect(
            message["role"] == "user"
                && text.contains("Now add a hat")
                && text.contains(&reference),
            format!("versions: ui/message carried {message}"),
        );
        self.equal(
            "versions: the display mode asked for",
            &received.get(3).cloned().unwrap_or_default()["params"]["mode"],
            &"fullscreen".into(),
        );
        Ok(())
    }

    /// What the page `reve-mcp view` wrote showed, opened from disk.
    fn viewed(&mut self, report: &Value, size: (u32, u32), saved: &str, home: &str) {
        use serde_json::json;
        self.equal("view: status", &report["status"], &"done".into());
        self.equal("view: prompt", &report["prompt"], &VIEW_PROMPT.into());
        // The labels say before and after the same way everywhere.
        self.equal(
            "view: captions",
            &report["labels"]["side"],
            &json!(["Before", "After"]),
        );
        self.equal(
            "view: slider labels",
            &report["labels"]["slider"],
            &json!(["Before", "After"]),
        );
        self.equal(
            "view: tags on the picture",
            &report["labels"]["tags"],
            &json!(["Before", "After"]),
        );
        for picture in ["before", "after"] {
            // The previews of a picture within the preview's edge keep its size.
            let natural = &report["natural"][picture];
            let (width, height) = (
                natural[0].as_f64().unwrap_or_default(),
                natural[1].as_f64().unwrap_or_default(),
            );
            let aspect = f64::from(size.0) / f64::from(size.1);
            self.expect(
                width > 0.0 && (width / height - aspect).abs() < 0.02,
                format!(
                    "view: the {picture} picture is {natural}, not of the shape of {}x{}",
                    size.0, size.1
                ),
            );
            // No band of grey: the frame is transparent and holds just the picture.
            self.equal(
                &format!("view: the {picture} frame's background"),
                &report[format!("{picture}FrameBackground")],
                &"rgba(0, 0, 0, 0)".into(),
            );
            let (shown, frame) = (&report[picture], &report[format!("{picture}Frame")]);
            let height = |area: &Value| area["height"].as_f64().unwrap_or_default();
            self.expect(
                (height(frame) - height(shown)).abs() <= 2.0,
                format!(
                    "view: the {picture} frame is {} px high around a picture of {} px",
                    height(frame),
                    height(shown)
                ),
            );
        }
        // Shown from `~`, copied whole.
        let shown = match saved.strip_prefix(home) {
            Some(rest) => format!("~{rest}"),
            None => format!("{saved} (not in {home})"),
        };
        self.equal("view: saved path", &report["savedPath"], &shown.into());
        self.equal("view: copied", &report["clipboard"], &saved.into());
        self.equal("view: copy button", &report["copyLabel"], &"Copied".into());
        let href = report["openHref"].as_str().unwrap_or_default();
        self.expect(
            href.starts_with("file:///") && href.ends_with(saved.rsplit('/').next().unwrap_or("?")),
            format!("view: the open link is {href:?} for {saved}"),
        );
        self.equal("view: slider value", &report["sliderValue"], &"20".into());
        for url in report["requests"].as_array().into_iter().flatten() {
            let url = url.as_str().unwrap_or_default();
            self.expect(
                url.starts_with("file://") || url.starts_with("data:"),
                format!("view: the page asked for {url}"),
            );
        }
        for line in report["console"].as_array().into_iter().flatten() {
            let line = line.as_str().unwrap_or_default();
            self.expect(
                !line.starts_with("pageerror"),
                format!("view: the page said {line:?}"),
            );
        }
    }

    /// At 20 %, the slider's thumb (found by its colour in the slider's row of the screenshot)
    /// is centred on the line between before and after.
    fn thumb_on_the_line(&mut self, work: &Path, report: &Value) -> Result<()> {
        let image = image::open(work.join("view-slider-20.png"))
            .context("reading view-slider-20.png")?
            .to_rgb8();
        let number = |area: &Value, key: &str| area[key].as_f64().unwrap_or_default();
        let (slider, line) = (&report["slider"], &report["line"]);
        let row = (number(slider, "y") + number(slider, "height") / 2.0) as u32;
        let (from, to) = (
            number(slider, "x") as u32,
            (number(slider, "x") + number(slider, "width")) as u32,
        );
        // The thumb is the accent colour (#0b57d0 in the light scheme); the track is grey.
        let accent = [11u8, 87, 208];
        let thumb: Vec<u32> = (from..to)
            .filter(|&x| {
                image.get_pixel_checked(x, row).is_some_and(|pixel| {
                    pixel
                        .0
                        .iter()
                        .zip(accent)
                        .all(|(seen, expected)| seen.abs_diff(expected) <= 40)
                })
            })
            .collect();
        let Some((first, last)) = thumb.first().zip(thumb.last()) else {
            self.expect(
                false,
                format!("view: no thumb found in row {row} of view-slider-20.png"),
            );
            return Ok(());
        };
        let thumb_centre = f64::from(first + last + 1) / 2.0;
        let line_centre = number(line, "x") + number(line, "width") / 2.0;
        self.expect(
            (thumb_centre - line_centre).abs() <= ALIGNED,
            format!("view: at 20 % the thumb's centre is at {thumb_centre} px and the line at {line_centre} px"),
        );
        let compare = &report["compare"];
        let at_20 = number(compare, "x") + number(compare, "width") * 0.2;
        self.expect(
            (line_centre - at_20).abs() <= ALIGNED,
            format!("view: at 20 % the line is at {line_centre} px, not a fifth across the picture ({at_20} px)"),
        );
        Ok(())
    }

    /// The colours of the viewed page's pictures: the input's two halves, and the fake's edit
    /// of it, inverted.
    fn viewed_pixels(&mut self, work: &Path, report: &Value) -> Result<()> {
        let [left, right] = TWO_COLOURS;
        let inverted = |colour: [u8; 3]| colour.map(|channel| 255 - channel);
        for (element, at_left, at_right) in [
            ("before", left, right),
            ("after", inverted(left), inverted(right)),
        ] {
            self.colours(
                work,
                "view-side.png",
                element,
                &report[element],
                [at_left, at_right],
            )?;
        }
        Ok(())
    }
}
