//! Open-file descriptors: raised to what the system allows, and shared out so that an edit
//! never runs out of them after it has been paid for.
//!
//! An edit holds a few descriptors at once (the staged result and its writer, the connections
//! to the API and to its CDN, the file reopened for saving and for the preview), most of them
//! after the provider has started, and billed, the generation. Running out then would lose a
//! paid result. So the edits in flight are capped (`--max-edits-in-flight`), each is counted at
//! [`PER_EDIT`], and the HTTP server's connections get only what is left.

/// Descriptors one edit may hold at once, rounded up.
pub const PER_EDIT: u64 = 8;

/// Descriptors kept for everything else: standard streams, the runtime, the listener, logs.
pub const RESERVED: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (systemd's default soft limit of 1024 is
/// reached by a few hundred calls in flight) and returns the soft limit now in force.
pub fn raise_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
            tracing::warn!(%error, limit, "could not raise the open-file limit");
            limit
        }
    }
}

/// The edits in flight that `limit` descriptors allow beside [`RESERVED`] and
/// `connections`: `wanted`, or fewer with a warning.
pub fn edits_within(limit: u64, wanted: usize, connections: u64) -> usize {
    let room = limit.saturating_sub(RESERVED + connections) / PER_EDIT;
    let edits = usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(wanted)
        .max(1);
    if edits < wanted {
        tracing::warn!(
            limit,
            wanted,
            edits,
            "the open-file limit allows fewer edits in flight than asked for; raise `ulimit -n` \
             (or LimitNOFILE= under systemd)"
        );
    }
    edits
}

/// The HTTP connections that `limit` descriptors allow beside [`RESERVED`] and `edits` edits in
/// flight: `wanted`, or fewer with a warning.
pub fn connections_within(limit: u64, wanted: usize, edits: usize) -> usize {
    let room = limit.saturating_sub(RESERVED + edits as u64 * PER_EDIT);
    let connections = usize::try_from(room).unwrap_or(usize::MAX).min(wanted);
    if connections < wanted {
        tracing::warn!(
            limit,
            wanted,
            connections,
            "the open-file limit allows fewer HTTP connections than asked for; raise `ulimit -n` \
             (or LimitNOFILE= under systemd)"
        );
    }
    connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_and_connections_share_the_limit() {
        assert_eq!(edits_within(1024, 32, 0), 32);
        assert_eq!(edits_within(256, 32, 0), 24);
        assert_eq!(edits_within(64, 32, 0), 1);
        assert_eq!(connections_within(1024, 4096, 32), 1024 - 64 - 32 * 8);
        assert_eq!(connections_within(1 << 20, 4096, 32), 4096);
        assert_eq!(connections_within(100, 4096, 32), 0);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_limit();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!((limit, soft), (hard, hard));
    }
}
