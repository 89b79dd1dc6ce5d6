//! What the end-to-end tests share: the binary under test, a world of folders beside a fresh
//! fake API, and listings of what a run left on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reve_tests::FakeApi;
use reve_tests::mcp::{McpSession, TestClient};
use tempfile::TempDir;

/// The keys of a successful call's structured result, in order: what the
/// tool declares and `reve-mcp edit --json` prints after `input`.
pub const RESULT_KEYS: [&str; 21] = [
    "status",
    "job_id",
    "model",
    "pictures_given",
    "path",
    "url",
    "mime_type",
    "width",
    "height",
    "bytes",
    "request_id",
    "inference_id",
    "content_violation",
    "usage",
    "reused_from",
    "parents",
    "result_uri",
    "preview_uri",
    "input_image",
    "input_images",
    "message",
];

/// The `reve-mcp` executable cargo built for these tests.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_reve-mcp"))
}

/// Starts the server over stdio with exactly `env` (plus `PATH` and `HOME`).
pub async fn start(env: &BTreeMap<String, String>, client: TestClient) -> McpSession {
    McpSession::start(binary(), env, client).await
}

/// A command for the binary with exactly `env` (plus `PATH` and `HOME`).
pub fn command(env: &BTreeMap<String, String>) -> tokio::process::Command {
    tokio::process::Command::from(reve_tests::mcp::child_command(binary(), env))
}

/// A fake API and, in one temporary folder, an input folder, an output folder and a folder
/// beside them that the server must not touch (`outside`).
pub struct World {
    pub fake: FakeApi,
    pub inputs: PathBuf,
    pub outputs: PathBuf,
    root: TempDir,
}

impl World {
    pub async fn new() -> Self {
        Self::with_fake(FakeApi::start().await)
    }

    pub fn with_fake(fake: FakeApi) -> Self {
        let root = TempDir::new().unwrap();
        std::fs::create_dir(root.path().join("outside")).unwrap();
        let folder = |name: &str| {
            let path = root.path().join(name);
            std::fs::create_dir(&path).unwrap();
            path
        };
        Self {
            fake,
            inputs: folder("inputs"),
            outputs: folder("outputs"),
            root,
        }
    }

    /// The server's environment: the fake's key and URL, the output folder, the job store in
    /// the world's `state` folder, no retries (each fault is seen once), no reuse of identical
    /// calls (each call is a generation the test counts; the jobs tests turn it back on), and
    /// `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("AIML_API_KEY".into(), self.fake.api_key().into()),
            ("AIML_API_BASE_URL".into(), self.fake.base_url().into()),
            ("REVE_OUTPUT_DIR".into(), path_string(&self.outputs)),
            ("REVE_STATE_DIR".into(), path_string(&self.state_dir())),
            ("REVE_MAX_RETRIES".into(), "0".into()),
            ("REVE_REUSE_WINDOW_SECS".into(), "0".into()),
        ]);
        env.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        env
    }

    /// Where the server keeps its job store.
    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// A path under the world's folder, such as `inputs/cat.png`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// Writes `bytes` to `relative` (see [`World::path`]).
    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(relative);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes `bytes` to `name` in the input folder.
    pub fn input_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.inputs.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Every file under the output folder, hidden ones included.
    pub fn saved_files(&self) -> Vec<PathBuf> {
        files_under(&self.outputs)
    }
}

/// Every file under `dir`, hidden ones included, without following symlinked folders; sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    reve_tests::entries_under(dir)
        .into_iter()
        .filter(|path| !path.symlink_metadata().unwrap().is_dir())
        .collect()
}

pub fn path_string(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}
