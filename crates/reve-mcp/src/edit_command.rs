//! `reve-mcp edit`: the `edit_image` tool's work, driven from a terminal or
//! a script instead of by a model.
//!
//! Requests are built and results saved and described exactly as the tool
//! does it (see [`crate::tools::edit_image`]); what differs is who is
//! trusted. The paths here are typed by the person running the command, so
//! any file they can read may be sent: the allowed-folders guard exists for
//! paths a model makes up, and does not apply.

use std::io::{IsTerminal as _, Write as _};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reve_core::ImageSource;
use rmcp::model::JsonObject;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::settings::Settings;
use crate::tool_schema::{self, EditOutput, IMAGE_URL_ARG};
use crate::tools::edit_image::{EditImageError, build_request};

/// The conventional exit status of a program stopped by Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// How often a running job's spinner and elapsed time are redrawn.
const TICK: Duration = Duration::from_millis(120);

/// `reve-mcp edit --help`, beyond the one line `reve-mcp --help` lists.
pub const LONG_ABOUT: &str =
    "Edit images from a terminal or a script, with the same client and the \
same saving as the MCP tool.

Each IMAGE is edited as --prompt says, up to --jobs at a time, and saved under a fresh unique \
name in the output folder (or as -o says). Prints the saved path of each successful edit on \
stdout, in the order given (or one JSON object per IMAGE with --json); errors go to stderr. \
Exits with 0 only when every edit succeeded, 1 otherwise, and 130 after Ctrl-C, which cancels \
the requests in flight and leaves no partial files.

Local files are read wherever they are: --allowed-dir confines only the paths a model passes \
to the MCP tool, not the ones you type here. The API key comes from AIML_API_KEY.";

const EXAMPLES: &str = "Examples:
  reve-mcp edit photo.jpg -p \"make it night\"
  reve-mcp edit a.png b.png c.png -p \"in watercolour\" -o out/ --jobs 2
  reve-mcp edit https://example.com/cat.png -p \"add a hat\" -o hat.png --json";

/// The arguments of `reve-mcp edit`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct EditArgs {
    /// Images to edit: file paths (relative ones are taken from the working
    /// directory), file:// URIs, http(s) URLs or data: URIs. PNG, JPEG, WebP
    /// or GIF.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// What to change, in plain language (up to 2560 characters).
    #[arg(short, long)]
    pub prompt: String,

    /// Where to save. A folder (one that exists, or any path ending in /)
    /// gets each result under a unique name; with a single IMAGE, a file
    /// path names the result (its extension is corrected to the real type;
    /// an existing file is never overwritten). Default: the output folder
    /// (--output-dir).
    #[arg(short, long = "output", value_name = "PATH_OR_DIR")]
    pub output: Option<PathBuf>,

    /// How many edits run at once.
    #[arg(short, long, value_name = "N", default_value = "4", value_parser = parse_jobs)]
    pub jobs: NonZeroUsize,

    /// Print one JSON object per IMAGE on stdout, one per line: `input` and
    /// the MCP tool's structured result keys, or `input` and `error`.
    #[arg(long)]
    pub json: bool,
}

fn parse_jobs(text: &str) -> Result<NonZeroUsize, String> {
    let jobs: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    NonZeroUsize::new(jobs)
        .ok_or_else(|| "must be at least 1 (it is how many edits run at once)".to_owned())
}

/// Where results go, decided before any request so that a mistake in `-o`
/// costs no paid generation.
#[derive(Debug, Clone)]
enum Target {
    /// Unique generated names in this folder.
    Folder(PathBuf),
    /// This name in this folder, for a single input.
    File { folder: PathBuf, name: String },
}

impl Target {
    fn resolve(output: Option<&Path>, inputs: usize, settings: &Settings) -> anyhow::Result<Self> {
        let Some(output) = output else {
            let folder = settings.output_dir()?;
            return Ok(Target::Folder(absolute(&folder)?));
        };
        let absolute = absolute(output)?;
        let names_folder = output.to_string_lossy().ends_with(std::path::is_separator);
        if names_folder || absolute.is_dir() {
            return Ok(Target::Folder(absolute));
        }
        if inputs > 1 {
            bail!(
                "-o {} is not a folder, so it cannot hold {inputs} results: give an existing folder, or end the path with / to have it created",
                output.display()
            );
        }
        if absolute.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; existing files are never overwritten: choose another name, or a folder",
                absolute.display()
            );
        }
        let name = absolute
            .file_name()
            .and_then(|name| name.to_str())
            .filter(|name| !name.starts_with('.'))
            .with_context(|| {
                format!(
                    "-o {} does not end in a usable file name (one that does not start with a dot)",
                    output.display()
                )
            })?
            .to_owned();
        let folder = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        Ok(Target::File { folder, name })
    }

    fn parts(&self) -> (PathBuf, Option<String>) {
        match self {
            Target::Folder(folder) => (folder.clone(), None),
            Target::File { folder, name } => (folder.clone(), Some(name.clone())),
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Everything one edit needs, shared by all of them.
struct Job {
    client: reve_core::Client,
    fixed_fields: Vec<(String, Value)>,
    prompt: String,
    target: Target,
    max_input_bytes: u64,
    slots: Semaphore,
}

/// Runs the command; the exit code says whether every edit succeeded.
pub async fn run(
    args: EditArgs,
    settings: &Settings,
    client: reve_core::Client,
) -> anyhow::Result<ExitCode> {
    if !client.config().has_api_key() {
        bail!("{}", reve_core::Error::MissingApiKey);
    }
    let target = Target::resolve(args.output.as_deref(), args.images.len(), settings)?;
    let job = Arc::new(Job {
        client,
        fixed_fields: tool_schema::fixed_fields(
            &reve_core::edit_image_request_schema(),
            settings.response_mode.convert_base64_to_url(),
        ),
        prompt: args.prompt,
        target,
        max_input_bytes: settings.max_input_bytes,
        slots: Semaphore::new(args.jobs.get()),
    });

    // Installed before any work starts: from here on Ctrl-C cancels cleanly
    // instead of killing the process in the middle of writing a result.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    if let Poll::Ready(signal) = futures::poll!(&mut ctrl_c) {
        signal.context("listening for Ctrl-C")?;
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }

    let bars = MultiProgress::with_draw_target(if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut tasks = JoinSet::new();
    for (index, input) in args.images.iter().enumerate() {
        let bar = bars.add(new_bar(input));
        let job = Arc::clone(&job);
        let input = input.clone();
        tasks.spawn(async move {
            let outcome = edit_one(&job, &input, &bar).await;
            bar.disable_steady_tick();
            match &outcome {
                Ok(output) => bar.finish_with_message(format!("saved {}", output.path)),
                Err(error) => bar.finish_with_message(format!("failed: {}", describe(error))),
            }
            (index, outcome)
        });
    }

    let mut report = Report::new(args.images, args.json, bars);
    loop {
        tokio::select! {
            biased;
            signal = &mut ctrl_c => {
                signal.context("listening for Ctrl-C")?;
                // Dropping the tasks drops their requests and closes the
                // connections; a result being saved is written to a
                // temporary file and renamed, so none is left half-written.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                report.cancel_rest()?;
                eprintln!("cancelled by Ctrl-C; edits still in flight were abandoned");
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            joined = tasks.join_next() => match joined {
                Some(joined) => {
                    let (index, outcome) = joined.context("an edit task panicked")?;
                    report.record(index, outcome)?;
                }
                None => break,
            },
        }
    }
    report.finish()
}

fn new_bar(input: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}")
        .expect("the template is valid");
    ProgressBar::new_spinner()
        .with_style(style)
        .with_prefix(shown(input))
        .with_message("queued")
}

async fn edit_one(job: &Job, input: &str, bar: &ProgressBar) -> anyhow::Result<EditOutput> {
    let _slot = job.slots.acquire().await.expect("never closed");
    bar.reset_elapsed();
    // Each ticking bar has a thread of its own; a hidden one needs none.
    if !bar.is_hidden() {
        bar.enable_steady_tick(TICK);
    }
    bar.set_message("reading the image");

    let source = image_source(input)?;
    let max_bytes = job.max_input_bytes;
    let image_url = tokio::task::spawn_blocking(move || source.into_image_url(max_bytes))
        .await
        .expect("reading the input image does not panic")?;
    let mut arguments = JsonObject::new();
    arguments.insert(IMAGE_URL_ARG.into(), image_url.into());
    arguments.insert("prompt".into(), job.prompt.clone().into());
    let request = build_request(&job.fixed_fields, arguments)?;
    let body = reve_core::RequestBody::new(&request, max_bytes)?;
    drop(request);

    bar.set_message(format!("waiting for {}", reve_core::MODEL));
    let (folder, name) = job.target.parts();
    let staged = job.client.edit_into_dir(&body, &folder).await?;
    drop(body);

    bar.set_message("saving");
    let dimensions = staged.dimensions();
    let url = staged.url.clone();
    let output = EditOutput::unsaved(&staged, dimensions.as_ref().copied().unwrap_or_default());
    let saved = tokio::task::spawn_blocking(move || staged.persist(name.as_deref()))
        .await
        .expect("saving does not panic")
        .map_err(|source| EditImageError::Save { source, url })?;
    let dimensions =
        dimensions.with_context(|| format!("the result was saved to {}, but", saved.display()))?;
    Ok(EditOutput {
        path: saved.display().to_string(),
        width: dimensions.0,
        height: dimensions.1,
        ..output
    })
}

/// What the user typed, as reve-core reads it; bare paths, relative ones
/// included, are files, since a person at a shell means them that way.
fn image_source(input: &str) -> anyhow::Result<ImageSource> {
    let scheme = input
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https" | "data" | "file") => Ok(ImageSource::parse(input)?),
        _ => Ok(ImageSource::File(absolute(Path::new(input))?)),
    }
}

/// An input as shown in progress and error lines: a `data:` URI is long
/// and says nothing to a reader, so only its start is kept.
fn shown(input: &str) -> String {
    match input.get(..5) {
        Some(scheme) if scheme.eq_ignore_ascii_case("data:") => {
            let header = input.split_once(',').map_or(input, |(header, _)| header);
            format!("{header},… ({} characters)", input.len())
        }
        _ => input.to_owned(),
    }
}

/// An error and its causes on one line. reve-core's errors already quote
/// their cause, so a cause whose text is already there is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}

/// Prints outcomes on stdout in the order the inputs were given, each as
/// soon as it and every earlier one are known, and lists failures at the end.
struct Report {
    inputs: Vec<String>,
    json: bool,
    bars: MultiProgress,
    outcomes: Vec<Option<anyhow::Result<EditOutput>>>,
    printed: usize,
    failures: Vec<(usize, String)>,
}

impl Report {
    fn new(inputs: Vec<String>, json: bool, bars: MultiProgress) -> Self {
        let outcomes = inputs.iter().map(|_| None).collect();
        Self {
            inputs,
            json,
            bars,
            outcomes,
            printed: 0,
            failures: Vec::new(),
        }
    }

    fn record(&mut self, index: usize, outcome: anyhow::Result<EditOutput>) -> anyhow::Result<()> {
        if let Err(error) = &outcome {
            self.failures.push((index, describe(error)));
        }
        self.outcomes[index] = Some(outcome);
        while let Some(Some(outcome)) = self.outcomes.get(self.printed) {
            let line = self.line(self.printed, outcome);
            self.print(line)?;
            self.printed += 1;
        }
        Ok(())
    }

    /// After Ctrl-C: what finished is still reported, gaps or not, and with
    /// --json every unfinished input gets its line too, so a script sees one
    /// line per input whatever happened.
    fn cancel_rest(&mut self) -> anyhow::Result<()> {
        for index in self.printed..self.outcomes.len() {
            let outcome = self.outcomes[index]
                .take()
                .unwrap_or_else(|| Err(anyhow::anyhow!("cancelled by Ctrl-C before it finished")));
            self.print(self.line(index, &outcome))?;
        }
        self.printed = self.outcomes.len();
        Ok(())
    }

    fn line(&self, index: usize, outcome: &anyhow::Result<EditOutput>) -> Option<String> {
        let input = &self.inputs[index];
        match (outcome, self.json) {
            (Ok(output), false) => Some(output.path.clone()),
            (Err(_), false) => None,
            (Ok(output), true) => {
                let mut object = serde_json::Map::new();
                object.insert("input".into(), input.as_str().into());
                match serde_json::to_value(output) {
                    Ok(Value::Object(fields)) => object.extend(fields),
                    _ => unreachable!("EditOutput serialises to a JSON object"),
                }
                Some(Value::Object(object).to_string())
            }
            (Err(error), true) => {
                Some(json!({ "input": input, "error": { "message": describe(error) } }).to_string())
            }
        }
    }

    fn print(&self, line: Option<String>) -> anyhow::Result<()> {
        let Some(line) = line else { return Ok(()) };
        self.bars
            .suspend(|| writeln!(std::io::stdout().lock(), "{line}"))
            .context("writing to stdout")
    }

    fn finish(mut self) -> anyhow::Result<ExitCode> {
        if self.failures.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        self.failures.sort_by_key(|(index, _)| *index);
        let mut stderr = std::io::stderr().lock();
        writeln!(
            stderr,
            "{} of {} edits failed:",
            self.failures.len(),
            self.inputs.len()
        )?;
        for (index, message) in &self.failures {
            writeln!(stderr, "  {}: {message}", shown(&self.inputs[*index]))?;
        }
        Ok(ExitCode::FAILURE)
    }
}
