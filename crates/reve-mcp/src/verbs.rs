//! The command line's verb for each model other than `edit` (`create`, `remix`, and one for any
//! model added by its document), made from the model's generated tool: its pictures are the
//! positional arguments, `-p` its prompt, and each other argument of its input schema a flag
//! (`--aspect-ratio`, with the document's allowed values). Their arguments are parsed into the
//! same [`ToolArguments`] as a tool call's, so a verb runs exactly what the tool runs.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Args as _, Command, FromArgMatches, Subcommand};
use serde_json::{Map, Value};

use crate::cli::EditSettings;
use crate::edit_command::Color;
use crate::generated::{ModelTool, TOOLS, ToolArguments};

/// `reve-mcp edit` is its own command (one edit per image); every other model is a verb here.
const OWN_COMMAND: &str = "edit";

/// A model's verb, as typed.
#[derive(Debug, Clone)]
pub struct ModelVerb {
    pub tool: &'static ModelTool,
    /// Its pictures, in order, as typed.
    pub pictures: Vec<String>,
    pub prompt: String,
    /// The model's other arguments given as flags, by their JSON names.
    pub options: Map<String, Value>,
    pub output: Option<PathBuf>,
    pub json: bool,
    pub color: Color,
    pub settings: EditSettings,
}

impl ModelVerb {
    /// The tool arguments this verb asks for, pictures as typed (a relative path is read from
    /// the working directory by the pipeline); where the result goes is `-o`'s to say.
    pub fn arguments(&self) -> anyhow::Result<ToolArguments> {
        let mut object = self.options.clone();
        let mut pictures = self.pictures.iter();
        for field in self.tool.model.pictures {
            let value = if field.many {
                Value::from(pictures.by_ref().cloned().collect::<Vec<_>>())
            } else {
                match pictures.next() {
                    Some(picture) => Value::from(picture.clone()),
                    None => continue,
                }
            };
            object.insert(field.name.to_owned(), value);
        }
        if let Some(extra) = pictures.next() {
            anyhow::bail!(
                "{} takes {}; {extra:?} is one too many",
                self.tool.verb,
                takes(self.tool)
            );
        }
        object.insert("prompt".to_owned(), Value::from(self.prompt.clone()));
        let parsed = ToolArguments::parse(self.tool.tool, Value::Object(object))
            .expect("the verb's tool is one of TOOLS");
        parsed.map_err(|error| anyhow::anyhow!("{}: {error}", self.tool.verb))
    }

    /// What the person is told of this run: its pictures, or its prompt when it has none.
    pub fn label(&self) -> String {
        if self.pictures.is_empty() {
            self.prompt.clone()
        } else {
            self.pictures.join(" + ")
        }
    }
}

/// The pictures a model takes, in words.
fn takes(tool: &ModelTool) -> String {
    match tool.model.pictures {
        [] => "no picture".to_owned(),
        fields => fields
            .iter()
            .map(|field| field.takes())
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

fn verb_tools() -> impl Iterator<Item = &'static ModelTool> {
    TOOLS
        .iter()
        .copied()
        .filter(|tool| tool.verb != OWN_COMMAND)
}

/// The arguments of a model's input schema that are flags: neither a picture, the prompt nor
/// where to save.
fn flag_arguments(tool: &ModelTool) -> Vec<(String, Value)> {
    let schema = (tool.input_schema)();
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return Vec::new();
    };
    properties
        .iter()
        .filter(|(name, _)| {
            !matches!(name.as_str(), "prompt" | "output_path")
                && !tool.model.pictures.iter().any(|field| field.name == *name)
        })
        .map(|(name, schema)| (name.clone(), schema.clone()))
        .collect()
}

fn verb_command(tool: &'static ModelTool) -> Command {
    let about = format!("{}, with {} (paid)", tool.summary, tool.model.id);
    let mut command = Command::new(tool.verb)
        .about(&about)
        .arg(
            Arg::new("prompt")
                .short('p')
                .long("prompt")
                .value_name("PROMPT")
                .required(true)
                .help(match tool.model.max_length("prompt") {
                    Some(max) => format!("What to make, in plain language (up to {max} characters)"),
                    None => "What to make, in plain language".to_owned(),
                }),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("PATH_OR_DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "Where to save: a folder (one that exists, or any path ending in /) gets a \
                     unique name; a file path names the result (its extension is corrected to \
                     the real type; an existing file is never overwritten). Default: the output \
                     folder (--output-dir)",
                ),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print one JSON object on stdout: the MCP tool's structured result keys, or `error`"),
        )
        .arg(
            Arg::new("color")
                .long("color")
                .value_name("WHEN")
                .value_parser(clap::builder::EnumValueParser::<Color>::new())
                .default_value("auto")
                .help("Colour the finish line on a terminal: `auto` unless NO_COLOR is set"),
        );
    if !tool.model.pictures.is_empty() {
        let min: usize = tool
            .model
            .pictures
            .iter()
            .map(|field| field.min_items)
            .sum();
        let mut pictures = Arg::new("pictures")
            .value_name("IMAGE")
            .action(ArgAction::Append)
            .required(min > 0)
            .help(format!(
                "The pictures ({}): file paths (relative ones from the working directory), \
                 file:// URIs, http(s) URLs or data: URIs. PNG, JPEG, WebP or GIF",
                takes(tool)
            ));
        pictures = pictures.num_args(min.max(1)..=tool.model.max_pictures().unwrap_or(usize::MAX));
        command = command.arg(pictures);
    }
    for (name, schema) in flag_arguments(tool) {
        let mut flag = Arg::new(name.clone())
            .long(name.replace('_', "-"))
            .value_name(name.to_ascii_uppercase());
        let mut help = schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(default) = schema.get("default") {
            help.push_str(&format!(
                " Default: {}",
                default
                    .as_str()
                    .map_or_else(|| default.to_string(), str::to_owned)
            ));
        }
        if let Some(Value::Array(values)) = schema.get("enum") {
            let values: Vec<String> = values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            flag = flag.value_parser(PossibleValuesParser::new(values));
        }
        command = command.arg(flag.help(help));
    }
    // The settings' struct would give the verb its own description: the verb's is set again.
    EditSettings::augment_args(command)
        .about(about)
        .before_help(examples(tool))
        .help_template(crate::cli::EXAMPLES_FIRST)
}

/// Two lines of `reve-mcp VERB --help`'s examples, made from what the model takes: its pictures, and
/// the first allowed value of its first flag that has a list of them.
fn examples(tool: &ModelTool) -> String {
    let count: usize = (tool.model.pictures.iter())
        .map(|field| {
            if field.many {
                field.min_items.max(2)
            } else {
                1
            }
        })
        .sum();
    let pictures = match count {
        0 => String::new(),
        1 => " photo.jpg".to_owned(),
        count => (1..=count)
            .map(|n| format!(" picture{n}.png"))
            .collect::<String>(),
    };
    let prompt = if pictures.is_empty() {
        "a lighthouse on a cliff at dusk, oil painting"
    } else {
        "the people of the first picture in the place of the last"
    };
    let flag = flag_arguments(tool).into_iter().find_map(|(name, schema)| {
        let value = schema
            .get("enum")?
            .as_array()?
            .first()?
            .as_str()?
            .to_owned();
        Some(format!(" --{} {value}", name.replace('_', "-")))
    });
    format!(
        "Examples:\n  reve-mcp {verb}{pictures} -p \"{prompt}\"\n  reve-mcp {verb}{pictures} -p \"{prompt}\"{flag} -o out/ --json",
        verb = tool.verb,
        flag = flag.unwrap_or_default(),
    )
}

impl FromArgMatches for ModelVerb {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, matches)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let tool = verb_tools()
            .find(|tool| tool.verb == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let mut options = Map::new();
        for (name, schema) in flag_arguments(tool) {
            if let Some(value) = matches.get_one::<String>(&name) {
                // A number or a boolean goes in as one; anything else as the text typed.
                let typed = match schema.get("type").and_then(Value::as_str) {
                    Some("string") | None => None,
                    Some(_) => serde_json::from_str(value).ok(),
                };
                options.insert(name, typed.unwrap_or_else(|| Value::from(value.clone())));
            }
        }
        Ok(ModelVerb {
            tool,
            pictures: matches
                .try_get_many::<String>("pictures")
                .ok()
                .flatten()
                .map(|values| values.cloned().collect())
                .unwrap_or_default(),
            prompt: matches
                .get_one::<String>("prompt")
                .cloned()
                .unwrap_or_default(),
            options,
            output: matches.get_one::<PathBuf>("output").cloned(),
            json: matches.get_flag("json"),
            color: matches
                .get_one::<Color>("color")
                .copied()
                .unwrap_or_default(),
            settings: EditSettings::from_arg_matches(matches)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = ModelVerb::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for ModelVerb {
    fn augment_subcommands(command: Command) -> Command {
        command.subcommands(verb_tools().map(verb_command))
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        ModelVerb::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        verb_tools().any(|tool| tool.verb == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn verb(line: &[&str]) -> ModelVerb {
        match crate::cli::Cli::try_parse_from(line).unwrap().command {
            Some(crate::cli::Command::Model(verb)) => verb,
            other => panic!("not a model's verb: {other:?}"),
        }
    }

    #[test]
    fn create_and_remix_read_their_pictures_and_flags_into_tool_arguments() {
        let create = verb(&[
            "reve-mcp",
            "create",
            "-p",
            "a lighthouse",
            "--aspect-ratio",
            "16:9",
        ]);
        assert_eq!(create.tool.tool, "create_image");
        let arguments = serde_json::to_value(create.arguments().unwrap()).unwrap();
        assert_eq!(
            arguments,
            serde_json::json!({ "aspect_ratio": "16:9", "prompt": "a lighthouse" })
        );
        let remix = verb(&[
            "reve-mcp", "remix", "a.png", "b.jpg", "-p", "together", "-o", "both.png",
        ]);
        let arguments = remix.arguments().unwrap();
        assert_eq!(arguments.pictures(), ["a.png", "b.jpg"]);
        assert_eq!(remix.label(), "a.png + b.jpg");
        assert_eq!(remix.output, Some(PathBuf::from("both.png")));
    }

    #[test]
    fn bad_verbs_are_refused_before_anything_runs() {
        let parse = |line: &[&str]| {
            crate::cli::Cli::try_parse_from(line)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let error = parse(&["reve-mcp", "create", "-p", "x", "--aspect-ratio", "5:4"]);
        assert!(
            error.contains("16:9, 9:16, 3:2, 2:3, 4:3, 3:4, 1:1"),
            "{error}"
        );
        let error = parse(&["reve-mcp", "remix", "1", "2", "3", "4", "5", "6", "-p", "x"]);
        assert!(
            error.contains("6 values") || error.contains("unexpected"),
            "{error}"
        );
        let error = parse(&["reve-mcp", "remix", "-p", "x"]);
        assert!(error.contains("IMAGE"), "{error}");
        let error = parse(&["reve-mcp", "create", "a.png", "-p", "x"]);
        assert!(error.contains("a.png"), "{error}");
    }
}
