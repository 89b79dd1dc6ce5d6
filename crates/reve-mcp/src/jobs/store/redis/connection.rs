//! Reaching Redis: its URL, password and certificates, one multiplexed connection per
//! process, and what its errors mean for a caller.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::redis::IntoConnectionInfo as _;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret as _, SecretString};

use super::super::{DEFAULT_LEASE, StoreError, StoreFuture};

/// How long a command may take before the call that needs it fails: Redis on a local network
/// answers in well under a millisecond, so seconds mean it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a command that met a dropped connection waits for the manager to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The largest picture kept: previews are bounded far below this by the preview budget, so
/// this only guards Redis's memory against a misconfigured budget.
pub const MAX_PICTURE_BYTES: usize = 4 * 1024 * 1024;

/// How long kept pictures stay: they are previews, shown again for a while; the full result is
/// the saved file.
pub const PICTURE_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What the Redis store is opened with besides its URL.
#[derive(Clone)]
pub struct RedisOptions {
    /// A password that overrides the URL's, so it need not be written in the URL.
    pub password: Option<SecretString>,
    /// The certificates (PEM) that a `rediss://` Redis's certificate must chain to, in place of
    /// the system's roots: a team's private CA, trusted for Redis without being trusted for the
    /// API as well (as `SSL_CERT_FILE` would).
    pub ca_file: Option<PathBuf>,
    pub lease: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            password: None,
            ca_file: None,
            lease: DEFAULT_LEASE,
        }
    }
}

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    /// The address and database, never the password.
    pub(super) name: String,
    pub(super) lease: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT/DB` or `rediss://`), connected on first use.
    pub fn new(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let invalid = |reason: String| StoreError::Other {
            path: "given by --store (REVE_STORE)".to_owned(),
            reason,
        };
        let mut info = url.into_connection_info().map_err(|error| {
            invalid(format!(
                "it is not a redis:// or rediss:// URL ({})",
                error.category()
            ))
        })?;
        if let Some(password) = &options.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), ::redis::ConnectionAddr::TcpTls { .. });
        let name = format!(
            "Redis at {} (db {}, {})",
            info.addr(),
            info.redis_settings().db(),
            match tls {
                true => "TLS",
                false => "plain TCP",
            }
        );
        let client = match &options.ca_file {
            None => ::redis::Client::open(info),
            Some(ca_file) if tls => {
                let root_cert = Some(read_certificates(ca_file)?);
                ::redis::Client::build_with_tls(
                    info,
                    ::redis::TlsCertificates {
                        client_tls: None,
                        root_cert,
                    },
                )
            }
            Some(_) => {
                return Err(invalid(
                    "--redis-ca-file (REVE_REDIS_CA_FILE) is for a Redis reached over TLS: \
                     write its URL as rediss://"
                        .to_owned(),
                ));
            }
        }
        .map_err(|error| invalid(error.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // Reconnects happen in the background; a call never waits through them.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|error| invalid(error.to_string()))?;
        Ok(RedisStore {
            connection,
            name,
            lease: options.lease,
        })
    }

    fn error(&self, error: &::redis::RedisError) -> StoreError {
        // TLS reports a certificate it cannot trust (or a peer that is not TLS) as invalid
        // data: a setting to fix, which waiting does not mend.
        let refused_handshake =
            io_cause(error).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if !refused_handshake
            && (error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal())
        {
            StoreError::Unreachable {
                store: self.name.clone(),
                reason: error.to_string(),
            }
        } else {
            StoreError::Other {
                path: self.name.clone(),
                reason: error.to_string(),
            }
        }
    }

    /// Runs `work` with a handle on the shared connection, naming the store in its error.
    ///
    /// The first command on a connection Redis dropped (it restarted, say) fails while the
    /// manager reconnects: that one is tried once more on the new connection, so a Redis back
    /// from an outage is not reported as still away. Every operation tolerates running twice.
    pub(super) fn with<'a, T: Send + 'a, F>(
        &'a self,
        work: impl Fn(ConnectionManager) -> F + Send + Sync + 'a,
    ) -> StoreFuture<'a, T>
    where
        F: Future<Output = ::redis::RedisResult<T>> + Send + 'a,
    {
        Box::pin(async move {
            match work(self.connection.clone()).await {
                Err(error) if error.is_connection_dropped() => {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    work(self.connection.clone()).await
                }
                done => done,
            }
            .map_err(|error| self.error(&error))
        })
    }
}

/// The PEM certificates of `path`, refused before any connection if there are none to trust.
fn read_certificates(path: &Path) -> Result<Vec<u8>, StoreError> {
    use rustls_pki_types::pem::PemObject as _;
    let refuse = |reason: String| StoreError::Other {
        path: format!(
            "CA file {} (--redis-ca-file, REVE_REDIS_CA_FILE)",
            path.display()
        ),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| refuse(error.to_string()))?;
    let mut certificates = rustls_pki_types::CertificateDer::pem_slice_iter(&pem);
    match certificates.try_fold(0, |count, certificate| certificate.map(|_| count + 1)) {
        Ok(0) => Err(refuse(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        )),
        Ok(_) => Ok(pem),
        Err(error) => Err(refuse(format!("it is not PEM: {error}"))),
    }
}

/// The I/O error under a Redis error, if there is one: the crate keeps it behind an `Arc`.
fn io_cause(error: &::redis::RedisError) -> Option<&std::io::Error> {
    let source = std::error::Error::source(error)?;
    source.downcast_ref::<std::io::Error>().or_else(|| {
        source
            .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?
            .downcast_ref()
    })
}
