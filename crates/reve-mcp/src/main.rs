//! `reve-mcp`: serves the `edit_image` MCP tool over stdio or Streamable
//! HTTP, or runs `reve-mcp edit` from a terminal. The composition root: the
//! command line is read once, and the pipeline, the tool and the transport
//! are built from it here.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reve_mcp::{
    Cli, Command, EditImageTool, EditSettings, Editor, JobStore, Jobs, LocalFilesRule,
    ResponseMode, ReveServer, ServeArgs, StoreSettings,
};
use rmcp::ServiceExt as _;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, or `default` when it is unset or invalid. rmcp logs every
/// request whole at debug and trace, so raising the level would put each
/// picture a client sends (as base64) and each prompt into the client's log
/// file; rmcp stays at info unless `RUST_LOG` names it.
fn log_filter(default: &str) -> EnvFilter {
    let names_rmcp = std::env::var("RUST_LOG").is_ok_and(|spec| spec.contains("rmcp"));
    match EnvFilter::try_from_default_env() {
        Ok(filter) if names_rmcp => filter,
        Ok(filter) => filter.add_directive("rmcp=info".parse().expect("a valid directive")),
        Err(_) => EnvFilter::new(default),
    }
}

/// Runs the command and reports a failure in clap's style, `error: ` and the causes on one
/// line: an ordinary error (a missing key, a refused folder) is a message for a person, never a
/// stack trace, even where `RUST_BACKTRACE` is set, as many Rust users have it.
fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<ExitCode> {
    let cli = command_line();
    // The command line reports through its own output and progress bars;
    // routine log lines would only get in their way.
    let default_filter = match cli.command {
        Some(
            Command::Edit(_)
            | Command::Model(_)
            | Command::Jobs(_)
            | Command::Usage
            | Command::View(_)
            | Command::Skill(_),
        ) => "warn",
        // rmcp logs the whole initialize request at info: noise in a client's log.
        _ => "info,rmcp=warn",
    };
    // stdout carries the protocol; every log line goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(log_filter(default_filter))
        .init();

    let store = cli.store;
    let command = cli.command.unwrap_or_else(|| {
        if std::io::stdin().is_terminal() {
            greet_a_person(&cli.serve.edit);
        }
        Command::Serve(ServeArgs {
            folders: Vec::new(),
            flags: cli.serve,
        })
    });
    match command {
        Command::Serve(args) => serve(&args, &store).await.map(|()| ExitCode::SUCCESS),
        Command::Edit(args) => {
            let settings = args.settings.clone();
            let view = args.view;
            let mut command = reve_mcp::EditCommand::from(args);
            if view {
                command.view_in = Some(store.state_dir()?);
            }
            // Previews as a tool call's, for `reve-mcp view` (see `edit_command`).
            let previews = Some(reve_mcp::PreviewLimits::default());
            let editor = settings.editor_options(true, previews, command.jobs.get())?;
            reve_mcp::run_edit_command(
                command,
                client(&settings)?,
                editor,
                store.job_store()?,
                settings.job_options(None),
            )
            .await
        }
        Command::Model(verb) => {
            let settings = verb.settings.clone();
            let command = reve_mcp::EditCommand::verb(verb)?;
            // Previews as a tool call's, for `reve-mcp view` (see `edit_command`).
            let previews = Some(reve_mcp::PreviewLimits::default());
            let editor = settings.editor_options(true, previews, command.jobs.get())?;
            reve_mcp::run_edit_command(
                command,
                client(&settings)?,
                editor,
                store.job_store()?,
                settings.job_options(None),
            )
            .await
        }
        Command::Jobs(args) => {
            let (state_dir, store) = (store.state_dir()?, store.job_store()?);
            reve_mcp::look_after_jobs_once(Arc::clone(&store), &state_dir).await;
            reve_mcp::list_jobs(
                store.as_ref(),
                reve_mcp::JobListing {
                    limit: args.limit,
                    all: args.all,
                    json: args.json,
                    tree: args.tree,
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS)
        }
        Command::Usage => {
            let (state_dir, store) = (store.state_dir()?, store.job_store()?);
            let (prices, ()) = tokio::join!(
                reve_mcp::live_prices(),
                reve_mcp::look_after_jobs_once(Arc::clone(&store), &state_dir)
            );
            reve_mcp::print_usage(store.as_ref(), &prices)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Skill(reve_mcp::SkillCommand::Show) => {
            reve_mcp::show_skill();
            Ok(ExitCode::SUCCESS)
        }
        Command::Skill(reve_mcp::SkillCommand::Install(args)) => {
            reve_mcp::install_skill(args.dir.as_deref(), args.force).map(|_| ExitCode::SUCCESS)
        }
        Command::View(args) => {
            let which = match args.job {
                Some(id) => reve_mcp::ViewWhich::Id(id),
                None => reve_mcp::ViewWhich::Last,
            };
            reve_mcp::view(
                store.job_store()?,
                &store.state_dir()?,
                which,
                !args.no_open,
            )
            .await
            .map(|_| ExitCode::SUCCESS)
        }
    }
}

async fn serve(args: &ServeArgs, store: &StoreSettings) -> anyhow::Result<()> {
    let (flags, settings) = (&args.flags, &args.flags.edit);
    if flags.no_save && settings.response_mode == ResponseMode::Base64 {
        tracing::warn!(
            "with --no-save and --response-mode base64 the full-resolution result is kept \
             nowhere: clients get only the preview"
        );
    }
    let descriptors = reve_mcp::raise_limit();
    let mut options = settings.editor_options(
        !flags.no_save,
        Some(flags.preview_limits()),
        flags.max_edits_in_flight,
    )?;
    // Edits come first: they are paid for. Connections get what is left, but at least a few.
    let few_connections = if flags.http.is_some() { 16 } else { 0 };
    options.max_edits_in_flight =
        reve_mcp::edits_within(descriptors, options.max_edits_in_flight, few_connections);
    let max_connections = reve_mcp::connections_within(
        descriptors,
        flags.max_connections,
        options.max_edits_in_flight,
    );
    tracing::info!(
        open_file_limit = descriptors,
        max_edits_in_flight = options.max_edits_in_flight,
        "limits"
    );
    let editor = Editor::new(client(settings)?, options);
    sweep_stale_partials(editor.stage_dir(), settings.timeout_secs);
    let store = store.job_store()?;
    tracing::info!(store = %store.describe(), "job store");
    if flags.http.is_some() {
        refuse_a_store_that_refuses_us(store.as_ref()).await?;
    }
    let jobs = Jobs::new(editor, store, settings.job_options(Some(flags)));
    // Off the start-up path, and a moment after it so that it does not compete with the
    // client's handshake for the cores: the store is opened only if it exists.
    let looking_after = tokio::spawn({
        let jobs = jobs.clone();
        async move {
            tokio::time::sleep(RECOVERY_DELAY).await;
            jobs.look_after_jobs().await;
        }
    });
    // The live prices, for the tools' descriptions and --max-usd-per-day: read off the
    // start-up path too (a client that listed the tools before is told when they quote them;
    // an edit before then counts at the cost edits last reported), then kept fresh.
    let pricing = tokio::spawn(jobs.keep_prices_fresh(RECOVERY_DELAY));
    let configured: Vec<PathBuf> = (flags.allowed_dirs.iter())
        .chain(&args.folders)
        .cloned()
        .collect();
    let local_files_rule = match flags.http {
        None => LocalFilesRule::ThisUsers { configured },
        Some(_) => LocalFilesRule::ConfiguredOnly { configured },
    };
    let tool = EditImageTool::new(jobs.clone(), local_files_rule)
        .allowing_hard_links(flags.allow_hard_links);
    let server = ReveServer::new(tool, flags.structured_content);
    let (served, grace) = match flags.http {
        // A stdio client that goes away takes nothing with it: edits already paid for finish
        // and are saved before the process exits, for the next session's get_edit.
        None => (
            serve_stdio(server).await,
            Duration::from_secs(settings.timeout_secs),
        ),
        Some(addr) => {
            let options = flags.http_options(addr, max_connections);
            (
                reve_mcp::serve_http(server, options)
                    .await
                    .map_err(anyhow::Error::from),
                Duration::from_secs(flags.shutdown_grace_secs),
            )
        }
    };
    jobs.drain(grace).await;
    looking_after.abort();
    pricing.abort();
    served
}

/// Stops an HTTP replica's start when its store turns it away (a wrong password, say): an
/// operator learns it from the unit's failure rather than from a health check. A store that
/// is only away lets the replica start; `/healthz` reports it until it returns.
async fn refuse_a_store_that_refuses_us(store: &dyn JobStore) -> anyhow::Result<()> {
    match store.health().await {
        Err(error) if !error.is_transient() => Err(error.into()),
        Err(error) => {
            tracing::warn!(%error, "the job store does not answer yet; serving meanwhile");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// The command line. A bare `reve-mcp` serves stdio, so the top level takes serve's flags too (a
/// desktop configuration's `"args": ["--max-wait-secs", "30"]` names no subcommand); given before a
/// subcommand, such a flag would be silently ignored, so it is refused there, saying where it goes.
/// The job store's flags are global: every command takes them, before or after its name.
fn command_line() -> Cli {
    use clap::error::ErrorKind;
    use clap::parser::ValueSource;
    use clap::{CommandFactory as _, FromArgMatches as _};

    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    if let Some((name, _)) = matches.subcommand() {
        let misplaced = command.get_arguments().find(|arg| {
            !arg.is_global_set()
                && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        });
        if let Some(arg) = misplaced {
            let flag = format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str()));
            let takes_it = command.find_subcommand(name).is_some_and(|subcommand| {
                subcommand
                    .get_arguments()
                    .any(|own| own.get_id() == arg.get_id())
            });
            let message = if takes_it {
                format!("{flag} goes after the subcommand: reve-mcp {name} {flag} ...")
            } else {
                format!("`reve-mcp {name}` does not take {flag} (it is a flag of `reve-mcp serve`)")
            };
            command.error(ErrorKind::ArgumentConflict, message).exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit())
}

/// What a person who typed `reve-mcp` at a terminal learns, on stderr: the server still waits
/// for an MCP client on stdin (someone may be typing JSON-RPC by hand), but most who see this
/// wanted a client's configuration or the command line.
fn greet_a_person(settings: &EditSettings) {
    eprintln!(
        "reve-mcp is an MCP server: AI assistants start it and talk to it on stdin and stdout. \
         To add it to one, see https://github.com/reve-mcp/reve#set-up-a-client; to edit \
         pictures from this terminal, run `reve-mcp edit --help`. Waiting for an MCP client \
         on stdin (Ctrl-C to quit)."
    );
    match settings.client_config() {
        Ok(config) if config.has_api_key() => {}
        Ok(_) => eprintln!(
            "warning: AIML_API_KEY is not set, so every call will be refused; get a key at \
             https://aimlapi.com/app/keys"
        ),
        Err(error) => eprintln!("warning: every call will be refused: {error:#}"),
    }
}

/// How long after start-up the jobs a dead process left are looked for.
const RECOVERY_DELAY: Duration = Duration::from_millis(500);

async fn serve_stdio(server: ReveServer) -> anyhow::Result<()> {
    tracing::info!("serving MCP on stdio");
    let (stdin, stdout) = rmcp::transport::io::stdio_pipes();
    let stdio = reve_mcp::guard_stdio(stdin, stdout);
    let running = server
        .serve(stdio.transport)
        .await
        .context("the MCP handshake failed")?;
    running
        .waiting()
        .await
        .context("the MCP session ended with an error")?;
    stdio
        .output
        .await
        .context("the stdout task failed")?
        .context("writing to stdout")?;
    Ok(())
}

/// Removes, off the start-up path, what a killed process left while writing a result. A file
/// younger than twice the edit deadline (and at least an hour) may belong to another server
/// sharing the folder, still at work, so it stays.
fn sweep_stale_partials(dir: std::path::PathBuf, timeout_secs: u64) {
    let older_than = std::time::Duration::from_secs(timeout_secs.saturating_mul(2).max(3600));
    tokio::task::spawn_blocking(move || {
        let removed = reve_core::sweep_stale_partials(&dir, older_than);
        if removed > 0 {
            tracing::info!(removed, folder = %dir.display(), "removed stale temporary files");
        }
    });
}

fn client(settings: &EditSettings) -> anyhow::Result<reve_core::Client> {
    reve_core::Client::new(settings.client_config()?).context("building the HTTP client")
}
