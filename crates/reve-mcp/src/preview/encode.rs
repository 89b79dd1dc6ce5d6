//! The preview's JPEG, encoded while the picture is still being decoded and scaled.
//!
//! Decoding (and scaling) a result and encoding its preview each take about half of a
//! preview's time, and one does not need the other to finish: `jpeg-encoder` asks for the
//! picture a row at a time, top to bottom ([`jpeg_encoder::ImageBuffer::fill_buffers`]). So the
//! scaler hands each band of rows it makes to an encoder on a second thread, which converts
//! them to YCbCr as it needs them. On a machine with two cores a preview then takes about as
//! long as the slower of the two, not their sum.

use std::cell::RefCell;
use std::sync::mpsc::Receiver;

use jpeg_encoder::{ImageBuffer, JpegColorType};

use super::rgb_on_white;

/// Rows of a picture as they arrive from the scaler: bands of whole rows of `channels` 8-bit
/// channels with alpha multiplied in, top to bottom.
pub(super) struct ArrivingRows {
    width: u16,
    height: u16,
    channels: usize,
    feed: RefCell<Feed>,
}

struct Feed {
    bands: Receiver<Vec<u8>>,
    /// The band holding the rows asked for now, as RGB on white.
    band: Vec<u8>,
    /// The picture's row at the top of `band`.
    band_top: usize,
    /// The scaler stopped (its picture was cut short or failed): the encoder gets white rows
    /// to finish on, and its JPEG is thrown away with the scaler's error.
    ended: bool,
}

impl ArrivingRows {
    /// The rows of a `width` x `height` picture that `bands` brings.
    pub(super) fn new(
        bands: Receiver<Vec<u8>>,
        (width, height): (u16, u16),
        channels: usize,
    ) -> ArrivingRows {
        ArrivingRows {
            width,
            height,
            channels,
            feed: RefCell::new(Feed {
                bands,
                band: Vec::new(),
                band_top: 0,
                ended: false,
            }),
        }
    }
}

impl ImageBuffer for ArrivingRows {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    /// Row `y`, waiting for its band. The encoder asks for rows in order (the last one again
    /// to pad the bottom), so a band is dropped once a later one is needed.
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let row_bytes = usize::from(self.width) * 3;
        let y = usize::from(y);
        let mut feed = self.feed.borrow_mut();
        while !feed.ended && y >= feed.band_top + feed.band.len() / row_bytes {
            match feed.bands.recv() {
                Ok(pixels) => {
                    feed.band_top += feed.band.len() / row_bytes;
                    feed.band = match self.channels {
                        3 => pixels,
                        channels => rgb_on_white(&pixels, channels).into_owned(),
                    };
                }
                Err(_) => feed.ended = true,
            }
        }
        let start = y.saturating_sub(feed.band_top) * row_bytes;
        let [luma, blue, red, _] = buffers;
        match feed.band.get(start..start + row_bytes) {
            Some(row) if y >= feed.band_top => to_ycbcr(row, luma, blue, red),
            _ => {
                let width = usize::from(self.width);
                luma.extend(std::iter::repeat_n(255, width));
                blue.extend(std::iter::repeat_n(128, width));
                red.extend(std::iter::repeat_n(128, width));
            }
        }
    }
}

/// Pixels converted at once: enough for the compiler to keep each step in vector registers.
const LANES: usize = 16;

/// An RGB row as YCbCr, appended to the three planes: `jpeg_encoder::rgb_to_ycbcr`'s
/// arithmetic (JFIF's coefficients scaled by 2^16), written on fixed-size blocks of pixels so
/// that it compiles to vector instructions as the encoder's own conversion does.
fn to_ycbcr(row: &[u8], luma: &mut Vec<u8>, blue: &mut Vec<u8>, red: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    /// The blocks convert exactly as the encoder's own function, for every value of each
    /// channel.
    #[test]
    fn rows_convert_as_the_encoder_converts_a_pixel() {
        let row: Vec<u8> = (0..=255u8)
            .flat_map(|value| [value, value.wrapping_mul(7), 255 - value])
            .chain([1, 2, 3])
            .collect();
        let (mut luma, mut blue, mut red) = (Vec::new(), Vec::new(), Vec::new());
        super::to_ycbcr(&row, &mut luma, &mut blue, &mut red);
        assert_eq!(luma.len(), row.len() / 3);
        for (i, pixel) in row.chunks_exact(3).enumerate() {
            let expected = jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]);
            assert_eq!((luma[i], blue[i], red[i]), expected, "pixel {i}: {pixel:?}");
        }
    }
}
