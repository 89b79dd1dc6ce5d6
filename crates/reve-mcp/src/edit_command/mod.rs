//! `reve-mcp edit`: the edit pipeline driven from a terminal or a script
//! instead of by a model.
//!
//! Each image runs as a job through [`Editor::run`] exactly as a tool call does;
//! what differs is who is trusted. The paths here are typed by the person
//! running the command, so any file they can read may be sent: the
//! allowed-folders guard exists for paths a model makes up, and does not
//! apply. Previews of the inputs and the result are made and kept as a tool
//! call's are (beside the API's work and the download, so they add no time), so
//! that `reve-mcp view` and `--view` show any of these jobs to the person.

use std::io::{IsTerminal as _, Write as _};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::edit::{Editor, EditorOptions, LocalFiles};
use crate::generated::ToolArguments;
use crate::generated::edit_image::EditImageArguments;
use crate::jobs::{JobOptions, JobStore, Jobs, LOCAL_PRINCIPAL, Outcome, Waited};
use crate::report::EditOutput;

mod screen;

pub use screen::Color;
use screen::{Line, Screen};

/// The conventional exit status of a program stopped by Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// How long Ctrl-C waits for the stopped edits to be recorded as cancelled.
const CTRL_C_GRACE: Duration = Duration::from_secs(5);

/// `reve-mcp edit --help`, beyond the one line `reve-mcp --help` lists.
pub const LONG_ABOUT: &str =
    "Edit images from a terminal or a script, with the same client and the \
same saving as the MCP tool.

Each IMAGE is edited as --prompt says, up to --jobs at a time, and saved under a fresh unique \
name in the output folder (or as -o says). Prints the saved path of each successful edit on \
stdout, in the order given (or one JSON object per IMAGE with --json); errors go to stderr. \
Exits with 0 only when every edit succeeded, 1 otherwise, and 130 after Ctrl-C. Ctrl-C respects \
money: the first stops what was not sent yet and waits for the edits already sent (they may be \
charged) to be saved; a second abandons those too. Neither leaves a partial file.

Local files are read wherever they are: the server's allowed folders confine only the paths a \
model passes to the MCP tool, not the ones you type here. The API key comes from AIML_API_KEY.";

pub const EXAMPLES: &str = "Examples:
  reve-mcp edit photo.jpg -p \"make it night\"
  reve-mcp edit a.png b.png c.png -p \"in watercolour\" -o out/ --jobs 2
  reve-mcp edit https://example.com/cat.png -p \"add a hat\" -o hat.png --json";

/// What `reve-mcp edit`, `create`, `remix` or another model's verb was asked to do: one or
/// more calls of a model's tool.
#[derive(Debug)]
pub struct EditCommand {
    pub calls: Vec<Call>,
    pub output: Option<PathBuf>,
    pub jobs: NonZeroUsize,
    pub json: bool,
    pub color: Color,
    /// Once done, each result is shown in the viewer, its page written into this state folder
    /// (`--view`).
    pub view_in: Option<PathBuf>,
}

/// One call: what the person is shown of it (the input, or the prompt of a create), and the
/// tool's arguments, where the result goes left to `-o`.
#[derive(Debug)]
pub struct Call {
    pub label: String,
    pub arguments: ToolArguments,
}

impl EditCommand {
    /// `reve-mcp edit`: one edit of each image, as `prompt` says.
    pub fn edits(
        images: Vec<String>,
        prompt: &str,
        output: Option<PathBuf>,
        jobs: NonZeroUsize,
        json: bool,
        color: Color,
    ) -> EditCommand {
        let calls = images
            .into_iter()
            .map(|image| Call {
                arguments: ToolArguments::EditImage(EditImageArguments::new(image.clone(), prompt)),
                label: image,
            })
            .collect();
        EditCommand {
            calls,
            output,
            jobs,
            json,
            color,
            view_in: None,
        }
    }

    /// A model's verb (`reve-mcp create`, `remix`...): one call.
    pub fn verb(verb: crate::verbs::ModelVerb) -> anyhow::Result<EditCommand> {
        Ok(EditCommand {
            calls: vec![Call {
                arguments: verb.arguments()?,
                label: verb.label(),
            }],
            output: verb.output,
            jobs: NonZeroUsize::MIN,
            json: verb.json,
            color: verb.color,
            view_in: None,
        })
    }
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
    fn resolve(output: Option<&Path>, inputs: usize, default: &Path) -> anyhow::Result<Self> {
        let Some(output) = output else {
            return Ok(Target::Folder(absolute(default)?));
        };
        let absolute = absolute(output)?;
        let names_folder = output.to_string_lossy().ends_with(std::path::is_separator);
        if names_folder || absolute.is_dir() {
            return Ok(Target::Folder(absolute));
        }
        if inputs > 1 {
            bail!(
                "-o {:?} is not a folder, so it cannot hold {inputs} results: give an existing folder, or end the path with / to have it created",
                output
            );
        }
        if absolute.symlink_metadata().is_ok() {
            bail!(
                "{:?} already exists; existing files are never overwritten: choose another name, or a folder",
                absolute
            );
        }
        let name = absolute
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("-o {output:?} does not end in a file name"))?
            .to_owned();
        reve_core::check_file_name(&name).with_context(|| format!("-o {output:?}"))?;
        let folder = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        Ok(Target::File { folder, name })
    }

    fn folder(&self) -> &Path {
        match self {
            Target::Folder(folder) | Target::File { folder, .. } => folder,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Target::Folder(_) => None,
            Target::File { name, .. } => Some(name),
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {path:?}"))
}

/// Everything one edit needs, shared by all of them.
struct Job {
    jobs: Jobs,
    target: Target,
    local_files: LocalFiles,
    /// Room for `--jobs` edits at once, handed out in the order the pictures were given.
    slots: Arc<Semaphore>,
    /// Fired by the first Ctrl-C: what is not sent yet is not sent.
    stopping: CancellationToken,
}

/// What an edit that was not sent says after the first Ctrl-C.
const NOT_SENT: &str = "cancelled by Ctrl-C before it was sent; nothing was charged";

/// Runs the command; the exit code says whether every edit succeeded.
/// `options.output_dir` is where results go unless `-o` says otherwise.
pub async fn run(
    command: EditCommand,
    client: reve_core::Client,
    options: EditorOptions,
    store: Arc<dyn JobStore>,
    job_options: JobOptions,
) -> anyhow::Result<ExitCode> {
    if !client.config().has_api_key() {
        bail!("{}", reve_core::Error::MissingApiKey);
    }
    let target = Target::resolve(
        command.output.as_deref(),
        command.calls.len(),
        &options.output_dir,
    )?;
    let base = std::env::current_dir().context("reading the working directory")?;
    let viewing = command
        .view_in
        .clone()
        .map(|state_dir| (state_dir, Arc::clone(&store)));
    let job = Arc::new(Job {
        jobs: Jobs::new(
            Editor::new(
                client,
                EditorOptions {
                    output_dir: target.folder().to_owned(),
                    ..options
                },
            ),
            store,
            job_options,
        ),
        target,
        local_files: LocalFiles::Anywhere { base },
        slots: Arc::new(Semaphore::new(command.jobs.get())),
        stopping: CancellationToken::new(),
    });
    // A limit in dollars counts each edit at its model's live price before it is sent.
    if job.jobs.options().max_usd_per_day.is_some() {
        job.jobs.refresh_prices().await;
    }

    // Installed before any work starts: from here on Ctrl-C stops cleanly
    // instead of killing the process in the middle of writing a result.
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    if let Poll::Ready(signal) = futures::poll!(&mut ctrl_c) {
        signal.context("listening for Ctrl-C")?;
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }

    command.color.apply();
    let screen = Screen::new(std::io::stderr().is_terminal());
    let mut tasks = JoinSet::new();
    let labels: Vec<String> = command
        .calls
        .iter()
        .map(|call| call.label.clone())
        .collect();
    // A single picture's failure is the closing `error:` line alone.
    let finish_failures = labels.len() > 1;
    // The edits take their turns in the order given, whichever task the runtime starts first:
    // with --jobs 1, the first picture is the first sent. After the first Ctrl-C no more turns
    // are given, and a picture without one is not sent.
    let mut turns = Vec::with_capacity(labels.len());
    let mut waiting = Vec::with_capacity(labels.len());
    for _ in 0..labels.len() {
        let (give, take) = tokio::sync::oneshot::channel();
        turns.push(give);
        waiting.push(take);
    }
    tokio::spawn({
        let (slots, stopping) = (Arc::clone(&job.slots), job.stopping.clone());
        async move {
            for turn in turns {
                let slot = tokio::select! {
                    biased;
                    () = stopping.cancelled() => return,
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                };
                // A task already gone gives its slot straight back.
                let _ = turn.send(slot);
            }
        }
    });
    for ((index, call), turn) in command.calls.into_iter().enumerate().zip(waiting) {
        let line = screen.add(&call.label);
        let (job, screen) = (Arc::clone(&job), screen.clone());
        tasks.spawn(async move {
            let outcome = edit_one(&job, call.arguments, turn, &line, &screen).await;
            match &outcome {
                Ok(output) => line.finish(&screen, &call.label, Ok(&output.path)),
                Err(message) if finish_failures => {
                    line.finish(&screen, &call.label, Err(message));
                }
                Err(_) => line.finish_quietly(),
            }
            (index, outcome)
        });
    }

    let mut report = Report::new(labels, command.json, screen.clone());
    let mut stopped = false;
    loop {
        tokio::select! {
            biased;
            signal = &mut ctrl_c => {
                signal.context("listening for Ctrl-C")?;
                ctrl_c = Box::pin(tokio::signal::ctrl_c());
                if !stopped {
                    // The first Ctrl-C: nothing more is sent, and what was sent (paid for, most
                    // likely) is waited for and saved.
                    stopped = true;
                    job.stopping.cancel();
                    let sent = job.jobs.stop_unsent();
                    let said = first_ctrl_c(sent);
                    screen.suspend(|| eprintln!("{said}"));
                    continue;
                }
                // The second: what was sent is abandoned too. Stopping the jobs drops their
                // requests and closes the connections, and records each as cancelled; a result
                // being saved is written to a temporary file and renamed, so none is left
                // half-written.
                let sent = job.jobs.stop_all();
                job.jobs.drain(CTRL_C_GRACE).await;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                report.cancel_rest()?;
                screen.suspend(|| eprintln!("{}", second_ctrl_c(sent)));
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
    let shown = report.succeeded();
    let code = report.finish()?;
    if let Some((state_dir, store)) = viewing {
        for job_id in shown {
            crate::view_command::view(
                Arc::clone(&store),
                &state_dir,
                crate::view_command::Which::Id(job_id),
                true,
            )
            .await?;
        }
    }
    Ok(if stopped {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        code
    })
}

/// What the first Ctrl-C says, `sent` edits having been sent.
fn first_ctrl_c(sent: usize) -> String {
    match sent {
        0 => "Ctrl-C: stopping; nothing had been sent, so nothing was charged".to_owned(),
        1 => "Ctrl-C: stopped the edits not yet sent; 1 edit was already sent (it may be \
              charged) and is saved when it finishes. Ctrl-C again abandons it."
            .to_owned(),
        sent => format!(
            "Ctrl-C: stopped the edits not yet sent; {sent} edits were already sent (they may \
             be charged) and are saved when they finish. Ctrl-C again abandons them."
        ),
    }
}

/// What the second Ctrl-C says, `sent` edits having been sent and now abandoned.
fn second_ctrl_c(sent: usize) -> String {
    match sent {
        0 => "Ctrl-C again: stopped".to_owned(),
        1 => "Ctrl-C again: abandoned 1 edit that was already sent; it may have been charged, \
              and its result is not saved (`reve-mcp jobs` lists it)"
            .to_owned(),
        sent => format!(
            "Ctrl-C again: abandoned {sent} edits that were already sent; they may have been \
             charged, and their results are not saved (`reve-mcp jobs` lists them)"
        ),
    }
}

/// One image through the pipeline; a failure is reported by its message,
/// causes included.
async fn edit_one(
    job: &Job,
    mut arguments: ToolArguments,
    turn: tokio::sync::oneshot::Receiver<tokio::sync::OwnedSemaphorePermit>,
    line: &Line,
    screen: &Screen,
) -> Result<EditOutput, String> {
    // After the first Ctrl-C, a picture still waiting for its turn never gets one.
    let _slot = tokio::select! {
        biased;
        () = job.stopping.cancelled() => return Err(NOT_SENT.to_owned()),
        slot = turn => slot.map_err(|_| NOT_SENT.to_owned())?,
    };
    line.start();
    *arguments.output_path() = job.target.name().map(str::to_owned);
    let waited = async {
        let id = job
            .jobs
            .submit(arguments, job.local_files.clone(), LOCAL_PRINCIPAL)
            .await?;
        // The first Ctrl-C stops the job unless it was sent; one that was is waited for again, to
        // its end (the second Ctrl-C stops the jobs themselves, see `run`).
        match job
            .jobs
            .wait(&id, LOCAL_PRINCIPAL, line, Some(&job.stopping))
            .await
        {
            Err(error) if error.is_cancelled() => {
                job.jobs.wait(&id, LOCAL_PRINCIPAL, line, None).await
            }
            waited => waited,
        }
    };
    match waited.await {
        Ok(Waited::Finished {
            job_id,
            outcome: Outcome::Succeeded(succeeded),
        }) => {
            if let Some(asked) = succeeded.generation.name_taken() {
                let saved = succeeded
                    .generation
                    .result
                    .as_ref()
                    .and_then(|result| result.path.as_deref())
                    .unwrap_or_default();
                screen.suspend(|| {
                    eprintln!(
                        "note: {asked} was taken by another file by the time the paid result was saved; it was saved as {saved}"
                    );
                });
            }
            Ok(EditOutput::new(&job_id, &succeeded))
        }
        Ok(Waited::Finished {
            outcome: Outcome::Ended { message, .. },
            ..
        }) => Err(message),
        Ok(Waited::Running { .. }) => unreachable!("the command line waits without a limit"),
        Err(error) => Err(reve_core::workspace::error_chain(&error)),
    }
}

/// Prints outcomes on stdout in the order the inputs were given, each as
/// soon as it and every earlier one are known, and lists failures at the end.
struct Report {
    inputs: Vec<String>,
    json: bool,
    screen: Screen,
    outcomes: Vec<Option<Result<EditOutput, String>>>,
    printed: usize,
    failures: Vec<(usize, String)>,
}

impl Report {
    fn new(inputs: Vec<String>, json: bool, screen: Screen) -> Self {
        let outcomes = inputs.iter().map(|_| None).collect();
        Self {
            inputs,
            json,
            screen,
            outcomes,
            printed: 0,
            failures: Vec::new(),
        }
    }

    /// The jobs that succeeded, in the order of their inputs.
    fn succeeded(&self) -> Vec<String> {
        (self.outcomes.iter().flatten().flatten())
            .map(|output| output.job_id.clone())
            .collect()
    }

    fn record(&mut self, index: usize, outcome: Result<EditOutput, String>) -> anyhow::Result<()> {
        if let Err(message) = &outcome {
            self.failures.push((index, message.clone()));
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
                .unwrap_or_else(|| Err("cancelled by Ctrl-C before it finished".to_owned()));
            self.print(self.line(index, &outcome))?;
        }
        self.printed = self.outcomes.len();
        Ok(())
    }

    fn line(&self, index: usize, outcome: &Result<EditOutput, String>) -> Option<String> {
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
            (Err(message), true) => {
                Some(json!({ "input": input, "error": { "message": message } }).to_string())
            }
        }
    }

    fn print(&self, line: Option<String>) -> anyhow::Result<()> {
        let Some(line) = line else { return Ok(()) };
        self.screen
            .suspend(|| writeln!(std::io::stdout().lock(), "{line}"))
            .context("writing to stdout")
    }

    fn finish(mut self) -> anyhow::Result<ExitCode> {
        if self.failures.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        self.failures.sort_by_key(|(index, _)| *index);
        let mut stderr = std::io::stderr().lock();
        // One picture asked for: its error alone, in clap's style, as any other error.
        if let [(index, message)] = self.failures.as_slice()
            && self.inputs.len() == 1
        {
            writeln!(
                stderr,
                "error: {}: {message}",
                reve_core::workspace::shorten(&self.inputs[*index])
            )?;
            return Ok(ExitCode::FAILURE);
        }
        let (failed, of) = (self.failures.len(), self.inputs.len());
        // On a terminal each failure has had its finish line.
        if self.screen.shown() {
            writeln!(stderr, "error: {failed} of {of} edits failed (✗ above)")?;
            return Ok(ExitCode::FAILURE);
        }
        writeln!(stderr, "error: {failed} of {of} edits failed:")?;
        for (index, message) in &self.failures {
            writeln!(
                stderr,
                "  {}: {message}",
                reve_core::workspace::shorten(&self.inputs[*index])
            )?;
        }
        Ok(ExitCode::FAILURE)
    }
}
