//! The real services a scaled-out deployment runs beside reve-mcp, started on loopback from
//! the files in `deploy/`: Redis (Debian's `redis-server`) and HAProxy (Debian's `haproxy`).
//! A missing binary fails the test with the command that installs it; nothing is skipped.
//! Each process is killed when its handle is dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a service may take to start answering.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// The workspace's `deploy/` folder: the files docs/http.md's deployment section shows.
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

/// How a Redis on a network is reached: over TLS, signed by a private CA, and with a password.
#[derive(Debug, Clone, Default)]
pub struct RedisAccess {
    pub password: Option<String>,
    pub tls: bool,
}

/// A `redis-server` on a loopback port, configured by `deploy/redis.conf`, keeping its
/// append-only file in its own folder so that a restart finds its data.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    access: RedisAccess,
}

impl Redis {
    /// Starts Redis with its data in `dir`, and waits until it answers.
    pub async fn start(dir: &Path) -> Redis {
        Redis::start_with(dir, RedisAccess::default()).await
    }

    /// Starts Redis reached as `access` says; with TLS, its certificate and the CA that signed
    /// it are written in `dir/tls` first.
    pub async fn start_with(dir: &Path, access: RedisAccess) -> Redis {
        std::fs::create_dir_all(dir).expect("Redis's folder");
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            access,
        };
        if redis.access.tls {
            write_certificates(&redis.dir.join("tls"));
        }
        redis.run().await;
        redis
    }

    async fn run(&mut self) {
        let mut command = Command::new(program("redis-server", "redis-server"));
        command.arg(deploy_dir().join("redis.conf"));
        let port = self.port.to_string();
        match self.access.tls {
            false => command.args(["--port", &port]),
            true => {
                let tls = self.dir.join("tls");
                command
                    .args([
                        "--port",
                        "0",
                        "--tls-port",
                        &port,
                        "--tls-auth-clients",
                        "no",
                    ])
                    .arg("--tls-cert-file")
                    .arg(tls.join("server.pem"))
                    .arg("--tls-key-file")
                    .arg(tls.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(self.ca_file())
            }
        };
        if let Some(password) = &self.access.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .arg("--dir")
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

    /// The URL replicas are given: `rediss://` with TLS, and never the password.
    pub fn url(&self) -> String {
        let scheme = if self.access.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The URL with the password written in it, as some deployments give it.
    pub fn url_with_password(&self) -> String {
        match &self.access.password {
            Some(password) => self.url().replacen("://", &format!("://:{password}@"), 1),
            None => self.url(),
        }
    }

    /// The private CA's certificate (PEM), which clients must trust to reach a TLS Redis.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }

    /// Whether Redis answers PING now, reached as its clients reach it.
    pub async fn answers(&self) -> bool {
        let client = match self.access.tls {
            false => redis::Client::open(self.url_with_password()),
            true => redis::Client::build_with_tls(
                self.url_with_password(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(self.ca_file()).expect("the CA's certificate")),
                },
            ),
        }
        .expect("a valid Redis URL");
        let patience = Duration::from_secs(1);
        let Ok(Ok(mut connection)) =
            tokio::time::timeout(patience, client.get_multiplexed_async_connection()).await
        else {
            return false;
        };
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(patience, ping).await, Ok(Ok(pong)) if pong == "PONG")
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

/// A CA and a server certificate it signs for `127.0.0.1` and `localhost`, written as
/// `ca.pem`, `server.pem` and `server.key` in `dir`: a private CA, as a team's Redis has.
fn write_certificates(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).expect("the certificates' folder");
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "reve tests private CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca.self_signed(&ca_key).expect("the CA signs itself");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters");
    server
        .distinguished_name
        .push(DnType::CommonName, "redis on loopback");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_certificate = server
        .signed_by(&server_key, &issuer)
        .expect("the CA signs the server's certificate");
    for (name, pem) in [
        ("ca.pem", ca_certificate.pem()),
        ("server.pem", server_certificate.pem()),
        ("server.key", server_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).expect("a certificate file");
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
