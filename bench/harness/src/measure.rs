//! The eight measurements of issue 5, run by the release harness.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use futures::future::try_join_all;
use reve_tests::FakeApi;
use reve_tests::fake::{ResultFormat, sample_png};
use serde_json::{Value, json};

use crate::pictures::{photo_jpeg, photo_png};
use crate::report::{Breakdown, Latency, LocalInput, Report};
use crate::rpc::{Answer, Server, Stderr};
use crate::{hardening, local};

pub struct Binaries {
    pub reve_mcp: PathBuf,
    pub baseline: PathBuf,
    pub harness: PathBuf,
}

/// How many times each figure is taken; every reported figure is the median.
struct Plan {
    cold_starts: usize,
    edits: usize,
    large_edits: usize,
    local_inputs: usize,
    concurrency_rounds: usize,
    sustained_calls: usize,
    preview_probes: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                cold_starts: 10,
                edits: 10,
                large_edits: 3,
                local_inputs: 3,
                concurrency_rounds: 1,
                sustained_calls: 300,
                preview_probes: 1,
            }
        } else {
            Plan {
                cold_starts: 40,
                edits: 40,
                large_edits: 9,
                local_inputs: 9,
                concurrency_rounds: 3,
                sustained_calls: 2000,
                preview_probes: 3,
            }
        }
    }
}

/// RSS is first read after this many sustained calls, once caches and pools
/// have filled.
const SUSTAINED_WARMUP: usize = 100;
const CONCURRENT_CALLS: usize = 64;
const CONCURRENT_LATENCY: Duration = Duration::from_secs(1);
const LOAD_CALLS: [usize; 2] = [8, 32];
/// The size of the local input of measurement 5.
const LOCAL_INPUT_BYTES: u64 = 20_000_000;

pub fn run(root: &Path, binaries: &Binaries, quick: bool) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(root, binaries, quick))
}

async fn run_async(root: &Path, binaries: &Binaries, quick: bool) -> Result<()> {
    let plan = Plan::new(quick);
    let work = root.join(crate::WORK_DIR);
    let output_dir = work.join("results");
    std::fs::create_dir_all(&output_dir)?;
    let started = Instant::now();

    eprintln!("making photo-like results");
    let (png, large_png) = tokio::task::spawn_blocking(|| -> Result<_> {
        Ok((
            Bytes::from(photo_png(1024, 768)?),
            Bytes::from(photo_png(4096, 4096)?),
        ))
    })
    .await??;
    let small_png = Bytes::from(photo_png(480, 360)?);

    let mut report = Report::new(quick, png.len(), large_png.len(), small_png.len());

    eprintln!("1-2. cold start and idle memory");
    let fake = FakeApi::builder()
        .canned_result(png.clone(), ResultFormat::Png)
        .start()
        .await;
    let env = server_env(&fake, &output_dir, "info");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..plan.cold_starts {
        ours.push(cold_start(&binaries.reve_mcp, &env).await?);
        theirs.push(cold_start(&binaries.baseline, &[]).await?);
    }
    report.cold_start = (
        median(ours.iter().map(|r| r.0)),
        median(theirs.iter().map(|r| r.0)),
    );
    report.idle_rss = (
        median(ours.iter().map(|r| r.1)),
        median(theirs.iter().map(|r| r.1)),
    );

    eprintln!("3. one edit with a 1024x768 result");
    report.edit = edit_latency(&binaries.reve_mcp, &env, &fake, plan.edits).await?;
    eprintln!("3a-3b. a create, and a remix of two pictures, with the same result");
    report.create = latency(&binaries.reve_mcp, &env, &fake, plan.edits, Kind::Create).await?;
    report.remix = latency(&binaries.reve_mcp, &env, &fake, plan.edits, Kind::Remix).await?;
    eprintln!("   and its breakdown");
    report.breakdown = breakdown(&binaries.reve_mcp, &fake, &png, &output_dir, plan.edits).await?;

    eprintln!("4. one edit with a 4096x4096 result");
    let large_fake = FakeApi::builder()
        .canned_result(large_png.clone(), ResultFormat::Png)
        .start()
        .await;
    let large_env = server_env(&large_fake, &output_dir, "info");
    report.large_edit = edit_latency(
        &binaries.reve_mcp,
        &large_env,
        &large_fake,
        plan.large_edits,
    )
    .await?;
    eprintln!("   and its breakdown");
    report.large_breakdown = breakdown(
        &binaries.reve_mcp,
        &large_fake,
        &large_png,
        &output_dir,
        plan.large_edits,
    )
    .await?;

    eprintln!("5. a 20 MB local input");
    report.local_input = local_input(&binaries.harness, &work, plan.local_inputs).await?;

    eprintln!("6. {CONCURRENT_CALLS} simultaneous calls, 1 s each at the API");
    let slow_fake = FakeApi::builder()
        .canned_result(small_png.clone(), ResultFormat::Png)
        .latency(CONCURRENT_LATENCY)
        .start()
        .await;
    let slow_env = server_env(&slow_fake, &output_dir, "info");
    let mut rounds = Vec::new();
    for _ in 0..plan.concurrency_rounds {
        rounds.push(concurrent_wall(&binaries.reve_mcp, &slow_env, &slow_fake).await?);
    }
    report.concurrency = median(rounds);

    eprintln!("7. peak memory under simultaneous 4096x4096 results");
    for (slot, calls) in LOAD_CALLS.into_iter().enumerate() {
        report.load_peak[slot] =
            peak_under_load(&binaries.reve_mcp, &large_env, &large_fake, calls).await?;
    }
    drop(large_fake);

    eprintln!("8. {} sequential calls", plan.sustained_calls);
    report.sustained = sustained(&binaries.reve_mcp, &env, &fake, plan.sustained_calls).await?;

    eprintln!(
        "9. calls over HTTP while {} hostile connections sit idle",
        hardening::HOSTILE_CONNECTIONS
    );
    report.siege =
        hardening::under_siege(&binaries.reve_mcp, &env, &input_url(&fake), plan.edits).await?;

    eprintln!("10. peak memory of preview bombs");
    let bomb_fake = FakeApi::builder().start().await;
    let bomb_env = server_env(&bomb_fake, &output_dir, "info");
    for (name, bomb) in hardening::bombs() {
        let peak = hardening::bomb_peak(
            &binaries.reve_mcp,
            &bomb_env,
            &bomb_fake,
            &input_url(&bomb_fake),
            bomb,
        )
        .await?;
        report.bomb_peaks.push((name, peak));
    }

    eprintln!("11-13. the job store: a record, get_edit, and a start with 1,000 jobs");
    report.store = crate::jobs::measure(
        &binaries.reve_mcp,
        &env,
        &work,
        &input_url(&fake),
        plan.edits,
    )
    .await?;

    eprintln!(
        "14-15. {} simultaneous calls through HAProxy to three replicas on Redis, and the Redis store's writes",
        crate::scale_out::SIMULTANEOUS_CALLS
    );
    report.scale_out = crate::scale_out::measure(
        &binaries.reve_mcp,
        &slow_env,
        &input_url(&slow_fake),
        &work,
        plan.edits * 5,
    )
    .await?;

    eprintln!("16. peak extra memory of one preview, in fresh processes");
    report.preview_memory =
        preview_memory(&binaries.harness, &work, &large_png, plan.preview_probes).await?;

    eprintln!("17. preview pixels against the whole-picture path");
    report.pixel_differences = pixel_differences(&work, &png, &large_png).await?;

    report.elapsed = started.elapsed();
    print!("{}", report.table());
    report.write(&root.join("BENCHMARKS.md"))?;
    eprintln!("wrote BENCHMARKS.md");
    Ok(())
}

pub(crate) fn server_env(fake: &FakeApi, output_dir: &Path, log: &str) -> Vec<(String, String)> {
    vec![
        ("AIML_API_KEY".into(), fake.api_key().into()),
        ("AIML_API_BASE_URL".into(), fake.base_url().into()),
        ("REVE_OUTPUT_DIR".into(), output_dir.display().to_string()),
        (
            "REVE_STATE_DIR".into(),
            output_dir.with_extension("state").display().to_string(),
        ),
        // Every measured call is an edit, never the reuse of an identical earlier one.
        ("REVE_REUSE_WINDOW_SECS".into(), "0".into()),
        ("RUST_LOG".into(), log.into()),
    ]
}

/// An `http` input URL the fake serves; with a canned result it is never
/// fetched, but the call is a URL-input call as the issue describes.
pub(crate) fn input_url(fake: &FakeApi) -> String {
    fake.serve_input(sample_png(64, 48), "image/png")
}

async fn cold_start(binary: &Path, env: &[(String, String)]) -> Result<(Duration, u64)> {
    let (server, elapsed) = Server::start(binary, env, Stderr::Discard).await?;
    let rss = server.rss()?;
    server.stop().await?;
    Ok((elapsed, rss))
}

/// Deletes what a call saved, so that thousands of calls do not fill the disk.
pub(crate) fn remove_saved(answer: &Answer) {
    if let Some(path) = answer.result["structuredContent"]["path"].as_str() {
        let _ = std::fs::remove_file(path);
    }
}

/// The same POST and download as reve-mcp makes, by a plain HTTP client:
/// returns the time to the API's answer and the time of the download.
pub(crate) async fn plain_call(
    http: &reqwest::Client,
    fake: &FakeApi,
    image_url: &str,
) -> Result<(Duration, Duration)> {
    plain_request(
        http,
        fake,
        json!({ "model": reve_core::edit_image::MODEL, "image_url": image_url, "prompt": crate::PROMPT }),
    )
    .await
}

/// A model the bench times beside the edit.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `create_image`: no picture.
    Create,
    /// `remix_images` with two pictures, each given by URL as the edit's is.
    Remix,
}

impl Kind {
    /// The tool's name and arguments, and the request a plain client sends for the same; each
    /// run's prompt its own, so that no call is the one before it again.
    fn call(self, pictures: &[String], run: usize) -> (&'static str, Value, Value) {
        let prompt = format!("{} (run {run})", crate::PROMPT);
        match self {
            Kind::Create => (
                "create_image",
                json!({ "prompt": prompt }),
                json!({ "model": reve_core::create_image::MODEL, "prompt": prompt }),
            ),
            Kind::Remix => (
                "remix_images",
                json!({ "prompt": prompt, "image_urls": pictures }),
                json!({ "model": reve_core::remix_edit_image::MODEL, "prompt": prompt, "image_urls": pictures }),
            ),
        }
    }
}

/// Tool-call time and plain-client time of `kind`, as [`edit_latency`] takes them for an edit.
async fn latency(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
    runs: usize,
    kind: Kind,
) -> Result<Latency> {
    let http = reqwest::Client::new();
    let pictures = [input_url(fake), input_url(fake)];
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    let mut tool = Vec::new();
    let mut plain = Vec::new();
    for run in 0..runs + 2 {
        let (tool_name, arguments, body) = kind.call(&pictures, run);
        let (request, download) = plain_request(&http, fake, body).await?;
        let answer = server.call(tool_name, arguments).await?;
        if answer.result["isError"] == true {
            bail!("{tool_name} failed: {}", answer.result["content"]);
        }
        remove_saved(&answer);
        // The first two warm the session up.
        if run >= 2 {
            plain.push(request + download);
            tool.push(answer.elapsed());
        }
    }
    server.stop().await?;
    Ok(Latency {
        tool: median(tool),
        plain: median(plain),
        runs,
    })
}

/// One generation by a plain HTTP client: the POST of `body`, then the download; the time of each.
async fn plain_request(
    http: &reqwest::Client,
    fake: &FakeApi,
    body: Value,
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let answer: Value = http
        .post(fake.endpoint_url())
        .bearer_auth(fake.api_key())
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let answered = Instant::now();
    let url = answer["data"][0]["url"]
        .as_str()
        .context("the fake answers with a url")?;
    let image = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    if image.is_empty() {
        bail!("the download was empty");
    }
    Ok((answered - started, answered.elapsed()))
}

/// Tool-call time and plain-client time, taken alternately in one warm
/// session so that both see the same machine.
async fn edit_latency(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
    runs: usize,
) -> Result<Latency> {
    let http = reqwest::Client::new();
    let image_url = input_url(fake);
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    for _ in 0..2 {
        plain_call(&http, fake, &image_url).await?;
        remove_saved(&server.edit(&image_url).await?);
    }
    let mut tool = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..runs {
        let (request, download) = plain_call(&http, fake, &image_url).await?;
        plain.push(request + download);
        let answer = server.edit(&image_url).await?;
        tool.push(answer.elapsed());
        remove_saved(&answer);
    }
    server.stop().await?;
    Ok(Latency {
        tool: median(tool),
        plain: median(plain),
        runs,
    })
}

/// Where a call's time goes. The server's own debug log marks the API
/// request's start, its answer and the end of the download (each line stamped
/// as it arrives on the pipe); what follows (save and preview) has no log
/// line, so those steps are timed in-process on the same bytes with the same
/// functions the server calls, beside the whole-picture path previews took
/// before issue 17. The saved file must be the served bytes, byte for byte.
async fn breakdown(
    binary: &Path,
    fake: &FakeApi,
    served: &Bytes,
    output_dir: &Path,
    runs: usize,
) -> Result<Breakdown> {
    let env = server_env(fake, output_dir, "info,reve_core=debug");
    let image_url = input_url(fake);
    let (mut server, _) = Server::start(binary, &env, Stderr::Lines).await?;
    let mut log = server.log.take().context("stderr is piped")?;
    let first = server.edit(&image_url).await?;
    let saved = first.result["structuredContent"]["path"]
        .as_str()
        .context("the call saved its result")?;
    if std::fs::read(saved)? != served.as_ref() {
        bail!("the saved file is not the bytes the API served");
    }
    remove_saved(&first);
    let mut parts: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs {
        while log.try_recv().is_ok() {}
        let answer = server.edit(&image_url).await?;
        remove_saved(&answer);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut marks = [None; 3];
        while let Ok((at, line)) = log.try_recv() {
            for (slot, text) in [
                "sending the edit request",
                "read the API's response",
                "result image ready",
            ]
            .into_iter()
            .enumerate()
            {
                if line.contains(text) {
                    marks[slot].get_or_insert(at);
                }
            }
        }
        let [Some(request), Some(response), Some(ready)] = marks else {
            bail!("the server's debug log lacks the request and download marks");
        };
        parts[0].push(request.saturating_duration_since(answer.sent));
        parts[1].push(response - request);
        parts[2].push(ready - response);
        parts[3].push(answer.answered.saturating_duration_since(ready));
    }
    server.stop().await?;

    // The steps after the download have no log line: they are timed here,
    // in-process, on a result staged by reve-core exactly as the server
    // stages it, with the functions the server calls.
    let client = reve_core::Client::new(
        reve_core::Config::default()
            .with_api_key(fake.api_key())
            .with_base_url(fake.base_url())?,
    )?;
    let body = reve_core::RequestBody::new(
        &reve_core::EditImageRequest::new(image_url, crate::PROMPT),
        u64::MAX,
    )?;
    let mut steps: [Vec<Duration>; 5] = Default::default();
    for _ in 0..runs {
        let staged = client.edit_into_dir(&body, output_dir).await?;
        let times = tokio::task::spawn_blocking(move || -> Result<[Duration; 5]> {
            let budget = reve_mcp::PreviewLimits::default();
            let (preview, one_pass) = crate::preview::streamed_preview(staged.open()?, budget)?;
            let whole = crate::preview::whole_picture_preview(
                staged.open()?,
                (preview.width, preview.height),
                budget,
            )?;
            let started = Instant::now();
            let saved = staged.persist(None)?;
            let persist = started.elapsed();
            std::fs::remove_file(saved)?;
            Ok([
                one_pass,
                persist,
                whole.read_back,
                whole.decode,
                whole.scale_encode,
            ])
        })
        .await??;
        for (step, time) in steps.iter_mut().zip(times) {
            step.push(time);
        }
    }
    let [one_pass, persist, read_back, decode, scale_encode] = steps.map(median);
    let [mcp_in, request, download, after] = parts.map(median);
    Ok(Breakdown {
        mcp_in,
        request,
        download,
        after_download: after,
        one_pass,
        persist,
        whole_read_back: read_back,
        whole_decode: decode,
        whole_scale_encode: scale_encode,
    })
}

/// Measurement 16: one preview's peak extra memory, today's and the whole-picture path's, for
/// the 4096x4096 result of measurement 4 and a 16384x16384 photo-like PNG.
async fn preview_memory(
    harness: &Path,
    work: &Path,
    large_png: &Bytes,
    runs: usize,
) -> Result<Vec<crate::preview::PreviewMemory>> {
    let (harness, work, large_png) = (harness.to_owned(), work.to_owned(), large_png.clone());
    tokio::task::spawn_blocking(move || {
        let mut figures = Vec::new();
        for side in crate::preview::MEMORY_SIDES {
            let file = work.join(format!("photo-{side}.png"));
            if side == 4096 {
                std::fs::write(&file, &large_png)?;
            } else {
                crate::pictures::write_photo_png(&file, side, side)?;
            }
            let streamed = crate::preview::memory(&harness, &file, false, runs)?;
            let whole = if side == 4096 {
                Some(crate::preview::memory(&harness, &file, true, runs)?)
            } else {
                None
            };
            figures.push(crate::preview::PreviewMemory {
                side,
                file_bytes: std::fs::metadata(&file)?.len(),
                streamed,
                whole,
            });
            std::fs::remove_file(&file)?;
        }
        Ok(figures)
    })
    .await?
}

/// Measurement 17: today's previews against the whole-picture path's on the bench's results,
/// and on the 4096x4096 one as a JPEG, which is decoded scaled.
async fn pixel_differences(
    work: &Path,
    png: &Bytes,
    large_png: &Bytes,
) -> Result<Vec<crate::preview::PixelDifference>> {
    let (work, png, large_png) = (work.to_owned(), png.clone(), large_png.clone());
    tokio::task::spawn_blocking(move || {
        let pictures = [
            ("1024x768 PNG", png.to_vec()),
            ("4096x4096 PNG", large_png.to_vec()),
            ("4096x4096 JPEG", photo_jpeg(4096, 4096)?),
        ];
        let mut differences = Vec::new();
        for (name, bytes) in pictures {
            let file = work.join("compared-picture");
            std::fs::write(&file, bytes)?;
            differences.push(crate::preview::pixel_difference(name, &file)?);
            std::fs::remove_file(&file)?;
        }
        Ok(differences)
    })
    .await?
}

async fn local_input(harness: &Path, work: &Path, runs: usize) -> Result<LocalInput> {
    let file = work.join("local-input.png");
    let written = file.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        // A real PNG, padded with noise to the wanted size: the path under
        // test reads the type from the first bytes and never decodes.
        let mut bytes = photo_png(1024, 768)?;
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let wanted = usize::try_from(LOCAL_INPUT_BYTES)?;
        bytes.reserve(wanted.saturating_sub(bytes.len()));
        while bytes.len() < wanted {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        bytes.truncate(wanted);
        Ok(std::fs::write(&written, bytes)?)
    })
    .await??;
    let harness = harness.to_owned();
    let probes = tokio::task::spawn_blocking(move || {
        (0..runs)
            .map(|_| local::run_child(&harness, &file))
            .collect::<Result<Vec<_>>>()
    })
    .await??;
    Ok(LocalInput {
        bytes: LOCAL_INPUT_BYTES,
        build: median(probes.iter().map(|probe| probe.build)),
        send: median(probes.iter().map(|probe| probe.send)),
        peak_extra_bytes: median(probes.iter().map(|probe| probe.peak_extra_bytes)),
    })
}

/// Wall time of [`CONCURRENT_CALLS`] calls sent at once to a warm server.
async fn concurrent_wall(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
) -> Result<Duration> {
    let image_url = input_url(fake);
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    remove_saved(&server.edit(&image_url).await?);
    let started = Instant::now();
    let answers = try_join_all((0..CONCURRENT_CALLS).map(|_| server.edit(&image_url))).await?;
    let wall = started.elapsed();
    answers.iter().for_each(remove_saved);
    server.stop().await?;
    Ok(wall)
}

/// Peak RSS of a fresh server that is sent `calls` calls at once.
async fn peak_under_load(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
    calls: usize,
) -> Result<u64> {
    let image_url = input_url(fake);
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    let answers = try_join_all((0..calls).map(|_| server.edit(&image_url))).await?;
    let peak = server.peak_rss()?;
    answers.iter().for_each(remove_saved);
    server.stop().await?;
    Ok(peak)
}

/// RSS after [`SUSTAINED_WARMUP`] calls and after `calls`, one at a time.
async fn sustained(
    binary: &Path,
    env: &[(String, String)],
    fake: &FakeApi,
    calls: usize,
) -> Result<(u64, u64, usize)> {
    let image_url = input_url(fake);
    let (server, _) = Server::start(binary, env, Stderr::Discard).await?;
    let mut after_warmup = 0;
    for call in 1..=calls {
        remove_saved(&server.edit(&image_url).await?);
        if call == SUSTAINED_WARMUP {
            after_warmup = server.rss()?;
        }
    }
    let end = server.rss()?;
    server.stop().await?;
    Ok((after_warmup, end, calls))
}

pub fn median<T: Ord + Copy + Default>(values: impl IntoIterator<Item = T>) -> T {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
