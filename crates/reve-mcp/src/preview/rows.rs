//! Decoding a result into rows for the [`RowScaler`](super::scale::RowScaler), holding as little of the picture as each format allows.
//!
//! - A PNG that is not interlaced, what the model returns, is decoded a row at a time by the `png` crate.
//! - A JPEG is decoded by `jpeg-decoder` at the smallest of 1/8, 1/4, 1/2 or full size that still covers twice the
//!   preview (see [`jpeg_request`]): its inverse DCT scales for free what would otherwise be decoded and then
//!   averaged away. `zune-jpeg`, which `image` uses, decodes only at full size.
//! - A GIF's first frame, when not interlaced, is decoded a row at a time by the `gif` crate and drawn onto its
//!   canvas row by row, so a tiny frame on a huge canvas costs one canvas row.
//! - Anything else (an interlaced PNG or GIF, a WebP, a CMYK JPEG) is decoded whole by `image` and then handed over
//!   row by row: interlaced rows come pass by pass across the whole picture, and `image-webp` decodes only into a
//!   full frame.

use std::io::{BufRead, Seek};

use fast_image_resize::PixelType;
use image::{DynamicImage, ImageDecoder as _, ImageReader, Limits};

use super::PreviewError;
use super::handoff::RowHandoff;
use super::scale::channels;

/// How a picture's rows reach the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    PngRows,
    /// Decoded at a fraction of its size, to `Plan::rows_size`.
    JpegScaled,
    GifRows,
    WholeFrame,
}

/// What a decode of a picture holds at once, besides the scaler, and what it delivers.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) source: Source,
    /// The size of the rows the decoder delivers: the picture's, or less for a JPEG decoded scaled.
    pub(super) rows_size: (u32, u32),
    /// The preview's size: what was asked, or a pixel less on a side where a scaled JPEG came out smaller.
    pub(super) target: (u32, u32),
    /// The rows once they are 8-bit: one to four channels.
    pub(super) pixel_type: PixelType,
    /// Bytes the decoder's own buffers hold.
    pub(super) decoder_bytes: u64,
}

impl Plan {
    /// The bytes of one row the decoder delivers.
    pub(super) fn row_bytes(&self) -> usize {
        self.rows_size.0 as usize * channels(self.pixel_type)
    }
}

/// How `reader`'s picture, `size` pixels, will be decoded for a preview of `target` pixels, from its header alone;
/// the reader is back at the start.
pub(super) fn plan<R: BufRead + Seek>(
    reader: &mut R,
    size: (u32, u32),
    target: (u32, u32),
) -> Result<Plan, PreviewError> {
    let head = reader.fill_buf().map_err(image::ImageError::IoError)?;
    let (png, jpeg, gif) = (
        head.starts_with(PNG_SIGNATURE),
        head.starts_with(&[0xff, 0xd8, 0xff]),
        head.starts_with(b"GIF8"),
    );
    // A WebP says how long it is, and `image-webp` reads past a cut-off end as a corrupt bitstream.
    let webp_length = match head {
        [
            b'R',
            b'I',
            b'F',
            b'F',
            a,
            b,
            c,
            d,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some(u64::from(u32::from_le_bytes([*a, *b, *c, *d])) + 8),
        _ => None,
    };
    if let Some(declared) = webp_length {
        let length = reader
            .seek(std::io::SeekFrom::End(0))
            .map_err(image::ImageError::IoError)?;
        reader.rewind().map_err(image::ImageError::IoError)?;
        if length < declared {
            return Err(PreviewError::Truncated);
        }
    }
    let plan = if png {
        png_plan(reader, size, target)?
    } else if jpeg {
        jpeg_plan(reader, size, target)?
    } else if gif {
        gif_plan(reader, size, target)?
    } else {
        None
    };
    reader.rewind().map_err(image::ImageError::IoError)?;
    match plan {
        Some(plan) => Ok(plan),
        None => whole_frame_plan(reader, size, target),
    }
}

/// Decodes `reader`'s picture into `rows` as [`plan`] said, allocating at most `max_alloc` bytes in the decoder;
/// stops early, without an error of its own, if the thread taking the rows has stopped (see
/// [`RowHandoff::is_closed`]).
pub(super) fn decode_into<R: BufRead + Seek>(
    reader: R,
    plan: &Plan,
    rows: &mut RowHandoff,
    max_alloc: u64,
) -> Result<(), PreviewError> {
    let max_alloc_usize = usize::try_from(max_alloc).unwrap_or(usize::MAX);
    match plan.source {
        Source::PngRows => {
            let mut decoder = png_decoder(reader);
            decoder.set_limits(png::Limits {
                bytes: max_alloc_usize,
            });
            let mut png = decoder.read_info().map_err(png_error)?;
            let row_bytes = plan.row_bytes();
            if png.output_line_size(plan.rows_size.0) != Some(row_bytes) {
                return Err(PreviewError::Scale(format!(
                    "the PNG decoder's rows are not {row_bytes} bytes as planned"
                )));
            }
            // Each row decoded straight into the batch that hands it over; the last ones handed over at
            // once, before the decoder reads the end of the stream (its checksums, IEND), which may still be
            // downloading, and which must be there too.
            for _ in 0..plan.rows_size.1 {
                if !rows.fill(|row| Ok(png.read_row(row).map_err(png_error)?.is_some()))? {
                    break;
                }
            }
            rows.flush();
            if rows.is_closed() {
                return Ok(());
            }
            png.finish().map_err(png_error)?;
        }
        Source::JpegScaled => {
            let mut decoder = jpeg_decoder::Decoder::new(reader);
            decoder.set_max_decoding_buffer_size(max_alloc_usize);
            let request = jpeg_request(plan.target);
            decoder.scale(request.0, request.1).map_err(jpeg_error)?;
            let pixels = decoder.decode().map_err(jpeg_error)?;
            push_rows(rows, &pixels, plan);
        }
        Source::GifRows => {
            let mut options = gif::DecodeOptions::new();
            options.set_color_output(gif::ColorOutput::RGBA);
            if let Some(limit) = std::num::NonZeroU64::new(max_alloc) {
                options.set_memory_limit(gif::MemoryLimit::Bytes(limit));
            }
            let mut decoder = options.read_info(reader).map_err(gif_error)?;
            let frame = decoder
                .next_frame_info()
                .map_err(gif_error)?
                .ok_or(PreviewError::Truncated)?;
            let (left, top) = (usize::from(frame.left), u32::from(frame.top));
            let (frame_width, frame_height) = (usize::from(frame.width), u32::from(frame.height));
            let (width, height) = plan.rows_size;
            // The canvas around the first frame is transparent, as `image` draws it.
            let mut canvas_row = vec![0u8; width as usize * 4];
            let mut frame_row = vec![0u8; frame_width * 4];
            let shown = frame_width.min((width as usize).saturating_sub(left));
            for y in 0..height {
                if (top..top + frame_height).contains(&y) {
                    if !decoder.fill_buffer(&mut frame_row).map_err(gif_error)? {
                        return Err(PreviewError::Truncated);
                    }
                    canvas_row[left * 4..(left + shown) * 4]
                        .copy_from_slice(&frame_row[..shown * 4]);
                } else {
                    canvas_row.fill(0);
                }
                if !rows.push(&canvas_row) {
                    return Ok(());
                }
            }
        }
        Source::WholeFrame => {
            let mut reader = ImageReader::new(reader)
                .with_guessed_format()
                .map_err(image::ImageError::IoError)?;
            let mut limits = Limits::default();
            limits.max_alloc = Some(max_alloc);
            reader.limits(limits);
            let picture = to_eight_bit(DynamicImage::from_decoder(reader.into_decoder()?)?);
            push_rows(rows, picture.as_bytes(), plan);
        }
    }
    Ok(())
}

/// The rows of a picture decoded whole, handed over until the other thread stops taking them.
fn push_rows(rows: &mut RowHandoff, pixels: &[u8], plan: &Plan) {
    for row in pixels.chunks_exact(plan.row_bytes()) {
        if !rows.push(row) {
            return;
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Rows straight from the `png` crate, unless the PNG is interlaced.
fn png_plan<R: BufRead + Seek>(
    reader: &mut R,
    size: (u32, u32),
    target: (u32, u32),
) -> Result<Option<Plan>, PreviewError> {
    let rows = png_decoder(&mut *reader).read_info().map_err(png_error)?;
    let info = rows.info();
    if info.interlaced {
        return Ok(None);
    }
    let (color, _) = rows.output_color_type();
    Ok(Some(Plan {
        source: Source::PngRows,
        rows_size: size,
        target,
        pixel_type: match color {
            png::ColorType::Grayscale => PixelType::U8,
            png::ColorType::GrayscaleAlpha => PixelType::U8x2,
            png::ColorType::Rgba => PixelType::U8x4,
            _ => PixelType::U8x3,
        },
        // The decoder keeps the current and previous raw rows, and its buffer of inflated data.
        decoder_bytes: 3 * u64::from(size.0) * 8,
    }))
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
        png::DecodingError::LimitsExceeded => insufficient_memory(),
        error => image::ImageError::Decoding(image::error::DecodingError::new(
            image::ImageFormat::Png.into(),
            error,
        )),
    })
}

/// A JPEG of grey or RGB pixels decoded scaled; a CMYK or 16-bit one is left to `image`.
fn jpeg_plan<R: BufRead + Seek>(
    reader: &mut R,
    (width, height): (u32, u32),
    target: (u32, u32),
) -> Result<Option<Plan>, PreviewError> {
    let mut decoder = jpeg_decoder::Decoder::new(&mut *reader);
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder.info().expect("read_info succeeded");
    let pixel_type = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => PixelType::U8,
        jpeg_decoder::PixelFormat::RGB24 => PixelType::U8x3,
        _ => return Ok(None),
    };
    let request = jpeg_request(target);
    let (scaled_width, scaled_height) = decoder.scale(request.0, request.1).map_err(jpeg_error)?;
    let rows_size = (u32::from(scaled_width), u32::from(scaled_height));
    let components = channels(pixel_type) as u64;
    let scaled_pixels = u64::from(rows_size.0) * u64::from(rows_size.1) * components;
    // The component planes and the interleaved picture, at the scaled size; a progressive JPEG also keeps every
    // coefficient of the full picture (two bytes each) until its last scan.
    let coefficients = match info.coding_process {
        jpeg_decoder::CodingProcess::DctProgressive => {
            2 * u64::from(width) * u64::from(height) * components
        }
        _ => 0,
    };
    Ok(Some(Plan {
        source: Source::JpegScaled,
        rows_size,
        target: (target.0.min(rows_size.0), target.1.min(rows_size.1)),
        pixel_type,
        decoder_bytes: 2 * scaled_pixels + coefficients,
    }))
}

/// The size asked of `jpeg-decoder`: twice the preview's. The box filter that scales the rest of the way averages
/// the source pixels whose centres fall in each target pixel, which is an average only when each takes two or more:
/// from 1/4 of a 1604-pixel-wide JPEG (401 pixels) to 300, a target pixel takes one or two pixels of four source
/// pixels each, and the JPEG's sharp edges alias (channels off by 5 on average from the full-size decode, against
/// 0.5 at twice the size).
fn jpeg_request((width, height): (u32, u32)) -> (u16, u16) {
    let side = |side: u32| u16::try_from(side.saturating_mul(2)).unwrap_or(u16::MAX);
    (side(width), side(height))
}

fn jpeg_error(error: jpeg_decoder::Error) -> PreviewError {
    PreviewError::Decode(match error {
        jpeg_decoder::Error::Io(error) => image::ImageError::IoError(error),
        error => image::ImageError::Decoding(image::error::DecodingError::new(
            image::ImageFormat::Jpeg.into(),
            error,
        )),
    })
}

/// A GIF's first frame, when not interlaced, row by row onto its canvas.
fn gif_plan<R: BufRead + Seek>(
    reader: &mut R,
    size: (u32, u32),
    target: (u32, u32),
) -> Result<Option<Plan>, PreviewError> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(&mut *reader).map_err(gif_error)?;
    let Some(frame) = decoder.next_frame_info().map_err(gif_error)? else {
        return Ok(None);
    };
    if frame.interlaced {
        return Ok(None);
    }
    let frame_row = u64::from(frame.width) * 4;
    Ok(Some(Plan {
        source: Source::GifRows,
        rows_size: size,
        target,
        pixel_type: PixelType::U8x4,
        // A canvas row and a frame row, and the LZW decoder's table.
        decoder_bytes: u64::from(size.0) * 4 + frame_row + 64 * 1024,
    }))
}

fn gif_error(error: gif::DecodingError) -> PreviewError {
    PreviewError::Decode(match error {
        gif::DecodingError::Io(error) => image::ImageError::IoError(error),
        gif::DecodingError::UnexpectedEof => {
            image::ImageError::IoError(std::io::ErrorKind::UnexpectedEof.into())
        }
        error => image::ImageError::Decoding(image::error::DecodingError::new(
            image::ImageFormat::Gif.into(),
            error,
        )),
    })
}

/// A whole frame decoded by `image`, and its 8-bit copy when its channels are wider.
fn whole_frame_plan<R: BufRead + Seek>(
    reader: &mut R,
    size: (u32, u32),
    target: (u32, u32),
) -> Result<Plan, PreviewError> {
    let color = ImageReader::new(&mut *reader)
        .with_guessed_format()
        .map_err(image::ImageError::IoError)?
        .into_decoder()?
        .color_type();
    reader.rewind().map_err(image::ImageError::IoError)?;
    let pixels = u64::from(size.0) * u64::from(size.1);
    let pixel_type = eight_bit(color);
    let frame = pixels * u64::from(color.bytes_per_pixel());
    let eight_bit_copy = if color.bytes_per_pixel() > color.channel_count() {
        pixels * channels(pixel_type) as u64
    } else {
        0
    };
    Ok(Plan {
        source: Source::WholeFrame,
        rows_size: size,
        target,
        pixel_type,
        decoder_bytes: frame + eight_bit_copy,
    })
}

fn insufficient_memory() -> image::ImageError {
    image::ImageError::Limits(image::error::LimitError::from_kind(
        image::error::LimitErrorKind::InsufficientMemory,
    ))
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

pub(super) fn to_eight_bit(picture: DynamicImage) -> DynamicImage {
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
