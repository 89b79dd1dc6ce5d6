//! The inline picture an agent sees in the tool result.
//!
//! MCP clients put image content straight into the model's context, and the
//! big clients refuse or silently drop images over roughly 1 MB of base64 or
//! past ~1568 px on the long edge (beyond that the model downsamples anyway).
//! The saved file keeps full resolution; the preview only has to be seen.

use std::fs::File;
use std::io::{Cursor, Read as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageReader, Limits, RgbImage};

/// How big an inline preview may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewBudget {
    /// Upper bound on the base64 text of the preview, in bytes.
    pub max_base64_bytes: usize,
    /// Upper bound on the longer side of the preview, in pixels.
    pub max_edge_px: u32,
}

impl Default for PreviewBudget {
    fn default() -> Self {
        Self {
            max_base64_bytes: 750 * 1024,
            max_edge_px: 1568,
        }
    }
}

/// A preview ready to be sent as MCP image content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub base64: String,
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
    /// The size of the full image, read from its header on the way.
    pub full_size: (u32, u32),
}

/// Why no preview could be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the preview threads could not be started: {0}")]
    Workers(String),
    #[error("the result could not be read back for a preview: {0}")]
    Read(#[source] reve_core::Error),
    #[error("the result image could not be decoded for a preview: {0}")]
    Decode(#[from] image::ImageError),
    #[error("the result image could not be scaled for a preview: {0}")]
    Scale(String),
    #[error("the preview could not be encoded as JPEG: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
    #[error(
        "the result image declares {width}x{height} pixels, more than the {max} px per side a preview will decode"
    )]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error(
        "no preview fits in {max_base64_bytes} bytes of base64 even at {edge_px} px and the lowest quality tried"
    )]
    OverBudget {
        max_base64_bytes: usize,
        edge_px: u32,
    },
}

impl From<fast_image_resize::ImageBufferError> for PreviewError {
    fn from(error: fast_image_resize::ImageBufferError) -> Self {
        PreviewError::Scale(error.to_string())
    }
}

impl From<fast_image_resize::ResizeError> for PreviewError {
    fn from(error: fast_image_resize::ResizeError) -> Self {
        PreviewError::Scale(error.to_string())
    }
}

/// Largest side the preview step agrees to decode. A result larger than this
/// is far beyond what the model produces; refusing it bounds the memory a
/// decompression bomb (a tiny PNG declaring enormous dimensions) can claim.
const MAX_DECODE_EDGE_PX: u32 = 16_384;
/// Decoder allocation cap: a 16384x16384 RGBA picture is 1 GiB, but real
/// results are at most a few thousand pixels a side; 512 MiB leaves room for
/// 8192x8192 RGBA with 16-bit channels.
const MAX_DECODE_ALLOC_BYTES: u64 = 512 * 1024 * 1024;
/// JPEG qualities tried in turn until the preview fits the byte budget.
const JPEG_QUALITIES: [u8; 4] = [85, 70, 55, 40];

/// Builds the preview for an edited image.
///
/// The original bytes are passed through untouched when they already fit the
/// budget in a format every client renders (PNG, JPEG, WebP, GIF); otherwise
/// the picture is decoded with bounded memory, scaled to the edge budget and
/// re-encoded as JPEG, lowering quality and then size until it fits.
pub fn make_preview(bytes: &[u8], budget: PreviewBudget) -> Result<Preview, PreviewError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?;
    let (width, height) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?
        .into_dimensions()?;

    if let Some(format) = reve_core::ImageFormat::detect(bytes)
        && width.max(height) <= budget.max_edge_px
        && base64_len(bytes.len()) <= budget.max_base64_bytes
    {
        return Ok(Preview {
            base64: STANDARD.encode(bytes),
            mime_type: format.mime_type(),
            width,
            height,
            full_size: (width, height),
        });
    }
    if width > MAX_DECODE_EDGE_PX || height > MAX_DECODE_EDGE_PX {
        return Err(PreviewError::TooLarge {
            width,
            height,
            max: MAX_DECODE_EDGE_PX,
        });
    }

    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_EDGE_PX);
    limits.max_image_height = Some(MAX_DECODE_EDGE_PX);
    limits.max_alloc = Some(MAX_DECODE_ALLOC_BYTES);
    reader.limits(limits);
    let decoded = flatten_onto_white(reader.decode()?);

    let mut edge = budget.max_edge_px.min(width.max(height)).max(1);
    let mut resizer = Resizer::new();
    loop {
        let (scaled_width, scaled_height) = fit_within(width, height, edge);
        let scaled = if (scaled_width, scaled_height) == (width, height) {
            None
        } else {
            let source = ImageRef::new(width, height, decoded.as_raw(), PixelType::U8x3)?;
            let mut target = Image::new(scaled_width, scaled_height, PixelType::U8x3);
            // A box filter: area averaging, as good as any for a downscale
            // and the cheapest (see BENCHMARKS.md).
            let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
            resizer.resize(&source, &mut target, &options)?;
            Some(target)
        };
        let pixels = scaled
            .as_ref()
            .map_or(decoded.as_raw().as_slice(), |scaled| scaled.buffer());
        for quality in JPEG_QUALITIES {
            let mut jpeg = Vec::new();
            // Both sides are at most MAX_DECODE_EDGE_PX, well within u16.
            jpeg_encoder::Encoder::new(&mut jpeg, quality).encode(
                pixels,
                scaled_width as u16,
                scaled_height as u16,
                jpeg_encoder::ColorType::Rgb,
            )?;
            if base64_len(jpeg.len()) <= budget.max_base64_bytes {
                return Ok(Preview {
                    base64: STANDARD.encode(&jpeg),
                    mime_type: "image/jpeg",
                    width: scaled_width,
                    height: scaled_height,
                    full_size: (width, height),
                });
            }
        }
        if edge <= 64 {
            return Err(PreviewError::OverBudget {
                max_base64_bytes: budget.max_base64_bytes,
                edge_px: edge,
            });
        }
        edge = edge * 3 / 4;
    }
}

/// [`make_preview`] for a result staged in a file, read whole only now, on a
/// preview thread, so that results waiting for one stay on disk.
pub fn make_preview_from(mut file: File, budget: PreviewBudget) -> Result<Preview, PreviewError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(image::ImageError::IoError)?;
    make_preview(&bytes, budget)
}

fn base64_len(raw_len: usize) -> usize {
    raw_len.div_ceil(3) * 4
}

/// The size of `width` x `height` scaled to fit `edge` on its longer side,
/// keeping the aspect ratio; unchanged if it already fits.
fn fit_within(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let longer = width.max(height);
    if longer <= edge {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(edge) + u64::from(longer) / 2) / u64::from(longer);
        u32::try_from(scaled).unwrap_or(edge).max(1)
    };
    (scale(width), scale(height))
}

/// JPEG has no alpha channel; transparent areas would otherwise turn black.
fn flatten_onto_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = image::RgbImage::new(width, height);
    for (out, pixel) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = pixel.0;
        let blend =
            |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        *out = image::Rgb([blend(r), blend(g), blend(b)]);
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageFormat;

    /// A smooth gradient: photo-like, so JPEG compresses it as it would a result.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn small_image_is_passed_through_byte_for_byte() {
        let bytes = png(64, 48);
        let preview = make_preview(&bytes, PreviewBudget::default()).unwrap();
        assert_eq!(preview.mime_type, "image/png");
        assert_eq!(STANDARD.decode(&preview.base64).unwrap(), bytes);
        assert_eq!((preview.width, preview.height), (64, 48));
    }

    #[test]
    fn large_image_is_scaled_to_the_edge_and_byte_budget() {
        let bytes = png(3000, 1500);
        let budget = PreviewBudget {
            max_base64_bytes: 200 * 1024,
            max_edge_px: 1568,
        };
        let preview = make_preview(&bytes, budget).unwrap();
        assert_eq!(preview.mime_type, "image/jpeg");
        assert!(preview.base64.len() <= budget.max_base64_bytes);
        assert_eq!((preview.width, preview.height), (1568, 784));
        let decoded = image::load_from_memory(&STANDARD.decode(&preview.base64).unwrap()).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1568, 784));
    }

    #[test]
    fn tight_byte_budget_shrinks_the_picture_further() {
        let bytes = png(1200, 1200);
        let budget = PreviewBudget {
            max_base64_bytes: 8 * 1024,
            max_edge_px: 1568,
        };
        let preview = make_preview(&bytes, budget).unwrap();
        assert!(preview.base64.len() <= 8 * 1024);
        assert!(preview.width < 1200);
    }

    #[test]
    fn scaling_keeps_the_aspect_ratio_and_at_least_a_pixel() {
        assert_eq!(fit_within(3000, 1500, 1568), (1568, 784));
        assert_eq!(fit_within(1500, 3000, 1568), (784, 1568));
        assert_eq!(fit_within(4096, 1, 1568), (1568, 1));
        assert_eq!(fit_within(800, 600, 1568), (800, 600));
    }

    #[test]
    fn decompression_bomb_is_refused_without_decoding() {
        let bomb = reve_tests::fake::png_declaring(100_000, 100_000);
        let error = make_preview(&bomb, PreviewBudget::default()).unwrap_err();
        assert!(
            matches!(
                error,
                PreviewError::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{error}"
        );
    }
}
