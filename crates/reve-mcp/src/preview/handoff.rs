//! Decoded rows handed in batches from the thread that decodes a picture to the one that scales and encodes it.
//!
//! A PNG's inflate and unfilter are one sequential stream, the longest step of a large preview; scaling its rows
//! down and encoding the preview take about a fifth of that again. Done on the decoding thread, they lengthen the
//! stream; handed to a second thread, they run beside it. Rows go in batches of about [`BATCH_BYTES`], so that a
//! hand-over (a wake-up of the other thread, at worst) is paid a few hundred times for the largest picture rather
//! than once a row, and batches are handed back to be refilled, so that at most [`BATCHES`] exist.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use super::PreviewError;

/// Bytes of rows per batch (at least one row).
const BATCH_BYTES: usize = 256 * 1024;
/// Batches that exist at once: one being filled, one waiting, one being scaled.
pub(super) const BATCHES: usize = 3;

/// Rows decoded and not yet scaled: whole rows, `rows` of them at the front of `bytes`.
pub(super) struct Batch {
    bytes: Vec<u8>,
    rows: usize,
    row_bytes: usize,
}

impl Batch {
    /// The batch's rows, top to bottom.
    pub(super) fn rows(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes[..self.rows * self.row_bytes].chunks_exact(self.row_bytes)
    }
}

/// The decoding thread's end: rows go in, full batches go to the other thread.
pub(super) struct RowHandoff {
    row_bytes: usize,
    rows_per_batch: usize,
    filling: Option<Batch>,
    /// Batches allocated so far: at most [`BATCHES`].
    made: usize,
    full: SyncSender<Batch>,
    spare: Receiver<Batch>,
    /// The other end was dropped: the scaling thread stopped, and its error says why.
    closed: bool,
}

/// The scaling thread's end: the batches in order, each handed back once its rows are taken.
pub(super) struct RowBatches {
    full: Receiver<Batch>,
    spare: SyncSender<Batch>,
}

/// The two ends of a hand-over of rows of `row_bytes` bytes.
pub(super) fn handoff(row_bytes: usize) -> (RowHandoff, RowBatches) {
    let (full_sender, full) = sync_channel(1);
    let (spare_sender, spare) = sync_channel(BATCHES);
    (
        RowHandoff {
            row_bytes,
            rows_per_batch: rows_per_batch(row_bytes),
            filling: None,
            made: 0,
            full: full_sender,
            spare,
            closed: false,
        },
        RowBatches {
            full,
            spare: spare_sender,
        },
    )
}

/// The memory the batches of rows of `row_bytes` bytes hold at most.
pub(super) fn memory(row_bytes: usize) -> u64 {
    (BATCHES * rows_per_batch(row_bytes) * row_bytes) as u64
}

/// Rows of `row_bytes` bytes in a batch: as many as fit in [`BATCH_BYTES`], and at least one.
fn rows_per_batch(row_bytes: usize) -> usize {
    (BATCH_BYTES / row_bytes.max(1)).max(1)
}

impl RowHandoff {
    /// Takes the next row, a copy of `row`; `false` when the scaling thread has stopped.
    pub(super) fn push(&mut self, row: &[u8]) -> bool {
        let copied = self.fill(|space| {
            space.copy_from_slice(row);
            Ok(true)
        });
        matches!(copied, Ok(true))
    }

    /// Has `decode` write the next row in place: `Ok(false)` when it says there was none (the picture is done)
    /// or the scaling thread has stopped ([`Self::is_closed`] tells which).
    pub(super) fn fill(
        &mut self,
        decode: impl FnOnce(&mut [u8]) -> Result<bool, PreviewError>,
    ) -> Result<bool, PreviewError> {
        if self.closed {
            return Ok(false);
        }
        let mut batch = match self.filling.take() {
            Some(batch) => batch,
            None => self.batch(),
        };
        let at = batch.rows * self.row_bytes;
        match decode(&mut batch.bytes[at..at + self.row_bytes]) {
            Ok(true) => batch.rows += 1,
            done_or_failed => {
                self.filling = Some(batch);
                return done_or_failed;
            }
        }
        if batch.rows == self.rows_per_batch {
            self.send(batch);
        } else {
            self.filling = Some(batch);
        }
        Ok(!self.closed)
    }

    /// Hands over the rows of the batch being filled now, rather than when it is full: the picture's last rows,
    /// before the decoder reads what follows them.
    pub(super) fn flush(&mut self) {
        if let Some(batch) = self.filling.take()
            && batch.rows > 0
        {
            self.send(batch);
        }
    }

    /// Hands over the rows not yet handed, and tells the scaling thread that no more come (by being dropped);
    /// `false` if it stopped before taking them all, which it does only when it fails: a hand-over failed, or
    /// it has dropped its end (seen once the batches it handed back are drained, which only a finished
    /// hand-over may do).
    pub(super) fn finish(mut self) -> bool {
        self.flush();
        loop {
            match self.spare.try_recv() {
                Ok(_) => continue,
                Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return !self.closed,
            }
        }
    }

    /// Whether a hand-over failed: the scaling thread stopped before taking every row.
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// A batch handed back, or a new one while fewer than [`BATCHES`] exist.
    fn batch(&mut self) -> Batch {
        if self.made < BATCHES {
            return match self.spare.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                    self.made += 1;
                    self.fresh()
                }
            };
        }
        // Every batch exists: one comes back once the other thread has taken its rows (or never, when it
        // has stopped; then a batch only keeps the decoder going until it finds out).
        self.spare.recv().unwrap_or_else(|_| self.fresh())
    }

    /// A new, empty batch.
    fn fresh(&self) -> Batch {
        Batch {
            bytes: vec![0; self.rows_per_batch * self.row_bytes],
            rows: 0,
            row_bytes: self.row_bytes,
        }
    }

    fn send(&mut self, batch: Batch) {
        if self.full.send(batch).is_err() {
            self.closed = true;
        }
    }
}

impl RowBatches {
    /// The next batch, waiting for it; `None` once the decoding thread is done (or has stopped).
    pub(super) fn next(&self) -> Option<Batch> {
        self.full.recv().ok()
    }

    /// Gives a batch back to be refilled.
    pub(super) fn give_back(&self, mut batch: Batch) {
        batch.rows = 0;
        // The decoding thread may be done; the batch is then dropped here.
        let _ = self.spare.try_send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_arrive_in_order_in_at_most_three_batches_of_memory() {
        let row_bytes = 100_000;
        let (mut rows, batches) = handoff(row_bytes);
        let sent: Vec<Vec<u8>> = (0..20u8).map(|row| vec![row; row_bytes]).collect();
        let received = std::thread::scope(|scope| {
            let taker = scope.spawn(move || {
                let mut received = Vec::new();
                let mut distinct = std::collections::HashSet::new();
                while let Some(batch) = batches.next() {
                    distinct.insert(batch.bytes.as_ptr() as usize);
                    received.extend(batch.rows().map(<[u8]>::to_vec));
                    batches.give_back(batch);
                }
                (received, distinct.len())
            });
            for (at, row) in sent.iter().enumerate() {
                if at % 2 == 0 {
                    assert!(rows.push(row));
                } else {
                    let filled = rows.fill(|space| {
                        space.copy_from_slice(row);
                        Ok(true)
                    });
                    assert!(matches!(filled, Ok(true)));
                }
            }
            assert!(rows.finish());
            taker.join().unwrap()
        });
        assert!(received.0 == sent, "the rows came back otherwise");
        assert!(received.1 <= BATCHES, "{} batches", received.1);
    }

    #[test]
    fn a_stopped_scaling_thread_stops_the_decoder() {
        let (mut rows, batches) = handoff(1000);
        drop(batches);
        let mut pushed = 0;
        while rows.push(&[7; 1000]) {
            pushed += 1;
            assert!(pushed < 1000, "the decoder is never told");
        }
        assert!(rows.is_closed());
        assert!(!rows.finish());

        // Stopped with nothing left to hand over: the decoder hears of it when it finishes.
        let (rows, batches) = handoff(1000);
        drop(batches);
        assert!(!rows.is_closed());
        assert!(!rows.finish());
    }

    #[test]
    fn a_decoder_that_says_done_ends_the_rows_there() {
        let (mut rows, batches) = handoff(10);
        assert!(rows.push(&[1; 10]));
        assert!(matches!(rows.fill(|_| Ok(false)), Ok(false)));
        assert!(!rows.is_closed());
        assert!(rows.finish());
        let batch = batches.next().expect("the row before the end");
        assert_eq!(batch.rows().collect::<Vec<_>>(), vec![&[1u8; 10][..]]);
        assert!(batches.next().is_none());
    }
}
