//! Reading a result image while it downloads: the staged file's writer tells its readers how
//! much of it is on disk, so a decoder can work on the first rows while the last ones are still
//! on the wire.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How far a download has got, shared by its writer and its readers.
#[derive(Debug, Default)]
struct Progress {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Bytes on disk, readable by another handle on the file.
    on_disk: u64,
    /// How many times the download started over after writing something: a reader that began
    /// on an earlier attempt has read bytes that are gone.
    attempt: u64,
    /// The size the server announced for this attempt (its `Content-Length`), if it did.
    announced: Option<u64>,
    end: End,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum End {
    #[default]
    Arriving,
    Complete,
    /// The download failed or was cancelled; its file is deleted.
    Abandoned,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking writer leaves a consistent state: each change is one assignment.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state());
        self.changed.notify_all();
    }
}

/// The writing side: owned by the staged file's sink, it tells readers how the download stands
/// (each write's [`WriteNotice`] says what is on disk), and that it is over when it is dropped
/// unfinished.
#[derive(Debug)]
pub(crate) struct Publisher(Arc<Progress>);

impl Publisher {
    pub(crate) fn new() -> Publisher {
        Publisher(Arc::default())
    }

    /// A reader of the file `file` (a separate handle on the one being written), from its start.
    pub(crate) fn reader(&self, file: File) -> ArrivingImage {
        ArrivingImage {
            progress: self.0.clone(),
            file,
            position: 0,
            attempt: self.0.state().attempt,
        }
    }

    /// What the thread that writes the file tells readers with, the moment a write is on disk.
    pub(crate) fn notice(&self) -> WriteNotice {
        WriteNotice(self.0.clone())
    }

    /// The file is about to be emptied for another attempt.
    pub(crate) fn started_over(&self) {
        self.0.update(|state| {
            if state.on_disk > 0 {
                state.attempt += 1;
            }
            state.on_disk = 0;
            state.announced = None;
        });
    }

    /// The server announced this attempt's size (or none): a reader may seek to its end before
    /// the bytes are there.
    pub(crate) fn announced(&self, size: Option<u64>) {
        self.0.update(|state| state.announced = size);
    }

    /// Every byte is on disk.
    pub(crate) fn complete(&self) {
        self.0.update(|state| state.end = End::Complete);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.update(|state| {
            if state.end == End::Arriving {
                state.end = End::Abandoned;
            }
        });
    }
}

/// Tells a file's readers of its writes, from the blocking thread that makes them; unlike a
/// [`Publisher`], it says nothing of the download's end when dropped.
#[derive(Debug, Clone)]
pub(crate) struct WriteNotice(Arc<Progress>);

impl WriteNotice {
    /// The file now holds `on_disk` bytes.
    pub(crate) fn wrote(&self, on_disk: u64) {
        self.0.update(|state| state.on_disk = on_disk);
    }
}

/// A result image read while it downloads, for work that can start on its first bytes (a
/// preview decoder, say): reads block until the bytes they ask for are on disk, and end where the
/// image ends. Handed out by [`crate::Client::edit_into_dir_reporting`].
///
/// Blocking: use it on a thread that may wait for the network. A read fails if the download
/// fails, is cancelled, or starts over (a retried download rewrites the file, so what was read
/// no longer holds); the finished [`crate::StagedImage`] is then the one to read. Seeking from
/// the end goes by the size the server announced (`Content-Length`), so that a reader can learn
/// the image's size from its first bytes; without one, it waits for the whole image. A server
/// that announced a wrong size fails the download, but a reader that sought by it may already
/// have been told that size: check what is read against it when it matters.
#[derive(Debug)]
pub struct ArrivingImage {
    progress: Arc<Progress>,
    file: File,
    /// Where the next read starts; the file's own offset follows it.
    position: u64,
    /// The download attempt this reader began on.
    attempt: u64,
}

impl ArrivingImage {
    /// Waits until `ready` holds of the download's state, or it can never hold.
    fn wait_until(&self, ready: impl Fn(&State) -> bool) -> io::Result<State> {
        let mut state = self.progress.state();
        loop {
            if state.attempt != self.attempt {
                return Err(io::Error::other(
                    "the result download started over, so the bytes read so far are gone",
                ));
            }
            if ready(&state) {
                return Ok(*state);
            }
            if state.end == End::Abandoned {
                return Err(io::Error::other(
                    "the result download stopped before its end",
                ));
            }
            state = self
                .progress
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Read for ArrivingImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let position = self.position;
        let state =
            self.wait_until(|state| state.on_disk > position || state.end == End::Complete)?;
        let available = state.on_disk.saturating_sub(position);
        let wanted = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        if wanted == 0 {
            return Ok(0);
        }
        let read = self.file.read(&mut buf[..wanted])?;
        // The download may have started over during the read: the writer says so before it
        // empties the file, so what was just read is known to be of this attempt only if the
        // attempt is still the same after it.
        self.wait_until(|_| true)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for ArrivingImage {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(delta) => {
                let state = self
                    .wait_until(|state| state.end == End::Complete || state.announced.is_some())?;
                let end = match state.end {
                    End::Complete => state.on_disk,
                    _ => state.announced.unwrap_or(state.on_disk),
                };
                end.checked_add_signed(delta)
            }
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to before the start of the result image",
            )
        })?;
        self.position = self.file.seek(SeekFrom::Start(target))?;
        Ok(self.position)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::thread;

    use super::*;

    /// A temporary file, its publisher, and a reader following it.
    pub(crate) fn staged() -> (tempfile::NamedTempFile, Publisher, ArrivingImage) {
        let temp = tempfile::NamedTempFile::new().unwrap();
        let publisher = Publisher::new();
        let reader = publisher.reader(temp.reopen().unwrap());
        (temp, publisher, reader)
    }

    #[test]
    fn a_reader_gets_each_byte_once_it_is_on_disk_and_ends_with_the_download() {
        let (mut temp, publisher, reader) = staged();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reading = thread::spawn(move || {
            let mut reader = BufReader::with_capacity(4, reader);
            first_tx.send(reader.fill_buf().unwrap().to_vec()).unwrap();
            reader.consume(2);
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            rest
        });
        // Written but published only in part: the reader sees only that part.
        temp.write_all(b"abcde").unwrap();
        publisher.notice().wrote(2);
        assert_eq!(first_rx.recv().unwrap(), b"ab");
        temp.write_all(b"fgh").unwrap();
        publisher.notice().wrote(8);
        publisher.complete();
        assert_eq!(reading.join().unwrap(), b"cdefgh");
    }

    #[test]
    fn seeking_from_the_end_waits_for_the_whole_image() {
        let (mut temp, publisher, mut reader) = staged();
        let seeking = thread::spawn(move || {
            let end = reader.seek(SeekFrom::End(-1)).unwrap();
            let mut last = Vec::new();
            reader.read_to_end(&mut last).unwrap();
            (end, last)
        });
        temp.write_all(b"12").unwrap();
        publisher.notice().wrote(2);
        temp.write_all(b"345").unwrap();
        publisher.notice().wrote(5);
        publisher.complete();
        assert_eq!(seeking.join().unwrap(), (4, b"5".to_vec()));
    }

    #[test]
    fn seeking_from_the_end_goes_by_the_announced_size_without_waiting() {
        let (mut temp, publisher, mut reader) = staged();
        temp.write_all(b"12").unwrap();
        publisher.notice().wrote(2);
        publisher.announced(Some(5));
        assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), 5);
        reader.rewind().unwrap();
        let reading = thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        temp.write_all(b"345").unwrap();
        publisher.notice().wrote(5);
        publisher.complete();
        assert_eq!(reading.join().unwrap(), b"12345");

        // Another attempt announces its own size, or none.
        let (_temp, publisher, mut reader) = staged();
        publisher.announced(Some(9));
        publisher.started_over();
        let seeking = thread::spawn(move || reader.seek(SeekFrom::End(0)).unwrap());
        publisher.notice().wrote(3);
        publisher.complete();
        assert_eq!(seeking.join().unwrap(), 3);
    }

    #[test]
    fn a_download_that_stops_or_starts_over_fails_the_read_rather_than_hanging() {
        let (mut temp, publisher, mut reader) = staged();
        temp.write_all(b"xy").unwrap();
        publisher.notice().wrote(2);
        let mut two = [0; 2];
        reader.read_exact(&mut two).unwrap();
        publisher.started_over();
        let error = reader.read(&mut two).unwrap_err();
        assert!(error.to_string().contains("started over"), "{error}");

        let (_temp, publisher, mut reader) = staged();
        let waiting = thread::spawn(move || reader.read(&mut [0; 4]).unwrap_err());
        drop(publisher);
        let error = waiting.join().unwrap();
        assert!(
            error.to_string().contains("stopped before its end"),
            "{error}"
        );
    }

    #[test]
    fn a_retry_before_any_byte_arrived_leaves_readers_reading() {
        let (mut temp, publisher, mut reader) = staged();
        publisher.started_over();
        temp.write_all(b"ok").unwrap();
        publisher.notice().wrote(2);
        publisher.complete();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"ok");
    }
}
