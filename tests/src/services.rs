//! The real services a scaled-out deployment runs beside reve-mcp, started on loopback from
//! the files in `deploy/`: Redis (Debian's `redis-server`) and HAProxy (Debian's `haproxy`).
//! A missing binary fails the test with the command that installs it; nothing is skipped.
//! Each process is killed when its handle is dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a service may take to start answering.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// The workspace's `deploy/` folder: the files the README's deployment section shows.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .join("deploy")
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The path of `name` on `PATH` (or in Debian's `/usr/sbin`), or a panic saying how to get it.
///
/// # Panics
/// If the program is not installed.
pub fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed; install it with: sudo apt-get install -y {package}")
        })
}

/// A `redis-server` on a loopback port, configured by `deploy/redis.conf`, keeping its
/// append-only file in its own folder so that a restart finds its data.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts Redis with its data in `dir`, and waits until it answers.
    pub async fn start(dir: &Path) -> Redis {
        std::fs::create_dir_all(dir).expect("Redis's folder");
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        redis.run().await;
        redis
    }

    async fn run(&mut self) {
        let child = Command::new(program("redis-server", "redis-server"))
            .arg(deploy_dir().join("redis.conf"))
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        while !self.answers().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer PING within {START_PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL replicas are given.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Whether Redis answers PING now.
    pub async fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply))
                .await
                .is_ok_and(|read| read.is_ok())
            && &reply == b"+PONG\r\n"
    }

    /// Stops Redis as its service manager does (SIGTERM: the append-only file is flushed).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            tokio::time::timeout(START_PATIENCE, child.wait())
                .await
                .expect("redis-server exits on SIGTERM")
                .expect("redis-server's exit status");
        }
    }

    /// Starts Redis again on the same port, from the same folder.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }
}

/// HAProxy running `deploy/haproxy.cfg` in front of `replicas`.
pub struct LoadBalancer {
    _child: Child,
    pub addr: SocketAddr,
}

impl LoadBalancer {
    /// Starts HAProxy (it takes three replicas, as the file does) and waits until it routes to
    /// all of them: each has passed its health check.
    pub async fn start(replicas: [SocketAddr; 3]) -> LoadBalancer {
        let haproxy = program("haproxy", "haproxy");
        let config = deploy_dir().join("haproxy.cfg");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(&haproxy);
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("REVE_LB_BIND", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (index, replica) in replicas.iter().enumerate() {
            command.env(format!("REVE_REPLICA_{}", index + 1), replica.to_string());
        }
        let child = command.spawn().expect("haproxy starts");
        let balancer = LoadBalancer {
            _child: child,
            addr,
        };
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < replicas.len() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy did not route to all three replicas within {START_PATIENCE:?} (saw {seen:?})"
            );
            if let Ok(response) = client.get(balancer.url("/healthz")).send().await
                && response.status().is_success()
                && let Some(replica) = response.headers().get("x-reve-replica")
            {
                seen.insert(replica.to_str().unwrap_or_default().to_owned());
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        balancer
    }

    /// `path` on the load balancer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A replica as `deploy/reve-mcp@.service` runs it: its environment, and the `serve` flags
/// that follow `--http 127.0.0.1:%i`.
pub struct ReplicaUnit {
    pub env: Vec<(String, String)>,
    pub flags: Vec<String>,
}

impl ReplicaUnit {
    /// Reads the unit file.
    ///
    /// # Panics
    /// If the unit's `ExecStart=` no longer starts with `reve-mcp serve --http 127.0.0.1:%i`.
    pub fn read() -> ReplicaUnit {
        let unit = std::fs::read_to_string(deploy_dir().join("reve-mcp@.service"))
            .expect("deploy/reve-mcp@.service");
        let env = unit
            .lines()
            .filter_map(|line| line.strip_prefix("Environment="))
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let exec = unit
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart="))
            .expect("an ExecStart= line");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert!(
            words[0].ends_with("/reve-mcp") && words[1..4] == ["serve", "--http", "127.0.0.1:%i"],
            "the tests expect ExecStart=.../reve-mcp serve --http 127.0.0.1:%i ..., not {exec:?}"
        );
        ReplicaUnit {
            env,
            flags: words[4..].iter().map(|&word| word.to_owned()).collect(),
        }
    }
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "install it with: sudo apt-get install -y reve-no-such-package")]
    fn a_missing_program_fails_with_the_command_that_installs_it() {
        super::program("reve-no-such-program", "reve-no-such-package");
    }
}
