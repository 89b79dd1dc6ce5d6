//! The preview's JPEG, encoded in strips on two threads while the picture is still decoded and scaled.
//!
//! Decoding (and scaling) a result and encoding its preview each take about half of a preview's time, and
//! encoding a row needs only the rows above it decoded. So the scaler hands each band of rows it makes to
//! [`Strips`], which cuts the picture into strips of [`STRIP_ROWS`] rows; a second thread encodes each strip
//! as soon as its rows are made, and the decoding thread, once the picture is decoded, encodes the strips the
//! other has not reached. Each strip is a JPEG of its own, with the same tables; their entropy-coded data are
//! joined with restart markers between them (a restart resets what a strip's coding carries over from the one
//! before), which gives byte for byte the JPEG `jpeg-encoder` makes of the whole picture with a restart interval
//! of one strip. On two cores a preview then takes about the decoder's time plus a strip or two, rather than the
//! slower of decoder and encoder, or their sum.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use jpeg_encoder::{ChromaSubsamplingMethod, Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use super::{PreviewError, rgb_on_white};

/// Rows per strip: two rows of 16x16 blocks (the MCUs of 4:2:0 sampling, [`SAMPLING`]). The thread that decodes
/// shares the strips left when it is done, so the shorter they are, the less is left for one thread alone;
/// each costs a few dozen bytes of markers and padding, and a header that is made and dropped.
const STRIP_ROWS: usize = 32;
/// Chroma at half resolution both ways (what `jpeg-encoder` chooses itself below quality 90), stated here
/// because a strip must be a whole number of MCU rows: 16 pixel rows each.
const SAMPLING: SamplingFactor = SamplingFactor::F_2_2;
/// Each block's chroma is its top-left pixel's (`jpeg-encoder`'s default, stated because the rows are converted
/// for it: see [`StripRows::fill_buffers`]).
const SUBSAMPLING: ChromaSubsamplingMethod = ChromaSubsamplingMethod::Nearest;
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
/// the encoding threads that no more rows come, so that they never wait for nothing.
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
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let top = index * STRIP_ROWS;
            if top >= usize::from(self.height) {
                return Ok(encoded);
            }
            let bottom = (top + STRIP_ROWS).min(usize::from(self.height));
            let pieces = {
                let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
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
            let rows = StripRows {
                width: self.width,
                // A strip is at most STRIP_ROWS high.
                height: (bottom - top) as u16,
                pieces: pieces
                    .into_iter()
                    .map(|piece| match self.channels {
                        3 => piece,
                        channels => rgb_on_white(&piece, channels).into_owned(),
                    })
                    .collect(),
                cursor: RefCell::new((0, 0)),
            };
            let mut jpeg = Vec::new();
            encoder(&mut jpeg, self.quality).encode_image(rows)?;
            encoded.push(EncodedStrip { index, jpeg });
        }
    }

    /// The picture's JPEG from its strips' (the encoding threads' results together, in any order): the first
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
    encoder.set_chroma_subsampling_method(SUBSAMPLING);
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

/// A strip's rows, as RGB on white, for `jpeg-encoder`.
struct StripRows {
    width: u16,
    height: u16,
    pieces: Vec<Vec<u8>>,
    /// The piece holding the rows asked for now, and the strip's row at its top.
    cursor: RefCell<(usize, usize)>,
}

impl ImageBuffer for StripRows {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    /// Row `y` of the strip. The encoder asks for rows in order (the last one again to pad the bottom).
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let row_bytes = usize::from(self.width) * 3;
        let y = usize::from(y);
        let mut cursor = self.cursor.borrow_mut();
        let (piece, top) = &mut *cursor;
        while y >= *top + self.pieces[*piece].len() / row_bytes {
            *top += self.pieces[*piece].len() / row_bytes;
            *piece += 1;
        }
        let start = (y - *top) * row_bytes;
        let [luma, blue, red, _] = buffers;
        // The encoder takes a 4:2:0 block's chroma from its top-left pixel ([`SUBSAMPLING`]): from
        // even rows only, and from the last row, which it repeats to pad the bottom. The other
        // rows' chroma is never read, so it is not worked out.
        let chroma = y % 2 == 0 || y + 1 == usize::from(self.height);
        let row = &self.pieces[*piece][start..start + row_bytes];
        to_ycbcr(row, chroma, luma, blue, red);
    }
}

/// Pixels converted at once: enough for the compiler to keep each step in vector registers.
const LANES: usize = 16;

/// An RGB row as YCbCr, appended to the three planes: `jpeg_encoder::rgb_to_ycbcr`'s
/// arithmetic (JFIF's coefficients scaled by 2^16), written on fixed-size blocks of pixels so
/// that it compiles to vector instructions as the encoder's own conversion does. Without
/// `chroma`, only luma is worked out, and the chroma planes get zeros where the row's would be.
fn to_ycbcr(row: &[u8], chroma: bool, luma: &mut Vec<u8>, blue: &mut Vec<u8>, red: &mut Vec<u8>) {
    if !chroma {
        to_luma(row, luma);
        blue.resize(luma.len(), 0);
        red.resize(luma.len(), 0);
        return;
    }
    let mut blocks = row.chunks_exact(3 * LANES);
    for block in &mut blocks {
        let (mut r, mut g, mut b) = ([0i32; LANES], [0i32; LANES], [0i32; LANES]);
        for (i, pixel) in block.chunks_exact(3).enumerate() {
            r[i] = i32::from(pixel[0]);
            g[i] = i32::from(pixel[1]);
            b[i] = i32::from(pixel[2]);
        }
        let (mut ys, mut cbs, mut crs) = ([0u8; LANES], [0u8; LANES], [0u8; LANES]);
        for i in 0..LANES {
            ys[i] = ((19595 * r[i] + 38470 * g[i] + 7471 * b[i] + 0x7FFF) >> 16) as u8;
            cbs[i] =
                ((-11059 * r[i] - 21709 * g[i] + 32768 * b[i] + (128 << 16) + 0x7FFF) >> 16) as u8;
            crs[i] =
                ((32768 * r[i] - 27439 * g[i] - 5329 * b[i] + (128 << 16) + 0x7FFF) >> 16) as u8;
        }
        luma.extend_from_slice(&ys);
        blue.extend_from_slice(&cbs);
        red.extend_from_slice(&crs);
    }
    for pixel in blocks.remainder().chunks_exact(3) {
        let (y, cb, cr) = jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]);
        luma.push(y);
        blue.push(cb);
        red.push(cr);
    }
}

/// An RGB row's luma, appended to its plane: [`to_ycbcr`]'s, for rows whose chroma is not read.
fn to_luma(row: &[u8], luma: &mut Vec<u8>) {
    let mut blocks = row.chunks_exact(3 * LANES);
    for block in &mut blocks {
        let mut ys = [0u8; LANES];
        for (y, pixel) in ys.iter_mut().zip(block.chunks_exact(3)) {
            let (r, g, b) = (
                i32::from(pixel[0]),
                i32::from(pixel[1]),
                i32::from(pixel[2]),
            );
            *y = ((19595 * r + 38470 * g + 7471 * b + 0x7FFF) >> 16) as u8;
        }
        luma.extend_from_slice(&ys);
    }
    for pixel in blocks.remainder().chunks_exact(3) {
        luma.push(jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]).0);
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

    /// A whole picture of RGB rows, for `jpeg-encoder` to encode in one go.
    struct Whole<'a> {
        rgb: &'a [u8],
        width: u16,
        height: u16,
    }

    impl ImageBuffer for Whole<'_> {
        fn get_jpeg_color_type(&self) -> JpegColorType {
            JpegColorType::Ycbcr
        }
        fn width(&self) -> u16 {
            self.width
        }
        fn height(&self) -> u16 {
            self.height
        }
        fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
            let row_bytes = usize::from(self.width) * 3;
            let row = &self.rgb[usize::from(y) * row_bytes..][..row_bytes];
            for pixel in row.chunks_exact(3) {
                let (luma, blue, red) = jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]);
                buffers[0].push(luma);
                buffers[1].push(blue);
                buffers[2].push(red);
            }
        }
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
                let picture = Whole {
                    rgb: &rgb,
                    width,
                    height,
                };
                whole.encode_image(picture).expect("encodes");
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

    /// A decoder reads the joined JPEG as the same pixels as one encoded without restarts.
    #[test]
    fn a_joined_jpeg_decodes_as_the_picture_encoded_in_one_piece() {
        let (width, height) = (333u16, 250u16);
        let pixels = picture(usize::from(width), usize::from(height), 3);
        let joined = encoded_in_strips(&pixels, (width, height), 3, 16);
        let mut plain = Vec::new();
        let picture = Whole {
            rgb: &pixels,
            width,
            height,
        };
        encoder(&mut plain, 85)
            .encode_image(picture)
            .expect("encodes");
        assert_ne!(joined, plain, "the joined JPEG has restart markers");
        let decode = |jpeg: &[u8]| image::load_from_memory(jpeg).expect("decodes").into_rgb8();
        let (joined, plain) = (decode(&joined), decode(&plain));
        assert_eq!(joined.dimensions(), (333, 250));
        assert!(joined == plain, "the two decode to different pixels");
    }

    /// When the scaler stops before the last row (the picture was cut short), both encoding threads stop
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
    /// The blocks convert exactly as the encoder's own function, for every value of each
    /// channel.
    #[test]
    fn rows_convert_as_the_encoder_converts_a_pixel() {
        let row: Vec<u8> = (0..=255u8)
            .flat_map(|value| [value, value.wrapping_mul(7), 255 - value])
            .chain([1, 2, 3])
            .collect();
        let (mut luma, mut blue, mut red) = (Vec::new(), Vec::new(), Vec::new());
        super::to_ycbcr(&row, true, &mut luma, &mut blue, &mut red);
        let mut luma_alone = Vec::new();
        super::to_luma(&row, &mut luma_alone);
        assert_eq!(luma_alone, luma);
        assert_eq!(luma.len(), row.len() / 3);
        for (i, pixel) in row.chunks_exact(3).enumerate() {
            let expected = jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]);
            assert_eq!((luma[i], blue[i], red[i]), expected, "pixel {i}: {pixel:?}");
        }
    }
}
