//! Decoding a result into rows for the [`RowScaler`].
//!
//! A PNG that is not interlaced, what the model returns, is decoded one row at a time by the `png` crate and never
//! held whole. The other pictures are decoded whole by `image` and then handed over row by row, so every format goes
//! through the same scaling:
//! - an interlaced PNG delivers its rows pass by pass, each pass across the whole picture;
//! - `zune-jpeg` and `image-webp` decode only into a full frame;
//! - a GIF's first frame is drawn onto its canvas.

use std::io::{BufRead, Seek};

use fast_image_resize::PixelType;
use image::{DynamicImage, ImageDecoder as _, ImageReader, Limits};

use super::PreviewError;
use super::scale::{RowScaler, Scaled};

/// What a decode of a picture of this size and colour holds at once, besides the scaler.
pub(super) struct Plan {
    /// Rows straight from the PNG decoder, or a full frame from `image`.
    pub(super) streamed: bool,
    /// The picture's rows once they are 8-bit: one to four channels.
    pub(super) pixel_type: PixelType,
    /// Bytes the decoder's own buffers hold: two rows when streaming, the frame and its 8-bit copy otherwise.
    pub(super) decoder_bytes: u64,
}

/// How `reader`'s picture (`width` x `height`) will be decoded, from its header alone.
pub(super) fn plan<R: BufRead + Seek>(
    reader: &mut R,
    (width, height): (u32, u32),
) -> Result<Plan, PreviewError> {
    let pixels = u64::from(width) * u64::from(height);
    if let Some(info) = png_header(reader)? {
        if !info.interlaced {
            return Ok(Plan {
                streamed: true,
                pixel_type: info.pixel_type,
                decoder_bytes: 2 * u64::from(width) * info.raw_bytes_per_pixel,
            });
        }
    }
    let color = ImageReader::new(&mut *reader)
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?
        .into_decoder()?
        .color_type();
    reader.rewind().map_err(image::ImageError::IoError)?;
    let pixel_type = eight_bit(color);
    let frame = pixels * u64::from(color.bytes_per_pixel());
    let eight_bit_copy = if color.bytes_per_pixel() > color.channel_count() {
        pixels * super::scale::channels(pixel_type) as u64
    } else {
        0
    };
    Ok(Plan {
        streamed: false,
        pixel_type,
        decoder_bytes: frame + eight_bit_copy,
    })
}

/// Decodes `reader`'s picture into `scaler` as [`plan`] said.
pub(super) fn decode_into<R: BufRead + Seek>(
    reader: R,
    plan: &Plan,
    mut scaler: RowScaler,
    max_alloc: u64,
) -> Result<Scaled, PreviewError> {
    if plan.streamed {
        let mut decoder = png_decoder(reader);
        decoder.set_limits(png::Limits {
            bytes: usize::try_from(max_alloc).unwrap_or(usize::MAX),
        });
        let mut rows = decoder.read_info().map_err(png_error)?;
        while let Some(row) = rows.next_row().map_err(png_error)? {
            scaler.push(row.data())?;
        }
        return scaler.finish();
    }
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    let picture = to_eight_bit(DynamicImage::from_decoder(reader.into_decoder()?)?);
    let row_bytes = picture.width() as usize * super::scale::channels(plan.pixel_type);
    for row in picture.as_bytes().chunks_exact(row_bytes) {
        scaler.push(row)?;
    }
    scaler.finish()
}

/// What the header of a PNG tells about its rows.
struct PngHeader {
    interlaced: bool,
    pixel_type: PixelType,
    /// Bytes per pixel before expansion to 8 bits: what the decoder's raw rows take.
    raw_bytes_per_pixel: u64,
}

/// The header of `reader`'s picture if it is a PNG; the reader is back at the start either way.
fn png_header<R: BufRead + Seek>(reader: &mut R) -> Result<Option<PngHeader>, PreviewError> {
    let signature = reader.fill_buf().map_err(image::ImageError::IoError)?;
    if !signature.starts_with(&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']) {
        return Ok(None);
    }
    let rows = png_decoder(&mut *reader).read_info().map_err(png_error)?;
    let info = rows.info();
    let (color, _) = rows.output_color_type();
    let header = PngHeader {
        interlaced: info.interlaced,
        pixel_type: match color {
            png::ColorType::Grayscale => PixelType::U8,
            png::ColorType::GrayscaleAlpha => PixelType::U8x2,
            png::ColorType::Rgba => PixelType::U8x4,
            _ => PixelType::U8x3,
        },
        raw_bytes_per_pixel: info.bytes_per_pixel().max(1) as u64,
    };
    drop(rows);
    reader.rewind().map_err(image::ImageError::IoError)?;
    Ok(Some(header))
}

/// A PNG decoder giving 8-bit grey, grey and alpha, RGB or RGBA rows: palettes and low bit depths expanded,
/// transparency chunks made alpha, 16-bit channels cut to their high byte.
fn png_decoder<R: BufRead + Seek>(reader: R) -> png::Decoder<R> {
    let mut decoder = png::Decoder::new(reader);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_ignore_text_chunk(true);
    decoder
}

fn png_error(error: png::DecodingError) -> PreviewError {
    PreviewError::Decode(match error {
        png::DecodingError::IoError(error) => image::ImageError::IoError(error),
        png::DecodingError::LimitsExceeded => image::ImageError::Limits(
            image::error::LimitError::from_kind(image::error::LimitErrorKind::InsufficientMemory),
        ),
        error => image::ImageError::Decoding(image::error::DecodingError::new(
            image::ImageFormat::Png.into(),
            error,
        )),
    })
}

/// The 8-bit pixel type a picture of `color` becomes: grey and grey-alpha stay one and two bytes a pixel, so a big
/// grey result never takes three times its size.
fn eight_bit(color: image::ColorType) -> PixelType {
    match (color.channel_count(), color.has_alpha()) {
        (1, _) => PixelType::U8,
        (2, _) => PixelType::U8x2,
        (_, true) => PixelType::U8x4,
        _ => PixelType::U8x3,
    }
}

fn to_eight_bit(picture: DynamicImage) -> DynamicImage {
    match picture {
        picture @ (DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)) => picture,
        picture => match eight_bit(picture.color()) {
            PixelType::U8 => DynamicImage::ImageLuma8(picture.into_luma8()),
            PixelType::U8x2 => DynamicImage::ImageLumaA8(picture.into_luma_alpha8()),
            PixelType::U8x4 => DynamicImage::ImageRgba8(picture.into_rgba8()),
            _ => DynamicImage::ImageRgb8(picture.into_rgb8()),
        },
    }
}
