//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) over the same jobs: a task
//! is an edit job, its id the job's id, its state read from the job store, so a task outlives
//! the request, the session and the process exactly as a job does. rmcp's own task manager is
//! not used: it keeps tasks in memory.

use std::time::{Duration, UNIX_EPOCH};

use rmcp::ErrorData as McpError;
use rmcp::model::{CreateTaskResult, DetailedTask, GetTaskResult, Task, TaskPayload};

use crate::jobs::{JobError, JobRecord, JobState, Waited};
use crate::mcp::output;
use crate::mcp::tool::EditImageTool;

/// How often a client should poll `tasks/get`: progress is reported once a second.
const POLL_INTERVAL_MS: u64 = 1000;

/// The task a started job is, as `tools/call` answers it.
pub fn created(job: &JobRecord) -> CreateTaskResult {
    CreateTaskResult::new(
        task(job)
            .with_status_message("queued; nothing sent yet".to_owned())
            .with_poll_interval_ms(POLL_INTERVAL_MS),
    )
}

/// `tasks/get`: the job's state and, once it is done, exactly the result `edit_image` gives
/// (with `structuredContent` when `structured`, as for a call).
/// A job of another principal is unknown, as an unknown id is.
pub async fn get(
    tool: &EditImageTool,
    id: &str,
    principal: &str,
    structured: bool,
) -> Result<GetTaskResult, McpError> {
    let (record, waited) = tool.jobs().snapshot(id, principal).await.map_err(refusal)?;
    let base = task(&record).with_poll_interval_ms(POLL_INTERVAL_MS);
    let detailed = match waited {
        Waited::Running { stage, .. } => DetailedTask::new(
            base.with_status_message(output::doing(stage)),
            TaskPayload::Working,
        ),
        Waited::Finished { ref outcome, .. } if is_cancelled(outcome) => {
            DetailedTask::new(base, TaskPayload::Cancelled)
        }
        finished => {
            let mut result = output::job_result(finished, tool.jobs().options().max_wait);
            if !structured {
                result.structured_content = None;
            }
            let Ok(serde_json::Value::Object(result)) = serde_json::to_value(result) else {
                unreachable!("a tool result serialises to an object")
            };
            DetailedTask::new(base, TaskPayload::Completed { result })
        }
    };
    Ok(GetTaskResult::new(detailed))
}

/// `tasks/cancel`: as a cancelled call, it stops a job not yet sent, and one already sent only
/// with `--cancel-aborts`.
pub async fn cancel(tool: &EditImageTool, id: &str, principal: &str) -> Result<(), McpError> {
    tool.jobs().cancel(id, principal).await.map_err(refusal)
}

fn is_cancelled(outcome: &crate::jobs::Outcome) -> bool {
    matches!(
        outcome,
        crate::jobs::Outcome::Ended { ending, .. } if ending.state == JobState::Cancelled
    )
}

fn task(job: &JobRecord) -> Task {
    Task::new(
        job.id.clone(),
        rmcp::model::TaskStatus::Working,
        timestamp(job.created_ms),
        timestamp(job.updated_ms),
    )
}

fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// An unknown task is invalid params (-32602), its message the one `get_edit` gives; a store
/// that cannot be read is an internal error saying so.
fn refusal(error: JobError) -> McpError {
    match error {
        JobError::UnknownJob(_) => McpError::invalid_params(error.to_string(), None),
        other => McpError::internal_error(other.to_string(), None::<serde_json::Value>),
    }
}
