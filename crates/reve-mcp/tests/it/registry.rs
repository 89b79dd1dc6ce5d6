//! `server.json`, the MCP registry's entry for reve (and the bundle's manifest), kept in step with what it describes: the
//! workspace's version and repository, the npm, PyPI and cargo packages and the desktop bundles, the tools and prompts
//! the server lists, and the variables `docs/settings.md` documents. The registry's own rules that its schema and
//! publisher check are checked here too, since CI cannot reach the registry: the name's form, the lengths, pinned
//! versions, each registry's base URL, the npm package's `mcpName`, and the `mcp-name:` line it looks for in the PyPI
//! package's description and in the crate's README on crates.io (as visible text: crates.io drops HTML comments).

use std::path::PathBuf;

use reve_tests::mcp::TestClient;
use serde_json::Value;

use crate::support::{World, start};

fn workspace_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_file(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[tokio::test]
async fn server_json_and_the_bundle_match_the_workspace_the_server_and_the_readme() {
    let entry: Value = serde_json::from_str(&read("server.json")).unwrap();
    assert_eq!(
        entry["$schema"],
        "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    );
    let name = entry["name"].as_str().unwrap();
    let owner = env!("CARGO_PKG_REPOSITORY")
        .strip_prefix("https://github.com/")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    assert_eq!(name, format!("io.github.{owner}/reve"));
    let description = entry["description"].as_str().unwrap();
    assert!(
        (1..=100).contains(&description.chars().count()),
        "the registry takes 1 to 100 characters: {description:?}"
    );
    assert!(entry["title"].as_str().unwrap().chars().count() <= 100);
    assert_eq!(entry["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(entry["repository"]["url"], env!("CARGO_PKG_REPOSITORY"));
    assert_eq!(entry["repository"]["source"], "github");

    // npm, PyPI and crates.io run the same binary on stdio with the same settings; the desktop
    // bundles (one per system, their hashes filled in by the release workflow) bring their own.
    let packages = entry["packages"].as_array().unwrap();
    let kinds: Vec<&str> = packages
        .iter()
        .map(|package| package["registryType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "npm", "pypi", "cargo", "mcpb", "mcpb", "mcpb", "mcpb", "mcpb"
        ]
    );
    let [npm, pypi, cargo, bundles @ ..] = packages.as_slice() else {
        unreachable!()
    };
    let launcher: Value =
        serde_json::from_str(&read("packaging/npm/reve-mcp/package.json")).unwrap();
    assert_eq!(npm["identifier"], launcher["name"]);
    assert_eq!(npm["registryBaseUrl"], "https://registry.npmjs.org");
    assert_eq!(npm["runtimeHint"], "npx");
    assert_eq!(
        launcher["mcpName"], name,
        "the registry checks the npm package's mcpName"
    );
    let pyproject = read("packaging/pypi/pyproject.toml");
    assert!(pyproject.contains(&format!(
        "name = \"{}\"",
        pypi["identifier"].as_str().unwrap()
    )));
    assert_eq!(pypi["registryBaseUrl"], "https://pypi.org");
    assert_eq!(pypi["runtimeHint"], "uvx");
    assert!(
        read("packaging/pypi/README.md")
            .lines()
            .any(|line| line.trim() == format!("mcp-name: {name}")),
        "the registry looks for `mcp-name: {name}` in the PyPI package's description"
    );
    assert_eq!(cargo["registryBaseUrl"], "https://crates.io");
    assert_eq!(cargo["identifier"], env!("CARGO_PKG_NAME"));
    assert!(
        cargo.get("runtimeHint").is_none(),
        "a cargo package runs by name"
    );
    for package in [npm, pypi, cargo] {
        assert_eq!(package["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(package["transport"], serde_json::json!({ "type": "stdio" }));
        assert_eq!(
            package["environmentVariables"], cargo["environmentVariables"],
            "{}",
            package["registryType"]
        );
    }
    let release_page = format!(
        "{}/releases/download/v{}/",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION")
    );
    for bundle in bundles {
        let url = bundle["identifier"].as_str().unwrap();
        assert!(
            url.starts_with(&release_page) && url.ends_with(".mcpb"),
            "{url}"
        );
        assert!(
            url.contains("mcp"),
            "the registry wants \"mcp\" in a bundle's URL"
        );
        // The registry takes a bundle's version from its URL (and recent versions of it refuse
        // the field): the release tag in the URL is the workspace's version.
        assert!(bundle.get("version").is_none(), "{bundle}");
        assert_eq!(bundle["transport"], serde_json::json!({ "type": "stdio" }));
        let sha = bundle["fileSha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert!(bundle.get("registryBaseUrl").is_none());
    }

    // Every variable is one the settings reference documents; the key alone is secret.
    let readme = read("docs/settings.md");
    let variables = cargo["environmentVariables"].as_array().unwrap();
    for variable in variables {
        let variable_name = variable["name"].as_str().unwrap();
        assert!(
            readme
                .lines()
                .any(|line| line.starts_with('|') && line.contains(&format!("`{variable_name}`"))),
            "{variable_name} is not in docs/settings.md's table"
        );
        assert_eq!(
            variable["isSecret"].as_bool().unwrap_or(false),
            variable_name == "AIML_API_KEY",
            "{variable_name}"
        );
        assert!(
            variable["description"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
        );
    }
    assert_eq!(variables[0]["name"], "AIML_API_KEY");
    assert_eq!(variables[0]["isRequired"], true);

    // The crate's README, the one crates.io shows, carries the line the registry looks for.
    let crate_readme = read("crates/reve-mcp/README.md");
    assert!(
        crate_readme
            .lines()
            .any(|line| line.trim().trim_matches('`') == format!("mcp-name: {name}")),
        "crates/reve-mcp/README.md lacks a visible `mcp-name: {name}` line"
    );

    // The tools and prompts it names are the ones the server lists.
    let world = World::new().await;
    let session = start(&world.env(&[]), TestClient::default()).await;
    let tools: Vec<String> = session
        .client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect();
    let prompts: Vec<String> = session
        .client
        .peer()
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|prompt| prompt.name)
        .collect();
    session.stop().await;
    let listed = &entry["_meta"]["io.modelcontextprotocol.registry/publisher-provided"];
    assert_eq!(listed["tools"], serde_json::json!(tools));
    assert_eq!(listed["prompts"], serde_json::json!(prompts));

    // The Claude Desktop bundle's manifest says the same (`cargo xtask bundle` checks it with
    // the official tool, and refuses a version other than the binary's).
    let manifest: Value = serde_json::from_str(&read("bundle/manifest.json")).unwrap();
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["description"], entry["description"]);
    let bundled: Vec<&str> = manifest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(bundled, tools);
    assert_eq!(manifest["user_config"]["api_key"]["sensitive"], true);
    assert_eq!(
        manifest["server"]["mcp_config"]["env"]["AIML_API_KEY"],
        "${user_config.api_key}"
    );
}
