//! How each host is installed and run headless: its npm package (pinned), the settings file that
//! points it at the scripted model and starts reve-mcp as its stdio server with reve's tools
//! approved, and the environment that keeps it offline (no telemetry, no update checks). What
//! each needs was read from its own documentation and package; nothing of theirs is kept here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use serde_json::json;

use crate::harness::NodeTools;

/// The hosts, in the order they run.
pub const HOSTS: [Host; 5] = [
    Host::ClaudeCode,
    Host::Codex,
    Host::GeminiCli,
    Host::QwenCode,
    Host::Opencode,
];

/// The npm packages, pinned: the five hosts and the MCP Inspector.
pub const PACKAGES: [&str; 6] = [
    "@anthropic-ai/claude-code@2.1.328",
    "@openai/codex@0.169.0",
    "@google/gemini-cli@0.61.0",
    "@qwen-code/qwen-code@0.24.4",
    "opencode-ai@1.18.33",
    "@modelcontextprotocol/inspector@2.12.0",
];

/// The Inspector's command line, inside its package.
pub const INSPECTOR_CLI: &str = "@modelcontextprotocol/inspector/clients/cli/build/index.js";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    ClaudeCode,
    Codex,
    GeminiCli,
    QwenCode,
    Opencode,
}

/// Where one run happens: its folder (the host's throwaway home inside it), the scripted model,
/// and the script that starts reve-mcp.
pub struct Run<'a> {
    pub dir: &'a Path,
    pub model_url: &'a str,
    pub reve: &'a Path,
    pub prompt: &'a str,
}

impl Host {
    /// As its users know it, as `KNOWN_HOSTS` names it.
    pub fn name(self) -> &'static str {
        match self {
            Host::ClaudeCode => "Claude Code",
            Host::Codex => "Codex",
            Host::GeminiCli => "Gemini CLI",
            Host::QwenCode => "Qwen Code",
            Host::Opencode => "opencode",
        }
    }

    /// The pinned release, from [`PACKAGES`].
    pub fn version(self) -> &'static str {
        let package = PACKAGES[self as usize];
        package.rsplit('@').next().unwrap_or_default()
    }

    /// A short name for its folder.
    pub fn slug(self) -> &'static str {
        match self {
            Host::ClaudeCode => "claude-code",
            Host::Codex => "codex",
            Host::GeminiCli => "gemini-cli",
            Host::QwenCode => "qwen-code",
            Host::Opencode => "opencode",
        }
    }

    /// What runs it: Claude Code and opencode are native executables (their platform package's,
    /// so no install script is needed), the others Node programs run on Node 22.
    fn program(self, tools: &NodeTools) -> Result<(PathBuf, Option<PathBuf>)> {
        let (path, on_node) = match self {
            Host::ClaudeCode => ("@anthropic-ai/claude-code-linux-x64/claude", false),
            Host::Codex => ("@openai/codex/bin/codex.js", true),
            Host::GeminiCli => ("@google/gemini-cli/bundle/gemini.js", true),
            Host::QwenCode => ("@qwen-code/qwen-code/cli-entry.js", true),
            // The build for every x86-64 processor, not only those with AVX2.
            Host::Opencode => ("opencode-linux-x64-baseline/bin/opencode", false),
        };
        let path = tools.module(path);
        if !path.exists() {
            bail!(
                "{} {} is not installed where expected ({}): npm did not install {} for this platform",
                self.name(),
                self.version(),
                path.display(),
                PACKAGES[self as usize]
            );
        }
        Ok(if on_node {
            (tools.node(), Some(path))
        } else {
            (path, None)
        })
    }

    /// The command that runs the host once, headless, on `run`'s prompt; its settings written
    /// into `run.dir`.
    pub fn command(self, tools: &NodeTools, run: &Run) -> Result<Command> {
        let home = run.dir.join("home");
        let work = run.dir.join("work");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(&work)?;
        let (program, script) = self.program(tools)?;
        let mut command = Command::new(program);
        command.args(script);
        command.current_dir(&work);
        command.env_clear();
        let node_bin = tools.node().parent().map(Path::to_path_buf);
        let path = node_bin
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ))
            .collect::<Vec<_>>();
        command.env("PATH", std::env::join_paths(path)?);
        command.env("HOME", &home);
        command.env("TMPDIR", run.dir);
        command.env("LANG", "C.UTF-8");
        command.env("TERM", "dumb");
        let reve = run.reve.to_string_lossy().into_owned();
        match self {
            Host::ClaudeCode => {
                let config = run.dir.join("mcp.json");
                write_json(
                    &config,
                    &json!({ "mcpServers": { "reve": { "type": "stdio", "command": reve, "args": [] } } }),
                )?;
                command.envs([
                    ("ANTHROPIC_BASE_URL", run.model_url),
                    ("ANTHROPIC_API_KEY", "sk-ant-scripted"),
                    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                    ("DISABLE_TELEMETRY", "1"),
                    ("DISABLE_ERROR_REPORTING", "1"),
                    ("DISABLE_AUTOUPDATER", "1"),
                    ("MCP_TIMEOUT", "30000"),
                    ("MCP_TOOL_TIMEOUT", "120000"),
                ]);
                command
                    .args(["-p", run.prompt, "--model", "claude-sonnet-4-5"])
                    .arg("--mcp-config")
                    .arg(&config)
                    .args(["--strict-mcp-config", "--setting-sources", ""])
                    .args([
                        "--allowedTools",
                        "mcp__reve__edit_image mcp__reve__get_edit ToolSearch",
                    ])
                    .args(["--permission-mode", "dontAsk", "--output-format", "json"])
                    .arg("--no-session-persistence");
            }
            Host::Codex => {
                let codex_home = home.join(".codex");
                std::fs::create_dir_all(&codex_home)?;
                std::fs::write(
                    codex_home.join("config.toml"),
                    codex_config(run.model_url, &reve),
                )?;
                command.env("CODEX_HOME", &codex_home);
                command
                    .args(["exec", "--strict-config", "--json", "--skip-git-repo-check"])
                    .args(["--ephemeral", run.prompt]);
            }
            Host::GeminiCli => {
                write_json(
                    &home.join(".gemini/settings.json"),
                    &json!({
                        "security": { "auth": { "selectedType": "gemini-api-key" },
                                      "folderTrust": { "enabled": false } },
                        "privacy": { "usageStatisticsEnabled": false },
                        "telemetry": { "enabled": false, "logPrompts": false },
                        "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
                        "ide": { "enabled": false },
                        "mcpServers": { "reve": { "command": reve, "args": [], "timeout": 120000, "trust": true } },
                    }),
                )?;
                command.envs([
                    ("GEMINI_API_KEY", "scripted"),
                    ("GOOGLE_GEMINI_BASE_URL", run.model_url),
                    ("GEMINI_CLI_NO_RELAUNCH", "true"),
                    ("NO_BROWSER", "true"),
                ]);
                command
                    .args([
                        "--approval-mode",
                        "yolo",
                        "--allowed-mcp-server-names",
                        "reve",
                    ])
                    .args(["-o", "json", "-p", run.prompt]);
            }
            Host::QwenCode => {
                write_json(
                    &home.join(".qwen/settings.json"),
                    &json!({
                        "security": { "auth": { "selectedType": "openai" }, "folderTrust": { "enabled": false } },
                        "model": { "name": "gpt-4o" },
                        "general": { "enableAutoUpdate": false, "preventSystemSleep": false },
                        "privacy": { "usageStatisticsEnabled": false },
                        "telemetry": { "enabled": false },
                        "mcpServers": { "reve": { "command": reve, "args": [], "timeout": 120000, "trust": true } },
                    }),
                )?;
                command.envs([
                    ("OPENAI_BASE_URL", format!("{}/v1", run.model_url).as_str()),
                    ("OPENAI_API_KEY", "sk-scripted"),
                    // A model id Qwen Code passes pictures to.
                    ("OPENAI_MODEL", "gpt-4o"),
                    ("QWEN_CODE_SUPPRESS_YOLO_WARNING", "1"),
                ]);
                command
                    .args(["--auth-type", "openai", "--approval-mode", "yolo"])
                    .args(["--output-format", "json", "-p", run.prompt]);
            }
            Host::Opencode => {
                let xdg = run.dir.join("xdg");
                // opencode installs its plugin package into its configuration folder unless the
                // folder already lists it as installed: a registry download nothing here needs.
                let config_dir = xdg.join("config/opencode");
                std::fs::create_dir_all(config_dir.join("node_modules"))?;
                let plugin = json!({ "@opencode-ai/plugin": Host::Opencode.version() });
                write_json(
                    &config_dir.join("package.json"),
                    &json!({ "dependencies": plugin }),
                )?;
                write_json(
                    &config_dir.join("package-lock.json"),
                    &json!({ "lockfileVersion": 3, "packages": { "": { "dependencies": plugin } } }),
                )?;
                let config = run.dir.join("opencode.json");
                write_json(
                    &config,
                    &json!({
                        "model": "scripted/model", "small_model": "scripted/model",
                        "autoupdate": false, "share": "disabled", "enabled_providers": ["scripted"],
                        "provider": { "scripted": {
                            "npm": "@ai-sdk/openai-compatible", "name": "Scripted model",
                            "options": { "baseURL": format!("{}/v1", run.model_url), "apiKey": "scripted" },
                            "models": { "model": {
                                "name": "Scripted", "attachment": true, "tool_call": true, "reasoning": false,
                                "modalities": { "input": ["text", "image"], "output": ["text"] },
                                "limit": { "context": 128000, "output": 4096 } } } } },
                        "mcp": { "reve": { "type": "local", "command": [reve], "timeout": 120000, "enabled": true } },
                        "permission": { "reve_edit_image": "allow", "reve_get_edit": "allow" },
                    }),
                )?;
                command.env("OPENCODE_CONFIG", &config);
                for (name, dir) in [
                    ("XDG_CONFIG_HOME", "config"),
                    ("XDG_DATA_HOME", "data"),
                    ("XDG_CACHE_HOME", "cache"),
                    ("XDG_STATE_HOME", "state"),
                ] {
                    command.env(name, xdg.join(dir));
                }
                for flag in [
                    "OPENCODE_DISABLE_AUTOUPDATE",
                    "OPENCODE_DISABLE_MODELS_FETCH",
                    "OPENCODE_DISABLE_LSP_DOWNLOAD",
                    "OPENCODE_DISABLE_DEFAULT_PLUGINS",
                    "OPENCODE_PURE",
                    "OPENCODE_DISABLE_CLAUDE_CODE",
                    "OPENCODE_DISABLE_EXTERNAL_SKILLS",
                    "OPENCODE_DISABLE_AUTOCOMPACT",
                    "OPENCODE_DISABLE_PROJECT_CONFIG",
                ] {
                    command.env(flag, "1");
                }
                command
                    .args(["run", "--format", "json", "--title", "reve"])
                    .arg(run.prompt);
            }
        }
        Ok(command)
    }
}

/// Codex's settings: the scripted model as a Responses provider, reve as an MCP server whose
/// tools are approved, and everything that would reach the network off (without
/// `features.plugins = false` it lists a remote plugin repository with git).
fn codex_config(model_url: &str, reve: &str) -> String {
    format!(
        r#"model = "gpt-5.5"
model_provider = "scripted"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false
model_reasoning_effort = "low"
web_search = "disabled"

[model_providers.scripted]
name = "scripted"
base_url = "{model_url}/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false
tool_suggest = false
shell_snapshot = false
in_app_updates = false
api_key_model_discovery = false
skill_mcp_dependency_install = false
image_generation = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
log_user_prompt = false

[history]
persistence = "none"

[mcp_servers.reve]
command = {reve:?}
args = []
default_tools_approval_mode = "approve"
startup_timeout_sec = 20
tool_timeout_sec = 120
"#
    )
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?)?;
    Ok(())
}
