//! Where a result image's bytes go as they arrive: memory, or a temporary file of which only the
//! first bytes stay in memory.

use std::path::PathBuf;

use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _, BufWriter};

use crate::error::Error;

/// What stays in memory of a result written to a file: enough to tell its type, or to quote it
/// in an error when it is not an image.
const HEAD_BYTES: usize = 4096;

/// Where a result image's bytes go as they arrive.
pub(crate) enum Sink {
    Memory(Vec<u8>),
    /// A temporary file; only the first [`HEAD_BYTES`] stay in memory.
    File {
        writer: BufWriter<tokio::fs::File>,
        /// The folder the file is in, to name in errors.
        dir: PathBuf,
        head: Vec<u8>,
        size: u64,
    },
}

impl Sink {
    pub(crate) async fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.extend_from_slice(chunk),
            Sink::File {
                writer, head, size, ..
            } => {
                let room = HEAD_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..room]);
                *size += chunk.len() as u64;
                writer.write_all(chunk).await?;
            }
        }
        Ok(())
    }

    /// Empties the sink for another attempt.
    pub(crate) async fn restart(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(bytes) => bytes.clear(),
            Sink::File {
                writer, head, size, ..
            } => {
                writer.flush().await?;
                writer.get_mut().set_len(0).await?;
                writer.rewind().await?;
                head.clear();
                *size = 0;
            }
        }
        Ok(())
    }

    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::File { writer, .. } => writer.flush().await,
        }
    }

    pub(crate) fn reserve(&mut self, expected: u64) {
        if let Sink::Memory(bytes) = self {
            bytes.reserve(usize::try_from(expected).unwrap_or(0));
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
