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
                    feed.band = rgb_on_white(&pixels, self.channels).into_owned();
                }
                Err(_) => feed.ended = true,
            }
        }
        let start = y.saturating_sub(feed.band_top) * row_bytes;
        let [luma, blue, red, _] = buffers;
        match feed.band.get(start..start + row_bytes) {
            Some(row) if y >= feed.band_top => {
                for pixel in row.chunks_exact(3) {
                    let (y, cb, cr) = jpeg_encoder::rgb_to_ycbcr(pixel[0], pixel[1], pixel[2]);
                    luma.push(y);
                    blue.push(cb);
                    red.push(cr);
                }
            }
            _ => {
                let width = usize::from(self.width);
                luma.extend(std::iter::repeat_n(255, width));
                blue.extend(std::iter::repeat_n(128, width));
                red.extend(std::iter::repeat_n(128, width));
            }
        }
    }
}
