//! The MCP server: one tool, `edit_image`, plus the roots bookkeeping that
//! decides which local folders a client has opened to us.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tokio::sync::RwLock;

use crate::tool_schema;
use crate::tools::edit_image::{EditImage, EditImageError};

pub const TOOL_NAME: &str = "edit_image";

const TOOL_TITLE: &str = "Edit image";
const TOOL_DESCRIPTION: &str = "Edit a picture with a plain-language instruction, using the \
reve/edit-image model. Give `prompt` (what to change, e.g. \"put the dinosaur on a lounge chair \
at sunset\"; up to 2560 characters) and `image_url` (an http(s) URL, a data: URI, or an absolute \
path or file:// URI of a local PNG, JPEG, WebP or GIF).";
const TOOL_RETURNS_SAVED: &str = "Returns the edited picture as an image you can see, the \
absolute path where the full-resolution file was saved for the user, the result URL and the \
request id.";
const TOOL_RETURNS_UNSAVED: &str = "Returns the edited picture as an image you can see, the URL \
of the full-resolution result and the request id; this server does not save results.";
const TOOL_COST: &str = "Each call is a paid generation and takes tens of seconds.";

/// How long to wait for a client to answer `roots/list`.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ReveServer {
    edit: Arc<EditImage>,
    tool: Tool,
    /// Folders the client declared as roots, fetched on first need and
    /// dropped when the client says they changed.
    client_roots: Arc<RwLock<Option<Vec<std::path::PathBuf>>>>,
}

impl ReveServer {
    pub fn new(edit: EditImage) -> Self {
        let request_schema = reve_core::edit_image_request_schema();
        let (returns, input_schema, output_schema) = if edit.saves_results() {
            (
                TOOL_RETURNS_SAVED,
                tool_schema::input_schema(&request_schema),
                tool_schema::output_schema(),
            )
        } else {
            (
                TOOL_RETURNS_UNSAVED,
                tool_schema::unsaved_input_schema(&request_schema),
                tool_schema::unsaved_output_schema(),
            )
        };
        let tool = Tool::new(
            TOOL_NAME,
            format!("{TOOL_DESCRIPTION} {returns} {TOOL_COST}"),
            Arc::new(input_schema),
        )
        .with_title(TOOL_TITLE)
        .with_raw_output_schema(Arc::new(output_schema))
        .with_annotations(
            ToolAnnotations::with_title(TOOL_TITLE)
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        );
        Self {
            edit: Arc::new(edit),
            tool,
            client_roots: Arc::default(),
        }
    }

    pub fn tool(&self) -> &Tool {
        &self.tool
    }

    /// A handler for one more client (an HTTP session): the tool is shared,
    /// the roots bookkeeping is that client's own.
    pub fn for_new_client(&self) -> Self {
        Self {
            edit: Arc::clone(&self.edit),
            tool: self.tool.clone(),
            client_roots: Arc::default(),
        }
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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_title("reve image editing"),
            )
            .with_instructions(if self.edit.saves_results() {
                "Use edit_image to change a picture from a plain-language instruction. The edited \
                 picture comes back inline and is saved to disk; tell the user the saved path."
            } else {
                "Use edit_image to change a picture from a plain-language instruction. The edited \
                 picture comes back inline and by URL; this server does not save it, so give the \
                 user the URL."
            })
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![self.tool.clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == TOOL_NAME).then(|| self.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != TOOL_NAME {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {:?}; this server has only {TOOL_NAME:?}",
                    request.name
                ),
                None,
            ));
        }
        let progress_token = context
            .meta
            .get_progress_token()
            .or_else(|| request.meta.as_ref()?.get_progress_token());
        let arguments = request.arguments.unwrap_or_default();
        let roots = if self.edit.needs_roots(&arguments) {
            self.client_roots(&context).await
        } else {
            Vec::new()
        };
        let outcome = self
            .edit
            .run(
                arguments,
                roots,
                progress_token.map(|token| (token, context.peer.clone())),
                context.ct.clone(),
            )
            .await;
        Ok(match outcome {
            Ok(result) => result,
            Err(error) => {
                if !matches!(error, EditImageError::Cancelled) {
                    tracing::info!(error = %error, "edit_image failed");
                }
                CallToolResult::error(vec![ContentBlock::text(error.to_string())])
            }
        }
        .into())
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        *self.client_roots.write().await = None;
    }
}
