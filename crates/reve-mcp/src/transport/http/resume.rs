//! The events of each session's streams, kept for a while so that a client whose event stream
//! drops during a call, and that reconnects with `Last-Event-ID`, gets what it missed: the
//! call's answer above all (SEP-1699's resumption).
//!
//! rmcp keeps a short cache of each stream itself, but forgets a request's stream the moment
//! its answer is sent, which is the moment a client that dropped during an edit of tens of
//! seconds needs it. rmcp takes an [`EventStore`] instead; this one keeps the events in memory,
//! bounded in bytes, in events per stream and in time, since only this process's sessions can
//! resume here. A replay sends the events after the one named, then follows the stream as it
//! grows: to the call's answer for a request's stream, for as long as the client listens for
//! the session's own stream.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};
use tokio::sync::watch;

/// How long a stream is kept after its answer was sent: a client reconnects after the
/// `retry` hint of its priming event (3 s), or after its own backoff; minutes cover both.
const KEPT_AFTER_ANSWER: Duration = Duration::from_secs(5 * 60);

/// How long a stream that has not ended is kept without a new event: longer than any edit
/// waits in one call, and than a session lives idle.
const KEPT_WHILE_SILENT: Duration = Duration::from_secs(30 * 60);

/// The bytes (as JSON) all kept events may hold; past it the streams touched longest ago go
/// first, those already answered before those still running. An edit's answer carries a
/// preview of a few hundred kilobytes.
const MAX_KEPT_BYTES: usize = 64 * 1024 * 1024;

/// The events one stream keeps; past it its oldest go (progress reports, in practice).
const MAX_EVENTS_PER_STREAM: usize = 512;

/// How often, at most, expired streams are looked for (on the next event stored).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The resumable events of this process's sessions (see the module's documentation).
///
/// rmcp hands a replay only the `Last-Event-ID`, not the session asking, and every session's
/// streams are kept here together; so each stream is known by a random token that only its
/// events' ids carry: an id is a capability, which no client can guess for a stream it was not
/// sent (another session's results). An id from before a restart names nothing.
pub(super) struct ResumableEvents {
    streams: Mutex<Streams>,
    limits: Limits,
}

/// How much [`ResumableEvents`] keeps, and for how long.
#[derive(Debug, Clone, Copy)]
struct Limits {
    after_answer: Duration,
    while_silent: Duration,
    bytes: usize,
    events_per_stream: usize,
    sweep_every: Duration,
}

#[derive(Default)]
struct Streams {
    /// rmcp's name of each stream kept, to its token here.
    tokens: HashMap<String, Token>,
    kept: HashMap<Token, Kept>,
    bytes: usize,
    swept: Option<Instant>,
}

/// A stream's name in its events' ids: 128 random bits.
type Token = u128;

struct Kept {
    name: String,
    /// The index of `events[0]`; each event's id holds its index.
    first_index: u64,
    events: VecDeque<(ServerSseMessage, usize)>,
    /// When the request's answer was stored, and its index: nothing follows it.
    answered: Option<(Instant, u64)>,
    touched: Instant,
    /// The index the next event will get, for replays waiting for it.
    appended: watch::Sender<u64>,
}

impl Kept {
    fn next_index(&self) -> u64 {
        self.first_index + self.events.len() as u64
    }
}

impl ResumableEvents {
    pub(super) fn new() -> Self {
        Self::with_limits(Limits {
            after_answer: KEPT_AFTER_ANSWER,
            while_silent: KEPT_WHILE_SILENT,
            bytes: MAX_KEPT_BYTES,
            events_per_stream: MAX_EVENTS_PER_STREAM,
            sweep_every: SWEEP_EVERY,
        })
    }

    fn with_limits(limits: Limits) -> Self {
        Self {
            streams: Mutex::new(Streams::default()),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        // A panic elsewhere while holding it leaves the maps consistent enough to go on.
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event_id(token: Token, index: u64) -> EventId {
        format!("{token:032x}-{index}")
    }

    /// The stream token and index an id names.
    fn parse(id: &str) -> Option<(Token, u64)> {
        let (token, index) = id.split_once('-')?;
        if token.len() != 32 {
            return None;
        }
        Some((Token::from_str_radix(token, 16).ok()?, index.parse().ok()?))
    }

    fn store(&self, stream_name: &str, event: &ServerSseMessage) -> EventId {
        let now = Instant::now();
        let size = json_size(event);
        let answer = is_answer(stream_name, event);
        let mut streams = self.lock();
        let streams = &mut *streams;
        if streams
            .swept
            .is_none_or(|swept| now.duration_since(swept) >= self.limits.sweep_every)
        {
            streams.swept = Some(now);
            self.sweep(streams, now);
        }
        let token = match streams.tokens.get(stream_name) {
            Some(&token) => token,
            None => {
                let token = uuid::Uuid::new_v4().as_u128();
                streams.tokens.insert(stream_name.to_owned(), token);
                streams.kept.insert(
                    token,
                    Kept {
                        name: stream_name.to_owned(),
                        first_index: 0,
                        events: VecDeque::new(),
                        answered: None,
                        touched: now,
                        appended: watch::Sender::new(0),
                    },
                );
                token
            }
        };
        let kept = streams
            .kept
            .get_mut(&token)
            .expect("streams with a token are kept");
        let index = kept.next_index();
        let id = Self::event_id(token, index);
        let mut event = event.clone();
        event.event_id = Some(id.clone());
        kept.events.push_back((event, size));
        kept.touched = now;
        if answer && kept.answered.is_none() {
            kept.answered = Some((now, index));
        }
        streams.bytes += size;
        while kept.events.len() > self.limits.events_per_stream {
            let (_, dropped) = kept
                .events
                .pop_front()
                .expect("over the limit, so not empty");
            kept.first_index += 1;
            streams.bytes -= dropped;
        }
        kept.appended.send_replace(kept.next_index());
        self.keep_within_bytes(streams, token);
        id
    }

    /// Forgets streams answered longer ago than the limit, or silent longer than theirs.
    fn sweep(&self, streams: &mut Streams, now: Instant) {
        let expired: Vec<Token> = streams
            .kept
            .iter()
            .filter(|(_, kept)| match kept.answered {
                Some((at, _)) => now.duration_since(at) >= self.limits.after_answer,
                None => now.duration_since(kept.touched) >= self.limits.while_silent,
            })
            .map(|(&token, _)| token)
            .collect();
        for token in expired {
            forget(streams, token);
        }
    }

    /// Forgets whole streams, touched longest ago first and answered ones before running ones,
    /// until the events kept fit the byte limit; never `current`, which just grew.
    fn keep_within_bytes(&self, streams: &mut Streams, current: Token) {
        if streams.bytes <= self.limits.bytes {
            return;
        }
        let mut candidates: Vec<(bool, Instant, Token)> = streams
            .kept
            .iter()
            .filter(|&(&token, _)| token != current)
            .map(|(&token, kept)| (kept.answered.is_none(), kept.touched, token))
            .collect();
        candidates.sort_unstable();
        for (_, _, token) in candidates {
            if streams.bytes <= self.limits.bytes {
                break;
            }
            forget(streams, token);
        }
    }

    /// The events of a stream after `index`, then those stored later, until its answer; `None`
    /// when the stream is not (or no longer) kept.
    fn replay(self: &Arc<Self>, stream: Token, index: u64) -> Option<EventStream> {
        let appended = self.lock().kept.get(&stream)?.appended.subscribe();
        let state = Replay {
            events: Arc::clone(self),
            stream,
            next: index + 1,
            appended,
            done: false,
        };
        Some(Box::pin(futures::stream::unfold(state, Replay::next_event)))
    }
}

/// Where one replay stands.
struct Replay {
    events: Arc<ResumableEvents>,
    stream: Token,
    next: u64,
    appended: watch::Receiver<u64>,
    done: bool,
}

impl Replay {
    async fn next_event(mut self) -> Option<(ServerSseMessage, Replay)> {
        loop {
            if self.done {
                return None;
            }
            // Marked seen before looking, so an event stored after the look wakes the wait.
            self.appended.borrow_and_update();
            let found = {
                let streams = self.events.lock();
                let kept = streams.kept.get(&self.stream)?;
                // Events dropped for the per-stream limit are skipped.
                let next = self.next.max(kept.first_index);
                let answer = kept.answered.map(|(_, index)| index);
                // Nothing after the answer: the replay ends with it.
                if answer.is_some_and(|answer| next > answer) {
                    return None;
                }
                kept.events
                    .get((next - kept.first_index) as usize)
                    .map(|(event, _)| (event.clone(), next, answer == Some(next)))
            };
            match found {
                Some((event, index, is_answer)) => {
                    self.next = index + 1;
                    self.done = is_answer;
                    return Some((event, self));
                }
                // The stream was forgotten while waiting: its sender is gone.
                None => self.appended.changed().await.ok()?,
            }
        }
    }
}

fn forget(streams: &mut Streams, token: Token) {
    if let Some(kept) = streams.kept.remove(&token) {
        streams.tokens.remove(&kept.name);
        streams.bytes -= kept.events.iter().map(|(_, size)| size).sum::<usize>();
    }
}

/// Whether `event` ends its stream: the answer to the request a request's stream was opened
/// for. The session's own stream (rmcp names it `…:common`) carries no answer of its own.
fn is_answer(stream_name: &str, event: &ServerSseMessage) -> bool {
    !stream_name.ends_with(":common")
        && event.message.as_deref().is_some_and(|message| {
            matches!(
                message,
                ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_)
            )
        })
}

/// The size of an event's message as JSON, counted without building it.
fn json_size(event: &ServerSseMessage) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    if let Some(message) = &event.message {
        // Writing to a counter cannot fail; a message that cannot be written counts as empty.
        let _ = serde_json::to_writer(&mut count, message.as_ref());
    }
    // The id, the field names and the blank line.
    count.0 + 64
}

/// The handle rmcp holds.
#[derive(Clone)]
pub(super) struct SharedEvents(pub(super) Arc<ResumableEvents>);

#[async_trait::async_trait]
impl EventStore for SharedEvents {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        Ok(self.0.store(stream_id, event))
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let (stream, index) = ResumableEvents::parse(last_event_id).ok_or(UnknownEvent)?;
        let replay = self.0.replay(stream, index).ok_or(UnknownEvent)?;
        Ok(replay)
    }
}

/// A `Last-Event-ID` that names no event kept here: from before a restart, from another
/// replica, or of a stream forgotten since.
#[derive(Debug, thiserror::Error)]
#[error(
    "the event named by Last-Event-ID is not kept here (from before a restart, from another \
     replica, or forgotten after its stream ended)"
)]
struct UnknownEvent;

#[cfg(test)]
mod tests;
