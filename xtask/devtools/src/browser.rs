//! `cargo xtask browser`: the viewer (an MCP App) in a real browser. A test host page built on
//! the MCP Apps SDK's host side (`@modelcontextprotocol/ext-apps/app-bridge`) and the MCP
//! TypeScript client drives `reve-mcp serve --http`, itself against the fake API, and renders
//! the viewer in a sandboxed iframe under the hosts' default Content Security Policy, in
//! headless Chromium (Debian's package).
//!
//! The edit outlasts the server's wait, so the viewer first shows the running job and then
//! collects it through the host. What the page showed is checked here: both pictures with their
//! real pixels (the fake inverts colours), the slider moved by keyboard, the host's dark theme,
//! the size the view asked for, and no request to anything but loopback. The screenshots stay
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

pub fn run(root: &Path) -> Result<()> {
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
        .block_on(check(root, &binary, &chromium, &tools))
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

    let status = tokio::process::Command::new(tools.node())
        .arg(root.join("tests/browser/run.mjs"))
        .env("REVE_BROWSER_TOOLS", tools.dir())
        .env("REVE_CHROMIUM", chromium)
        .env("REVE_MCP_URL", &url)
        .env("REVE_INPUT", &input)
        .env("REVE_SECOND_INPUT", &second)
        .env("REVE_BROWSER_OUT", &work)
        .status()
        .await
        .context("running the browser driver")?;
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(work.join("report.json"))
            .context("the browser driver wrote no report")?,
    )?;
    if !status.success() {
        bail!(
            "the browser driver failed ({status}); the page's console: {}",
            report["console"]
        );
    }
    let mut failures = Checks::default();
    failures.page(&report, &path_text(&work.join("results"))?);
    failures.pixels(&work, &report)?;
    failures.kinds(&report);
    // The edit, the create and the remix: one generation each.
    failures.expect(
        fake.generation_attempts() == 3,
        format!("{} generations, not 3", fake.generation_attempts()),
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
         slider and the dark theme work; a created picture showed alone and a remix with its \
         pictures as a strip; every request stayed on loopback.\nScreenshots: {}",
        work.join("viewer.png").display()
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
            let image = image::open(work.join(screenshot))
                .with_context(|| format!("reading {screenshot}"))?
                .to_rgb8();
            let area = &report[element];
            let (x, y, width, height) = (
                area["x"].as_f64().unwrap_or_default(),
                area["y"].as_f64().unwrap_or_default(),
                area["width"].as_f64().unwrap_or_default(),
                area["height"].as_f64().unwrap_or_default(),
            );
            for (fraction, expected) in [(0.25, at_left), (0.75, at_right)] {
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
        }
        Ok(())
    }
}
