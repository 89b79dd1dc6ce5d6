//! The MCP server: the tools `edit_image` and `get_edit`, the jobs' pictures and the viewer as
//! resources, plus the roots bookkeeping that tells which local folders a client has opened to
//! us, and whose jobs a request may see.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    GetPromptRequestParams, GetPromptResponse, GetSkillRequestParams, GetSkillResult,
    GetTaskParams, GetTaskResult, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListSkillsResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tokio::sync::RwLock;

use crate::edit::EditError;
use crate::generated::ToolArguments;
use crate::jobs::{JobError, Jobs, LOCAL_PRINCIPAL, Principal};
use crate::mcp::hosts::StructuredContent;
use crate::mcp::tool::{self, EditImageTool, GET_EDIT_TOOL_NAME};
use crate::mcp::{prompt, resources, skill, task};

/// The MCP revisions this server speaks, oldest first: every one rmcp knows, since the server
/// serves both the stateless 2026-07-28 revision and the `initialize` handshake of the older ones.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = ProtocolVersion::KNOWN_VERSIONS;

/// What `reve-mcp --version` says: the release, the MCP revisions (newest first) and the
/// extensions, so that whoever wires it into a host can tell what it will negotiate.
pub fn version_text() -> String {
    let revisions: Vec<&str> = PROTOCOL_VERSIONS
        .iter()
        .rev()
        .map(ProtocolVersion::as_str)
        .collect();
    format!(
        "{} (MCP {}; extensions {} and {})",
        env!("CARGO_PKG_VERSION"),
        revisions.join(", "),
        rmcp::model::TASKS_EXTENSION_ID,
        resources::UI_EXTENSION
    )
}

/// How long to wait for a client to answer `roots/list`.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a server can take edits, as a health probe reports it; why not goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// The job store does not answer (for now, it seems).
    StoreUnreachable,
    /// The job store answers but refuses this server (a wrong password, say).
    StoreRefuses,
}

#[derive(Clone)]
pub struct ReveServer {
    tool: Arc<EditImageTool>,
    /// Folders the client declared as roots, fetched on first need and
    /// dropped when the client says they changed.
    client_roots: Arc<RwLock<Option<Vec<std::path::PathBuf>>>>,
    /// Which clients get `structuredContent` (see [`crate::mcp::hosts`]).
    structured: StructuredContent,
}

impl ReveServer {
    pub fn new(tool: EditImageTool, structured: StructuredContent) -> Self {
        Self {
            tool: Arc::new(tool),
            client_roots: Arc::default(),
            structured,
        }
    }

    /// The definitions of the model tools, `edit_image` first.
    pub fn tools(&self) -> &[Tool] {
        self.tool.definitions()
    }

    pub fn jobs(&self) -> &Jobs {
        self.tool.jobs()
    }

    /// Whether this server can take edits: it answers, and so does its job store.
    pub async fn health(&self) -> Health {
        match self.jobs().store().health().await {
            Ok(()) => Health::Ready,
            Err(error) => {
                tracing::warn!(%error, "health check: the job store does not answer");
                match error.is_transient() {
                    true => Health::StoreUnreachable,
                    false => Health::StoreRefuses,
                }
            }
        }
    }

    /// A handler for one more client (an HTTP session): the tool is shared,
    /// the roots bookkeeping is that client's own.
    pub fn for_new_client(&self) -> Self {
        Self {
            tool: Arc::clone(&self.tool),
            client_roots: Arc::default(),
            structured: self.structured,
        }
    }

    /// Whether this request's client gets structured JSON in results and output schemas in
    /// the tool list.
    fn sends_structured(&self, context: &RequestContext<RoleServer>) -> bool {
        self.structured.for_client(
            context.client_info().as_ref(),
            resources::client_renders_apps(context),
        )
    }

    /// A model's tool (`edit_image`, `create_image`, `remix_images`...) with its parsed
    /// `arguments`: a task for a client that polls tasks, otherwise a wait for the picture.
    async fn call_model_tool(
        &self,
        arguments: Result<ToolArguments, EditError>,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, JobError> {
        let arguments = arguments?;
        let roots = if self.tool.needs_roots(&arguments) {
            self.client_roots(context).await
        } else {
            Vec::new()
        };
        let principal = principal(context);
        if polls_tasks(context) {
            let job_id = self.tool.start(arguments, roots, &principal).await?;
            let record = self.tool.jobs().record(&job_id, &principal).await?;
            return Ok(CallToolResponse::Task(task::created(&record)));
        }
        let progress = progress(request, context);
        let result = (self.tool)
            .call(arguments, roots, &principal, progress, &context.ct)
            .await?;
        Ok(result.into())
    }

    /// `get_edit`: a wait for the edit a job id names.
    async fn call_get_edit(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, JobError> {
        let arguments =
            tool::parse_get_edit_arguments(request.arguments.clone().unwrap_or_default())?;
        let progress = progress(request, context);
        (self.tool)
            .get_edit(
                &arguments.job_id,
                &principal(context),
                progress,
                &context.ct,
            )
            .await
    }

    /// The roots the client declared, as local folders. Empty when the client
    /// has no roots capability or does not answer in time.
    #[expect(
        deprecated,
        reason = "roots are deprecated by SEP-2577, but today's clients still send them"
    )]
    async fn client_roots(&self, context: &RequestContext<RoleServer>) -> Vec<std::path::PathBuf> {
        if let Some(roots) = self.client_roots.read().await.clone() {
            return roots;
        }
        let declares_roots = context
            .peer
            .peer_info()
            .is_some_and(|info| info.capabilities.roots.is_some());
        if !declares_roots {
            return Vec::new();
        }
        let roots = match tokio::time::timeout(ROOTS_TIMEOUT, context.peer.list_roots()).await {
            Ok(Ok(result)) => result
                .roots
                .iter()
                .filter_map(|root| url::Url::parse(&root.uri).ok()?.to_file_path().ok())
                .collect(),
            Ok(Err(error)) => {
                tracing::warn!(%error, "the client declared roots but roots/list failed");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("the client declared roots but did not answer roots/list");
                Vec::new()
            }
        };
        *self.client_roots.write().await = Some(roots.clone());
        roots
    }
}

impl ServerHandler for ReveServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_resources()
                .enable_tasks()
                .enable_skills()
                .build(),
        )
        .with_server_info(
            Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .with_title("reve image editing"),
        )
        .with_instructions(instructions(self.tool.saves_results()))
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    /// The tools; for a client that renders MCP Apps, both link to the viewer, and a client
    /// that does not sees them exactly as before.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self.tools().to_vec();
        for (tool, model_tool) in tools.iter_mut().zip(crate::generated::TOOLS) {
            if let Some(price) = self.jobs().price_of(model_tool.model.id) {
                let description = tool.description.as_deref().unwrap_or_default();
                tool.description = Some(
                    format!(
                        "{description}\n\nCost: about ${price} per picture (the provider's \
                         price now)."
                    )
                    .into(),
                );
            }
        }
        tools.push(self.tool.get_edit_definition().clone());
        if resources::client_renders_apps(&context) {
            for tool in &mut tools {
                tool.meta = Some(resources::tool_meta());
            }
        }
        if !self.sends_structured(&context) {
            for tool in &mut tools {
                tool.output_schema = None;
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(
            vec![prompt::definition()],
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let saves = self.tool.saves_results();
        Ok(prompt::get(&request.name, request.arguments.as_ref(), saves)?.into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let cursor = request.and_then(|request| request.cursor);
        resources::list(
            self.tool.jobs(),
            &principal(&context),
            cursor,
            resources::client_renders_apps(&context),
        )
        .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if let Some(read) = skill::read(&request.uri) {
            return Ok(read.into());
        }
        let read = resources::read(self.tool.jobs(), &principal(&context), &request.uri).await?;
        Ok(read.into())
    }

    /// The Skills extension: the one skill, on getting good pictures through this server.
    async fn list_skills(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListSkillsResult, McpError> {
        Ok(skill::list())
    }

    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, McpError> {
        skill::get(&request.uri)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool.definition_of(name).cloned()
    }

    /// One small function per tool; what every call shares (the unknown tool, the error as a
    /// tool result, the structured JSON only for a client that gets it) is here.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.clone().unwrap_or_default();
        let answer = match request.name.as_ref() {
            GET_EDIT_TOOL_NAME => self
                .call_get_edit(&request, &context)
                .await
                .map(CallToolResponse::from),
            name => match tool::parse_arguments(name, arguments) {
                Some(arguments) => self.call_model_tool(arguments, &request, &context).await,
                None => {
                    let names: Vec<String> = self
                        .tool
                        .definitions()
                        .iter()
                        .map(|tool| format!("{:?}", tool.name))
                        .chain([format!("{GET_EDIT_TOOL_NAME:?}")])
                        .collect();
                    return Err(McpError::invalid_params(
                        format!(
                            "unknown tool {:?}; this server has {}",
                            reve_core::workspace::shorten(name),
                            names.join(", ")
                        ),
                        None,
                    ));
                }
            },
        };
        let mut result = match answer {
            Ok(CallToolResponse::Complete(result)) => result,
            Ok(other) => return Ok(other),
            Err(error) => {
                if !error.is_cancelled() {
                    tracing::info!(error = %error, tool = %request.name, "the call failed");
                }
                tool::error_result(&error)
            }
        };
        if !self.sends_structured(&context) {
            result.structured_content = None;
        }
        Ok(result.into())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let structured = self.sends_structured(&context);
        task::get(
            &self.tool,
            &request.task_id,
            &principal(&context),
            structured,
        )
        .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        task::cancel(&self.tool, &request.task_id, &principal(&context)).await
    }

    /// A client (of a 2025 revision) that listed the tools before the prices were read is told
    /// the listing changed once they are: their descriptions then quote them.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        tracing::info!("client initialized");
        let jobs = self.jobs().clone();
        if jobs.prices_read() {
            return;
        }
        tokio::spawn(async move {
            jobs.first_prices().await;
            if !jobs.prices().is_empty()
                && let Err(error) = context.peer.notify_tool_list_changed().await
            {
                tracing::debug!(%error, "could not tell the client the tools now quote prices");
            }
        });
    }

    /// The one change a 2026-07-28 client can listen for: the tools' listing, which changes
    /// when the prices are first read.
    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// A subscription hears of the tools' listing changing when the prices are first read,
    /// then stays open until the client closes it.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let jobs = self.jobs().clone();
        if !jobs.prices_read() {
            tokio::select! {
                () = jobs.first_prices() => {
                    if !jobs.prices().is_empty()
                        && let Err(error) = context.sink().notify_tool_list_changed().await
                    {
                        tracing::debug!(%error, "could not tell a subscriber the tools now quote prices");
                    }
                }
                () = context.cancelled() => return Ok(()),
            }
        }
        context.cancelled().await;
        Ok(())
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        *self.client_roots.write().await = None;
    }
}

/// What a host shows its model before any tool: what the tools do, that edits are paid and
/// slow, where the picture and the path come back, and how to collect a long edit. True in
/// every host we know, whatever of a result it passes on (see [`crate::mcp::hosts`]).
pub fn instructions(saves: bool) -> String {
    let gives = if saves {
        "Its result gives the absolute path of the full-resolution file it saved for the user \
         (tell the user that path)"
    } else {
        "This server does not save results: its result gives the URL of the full-resolution \
         picture (give the user that URL)"
    };
    format!(
        "edit_image changes a picture from a plain-language instruction; each call is a paid \
         generation taking tens of seconds. {gives}, the picture's size, and a preview image \
         where the host shows images. When an edit outlasts the call, the result says it is \
         still running and gives a job_id: call get_edit with that job_id (free) to collect the \
         picture, rather than calling edit_image again."
    )
}

/// Whether the client polls tasks: it declared the tasks extension on a revision that defines
/// it (2026-07-28 on). A client of an earlier revision that declares it anyway (the Inspector
/// CLI does) gets the result as that revision defines.
fn polls_tasks(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
        && context
            .client_capabilities()
            .is_some_and(|capabilities| capabilities.supports_tasks())
}

/// Where the call's progress goes, when the client asked for it.
fn progress(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Option<(rmcp::model::ProgressToken, rmcp::service::Peer<RoleServer>)> {
    let token = context
        .meta
        .get_progress_token()
        .or_else(|| request.meta.as_ref()?.get_progress_token())?;
    Some((token, context.peer.clone()))
}

/// Whose jobs a request may see: the holder of the bearer token it carried (which the HTTP
/// transport checked and put in its place), or the one local user when it carried none (stdio,
/// or HTTP on loopback without a token).
fn principal(context: &RequestContext<RoleServer>) -> String {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .map_or_else(
            || LOCAL_PRINCIPAL.to_owned(),
            |principal| principal.0.clone(),
        )
}
