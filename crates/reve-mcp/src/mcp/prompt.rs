//! The `edit_image` prompt: what a host shows as a command a person picks (Claude Code's
//! `/mcp__reve__edit_image`, Claude Desktop's prompt menu), asking for the picture and the
//! instruction and handing the model a request that names the tool.

use rmcp::ErrorData as McpError;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};

use crate::mcp::tool::TOOL_NAME;

pub const PROMPT_NAME: &str = "edit_image";

/// The one prompt this server has.
pub fn definition() -> Prompt {
    let argument = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    Prompt::new(
        PROMPT_NAME,
        Some("Edit a picture with a plain-language instruction"),
        Some(vec![
            argument(
                "image",
                "The picture: a file path, an https URL or a data URI",
            ),
            argument(
                "instruction",
                "What to change, in plain words (\"make the sky stormy\")",
            ),
        ]),
    )
    .with_title("Edit an image")
}

/// The prompt filled in; `saves` says whether the server keeps results on disk, and so what the
/// model should tell the person.
pub fn get(
    name: &str,
    arguments: Option<&JsonObject>,
    saves: bool,
) -> Result<GetPromptResult, McpError> {
    if name != PROMPT_NAME {
        return Err(McpError::invalid_params(
            format!("unknown prompt {name:?}; this server has {PROMPT_NAME:?}"),
            None,
        ));
    }
    let argument = |key: &str| -> Result<String, McpError> {
        match arguments.and_then(|arguments| arguments.get(key)) {
            Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
            _ => Err(McpError::invalid_params(
                format!(
                    "the prompt {PROMPT_NAME:?} needs the argument {key:?} (a non-empty string)"
                ),
                None,
            )),
        }
    };
    let (image, instruction) = (argument("image")?, argument("instruction")?);
    let report = match saves {
        true => "Show me the edited picture and tell me the path it was saved to.",
        false => "Show me the edited picture and give me its URL.",
    };
    let request = format!(
        "Edit this picture with the {TOOL_NAME} tool.\n\nPicture: {image}\nInstruction: \
         {instruction}\n\n{report}"
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, request)])
            .with_description(format!("Edit {image}")),
    )
}
