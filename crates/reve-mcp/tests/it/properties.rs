//! Property tests of what a model controls: the tool's arguments, and the
//! paths inside them. Whatever it sends, the tool answers with an error or a
//! request it would send; it never panics, never reads outside the allowed
//! folder and never writes outside the output folder. Case counts are bounded
//! so that `cargo test` stays quick.

use std::path::{Component, Path};
use std::sync::Arc;

use proptest::prelude::*;
use reve_mcp::{
    AllowedDirs, DEFAULT_MAX_EDITS_IN_FLIGHT, DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT, DEFAULT_MAX_WAIT,
    DEFAULT_REUSE_WINDOW, EditImageTool, Editor, EditorOptions, JobOptions, Jobs, LOCAL_PRINCIPAL,
    LocalFilesRule, PreviewLimits, ResponseMode, SqliteStore, output_target, parse_arguments,
};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

const CASES: u32 = 256;

/// Strings aimed at path handling: separators, `..`, NUL, control and
/// invisible characters, Windows forms, `file://` with hosts, escapes.
fn nasty_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("file://".to_owned()),
        Just("file:".to_owned()),
        Just("FILE://localhost".to_owned()),
        Just("file://evil.example".to_owned()),
        Just("data:".to_owned()),
        Just("http://".to_owned()),
        Just("C:\\".to_owned()),
        Just("\\\\?\\".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%00".to_owned()),
        Just("\0".to_owned()),
        Just("\u{200b}".to_owned()),
        Just("\u{2215}".to_owned()),
        Just("/proc/self/environ".to_owned()),
        Just("/dev/zero".to_owned()),
        "[\\x00-\\x1f]{1,3}",
        "[a-z.]{1,8}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Tool arguments: the real names (and a few it refuses) with arbitrary
/// values, sometimes well-typed, plus unknown names.
fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    let name = prop_oneof![
        Just("prompt".to_owned()),
        Just("image_url".to_owned()),
        Just("output_path".to_owned()),
        Just("model".to_owned()),
        Just("convert_base64_to_url".to_owned()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        json_value(),
        nasty_text().prop_map(Value::from),
        Just(json!("data:image/png;base64,iVBORw0KGgo=")),
        Just(json!("make it blue")),
    ];
    proptest::collection::btree_map(name, value, 0..5).prop_map(|map| map.into_iter().collect())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn local_paths_are_absolute_or_refused(input in nasty_text()) {
        if let Ok(Some(path)) = reve_core::ImageSource::local_file(&input, None) {
            prop_assert!(path.is_absolute(), "{input:?} -> {path:?}");
        }
    }

    #[test]
    fn output_targets_stay_in_the_output_folder(requested in nasty_text()) {
        let out = tempfile::tempdir().unwrap();
        if let Ok((folder, name)) = output_target(out.path(), &requested) {
            let inside = folder.strip_prefix(out.path()).expect("a folder inside the output folder");
            prop_assert!(
                inside.components().all(|part| matches!(part, Component::Normal(_))),
                "{requested:?} -> {folder:?}"
            );
            prop_assert!(!name.is_empty() && !name.contains('/') && name != "." && name != "..");
        }
    }

    #[test]
    fn reads_never_leave_the_allowed_folder(input in nasty_text()) {
        let allowed = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("in.png"), b"x").unwrap();
        let dirs = AllowedDirs::new([allowed.path().to_path_buf()]);
        let canonical = allowed.path().canonicalize().unwrap();
        for path in [Path::new(&input).to_path_buf(), allowed.path().join(&input)] {
            if let Ok((_, opened)) = dirs.open(&path) {
                prop_assert!(opened.starts_with(&canonical), "{path:?} -> {opened:?}");
            }
        }
    }

    #[test]
    fn any_arguments_get_an_error_or_a_request(arguments in arguments()) {
        let folders = tempfile::tempdir().unwrap();
        let outputs = folders.path().join("outputs");
        let tool = tool(folders.path(), &outputs);
        let outcome = runtime().block_on(call(&tool, arguments.clone()));
        match outcome {
            // Without a key, a request that passed every check stops right
            // where it would have been sent.
            Err(message) if message == reve_core::Error::MissingApiKey.to_string() => {
                prop_assert!(arguments["prompt"].is_string(), "{arguments:?}");
                prop_assert!(arguments["image_url"].is_string(), "{arguments:?}");
            }
            Err(message) => {
                prop_assert!(!message.is_empty());
                prop_assert!(message.len() < 4096, "{} bytes", message.len());
            }
            Ok(result) => prop_assert!(false, "succeeded without a key: {result:?}"),
        }
        prop_assert!(!outputs.exists(), "the output folder was written to");
    }
}

/// The tool with no API key, reading only from `inputs`, saving to `outputs`.
fn tool(inputs: &Path, outputs: &Path) -> EditImageTool {
    let client = reve_core::Client::new(reve_core::Config::default()).unwrap();
    let editor = Editor::new(
        client,
        EditorOptions {
            output_dir: outputs.to_path_buf(),
            max_input_bytes: 1024 * 1024,
            response_mode: ResponseMode::Url,
            saves: true,
            preview: Some(PreviewLimits::default()),
            max_edits_in_flight: DEFAULT_MAX_EDITS_IN_FLIGHT,
            max_upload_bytes_in_flight: DEFAULT_MAX_UPLOAD_BYTES_IN_FLIGHT,
        },
    );
    let configured = vec![inputs.to_path_buf()];
    let options = JobOptions {
        max_wait: Some(DEFAULT_MAX_WAIT),
        reuse_window: DEFAULT_REUSE_WINDOW,
        cancel_aborts: false,
        max_credits_per_day: None,
        max_usd_per_day: None,
        settle_after: std::time::Duration::from_secs(600),
    };
    let store = Arc::new(SqliteStore::in_folder(&outputs.with_extension("state")));
    let jobs = Jobs::new(editor, store, options);
    EditImageTool::new(jobs, LocalFilesRule::ThisUsers { configured })
}

/// A `tools/call` as the server makes it: arguments read, then the edit. A refusal, whether
/// before the job starts or as the job's failure, is its message.
async fn call(
    tool: &EditImageTool,
    arguments: Map<String, Value>,
) -> Result<rmcp::model::CallToolResult, String> {
    let arguments = parse_arguments("edit_image", arguments)
        .expect("edit_image is a tool")
        .map_err(|error| error.to_string())?;
    let result = tool
        .call(
            arguments,
            Vec::new(),
            LOCAL_PRINCIPAL,
            None,
            &CancellationToken::new(),
        )
        .await
        .map_err(|error| error.to_string())?;
    match result.is_error {
        Some(true) => Err(result.content[0].as_text().unwrap().text.clone()),
        _ => Ok(result),
    }
}

#[test]
fn huge_arguments_are_refused_with_short_messages() {
    let huge = "\u{1F600}".repeat(4 * 1024 * 1024);
    let folders = tempfile::tempdir().unwrap();
    let tool = tool(folders.path(), &folders.path().join("outputs"));
    for arguments in [
        json!({ "prompt": huge, "image_url": "data:image/png;base64,iVBORw0KGgo=" }),
        json!({ "prompt": "p", "image_url": huge }),
        json!({ "prompt": "p", "image_url": format!("/{huge}") }),
        json!({ "prompt": "p", "image_url": "data:image/png;base64,iVBORw0KGgo=", "output_path": huge }),
        json!({ "prompt": "p", "image_url": format!("file://{huge}/a.png") }),
        json!({ "prompt": [huge], "image_url": "data:image/png;base64,iVBORw0KGgo=" }),
    ] {
        let Value::Object(arguments) = arguments else {
            unreachable!()
        };
        let message = runtime().block_on(call(&tool, arguments)).unwrap_err();
        assert!(
            message.len() < 4096,
            "{} bytes: {}",
            message.len(),
            message.chars().take(120).collect::<String>()
        );
    }
}
