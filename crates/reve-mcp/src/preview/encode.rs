//! The preview's JPEG, encoded in strips on two threads while the picture is still decoded and scaled.
//!
//! Encoding a row needs only the rows above it decoded and scaled. So the scaler, on the thread the decoder
//! hands its rows to ([`super::handoff`]), hands each band of rows it makes to [`Strips`], which cuts the picture
//! into strips of [`STRIP_ROWS`] rows; that thread encodes each strip as soon as its rows are made, between
//! batches of rows, and the decoding thread, once the picture is decoded, encodes the strips the other has not
//! reached. Each strip is a JPEG of its own, with the same tables; their entropy-coded data are joined with
//! restart markers between them (a restart resets what a strip's coding carries over from the one before), which
//! gives byte for byte the JPEG `rusty_jpeg` makes of the whole picture with a restart interval of one strip. On
//! two cores a preview then takes about the decoder's time plus a strip or two, rather than the sum of decoding,
//! scaling and encoding.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rusty_jpeg::encode::{ColorType, Encoder, SamplingFactor};

use super::{PreviewError, rgb_on_white};

/// Rows per strip: two rows of 16x16 blocks (the MCUs of 4:2:0 sampling, [`SAMPLING`]). The thread that decodes
/// shares the strips left when it is done, so the shorter they are, the less is left for one thread alone;
/// each costs a few dozen bytes of markers and padding, and a header that is made and dropped.
const STRIP_ROWS: usize = 32;
/// Chroma at half resolution both ways, each sample the average of its 2x2 pixels; stated here because a
/// strip must be a whole number of MCU rows: 16 pixel rows each.
const SAMPLING: SamplingFactor = SamplingFactor::F_2_2;
const MCU_SIDE: usize = 16;

/// A picture's rows as the scaler makes them, cut into strips for the threads that encode them.
pub(super) struct Strips {
    width: u16,
    height: u16,
    /// Channels of the rows that arrive: 8-bit grey, grey and alpha, RGB or RGBA, with alpha multiplied in.
    channels: usize,
    quality: u8,
    /// The next strip no thread has taken yet.
    next: AtomicUsize,
    made: Mutex<Made>,
    /// Told whenever rows arrive or the scaler stops.
    arrived: Condvar,
}

struct Made {
    /// Each strip's rows, in the pieces they came in; emptied by the thread that takes the strip.
    strips: Vec<Vec<Vec<u8>>>,
    /// Rows that have arrived, from the top.
    rows: usize,
    /// The scaler stopped: no more rows come.
    ended: bool,
}

/// Where the scaler puts the rows it makes; dropping it, whether the picture was scaled whole or not, tells
/// the threads that encode strips that no more rows come, so that they never wait for nothing.
pub(super) struct StripSink(Arc<Strips>);

/// One strip's JPEG, and which strip it is.
pub(super) struct EncodedStrip {
    index: usize,
    jpeg: Vec<u8>,
}

impl Strips {
    /// The strips of a `width` x `height` picture whose rows have `channels` channels, to be encoded at `quality`.
    pub(super) fn new((width, height): (u16, u16), channels: usize, quality: u8) -> Arc<Strips> {
        let count = usize::from(height).div_ceil(STRIP_ROWS);
        Arc::new(Strips {
            width,
            height,
            channels,
            quality,
            next: AtomicUsize::new(0),
            made: Mutex::new(Made {
                strips: vec![Vec::new(); count],
                rows: 0,
                ended: false,
            }),
            arrived: Condvar::new(),
        })
    }

    /// Where the scaler sends its rows.
    pub(super) fn sink(self: &Arc<Self>) -> StripSink {
        StripSink(self.clone())
    }

    /// Encodes strips no other thread has taken, top to bottom, each once its rows have arrived, until none is
    /// left. Fails if the scaler stops before a strip's rows are all made: the picture was cut short or failed,
    /// and the scaler's own error says why.
    pub(super) fn encode_untaken(&self) -> Result<Vec<EncodedStrip>, PreviewError> {
        let mut encoded = Vec::new();
        self.encode(&mut encoded, true)?;
        Ok(encoded)
    }

    /// Encodes, into `encoded`, the strips no other thread has taken whose rows have all arrived, top to bottom,
    /// stopping at the first whose rows have not: for the thread that makes the rows, between batches.
    pub(super) fn encode_ready(&self, encoded: &mut Vec<EncodedStrip>) -> Result<(), PreviewError> {
        self.encode(encoded, false)
    }

    /// Encodes untaken strips into `encoded`: every one, waiting for its rows, or only those ready.
    fn encode(&self, encoded: &mut Vec<EncodedStrip>, wait: bool) -> Result<(), PreviewError> {
        loop {
            let index = self.next.load(Ordering::Relaxed);
            let top = index * STRIP_ROWS;
            if top >= usize::from(self.height) {
                return Ok(());
            }
            let bottom = (top + STRIP_ROWS).min(usize::from(self.height));
            let pieces = {
                let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
                if !wait && made.rows < bottom && !made.ended {
                    return Ok(());
                }
                if self
                    .next
                    .compare_exchange(index, index + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    // Another thread took it first.
                    continue;
                }
                while made.rows < bottom && !made.ended {
                    made = self
                        .arrived
                        .wait(made)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if made.rows < bottom {
                    return Err(PreviewError::Scale(format!(
                        "the scaler stopped after {} of {} rows",
                        made.rows, self.height
                    )));
                }
                std::mem::take(&mut made.strips[index])
            };
            // The strip's rows in one piece, as RGB on white: the encoder's own RGB input, which it
            // converts with its vector instructions when the processor has them.
            let rows = match pieces.as_slice() {
                [piece] => Cow::Borrowed(piece.as_slice()),
                _ => Cow::Owned(pieces.concat()),
            };
            let rgb = rgb_on_white(&rows, self.channels);
            let mut jpeg = Vec::new();
            // A strip is at most STRIP_ROWS high.
            encoder(&mut jpeg, self.quality).encode(
                &rgb,
                self.width,
                (bottom - top) as u16,
                ColorType::Rgb,
            )?;
            encoded.push(EncodedStrip { index, jpeg });
        }
    }

    /// The picture's JPEG from its strips' (both threads' results together, in any order): the first
    /// strip's header with the picture's height and a restart interval of one strip, then each strip's data
    /// with a restart marker before all but the first.
    pub(super) fn joined(&self, mut strips: Vec<EncodedStrip>) -> Result<Vec<u8>, PreviewError> {
        strips.sort_unstable_by_key(|strip| strip.index);
        let count = usize::from(self.height).div_ceil(STRIP_ROWS);
        if strips.len() != count
            || strips
                .iter()
                .enumerate()
                .any(|(at, strip)| strip.index != at)
        {
            return Err(PreviewError::Scale(format!(
                "{} of the preview's {count} strips were encoded",
                strips.len()
            )));
        }
        if let [strip] = strips.as_mut_slice() {
            return Ok(std::mem::take(&mut strip.jpeg));
        }
        let unexpected =
            || PreviewError::Scale("a strip's JPEG is not laid out as expected".into());
        let first = Layout::of(&strips[0].jpeg).ok_or_else(unexpected)?;
        let data: usize = strips.iter().map(|strip| strip.jpeg.len()).sum();
        let mut jpeg = Vec::with_capacity(first.data_start + 6 + data + 2 * count);
        jpeg.extend_from_slice(&strips[0].jpeg[..first.scan_header]);
        jpeg[first.height_at..first.height_at + 2].copy_from_slice(&self.height.to_be_bytes());
        // A strip is a whole number of MCU rows, and the width at most 16384 px, so this fits.
        let restart_interval =
            (usize::from(self.width).div_ceil(MCU_SIDE) * STRIP_ROWS / MCU_SIDE) as u16;
        jpeg.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04]);
        jpeg.extend_from_slice(&restart_interval.to_be_bytes());
        jpeg.extend_from_slice(&strips[0].jpeg[first.scan_header..first.data_start]);
        for (index, strip) in strips.iter().enumerate() {
            let layout = Layout::of(&strip.jpeg).ok_or_else(unexpected)?;
            if index > 0 {
                // RST0 to RST7, in turn.
                jpeg.extend_from_slice(&[0xFF, 0xD0 + ((index - 1) % 8) as u8]);
            }
            jpeg.extend_from_slice(&strip.jpeg[layout.data_start..strip.jpeg.len() - 2]);
        }
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        Ok(jpeg)
    }
}

/// The JPEG encoder every strip is encoded with, writing to `jpeg`.
fn encoder(jpeg: &mut Vec<u8>, quality: u8) -> Encoder<&mut Vec<u8>> {
    let mut encoder = Encoder::new(jpeg, quality);
    encoder.set_sampling_factor(SAMPLING);
    encoder
}

/// Where the parts of a strip's JPEG are: the height in its frame header, its scan header, and the
/// entropy-coded data that follow up to the end-of-image marker.
struct Layout {
    height_at: usize,
    scan_header: usize,
    data_start: usize,
}

impl Layout {
    /// `None` if `jpeg` is not a baseline JPEG whose segments lead to a scan, ending in an end-of-image marker.
    fn of(jpeg: &[u8]) -> Option<Layout> {
        if !jpeg.starts_with(&[0xFF, 0xD8]) || !jpeg.ends_with(&[0xFF, 0xD9]) {
            return None;
        }
        let mut at = 2;
        let mut height_at = None;
        loop {
            let [0xFF, marker, high, low] = *jpeg.get(at..at + 4)? else {
                return None;
            };
            let end = at + 2 + usize::from(u16::from_be_bytes([high, low]));
            match marker {
                // Start of frame, baseline: precision, then the height.
                0xC0 => height_at = Some(at + 5),
                0xDA => {
                    return (end <= jpeg.len() - 2).then_some(Layout {
                        height_at: height_at?,
                        scan_header: at,
                        data_start: end,
                    });
                }
                _ => {}
            }
            at = end;
        }
    }
}

impl StripSink {
    /// The next band of rows, top to bottom: whole rows of the picture's width.
    pub(super) fn send(&self, band: Vec<u8>) {
        let strips = &self.0;
        let row_bytes = usize::from(strips.width) * strips.channels;
        let mut made = strips.made.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rest = band;
        while !rest.is_empty() {
            let index = made.rows / STRIP_ROWS;
            let room = ((index + 1) * STRIP_ROWS - made.rows) * row_bytes;
            // A band that crosses into the next strip is cut there (bands and strips are both whole MCU rows,
            // so with today's sizes it never is).
            let piece = if rest.len() > room {
                let tail = rest.split_off(room);
                std::mem::replace(&mut rest, tail)
            } else {
                std::mem::take(&mut rest)
            };
            made.rows += piece.len() / row_bytes;
            match made.strips.get_mut(index) {
                Some(strip) => strip.push(piece),
                // More rows than the picture has: the scaler checks its count, so these are dropped.
                None => break,
            }
        }
        drop(made);
        strips.arrived.notify_all();
    }
}

impl Drop for StripSink {
    fn drop(&mut self) {
        self.0
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended = true;
        self.0.arrived.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture of `channels` channels with detail everywhere, alpha included.
    fn picture(width: usize, height: usize, channels: usize) -> Vec<u8> {
        (0..width * height * channels)
            .map(|at| {
                let (pixel, channel) = (at / channels, at % channels);
                let (x, y) = (pixel % width, pixel / width);
                ((x * 7 + y * 13 + channel * 61) ^ (x * y / 5)) as u8
            })
            .collect()
    }

    /// `pixels` sent to a new [`Strips`] in bands of `band_rows` rows by a scaler thread, while a second
    /// thread encodes strips as they come, and this one joins in once every row is sent.
    fn encoded_in_strips(
        pixels: &[u8],
        (width, height): (u16, u16),
        channels: usize,
        band_rows: usize,
    ) -> Vec<u8> {
        let strips = Strips::new((width, height), channels, 85);
        let sink = strips.sink();
        std::thread::scope(|scope| {
            let other = scope.spawn(|| strips.encode_untaken());
            for band in pixels.chunks(band_rows * usize::from(width) * channels) {
                sink.send(band.to_vec());
            }
            drop(sink);
            let mut encoded = strips.encode_untaken().expect("every row came");
            encoded.extend(other.join().expect("no panic").expect("every row came"));
            strips.joined(encoded).expect("every strip was encoded")
        })
    }

    /// The JPEG joined from strips is, byte for byte, the one the encoder makes of the whole picture with a
    /// restart every strip, whatever the picture's size and channels and however its rows arrive.
    #[test]
    fn strips_join_into_the_encoders_own_jpeg_with_a_restart_every_strip() {
        let sizes: [(u16, u16); 6] = [(1024, 768), (37, 95), (300, 33), (16, 64), (5, 1), (1, 1)];
        for (width, height) in sizes {
            for channels in 1..=4 {
                let pixels = picture(usize::from(width), usize::from(height), channels);
                let rgb = rgb_on_white(&pixels, channels);
                let mut expected = Vec::new();
                let mut whole = encoder(&mut expected, 85);
                if usize::from(height) > STRIP_ROWS {
                    whole.set_restart_interval(width.div_ceil(16) * 2);
                }
                whole
                    .encode(&rgb, width, height, ColorType::Rgb)
                    .expect("encodes");
                for band_rows in [16, 7, 1000] {
                    let joined = encoded_in_strips(&pixels, (width, height), channels, band_rows);
                    assert!(
                        joined == expected,
                        "{width}x{height}, {channels} channels, bands of {band_rows} rows: \
                         {} bytes joined against {} encoded whole",
                        joined.len(),
                        expected.len()
                    );
                }
            }
        }
    }

    /// Between batches, the thread that makes the rows encodes only the strips whose rows are all there, and
    /// never waits; what it and the other thread encode joins into the same JPEG.
    #[test]
    fn only_strips_whose_rows_are_made_are_encoded_between_batches() {
        let (width, height) = (48u16, 100u16);
        let pixels = picture(48, 100, 3);
        let row = usize::from(width) * 3;
        let strips = Strips::new((width, height), 3, 85);
        let sink = strips.sink();
        let mut encoded = Vec::new();
        strips
            .encode_ready(&mut encoded)
            .expect("nothing to encode yet");
        assert!(encoded.is_empty());
        sink.send(pixels[..40 * row].to_vec());
        strips.encode_ready(&mut encoded).expect("the first strip");
        assert_eq!(
            encoded.iter().map(|strip| strip.index).collect::<Vec<_>>(),
            [0]
        );
        sink.send(pixels[40 * row..].to_vec());
        drop(sink);
        let mut rest = strips.encode_untaken().expect("the other strips");
        rest.append(&mut encoded);
        let mut expected = Vec::new();
        let mut whole = encoder(&mut expected, 85);
        whole.set_restart_interval(width.div_ceil(16) * 2);
        whole
            .encode(&pixels, width, height, ColorType::Rgb)
            .expect("encodes");
        assert!(strips.joined(rest).expect("every strip") == expected);
    }

    /// A decoder reads the joined JPEG as the same pixels as one encoded without restarts.
    #[test]
    fn a_joined_jpeg_decodes_as_the_picture_encoded_in_one_piece() {
        let (width, height) = (333u16, 250u16);
        let pixels = picture(usize::from(width), usize::from(height), 3);
        let joined = encoded_in_strips(&pixels, (width, height), 3, 16);
        let mut plain = Vec::new();
        encoder(&mut plain, 85)
            .encode(&pixels, width, height, ColorType::Rgb)
            .expect("encodes");
        assert_ne!(joined, plain, "the joined JPEG has restart markers");
        let decode = |jpeg: &[u8]| image::load_from_memory(jpeg).expect("decodes").into_rgb8();
        let (joined, plain) = (decode(&joined), decode(&plain));
        assert_eq!(joined.dimensions(), (333, 250));
        assert!(joined == plain, "the two decode to different pixels");
    }

    /// When the scaler stops before the last row (the picture was cut short), both threads that encode strips stop
    /// with an error instead of waiting for rows that never come.
    #[test]
    fn a_scaler_that_stops_early_stops_the_encoders() {
        let (width, height) = (64u16, 100u16);
        let pixels = picture(64, 40, 3);
        let strips = Strips::new((width, height), 3, 85);
        let sink = strips.sink();
        std::thread::scope(|scope| {
            let other = scope.spawn(|| strips.encode_untaken());
            sink.send(pixels);
            drop(sink);
            let error = strips
                .encode_untaken()
                .err()
                .or(other.join().expect("no panic").err());
            let error = error.expect("a strip could not be encoded").to_string();
            assert!(error.contains("stopped after 40 of 100 rows"), "{error}");
        });
    }
}
