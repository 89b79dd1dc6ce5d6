//! The accept loop, where a hostile peer is stopped before it is served, and the signals that
//! end it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{HttpOptions, MAX_HEADER_BYTES};

/// What a connection is allowed before it has sent anything worth serving.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    max_connections: usize,
    idle_timeout: Duration,
}

impl From<&HttpOptions> for ConnectionLimits {
    fn from(options: &HttpOptions) -> Self {
        Self {
            max_connections: options.max_connections,
            idle_timeout: options.idle_timeout,
        }
    }
}

/// How often, at most, a refused connection is logged: a flood must not flood the log too.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until `stop` fires and serves each with hyper's HTTP/1 server under
/// `limits`, returning the handle that closes the connections still open. A connection over the
/// cap is closed at once, so it neither waits in the kernel's backlog nor takes a descriptor.
pub(super) async fn accept_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> GracefulShutdown {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let connections = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head: on a new connection and
        // between requests on a kept-alive one. It is the header-read and the idle timeout.
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return connections,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of descriptors (EMFILE) or a connection reset before it was accepted:
                // back off briefly instead of spinning.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                last_refusal_log = Some(tokio::time::Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "refusing connections: the connection limit is reached"
                );
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _open = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM (what `docker stop`, systemd and
/// Kubernetes send), registered up front so a signal that arrives early is
/// not lost.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub(super) async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
