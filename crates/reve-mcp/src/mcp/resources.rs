//! The jobs' pictures as MCP resources, and the viewer that shows them (an MCP App, the
//! `io.modelcontextprotocol/ui` extension).
//!
//! A job's pictures are `reve://jobs/{job_id}/result` (the saved file), `.../preview` (what the
//! tool's result showed) and `.../input` (the input picture as it was sent, preview-sized).
//! They follow the tools' access rules: a request sees only its principal's jobs, and anything
//! else reads as an unknown URI. The viewer is one HTML file compiled into the binary, linked
//! from the tools' `_meta.ui.resourceUri` for clients that render apps.

use base64::Engine as _;
use rmcp::model::{
    CacheScope, ClientCapabilities, Cursor, ListResourceTemplatesResult, ListResourcesResult,
    MetaObject, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};
use rmcp::{ErrorData as McpError, RoleServer, service::RequestContext};
use serde_json::json;

use crate::jobs::{JobError, JobRecord, Jobs, Picture};

/// The viewer's resource, and the MIME type that marks HTML as an MCP App.
pub const VIEWER_URI: &str = "ui://reve/viewer";
pub const APP_MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The extension a client declares when it renders apps.
pub const UI_EXTENSION: &str = "io.modelcontextprotocol/ui";

/// The viewer: markup, style and script in one file, nothing fetched from anywhere.
pub const VIEWER_HTML: &str = include_str!("viewer.html");

/// Where the viewer takes an edit to show without a host (see [`standalone_viewer`]).
const STANDALONE_SLOT: &str =
    r#"<script type="application/json" id="reve-standalone">null</script>"#;

/// The viewer as a page a person opens in a browser, with no host: `edit` holds the call's
/// `arguments`, its `result` (a tool result as JSON) and the `pictures` it names, each URI
/// mapped to a `data:` URL.
pub fn standalone_viewer(edit: &serde_json::Value) -> String {
    // `<` escaped, so no string in the data can end the script element.
    let data = edit.to_string().replace('<', "\\u003c");
    let filled = STANDALONE_SLOT.replace(">null<", &format!(">{data}<"));
    VIEWER_HTML.replacen(STANDALONE_SLOT, &filled, 1)
}

/// The longest URI a resource-not-found error gives back in its `data.uri`.
const MAX_ECHOED_URI: usize = 2048;

/// Results per page of `resources/list`.
const PAGE_SIZE: u32 = 50;
use crate::jobs::PICTURES_PREFIX as JOBS_PREFIX;

/// The URI of a job's picture.
pub fn uri(job_id: &str, picture: Picture) -> String {
    picture.uri(job_id)
}

/// A job's id and picture, from a URI [`uri`] made.
fn parse(uri: &str) -> Option<(&str, Picture)> {
    let (job_id, name) = uri.strip_prefix(JOBS_PREFIX)?.split_once('/')?;
    let picture = Picture::from_segment(name)?;
    (!job_id.is_empty()).then_some((job_id, picture))
}

/// Whether the client said it renders MCP Apps of the viewer's type.
pub fn client_renders_apps(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .as_ref()
        .is_some_and(renders_apps)
}

fn renders_apps(capabilities: &ClientCapabilities) -> bool {
    capabilities
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get(UI_EXTENSION))
        .and_then(|settings| settings.get("mimeTypes"))
        .and_then(|types| types.as_array())
        .is_some_and(|types| types.iter().any(|kind| kind == APP_MIME_TYPE))
}

/// What links a tool to the viewer: `ui.resourceUri`, and the flat key older hosts read.
pub fn tool_meta() -> MetaObject {
    let serde_json::Value::Object(meta) = json!({
        "ui": { "resourceUri": VIEWER_URI },
        "ui/resourceUri": VIEWER_URI,
    }) else {
        unreachable!("an object literal")
    };
    MetaObject(meta)
}

/// One page of `principal`'s results, newest first; the viewer first, for clients that render
/// apps. `cursor` is where the previous page ended.
pub async fn list(
    jobs: &Jobs,
    principal: &str,
    cursor: Option<Cursor>,
    with_viewer: bool,
) -> Result<ListResourcesResult, McpError> {
    let after = cursor.as_deref().map(parse_cursor).transpose()?;
    let records = jobs
        .results(principal, after.clone(), PAGE_SIZE + 1)
        .await
        .map_err(|error| McpError::internal_error(error.to_string(), None))?;
    let more = records.len() > PAGE_SIZE as usize;
    let page = &records[..records.len().min(PAGE_SIZE as usize)];
    let mut resources = Vec::with_capacity(page.len() + 1);
    if with_viewer && after.is_none() {
        resources.push(viewer_resource());
    }
    resources.extend(page.iter().filter_map(result_resource));
    if after.is_none() {
        resources.push(super::skill::resource());
    }
    let mut result = ListResourcesResult::with_all_items(resources);
    result.next_cursor = page
        .last()
        .filter(|_| more)
        .map(|last| format!("{}.{}", last.created_ms, last.id));
    // Each user's own, and changed by every edit.
    result.cache_scope = Some(CacheScope::Private);
    result.ttl_ms = Some(0);
    Ok(result)
}

fn parse_cursor(cursor: &str) -> Result<(u64, String), McpError> {
    cursor
        .split_once('.')
        .and_then(|(created_ms, id)| Some((created_ms.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            McpError::invalid_params(
                format!(
                    "invalid cursor {:?}: pass the nextCursor of an earlier resources/list",
                    reve_core::workspace::shorten(cursor)
                ),
                None,
            )
        })
}

/// A succeeded job as the resource of its result: the saved file, or the preview when the
/// server does not save.
fn result_resource(record: &JobRecord) -> Option<Resource> {
    let generation = record.generation();
    let result = generation.result.as_ref()?;
    let (picture, mime_type, size) = match (&result.path, &result.preview) {
        (Some(_), _) => (
            Picture::Result,
            result.mime_type.clone(),
            Some(result.bytes),
        ),
        (None, Some(shown)) => (Picture::Preview, shown.mime_type.clone(), None),
        (None, None) => return None,
    };
    let name = result
        .path
        .as_deref()
        .and_then(|path| std::path::Path::new(path).file_name())
        .map_or_else(
            || format!("edit {}", record.id),
            |name| name.to_string_lossy().into_owned(),
        );
    let resource = Resource::new(uri(&record.id, picture), name)
        .with_title(reve_core::workspace::shorten(&generation.prompt))
        .with_description(format!(
            "{}x{} {}, edited by {}: {}{}",
            result.width,
            result.height,
            result.mime_type,
            generation.model,
            reve_core::workspace::shorten(&generation.prompt),
            made_from(&generation.parents)
        ))
        .with_mime_type(mime_type);
    Some(match size {
        Some(size) => resource.with_size(size),
        None => resource,
    })
}

/// Where a result came from, for its description: its place in a line of versions.
fn made_from(parents: &[String]) -> String {
    if parents.is_empty() {
        return String::new();
    }
    let uris: Vec<String> = parents
        .iter()
        .map(|parent| uri(parent, Picture::Result))
        .collect();
    format!(" (made from {})", uris.join(", "))
}

fn viewer_resource() -> Resource {
    Resource::new(VIEWER_URI, "viewer")
        .with_title("reve: the edit, before and after")
        .with_description("Shows an edit's input and result side by side and with a slider.")
        .with_mime_type(APP_MIME_TYPE)
        .with_size(VIEWER_HTML.len() as u64)
}

/// The URI templates of a job's pictures.
pub fn templates() -> ListResourceTemplatesResult {
    let template = |picture: Picture, name: &str, description: &str| {
        ResourceTemplate::new(
            format!("{JOBS_PREFIX}{{job_id}}/{}", picture.segment()),
            name,
        )
        .with_description(description)
    };
    ListResourceTemplatesResult::with_all_items(vec![
        template(
            Picture::Result,
            "result",
            "The saved full-resolution result of an edit job (servers that save results).",
        ),
        template(
            Picture::Preview,
            "preview",
            "The preview of an edit job's result: the picture its tool result showed.",
        ),
        template(
            Picture::Input(0),
            "input",
            "The (first) input picture of a job as it was sent, preview-sized (none when it was \
             given by URL: the API fetches those, this server does not).",
        ),
        ResourceTemplate::new(format!("{JOBS_PREFIX}{{job_id}}/input-{{n}}"), "input-n")
            .with_description(
                "The n-th input picture of a job with several (a remix), from 2 on, as it was \
                 sent, preview-sized.",
            ),
    ])
}

/// `resources/read`: the viewer, or one of `principal`'s pictures as a blob.
pub async fn read(jobs: &Jobs, principal: &str, uri: &str) -> Result<ReadResourceResult, McpError> {
    if uri == VIEWER_URI {
        let contents =
            ResourceContents::text(VIEWER_HTML, VIEWER_URI).with_mime_type(APP_MIME_TYPE);
        return Ok(ReadResourceResult::new(vec![contents]));
    }
    let unknown = || {
        McpError::resource_not_found(
            format!(
                "no resource {:?} is known here; this server has {VIEWER_URI} and \
                 {JOBS_PREFIX}{{job_id}}/result, /preview and /input for your own edit jobs",
                reve_core::workspace::shorten(uri)
            ),
            // The URI not found, as the specification asks (SEP-2164), unless it is too long
            // to be worth echoing.
            (uri.len() <= MAX_ECHOED_URI).then(|| json!({ "uri": uri })),
        )
    };
    let (job_id, picture) = parse(uri).ok_or_else(unknown)?;
    let found = match jobs.picture(job_id, principal, picture).await {
        Ok(found) => found,
        Err(JobError::UnknownJob(_)) => return Err(unknown()),
        Err(gone @ JobError::ResultUnreadable { .. }) => {
            return Err(McpError::resource_not_found(gone.to_string(), None));
        }
        Err(error) => return Err(McpError::internal_error(error.to_string(), None)),
    };
    let Some((bytes, mime_type)) = found else {
        return Err(McpError::resource_not_found(
            format!(
                "edit job {job_id} has no {} picture: {}",
                picture.segment(),
                match picture {
                    Picture::Input(_) =>
                        "its input was a URL (which this server does not fetch), could not be \
                         previewed, or has not been read yet",
                    Picture::Result =>
                        "it has not succeeded (get_edit says where it is), or this server does \
                         not save results (read its preview)",
                    Picture::Preview => "it has not succeeded, or made no preview",
                }
            ),
            None,
        ));
    };
    let blob = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut result = ReadResourceResult::new(vec![
        ResourceContents::blob(blob, uri).with_mime_type(mime_type),
    ]);
    result.cache_scope = Some(CacheScope::Private);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_viewer_carries_its_edit_and_nothing_can_end_its_script_early() {
        assert_eq!(VIEWER_HTML.matches(STANDALONE_SLOT).count(), 1);
        let page = standalone_viewer(&json!({ "arguments": { "prompt": "</script><b>" } }));
        assert!(!page.contains(STANDALONE_SLOT));
        assert!(page.contains(r#"{"arguments":{"prompt":"\u003c/script>\u003cb>"}}</script>"#));
        assert_eq!(
            page.matches("</script>").count(),
            VIEWER_HTML.matches("</script>").count()
        );
    }

    #[test]
    fn every_picture_uri_reads_back_as_its_job_and_picture() {
        for picture in [
            Picture::Result,
            Picture::Preview,
            Picture::Input(0),
            Picture::Input(3),
        ] {
            assert_eq!(
                parse(&uri("0123abcd", picture)),
                Some(("0123abcd", picture))
            );
        }
        for other in [
            "reve://jobs//result",
            "reve://jobs/abc/thumbnail",
            "reve://jobs/abc/input-1",
            "reve://jobs/abc/input-02",
            "reve://jobs/abc/input-0",
            "reve://jobs/abc",
            "file:///tmp/abc/result",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
