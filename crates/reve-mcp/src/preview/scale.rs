//! Scaling a picture down as its rows arrive, holding a band of source rows rather than the whole picture.
//!
//! `fast_image_resize` scales whole pictures, but its box filter gives each output row exactly the source rows whose
//! centres fall in that row's span, so a band of source rows scaled with a crop box that names the band's share of
//! the picture yields the same rows as scaling the whole picture would. Bands keep its SIMD paths and its rounding
//! (previews match what the full-picture path made) while memory stays a few dozen source rows whatever the height.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, MulDiv, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::PreviewError;
use super::encode::StripSink;

/// Output rows made per call to the resizer: enough that a call's fixed cost (its coefficients) is spread thin,
/// few enough that the band stays small (16 rows of a 16384-pixel picture scaled to 1568 are 168 source rows).
const OUTPUT_ROWS_PER_BAND: u32 = 16;

/// A picture of 8-bit channels (grey, grey and alpha, RGB or RGBA) with alpha multiplied in.
#[derive(Clone)]
pub(super) struct Scaled {
    pub(super) pixels: Vec<u8>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) pixel_type: PixelType,
}

impl Scaled {
    pub(super) fn channels(&self) -> usize {
        channels(self.pixel_type)
    }

    /// This picture scaled again to `width` x `height`, for a preview that must shrink to fit its byte budget.
    pub(super) fn rescaled(&self, width: u32, height: u32) -> Result<Scaled, PreviewError> {
        let source = ImageRef::new(self.width, self.height, &self.pixels, self.pixel_type)?;
        let mut target = Image::new(width, height, self.pixel_type);
        Resizer::new().resize(&source, &mut target, &box_filter())?;
        Ok(Scaled {
            pixels: target.into_vec(),
            width,
            height,
            pixel_type: self.pixel_type,
        })
    }
}

/// A box filter (area averaging, as good as any for a downscale, and the cheapest: see BENCHMARKS.md) over pixels
/// whose alpha is already multiplied in, so that the resizer makes no premultiplied copy of its own.
fn box_filter() -> ResizeOptions {
    ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Box))
        .use_alpha(false)
}

/// The channels of one of the 8-bit pixel types a preview uses.
pub(super) fn channels(pixel_type: PixelType) -> usize {
    match pixel_type {
        PixelType::U8 => 1,
        PixelType::U8x2 => 2,
        PixelType::U8x3 => 3,
        _ => 4,
    }
}

/// What one of the 8-bit pixel types a preview uses holds, for errors.
pub(super) fn describe(pixel_type: PixelType) -> &'static str {
    match pixel_type {
        PixelType::U8 => "grey",
        PixelType::U8x2 => "grey and alpha",
        PixelType::U8x3 => "RGB",
        _ => "RGBA",
    }
}

/// Takes a picture's rows top to bottom and scales them to the target size as they come.
pub(super) struct RowScaler {
    width: u32,
    height: u32,
    target_width: u32,
    target_height: u32,
    pixel_type: PixelType,
    row_bytes: usize,
    /// Source rows per target row.
    step: f64,
    /// Source rows from `band_start` on, not yet scaled into every target row they belong to.
    band: Vec<u8>,
    band_start: u32,
    rows_received: u32,
    /// The target rows made so far.
    target: Vec<u8>,
    target_rows: u32,
    resizer: Resizer,
    /// Where each band of target rows goes as soon as it is made, besides the target picture:
    /// the preview's encoder, working on the rows already made while later ones are decoded.
    sink: Option<StripSink>,
}

impl RowScaler {
    /// A scaler of `width` x `height` rows of `pixel_type` to `target_width` x `target_height`, which must be no
    /// larger.
    pub(super) fn new(
        (width, height): (u32, u32),
        (target_width, target_height): (u32, u32),
        pixel_type: PixelType,
    ) -> RowScaler {
        let row_bytes = width as usize * channels(pixel_type);
        RowScaler {
            width,
            height,
            target_width,
            target_height,
            pixel_type,
            row_bytes,
            step: f64::from(height) / f64::from(target_height),
            band: Vec::new(),
            band_start: 0,
            rows_received: 0,
            target: Vec::with_capacity(
                target_width as usize * target_height as usize * channels(pixel_type),
            ),
            target_rows: 0,
            resizer: Resizer::new(),
            sink: None,
        }
    }

    /// This scaler, also sending each band of target rows to `sink` as it is made.
    pub(super) fn sending_to(mut self, sink: StripSink) -> RowScaler {
        self.sink = Some(sink);
        self
    }

    /// The memory a scaler of this shape holds at most: its band of source rows and the target picture.
    pub(super) fn memory(
        (width, height): (u32, u32),
        (target_width, target_height): (u32, u32),
        pixel_type: PixelType,
    ) -> u64 {
        let step = f64::from(height) / f64::from(target_height);
        let band_rows = (f64::from(OUTPUT_ROWS_PER_BAND) * step).ceil() as u64 + 2;
        let channels = channels(pixel_type) as u64;
        let band = band_rows.min(u64::from(height)) * u64::from(width) * channels;
        // The resizer's own intermediate picture: the band's target rows at the source width.
        let intermediate = u64::from(OUTPUT_ROWS_PER_BAND) * u64::from(width) * channels;
        let target = u64::from(target_width) * u64::from(target_height) * channels;
        band + intermediate + target
    }

    /// Takes the next row, of 8-bit channels with alpha not yet multiplied in.
    pub(super) fn push(&mut self, row: &[u8]) -> Result<(), PreviewError> {
        debug_assert_eq!(row.len(), self.row_bytes);
        let start = self.band.len();
        self.band.extend_from_slice(row);
        if channels(self.pixel_type).is_multiple_of(2) {
            let mut view =
                Image::from_slice_u8(self.width, 1, &mut self.band[start..], self.pixel_type)?;
            MulDiv::default().multiply_alpha_inplace(&mut view)?;
        }
        self.rows_received += 1;
        if self.is_identity() {
            if self.band.len() >= OUTPUT_ROWS_PER_BAND as usize * self.row_bytes {
                self.pass_band_through();
            }
            return Ok(());
        }
        let band_end = self.target_rows + OUTPUT_ROWS_PER_BAND;
        if band_end < self.target_height && self.rows_received >= self.rows_needed(band_end) {
            self.scale_band(band_end)?;
        }
        Ok(())
    }

    /// The scaled picture, once every row has been pushed.
    pub(super) fn finish(mut self) -> Result<Scaled, PreviewError> {
        if self.rows_received != self.height {
            return Err(PreviewError::Scale(format!(
                "the decoder gave {} rows of a picture {} rows high",
                self.rows_received, self.height
            )));
        }
        if self.is_identity() {
            self.pass_band_through();
        } else if self.target_rows < self.target_height {
            self.scale_band(self.target_height)?;
        }
        Ok(Scaled {
            pixels: self.target,
            width: self.target_width,
            height: self.target_height,
            pixel_type: self.pixel_type,
        })
    }

    /// Whether the picture keeps its size: its rows are then the target's rows as they are.
    fn is_identity(&self) -> bool {
        (self.width, self.height) == (self.target_width, self.target_height)
    }

    /// The band's rows, of a picture that keeps its size, as target rows.
    fn pass_band_through(&mut self) {
        self.target.extend_from_slice(&self.band);
        self.target_rows = self.rows_received;
        match &self.sink {
            Some(sink) => sink.send(std::mem::take(&mut self.band)),
            None => self.band.clear(),
        }
    }

    /// How many source rows the target rows before `target_row` draw on: the box filter takes a source row into
    /// the target row whose span holds its centre, and one more row covers rounding in the resizer.
    fn rows_needed(&self, target_row: u32) -> u32 {
        let end = (f64::from(target_row) * self.step).ceil() as u32 + 1;
        end.min(self.height)
    }

    /// Scales the band into the target rows up to `band_end`, then drops the band rows no later target row uses.
    fn scale_band(&mut self, band_end: u32) -> Result<(), PreviewError> {
        let band_rows = self.rows_received - self.band_start;
        let rows = band_end - self.target_rows;
        let source = ImageRef::new(self.width, band_rows, &self.band, self.pixel_type)?;
        let mut scaled = Image::new(self.target_width, rows, self.pixel_type);
        let top = f64::from(self.target_rows) * self.step - f64::from(self.band_start);
        // The last band ends at the picture's bottom, which rounding must not overshoot.
        let span = (f64::from(rows) * self.step).min(f64::from(band_rows) - top);
        let options = box_filter().crop(0.0, top, f64::from(self.width), span);
        self.resizer.resize(&source, &mut scaled, &options)?;
        self.target.extend_from_slice(scaled.buffer());
        if let Some(sink) = &self.sink {
            sink.send(scaled.into_vec());
        }
        self.target_rows = band_end;

        // Keep one row before the next band's span for the same rounding.
        let keep_from = ((f64::from(band_end) * self.step).floor() as u32)
            .saturating_sub(1)
            .max(self.band_start);
        let dropped = (keep_from - self.band_start) as usize * self.row_bytes;
        self.band.drain(..dropped);
        self.band_start = keep_from;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A picture with detail at every scale: what a whole-picture resize and a banded one could disagree on.
    fn picture(width: u32, height: u32, channels: usize) -> Vec<u8> {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * channels);
        for y in 0..height {
            for x in 0..width {
                for channel in 0..channels {
                    let value = (x * 7 + y * 13 + channel as u32 * 61) ^ (x * y / 5);
                    pixels.push((value % 256) as u8);
                }
            }
        }
        pixels
    }

    /// How far one picture's channels are from another's.
    #[derive(Debug)]
    pub(in crate::preview) struct Difference {
        pub(in crate::preview) largest: u8,
        pub(in crate::preview) mean: f64,
        /// The share of channels more than 1 apart.
        pub(in crate::preview) over_one: f64,
    }

    impl Difference {
        pub(in crate::preview) fn of(got: &[u8], want: &[u8]) -> Difference {
            assert_eq!(got.len(), want.len());
            let apart = || got.iter().zip(want).map(|(&got, &want)| got.abs_diff(want));
            let total: u64 = apart().map(u64::from).sum();
            Difference {
                largest: apart().max().unwrap_or(0),
                mean: total as f64 / got.len() as f64,
                over_one: apart().filter(|&apart| apart > 1).count() as f64 / got.len() as f64,
            }
        }

        /// Differences of rounding only. A band starts its span at a fraction of a row computed otherwise than the
        /// whole picture's, so where a source row's centre falls exactly on a target row's edge (e.g. 3333 rows to
        /// 1568, at target row 784) the two may give that row to neighbouring target rows: one target row in
        /// hundreds then differs by more than 1.
        pub(in crate::preview) fn is_rounding(&self) -> bool {
            self.mean <= 0.05 && self.over_one <= 0.005
        }
    }

    /// `pixels` premultiplied and scaled in one call to the resizer: what the banded scaler must match.
    pub(in crate::preview) fn whole(
        pixels: &[u8],
        (width, height): (u32, u32),
        (target_width, target_height): (u32, u32),
        pixel_type: PixelType,
    ) -> Vec<u8> {
        let mut premultiplied = pixels.to_vec();
        if channels(pixel_type).is_multiple_of(2) {
            let mut view =
                Image::from_slice_u8(width, height, &mut premultiplied, pixel_type).unwrap();
            MulDiv::default().multiply_alpha_inplace(&mut view).unwrap();
        }
        let source = ImageRef::new(width, height, &premultiplied, pixel_type).unwrap();
        let mut target = Image::new(target_width, target_height, pixel_type);
        Resizer::new()
            .resize(&source, &mut target, &box_filter())
            .unwrap();
        target.into_vec()
    }

    #[test]
    fn rows_scaled_in_bands_match_the_whole_picture_scaled_at_once() {
        let cases = [
            ((4096, 3072), (1568, 1176), PixelType::U8x3),
            ((1001, 3333), (471, 1568), PixelType::U8x4),
            ((777, 555), (333, 238), PixelType::U8),
            ((640, 2000), (64, 200), PixelType::U8x2),
            ((50, 37), (1, 1), PixelType::U8x3),
            ((300, 300), (300, 299), PixelType::U8x3),
            ((401, 300), (300, 224), PixelType::U8x3),
            ((401, 301), (300, 225), PixelType::U8x3),
        ];
        for (size, target_size, pixel_type) in cases {
            let pixels = picture(size.0, size.1, channels(pixel_type));
            let mut scaler = RowScaler::new(size, target_size, pixel_type);
            for row in pixels.chunks_exact(size.0 as usize * channels(pixel_type)) {
                scaler.push(row).unwrap();
            }
            let banded = scaler.finish().unwrap();
            assert_eq!((banded.width, banded.height), target_size);
            let expected = whole(&pixels, size, target_size, pixel_type);
            assert_eq!(banded.pixels.len(), expected.len(), "{size:?}");
            let difference = Difference::of(&banded.pixels, &expected);
            assert!(
                difference.is_rounding(),
                "{size:?} to {target_size:?} {pixel_type:?}: {difference:?}"
            );
        }
    }

    #[test]
    fn a_picture_cut_short_is_an_error_not_a_preview() {
        let mut scaler = RowScaler::new((100, 100), (10, 10), PixelType::U8);
        for _ in 0..99 {
            scaler.push(&[128; 100]).unwrap();
        }
        let error = scaler.finish().err().expect("99 rows of 100 are refused");
        assert!(
            error
                .to_string()
                .contains("99 rows of a picture 100 rows high"),
            "{error}"
        );
    }

    #[test]
    fn the_band_stays_a_few_dozen_rows_whatever_the_height() {
        let (width, height) = (512, 20_000);
        let mut scaler = RowScaler::new((width, height), (40, 1563), PixelType::U8);
        let mut largest_band = 0;
        for _ in 0..height {
            scaler.push(&[200; 512]).unwrap();
            largest_band = largest_band.max(scaler.band.len());
        }
        let memory = RowScaler::memory((width, height), (40, 1563), PixelType::U8);
        assert!(largest_band <= 16 * 13 * width as usize, "{largest_band}");
        assert!(largest_band as u64 <= memory, "{largest_band} > {memory}");
        assert!(
            scaler
                .finish()
                .unwrap()
                .pixels
                .iter()
                .all(|&value| value == 200)
        );
    }
}
