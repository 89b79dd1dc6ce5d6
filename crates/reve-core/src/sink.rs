//! Where a result image's bytes go as they arrive: memory, or a temporary file of which only the
//! first bytes stay in memory, and which can be read while it is written.

use std::io::Write as _;
use std::path::PathBuf;

use tokio::task::JoinHandle;

use crate::arrival::{Publisher, WriteNotice};
use crate::error::Error;

/// What stays in memory of a result written to a file: enough to tell its type, or to quote it
/// in an error when it is not an image.
const HEAD_BYTES: usize = 4096;

/// The most of a download gathered before it is written to a file (see [`Sink::File`]): each
/// download in flight holds twice this much (the batch gathering and the one being written), so
/// 32 of them hold 16 MiB.
pub(crate) const FILE_WRITE_BATCH: usize = 256 * 1024;

/// The least of a download written to a file at once while no write is under way: the first
/// bytes reach a reader (a preview decoding as the image arrives) after this much rather than
/// after a whole batch. Each write doubles the next one's least, up to [`FILE_WRITE_BATCH`], so the
/// first 256 KiB of a download take about five writes rather than one.
const FIRST_WRITE: usize = 16 * 1024;

/// Where a result image's bytes go as they arrive.
pub(crate) enum Sink {
    Memory(Vec<u8>),
    /// A temporary file; only the first [`HEAD_BYTES`] stay in memory.
    File {
        writes: BatchedWrites,
        /// Tells readers of the file how the download stands (its size, a restart, its end).
        publisher: Publisher,
        /// The folder the file is in, to name in errors.
        dir: PathBuf,
        head: Vec<u8>,
        size: u64,
    },
}

/// A file written in batches on a blocking thread, one write at a time, each published to the
/// file's readers the moment it is on disk. Written by hand rather than through a tokio file: a
/// tokio file copies each write into a buffer of its own, and is known to hold a write only
/// when the next one starts, so its readers would hear of each batch a batch late.
pub(crate) struct BatchedWrites {
    /// The file and a spare batch buffer, while no write is under way.
    idle: Option<(std::fs::File, Vec<u8>)>,
    /// The write under way, which hands both back.
    writing: Option<JoinHandle<Written>>,
    /// Bytes gathered for the next write: each write is a trip to a blocking thread, which costs
    /// more than the write itself for the small chunks a socket yields.
    pending: Vec<u8>,
    /// Bytes handed to writes so far.
    handed: u64,
    notice: WriteNotice,
}

/// What a write hands back: the file, its batch's buffer emptied for the next one, and how the
/// write went.
type Written = (std::fs::File, Vec<u8>, std::io::Result<()>);

impl BatchedWrites {
    /// Writes to `file`, from its current position, telling `publisher`'s readers of each write.
    pub(crate) fn new(file: std::fs::File, publisher: &Publisher) -> BatchedWrites {
        BatchedWrites {
            idle: Some((file, Vec::with_capacity(FILE_WRITE_BATCH))),
            writing: None,
            pending: Vec::with_capacity(FILE_WRITE_BATCH),
            handed: 0,
            notice: publisher.notice(),
        }
    }

    /// Gathers `bytes`, handing them to the file a batch at a time: a full batch once the write
    /// before it is over, and what is gathered as soon as no write is under way and it is at
    /// least [`FIRST_WRITE`], doubled by each write.
    async fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        // The batch is filled to its size and written, so that its buffer never grows: a
        // socket's chunk that took it past its size would double it.
        while !bytes.is_empty() {
            let taken = (FILE_WRITE_BATCH - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            if self.pending.len() == FILE_WRITE_BATCH {
                self.hand().await?;
            }
        }
        let least = usize::try_from(self.handed)
            .unwrap_or(usize::MAX)
            .clamp(FIRST_WRITE, FILE_WRITE_BATCH);
        let under_way = self
            .writing
            .as_ref()
            .is_some_and(|writing| !writing.is_finished());
        if self.pending.len() >= least && !under_way {
            self.hand().await?;
        }
        Ok(())
    }

    /// Hands the gathered bytes to a blocking thread once the write before is over; the thread
    /// tells readers of them once they are on disk.
    async fn hand(&mut self) -> std::io::Result<()> {
        self.settle().await?;
        let (_, spare) = self.idle.as_mut().expect("settled writes are idle");
        std::mem::swap(spare, &mut self.pending);
        self.handed += spare.len() as u64;
        let (on_disk, notice) = (self.handed, WriteNotice::clone(&self.notice));
        self.start(move |file, batch| {
            let written = file.write_all(batch);
            if written.is_ok() {
                notice.wrote(on_disk);
            }
            batch.clear();
            written
        });
        Ok(())
    }

    /// Starts `work` on the file and the batch buffer on a blocking thread; they come back when
    /// it is over (see [`Self::settle`]). No write may be under way.
    fn start(
        &mut self,
        work: impl FnOnce(&mut std::fs::File, &mut Vec<u8>) -> std::io::Result<()> + Send + 'static,
    ) {
        let (mut file, mut batch) = self.idle.take().expect("no write is under way");
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let done = work(&mut file, &mut batch);
            (file, batch, done)
        }));
    }

    /// Waits for the write under way, if any, to be over. The write stays under way if this
    /// future is dropped before, so that a later call waits for it again rather than find no
    /// file.
    async fn settle(&mut self) -> std::io::Result<()> {
        if let Some(writing) = &mut self.writing {
            let (file, spare, written) = writing.await.expect("writing a file does not panic");
            self.writing = None;
            self.idle = Some((file, spare));
            written?;
        }
        Ok(())
    }

    /// Writes what is gathered and waits for it to be on disk.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.hand().await?;
        }
        self.settle().await
    }

    /// Waits for the write under way, then empties the file and what is gathered; `before` runs
    /// once no write is under way, before the file is emptied.
    async fn restart(&mut self, before: impl FnOnce()) -> std::io::Result<()> {
        let settled = self.settle().await;
        before();
        self.pending.clear();
        self.handed = 0;
        settled?;
        self.start(|file, _| {
            use std::io::Seek as _;
            file.set_len(0)?;
            file.rewind()
        });
        self.settle().await
    }
}

impl Sink {
    pub(crate) async fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.extend_from_slice(chunk),
            Sink::File {
                writes, head, size, ..
            } => {
                let room = HEAD_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..room]);
                *size += chunk.len() as u64;
                writes.append(chunk).await?;
            }
        }
        Ok(())
    }

    /// Empties the sink for another attempt.
    pub(crate) async fn restart(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.clear(),
            Sink::File {
                writes,
                publisher,
                head,
                size,
                ..
            } => {
                // Readers hear of it once no write of the last attempt can still tell them of
                // its bytes, and before the file is emptied, so that none takes bytes of the
                // next attempt for more of the last one (see `ArrivingImage::read`).
                writes.restart(|| publisher.started_over()).await?;
                head.clear();
                *size = 0;
            }
        }
        Ok(())
    }

    /// Writes what is left; readers of the file then read to its end.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        if let Sink::File {
            writes, publisher, ..
        } = self
        {
            writes.flush().await?;
            publisher.complete();
        }
        Ok(())
    }

    /// The size the server announced for this attempt (its `Content-Length`), if any: memory is
    /// set aside for it, up to `limit`, and readers of a file learn it before the bytes arrive.
    pub(crate) fn expect(&mut self, announced: Option<u64>, limit: u64) {
        match self {
            Sink::Memory(bytes) => {
                bytes.reserve(usize::try_from(announced.unwrap_or(0).min(limit)).unwrap_or(0));
            }
            Sink::File { publisher, .. } => publisher.announced(announced),
        }
    }

    pub(crate) fn head(&self) -> &[u8] {
        match self {
            Sink::Memory(bytes) => bytes,
            Sink::File { head, .. } => head,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        match self {
            Sink::Memory(bytes) => bytes.len() as u64,
            Sink::File { size, .. } => *size,
        }
    }

    pub(crate) fn error(&self, source: std::io::Error) -> Error {
        match self {
            Sink::File { dir, .. } => Error::File {
                path: dir.clone(),
                action: "write the image into",
                source,
            },
            Sink::Memory(_) => unreachable!("memory takes every write"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::arrival::ArrivingImage;

    /// A file sink on a temporary file, and a reader following it.
    fn file_sink() -> (tempfile::NamedTempFile, Sink, ArrivingImage) {
        let (temp, publisher, reader) = crate::arrival::tests::staged();
        let sink = Sink::File {
            writes: BatchedWrites::new(temp.as_file().try_clone().unwrap(), &publisher),
            publisher,
            dir: temp.path().parent().unwrap().to_owned(),
            head: Vec::new(),
            size: 0,
        };
        (temp, sink, reader)
    }

    /// Bytes that differ from one offset to the next, so that a misplaced batch shows.
    fn numbered(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|at| (at as u8).wrapping_mul(31).wrapping_add(seed) ^ (at >> 8) as u8)
            .collect()
    }

    fn writes(sink: &Sink) -> &BatchedWrites {
        match sink {
            Sink::File { writes, .. } => writes,
            Sink::Memory(_) => unreachable!("a file sink"),
        }
    }

    #[tokio::test]
    async fn a_reader_gets_the_first_bytes_after_a_small_write_not_a_whole_batch() {
        let (_temp, mut sink, mut reader) = file_sink();
        let first = numbered(FIRST_WRITE + 100, 1);
        sink.append(&first).await.unwrap();
        // Nothing more arrives and the download is not over: only the early write can tell the
        // reader of these bytes.
        let (read_tx, read_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut got = vec![0; FIRST_WRITE];
            reader.read_exact(&mut got).unwrap();
            read_tx.send(got).unwrap();
        });
        let got = read_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the first bytes reach the reader before the batch is full");
        assert_eq!(got, first[..FIRST_WRITE]);
        sink.finish().await.unwrap();
    }

    #[tokio::test]
    async fn chunks_of_any_size_reach_the_file_whole_and_in_order_through_batches_that_never_grow()
    {
        let (temp, mut sink, reader) = file_sink();
        let reading = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut all).unwrap();
            all
        });
        let sent = numbered(3 * FILE_WRITE_BATCH + 12_345, 7);
        // Chunk sizes a socket might yield, one larger than a batch among them.
        let sizes = [1, 700, 16_384, FILE_WRITE_BATCH + 3, 5, 65_536, 100_000];
        let mut rest = &sent[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, after) = rest.split_at((*size).min(rest.len()));
            sink.append(chunk).await.unwrap();
            rest = after;
            let writes = writes(&sink);
            assert_eq!(writes.pending.capacity(), FILE_WRITE_BATCH);
        }
        sink.finish().await.unwrap();
        let writes = writes(&sink);
        let (_, spare) = writes.idle.as_ref().unwrap();
        assert_eq!(spare.capacity(), FILE_WRITE_BATCH);
        assert_eq!(sink.size(), sent.len() as u64);
        assert_eq!(reading.join().unwrap(), sent);
        assert_eq!(std::fs::read(temp.path()).unwrap(), sent);
    }

    #[tokio::test]
    async fn a_wait_for_a_write_given_up_halfway_leaves_the_sink_usable() {
        for round in 0..20 {
            let (temp, mut sink, _reader) = file_sink();
            let sent = numbered(FILE_WRITE_BATCH * 2 + 5, round);
            sink.append(&sent).await.unwrap();
            // A caller that stops waiting (a timeout, a select) drops the wait at its first poll,
            // when the write is usually still under way on its thread.
            let _ = tokio::time::timeout(Duration::ZERO, sink.finish()).await;
            sink.finish().await.unwrap();
            assert_eq!(std::fs::read(temp.path()).unwrap(), sent);
        }
    }

    #[tokio::test]
    async fn a_restart_leaves_the_file_with_the_next_attempt_alone_and_fails_readers_of_the_last() {
        let (temp, mut sink, mut reader) = file_sink();
        sink.append(&numbered(FILE_WRITE_BATCH + 40_000, 3))
            .await
            .unwrap();
        // The reader has taken some of the first attempt.
        let mut reader = tokio::task::spawn_blocking(move || {
            reader.read_exact(&mut [0; FIRST_WRITE]).unwrap();
            reader
        })
        .await
        .unwrap();
        sink.restart().await.unwrap();
        let second = numbered(FIRST_WRITE * 3, 9);
        sink.append(&second).await.unwrap();
        sink.finish().await.unwrap();
        let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("started over"), "{error}");
        assert_eq!(sink.size(), second.len() as u64);
        assert_eq!(sink.head(), &second[..HEAD_BYTES]);
        assert_eq!(std::fs::read(temp.path()).unwrap(), second);
    }
}
