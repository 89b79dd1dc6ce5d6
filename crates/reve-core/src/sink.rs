//! Where a result image's bytes go as they arrive: memory, or a temporary file of which only the
//! first bytes stay in memory, and which can be read while it is written.

use std::path::PathBuf;

use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use crate::arrival::Publisher;
use crate::error::Error;

/// What stays in memory of a result written to a file: enough to tell its type, or to quote it
/// in an error when it is not an image.
const HEAD_BYTES: usize = 4096;

/// How much of a download is gathered before it is written to a file (see [`Sink::File`]): each
/// download in flight holds this much, so 32 of them hold 8 MiB, and a preview following the
/// download learns of new bytes this often.
pub(crate) const FILE_WRITE_BATCH: usize = 256 * 1024;

/// Where a result image's bytes go as they arrive.
pub(crate) enum Sink {
    Memory(Vec<u8>),
    /// A temporary file; only the first [`HEAD_BYTES`] stay in memory.
    File {
        file: tokio::fs::File,
        /// Bytes gathered for the next write: each write is a trip to a blocking thread, which
        /// costs more than the write itself for the small chunks a socket yields. Written by
        /// hand rather than through a `BufWriter` to know when bytes reach the file.
        pending: Vec<u8>,
        /// Tells readers of the file what is on disk.
        publisher: Publisher,
        /// The folder the file is in, to name in errors.
        dir: PathBuf,
        head: Vec<u8>,
        size: u64,
        /// Bytes handed to the file: the last batch may still be being written while the next
        /// one arrives (a tokio file writes in the background, and waits for one write to end
        /// before it starts the next).
        handed: u64,
    },
}

impl Sink {
    pub(crate) async fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.extend_from_slice(chunk),
            Sink::File { head, .. } => {
                let room = HEAD_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..room]);
                // The batch is filled to its size and written, so that its buffer never grows:
                // a socket's chunk that took it past its size would double it.
                let mut rest = chunk;
                while !rest.is_empty() {
                    let Sink::File { pending, size, .. } = self else {
                        unreachable!("matched as a file above");
                    };
                    let taken = (FILE_WRITE_BATCH - pending.len()).min(rest.len());
                    pending.extend_from_slice(&rest[..taken]);
                    *size += taken as u64;
                    rest = &rest[taken..];
                    if pending.len() == FILE_WRITE_BATCH {
                        self.write_pending().await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Hands the gathered bytes to the file, which writes them while the next ones arrive, and
    /// tells its readers of the batch before, which is in the file once this one is handed.
    async fn write_pending(&mut self) -> std::io::Result<()> {
        if let Sink::File {
            file,
            pending,
            publisher,
            size,
            handed,
            ..
        } = self
        {
            let before = *handed;
            file.write_all(pending).await?;
            pending.clear();
            *handed = *size;
            publisher.wrote(before);
        }
        Ok(())
    }

    /// Waits for the last batch handed to the file to be in it, and tells its readers.
    async fn flush(&mut self) -> std::io::Result<()> {
        if let Sink::File {
            file,
            publisher,
            handed,
            ..
        } = self
        {
            file.flush().await?;
            publisher.wrote(*handed);
        }
        Ok(())
    }

    /// Empties the sink for another attempt.
    pub(crate) async fn restart(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.clear(),
            Sink::File {
                file,
                pending,
                publisher,
                head,
                size,
                handed,
                ..
            } => {
                // Readers hear of it first, so that none takes bytes of the next attempt
                // for more of the last one (see `ArrivingImage::read`).
                publisher.started_over();
                pending.clear();
                file.flush().await?;
                file.set_len(0).await?;
                file.rewind().await?;
                head.clear();
                *size = 0;
                *handed = 0;
            }
        }
        Ok(())
    }

    /// Writes what is left; readers of the file then read to its end.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        self.write_pending().await?;
        self.flush().await?;
        if let Sink::File { publisher, .. } = self {
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
