//! The figures, judged against their budgets, as a table for the terminal and
//! for `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

/// `BENCHMARKS.md` is written by hand except between these two lines, which
/// each run replaces.
const BEGIN: &str = "<!-- cargo xtask bench: results begin -->";
const END: &str = "<!-- cargo xtask bench: results end -->";

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Default)]
pub struct Latency {
    /// Median `tools/call` time.
    pub tool: Duration,
    /// Median time of the same POST and download by a plain HTTP client.
    pub plain: Duration,
    pub runs: usize,
}

impl Breakdown {
    fn steps(&self) -> [Duration; 9] {
        [
            self.mcp_in,
            self.request,
            self.download,
            self.after_download,
            self.one_pass,
            self.persist,
            self.whole_read_back,
            self.whole_decode,
            self.whole_scale_encode,
        ]
    }
}

impl Latency {
    fn added(&self) -> Duration {
        self.tool.saturating_sub(self.plain)
    }

    /// The tool call's time over the plain client's, in the same run.
    fn ratio(&self) -> f64 {
        self.tool.as_secs_f64() / self.plain.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// The rows of the breakdown table, in the order of [`Breakdown::steps`].
const BREAKDOWN_STEPS: [&str; 9] = [
    "MCP request in, arguments checked, request built",
    "API request (POST to answer read)",
    "download of the result, streamed to a file (the preview decodes it as it arrives)",
    "save, preview and answer, from the download to the answer",
    "  in-process: the preview in one pass from the staged file (rows decoded, scaled, encoded)",
    "  in-process: fsync and rename, beside the preview",
    "  in-process, before issue 17: read back into memory",
    "  in-process, before issue 17: decode whole",
    "  in-process, before issue 17: scale and encode",
];

#[derive(Default)]
pub struct Breakdown {
    /// From writing the call to the server starting its API request.
    pub mcp_in: Duration,
    pub request: Duration,
    pub download: Duration,
    /// From the downloaded result to the answer arriving: save, preview and
    /// writing the answer.
    pub after_download: Duration,
    /// Today's preview from the staged file: decoded as rows, scaled and encoded.
    pub one_pass: Duration,
    /// Flushing the staged result to disk and renaming it into place.
    pub persist: Duration,
    /// The whole-picture path of before issue 17, step by step.
    pub whole_read_back: Duration,
    pub whole_decode: Duration,
    pub whole_scale_encode: Duration,
}

#[derive(Default)]
pub struct LocalInput {
    pub bytes: u64,
    pub build: Duration,
    pub send: Duration,
    pub peak_extra_bytes: u64,
}

impl LocalInput {
    /// Input bytes per second of building the body, which is what the budget covers.
    fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.build.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

#[derive(Default)]
pub struct Report {
    quick: bool,
    result_bytes: usize,
    large_result_bytes: usize,
    small_result_bytes: usize,
    pub elapsed: Duration,
    /// reve-mcp's, then the minimal server's.
    pub cold_start: (Duration, Duration),
    pub idle_rss: (u64, u64),
    pub edit: Latency,
    /// A create with the same result as `edit`.
    pub create: Latency,
    /// A remix of two pictures with the same result as `edit`.
    pub remix: Latency,
    pub breakdown: Breakdown,
    pub large_edit: Latency,
    pub large_breakdown: Breakdown,
    pub local_input: LocalInput,
    pub concurrency: Duration,
    /// Peak RSS with 8, then 32, simultaneous 4096x4096 results.
    pub load_peak: [u64; 2],
    /// RSS after the warm-up calls, RSS at the end, and the number of calls.
    pub sustained: (u64, u64, usize),
    pub siege: crate::hardening::UnderSiege,
    /// Each preview bomb and the server's peak RSS after it.
    pub bomb_peaks: Vec<(&'static str, u64)>,
    pub store: crate::jobs::StoreCosts,
    pub scale_out: crate::scale_out::ScaleOut,
    pub preview_memory: Vec<crate::preview::PreviewMemory>,
    pub pixel_differences: Vec<crate::preview::PixelDifference>,
}

struct Row {
    name: &'static str,
    figure: String,
    budget: &'static str,
    met: bool,
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

impl Report {
    pub fn new(
        quick: bool,
        result_bytes: usize,
        large_result_bytes: usize,
        small_result_bytes: usize,
    ) -> Self {
        Report {
            quick,
            result_bytes,
            large_result_bytes,
            small_result_bytes,
            ..Report::default()
        }
    }

    fn rows(&self) -> Vec<Row> {
        let (ours, theirs) = self.cold_start;
        let cold_ratio = ours.as_secs_f64() / theirs.as_secs_f64().max(f64::MIN_POSITIVE);
        let local = &self.local_input;
        let local_ratio = local.peak_extra_bytes as f64 / local.bytes.max(1) as f64;
        let [peak8, peak32] = self.load_peak;
        let (warm, end, calls) = self.sustained;
        let drift = (end as f64 - warm as f64) / (warm.max(1) as f64);
        let siege_added = self.siege.besieged.saturating_sub(self.siege.calm);
        let scale = &self.scale_out;
        let cold_start_cost =
            self.store.cold_start.1.as_secs_f64() - self.store.cold_start.0.as_secs_f64();
        let worst_bomb = self
            .bomb_peaks
            .iter()
            .copied()
            .max_by_key(|(_, peak)| *peak)
            .unwrap_or_default();
        vec![
            Row {
                name: "1. cold start (spawn to tools/list answered)",
                figure: format!(
                    "{} vs {} minimal rmcp server: {cold_ratio:.2}x",
                    ms(ours),
                    ms(theirs)
                ),
                budget: "<= 2x the minimal server",
                met: cold_ratio <= 2.0,
            },
            Row {
                name: "2. idle RSS after tools/list",
                figure: format!(
                    "{} (minimal server {})",
                    mib(self.idle_rss.0),
                    mib(self.idle_rss.1)
                ),
                budget: "<= 10 MiB",
                met: self.idle_rss.0 as f64 <= 10.0 * MIB,
            },
            Row {
                name: "3. added latency, 1024x768 result",
                figure: format!(
                    "{} ({} tool call - {} plain client; {:.2}x)",
                    ms(self.edit.added()),
                    ms(self.edit.tool),
                    ms(self.edit.plain),
                    self.edit.ratio()
                ),
                budget: "<= 10 ms",
                met: self.edit.added() <= Duration::from_millis(10),
            },
            Row {
                name: "3a. added latency, create (1024x768 result)",
                figure: format!(
                    "{} ({} - {})",
                    ms(self.create.added()),
                    ms(self.create.tool),
                    ms(self.create.plain),
                ),
                budget: "<= the edit's (row 3) + 1 ms",
                met: self.create.added() <= self.edit.added() + Duration::from_millis(1),
            },
            Row {
                name: "3b. added latency, two-picture remix (1024x768 result)",
                figure: format!(
                    "{} ({} - {})",
                    ms(self.remix.added()),
                    ms(self.remix.tool),
                    ms(self.remix.plain),
                ),
                budget: "<= the edit's (row 3) + 1 ms",
                met: self.remix.added() <= self.edit.added() + Duration::from_millis(1),
            },
            Row {
                name: "4. added latency, 4096x4096 result",
                figure: format!(
                    "{} ({} - {}; {:.2}x)",
                    ms(self.large_edit.added()),
                    ms(self.large_edit.tool),
                    ms(self.large_edit.plain),
                    self.large_edit.ratio()
                ),
                budget: "<= 100 ms",
                met: self.large_edit.added() <= Duration::from_millis(100),
            },
            Row {
                name: "5. 20 MB local input to request body",
                figure: format!(
                    "{:.2} GB/s, peak extra {} = {local_ratio:.2}x the file",
                    local.bytes_per_second() / 1e9,
                    mib(local.peak_extra_bytes)
                ),
                budget: ">= 1 GB/s, <= 3x",
                met: local.bytes_per_second() >= 1e9 && local_ratio <= 3.0,
            },
            Row {
                name: "6. 64 simultaneous calls, API takes 1 s",
                figure: format!("all done in {}", ms(self.concurrency)),
                budget: "<= 1300 ms",
                met: self.concurrency <= Duration::from_millis(1300),
            },
            Row {
                name: "7. peak RSS, 4096x4096 results at once",
                figure: format!(
                    "32 calls {}, 8 calls {} ({:.2}x for 4x the calls)",
                    mib(peak32),
                    mib(peak8),
                    peak32 as f64 / peak8.max(1) as f64
                ),
                budget: "<= 256 MiB, growth <= 2x",
                met: peak32 as f64 <= 256.0 * MIB && peak32 <= 2 * peak8,
            },
            Row {
                name: "8. sustained sequential calls",
                figure: format!(
                    "{calls} calls, no error; RSS {} after 100, {} at the end ({:+.1}%)",
                    mib(warm),
                    mib(end),
                    drift * 100.0
                ),
                budget: "no error, drift <= 10%",
                met: drift <= 0.10,
            },
            Row {
                name: "9. added latency, 2000 hostile idle HTTP connections open",
                figure: format!(
                    "{} ({} with them, {} before; {} of {} still held)",
                    ms(siege_added),
                    ms(self.siege.besieged),
                    ms(self.siege.calm),
                    self.siege.held,
                    crate::hardening::HOSTILE_CONNECTIONS
                ),
                budget: "served, <= 25 ms",
                met: siege_added <= Duration::from_millis(25),
            },
            Row {
                name: "10. peak RSS, worst preview bomb",
                figure: format!(
                    "{} ({})",
                    mib(worst_bomb.1),
                    self.bomb_peaks
                        .iter()
                        .map(|(name, peak)| format!("{name}: {}", mib(*peak)))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                budget: "<= 576 MiB (512 MiB of pixels and the process)",
                met: worst_bomb.1 as f64 <= 576.0 * MIB,
            },
            Row {
                name: "11. a job record's writes on one call's path (fsync included)",
                figure: ms(self.store.record),
                budget: "<= 2 ms",
                met: self.store.record <= Duration::from_millis(2),
            },
            Row {
                name: "12. get_edit on a finished job, read from the store",
                figure: ms(self.store.get_edit),
                budget: "<= 2 ms",
                met: self.store.get_edit <= Duration::from_millis(2),
            },
            Row {
                name: "13. cold start with 1,000 finished jobs in the store",
                figure: format!(
                    "{} vs {} with none ({:+.1} ms)",
                    ms(self.store.cold_start.1),
                    ms(self.store.cold_start.0),
                    cold_start_cost * 1000.0
                ),
                budget: "nothing measurable (<= 1 ms more)",
                met: cold_start_cost <= 0.001,
            },
            Row {
                name: "14. 256 simultaneous calls, 1 s each at the API: through HAProxy to three replicas on Redis, vs one replica on SQLite",
                figure: format!(
                    "wall {} vs {}; p99 added {} vs {}",
                    ms(scale.balanced.wall),
                    ms(scale.single.wall),
                    ms(scale.balanced.p99_added),
                    ms(scale.single.p99_added)
                ),
                budget: "three replicas no slower than one, wall and p99",
                met: scale.balanced.wall <= scale.single.wall
                    && scale.balanced.p99_added <= scale.single.p99_added,
            },
            Row {
                name: "15. a job record's writes on one call's path, on Redis (loopback)",
                figure: format!(
                    "{} ({} on SQLite)",
                    ms(scale.redis_record),
                    ms(scale.sqlite_record)
                ),
                budget: "<= 3 ms",
                met: scale.redis_record <= Duration::from_millis(3),
            },
            Row {
                name: "16. peak extra memory of one preview, photo-like PNG results (fresh process)",
                figure: self
                    .preview_memory
                    .iter()
                    .map(|figure| {
                        let before = figure
                            .whole
                            .map(|whole| format!(", whole-picture path {}", mib(whole)))
                            .unwrap_or_default();
                        format!(
                            "{0}x{0} ({1:.0} MB): {2}{before}",
                            figure.side,
                            figure.file_bytes as f64 / 1e6,
                            mib(figure.streamed)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                budget: "<= 64 MiB each",
                met: !self.preview_memory.is_empty()
                    && self
                        .preview_memory
                        .iter()
                        .all(|figure| figure.streamed as f64 <= 64.0 * MIB),
            },
            Row {
                name: "17. preview pixels against the whole-picture path (channels, 0-255)",
                figure: self
                    .pixel_differences
                    .iter()
                    .map(|difference| {
                        format!(
                            "{}: mean {:.3}, largest {}",
                            difference.picture, difference.mean, difference.largest
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                budget: "mean <= 1",
                met: !self.pixel_differences.is_empty()
                    && self
                        .pixel_differences
                        .iter()
                        .all(|difference| difference.mean <= 1.0),
            },
        ]
    }

    /// The results table and the breakdown, in Markdown (which reads fine in a
    /// terminal too).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| measurement | median result | budget | met |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for row in self.rows() {
            let met = if row.met { "yes" } else { "**no**" };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {met} |",
                row.name, row.figure, row.budget
            );
        }
        let (small, large) = (&self.breakdown, &self.large_breakdown);
        let _ = writeln!(out);
        let _ = writeln!(out, "Where one call's time goes (medians):");
        let _ = writeln!(out);
        let _ = writeln!(out, "| step | 1024x768 result | 4096x4096 result |");
        let _ = writeln!(out, "| --- | --- | --- |");
        for ((step, small), large) in BREAKDOWN_STEPS.iter().zip(small.steps()).zip(large.steps()) {
            let _ = writeln!(out, "| {step} | {} | {} |", ms(small), ms(large));
        }
        let local = &self.local_input;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Local input: open, read, type check, base64 and JSON (the body built) {}; then sent over loopback to a sink in {}, not part of the budget (medians of {} fresh processes).",
            ms(local.build),
            ms(local.send),
            if self.quick { "a few" } else { "several" }
        );
        out
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut section = String::new();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let _ = writeln!(section, "{BEGIN}");
        let _ = writeln!(section);
        let _ = writeln!(
            section,
            "Run on {} (UTC) on {}, {cores} cores{}; the whole run took {:.0} s.",
            today(),
            cpu_model(),
            if self.quick {
                ", with `--quick` (fewer repetitions)"
            } else {
                ""
            },
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            section,
            "Results served by the fake: {:.2} MB (1024x768), {:.2} MB (4096x4096), {:.2} MB (480x360, for measurement 6); \
             medians of {} runs for 1 and 3, {} for 4.",
            self.result_bytes as f64 / 1e6,
            self.large_result_bytes as f64 / 1e6,
            self.small_result_bytes as f64 / 1e6,
            self.edit.runs,
            self.large_edit.runs,
        );
        let _ = writeln!(section);
        section.push_str(&self.table());
        let _ = writeln!(section);
        let _ = writeln!(section, "{END}");

        let current = std::fs::read_to_string(path).unwrap_or_default();
        let updated = match (current.find(BEGIN), current.find(END)) {
            (Some(begin), Some(end)) if begin < end => {
                let rest = &current[end + END.len()..];
                let rest = rest.strip_prefix('\n').unwrap_or(rest);
                format!("{}{section}{rest}", &current[..begin])
            }
            _ => format!("# Benchmarks\n\nRun `cargo xtask bench` to fill in.\n\n{section}"),
        };
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, name)| name.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "an unknown CPU".to_owned())
}

/// Today's date, `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let mut date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    date.truncate("YYYY-MM-DD".len());
    date
}
