//! The inline picture an agent sees in the tool result.
//!
//! MCP clients put image content straight into the model's context, and the
//! big clients refuse or silently drop images over roughly 1 MB of base64 or
//! past ~1568 px on the long edge (beyond that the model downsamples anyway).
//! The saved file keeps full resolution; the preview only has to be seen.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use image::ImageReader;

use crate::byte_pool::BytePool;
use scale::RowScaler;

mod encode;
mod handoff;
mod rows;
mod scale;
mod workers;

pub use workers::{EarlyPreview, PreviewWorkers};

/// How big an inline preview may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewLimits {
    /// Upper bound on the base64 text of the preview, in bytes.
    pub max_base64_bytes: usize,
    /// Upper bound on the longer side of the preview, in pixels.
    pub max_edge_px: u32,
}

impl Default for PreviewLimits {
    fn default() -> Self {
        Self {
            max_base64_bytes: 750 * 1024,
            max_edge_px: 1568,
        }
    }
}

/// A preview, ready to be sent as MCP image content (encoded as base64 only there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The encoded picture (the file itself, or a JPEG made to fit), cheap to clone.
    pub bytes: bytes::Bytes,
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
    /// The size of the full image, read from its header on the way.
    pub full_size: (u32, u32),
}

impl Preview {
    /// What a generation records of it: its type and size (its bytes go to the picture cache).
    pub fn shown(&self) -> crate::generation::Shown {
        crate::generation::Shown {
            mime_type: self.mime_type.to_owned(),
            width: self.width,
            height: self.height,
        }
    }
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
    #[error(
        "the result image ends before its last row: the file is cut short, so no preview is made of it"
    )]
    Truncated,
    #[error("the result image could not be scaled for a preview: {0}")]
    Scale(String),
    #[error("the preview could not be encoded as JPEG: {0}")]
    Encode(#[from] rusty_jpeg::EncodingError),
    #[error(
        "the result image declares {width}x{height} pixels, more than the {max} px per side a preview will decode"
    )]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error(
        "the result image is {width}x{height} pixels of {color}; a preview of it would hold \
         {needed_mib} MiB of pixels, more than the {max_mib} MiB a preview may use"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        color: String,
        needed_mib: u64,
        max_mib: u64,
    },
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

impl From<fast_image_resize::ImageError> for PreviewError {
    fn from(error: fast_image_resize::ImageError) -> Self {
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
/// Most pixel memory one preview may hold at once. A streamed preview holds a
/// band of source rows and the preview (about 23 MiB for any PNG the model
/// returns, see BENCHMARKS.md); this bound is for the pictures decoded whole
/// (interlaced PNGs and GIFs, WebP): 512 MiB still fits an 11000x11000 RGBA
/// frame. The same figure caps the decoder's own allocations.
pub const MAX_PREVIEW_PIXEL_BYTES: u64 = 512 * 1024 * 1024;
/// The pixel memory all previews of this process share: a preview waits for
/// its share before decoding. Previews run on two threads per core, so without
/// it a 32-core server finishing 64 large results together would hold 64
/// previews' pixels; with it, about six streamed 4096x4096 ones run at once and
/// the rest wait. A preview larger than the pool takes all of it and runs alone,
/// so previews together never hold more than [`MAX_PREVIEW_PIXEL_BYTES`].
pub const PREVIEW_PIXEL_POOL_BYTES: u64 = 160 * 1024 * 1024;
static PIXEL_MEMORY: LazyLock<BytePool> = LazyLock::new(|| BytePool::new(PREVIEW_PIXEL_POOL_BYTES));
const MIB: u64 = 1024 * 1024;

/// JPEG qualities tried in turn until the preview fits the byte budget.
pub const JPEG_QUALITIES: [u8; 4] = [85, 70, 55, 40];

/// Builds the preview for an edited image.
///
/// The original bytes are passed through untouched when they already fit the
/// budget in a format every client renders (PNG, JPEG, WebP, GIF); otherwise
/// the picture is decoded with bounded memory, scaled to the edge budget and
/// re-encoded as JPEG, lowering quality and then size until it fits.
pub fn make_preview(bytes: &[u8], budget: PreviewLimits) -> Result<Preview, PreviewError> {
    preview_of(Cursor::new(bytes), bytes.len() as u64, budget)
}

/// [`make_preview`] for a result read from a file as it is decoded, on a
/// preview thread: a PNG is never in memory whole, encoded or decoded. The
/// file may still be arriving ([`reve_core::ArrivingImage`]): its length is
/// asked for only when a picture small enough to pass through needs it, and
/// it tells that from the size the server announced, without waiting for the
/// rest.
pub fn make_preview_from(
    file: impl Read + Seek,
    budget: PreviewLimits,
) -> Result<Preview, PreviewError> {
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    preview_of(reader, READ_BUFFER_BYTES as u64, budget)
}

/// Bytes read from a staged result at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The preview of the picture `reader` holds, of which `held_bytes` are in
/// memory while it is decoded.
fn preview_of<R: BufRead + Seek>(
    mut reader: R,
    held_bytes: u64,
    budget: PreviewLimits,
) -> Result<Preview, PreviewError> {
    let io = image::ImageError::IoError;
    let format = reve_core::ImageFormat::detect(reader.fill_buf().map_err(io)?);
    let (width, height) = ImageReader::new(&mut reader)
        .with_guessed_format()
        .map_err(io)?
        .into_dimensions()?;

    // A result still downloading tells its size from the server's announcement, so that a
    // picture too big to pass through is decoded as it arrives; what is read is held to the
    // budget all the same, in case the announcement was wrong.
    if let Some(format) = format
        && width.max(height) <= budget.max_edge_px
        && base64_len(reader.seek(SeekFrom::End(0)).map_err(io)?) <= budget.max_base64_bytes
    {
        reader.rewind().map_err(io)?;
        let most = (budget.max_base64_bytes / 4 * 3) as u64;
        let mut bytes = Vec::new();
        reader
            .by_ref()
            .take(most + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if base64_len(bytes.len() as u64) <= budget.max_base64_bytes {
            return Ok(Preview {
                bytes: bytes.into(),
                mime_type: format.mime_type(),
                width,
                height,
                full_size: (width, height),
            });
        }
    }
    reader.rewind().map_err(io)?;
    if width > MAX_DECODE_EDGE_PX || height > MAX_DECODE_EDGE_PX {
        return Err(PreviewError::TooLarge {
            width,
            height,
            max: MAX_DECODE_EDGE_PX,
        });
    }

    // The JPEG of `scaled`, if it fits the budget.
    let fitting = |jpeg: Vec<u8>, scaled: &scale::Scaled| {
        (base64_len(jpeg.len() as u64) <= budget.max_base64_bytes).then(|| Preview {
            bytes: jpeg.into(),
            mime_type: "image/jpeg",
            width: scaled.width,
            height: scaled.height,
            full_size: (width, height),
        })
    };
    let (first, jpeg) = scaled_and_encoded(reader, (width, height), budget, held_bytes)?;
    if let Some(preview) = fitting(jpeg, &first) {
        return Ok(preview);
    }

    // Too big at the first quality: the lower ones, then smaller sizes, from the scaled picture.
    let mut qualities = &JPEG_QUALITIES[1..];
    let mut edge = first.width.max(first.height);
    let mut scaled = Cow::Borrowed(&first);
    loop {
        let pixels = rgb_on_white(&scaled.pixels, scaled.channels());
        for &quality in qualities {
            let mut jpeg = Vec::new();
            // Both sides are at most MAX_DECODE_EDGE_PX, well within u16.
            rusty_jpeg::Encoder::new(&mut jpeg, quality).encode(
                &pixels,
                scaled.width as u16,
                scaled.height as u16,
                rusty_jpeg::ColorType::Rgb,
            )?;
            if let Some(preview) = fitting(jpeg, &scaled) {
                return Ok(preview);
            }
        }
        if edge <= 64 {
            return Err(PreviewError::OverBudget {
                max_base64_bytes: budget.max_base64_bytes,
                edge_px: edge,
            });
        }
        qualities = &JPEG_QUALITIES;
        edge = edge * 3 / 4;
        let (smaller_width, smaller_height) = fit_within(width, height, edge);
        scaled = Cow::Owned(first.rescaled(smaller_width, smaller_height)?);
    }
}

/// `reader`'s picture, `size` pixels, scaled to fit the budget's edge on its longer side, and its JPEG at the first
/// of [`JPEG_QUALITIES`]. Once its memory is reserved, the picture is decoded on this thread and its rows handed
/// over ([`handoff`]) to a second one, which scales them and encodes the preview in strips as their rows are made
/// ([`encode`]); once decoded, this thread encodes the strips the other has not reached. `held_bytes` of the
/// encoded picture are in memory meanwhile.
fn scaled_and_encoded<R: BufRead + Seek>(
    mut reader: R,
    size: (u32, u32),
    budget: PreviewLimits,
    held_bytes: u64,
) -> Result<(scale::Scaled, Vec<u8>), PreviewError> {
    let target = fit_within(size.0, size.1, budget.max_edge_px.max(1));
    let plan = rows::plan(&mut reader, size, target)?;
    let needed = pixel_memory(size, &plan, held_bytes)?;
    // Called on preview threads, never on an async one, so blocking here is what is meant.
    let _share = futures::executor::block_on(PIXEL_MEMORY.reserve(needed))
        .expect("the semaphore is never closed");
    // Both sides are at most MAX_DECODE_EDGE_PX, well within u16.
    let strips = encode::Strips::new(
        (plan.target.0 as u16, plan.target.1 as u16),
        scale::channels(plan.pixel_type),
        JPEG_QUALITIES[0],
    );
    let (mut rows, batches) = handoff::handoff(plan.row_bytes());
    let scaler =
        RowScaler::new(plan.rows_size, plan.target, plan.pixel_type).sending_to(strips.sink());
    std::thread::scope(|scope| {
        let scaling = std::thread::Builder::new()
            .name("reve-preview-scale".to_owned())
            .spawn_scoped(scope, || scaled_as_handed(batches, scaler, &strips))
            .map_err(|error| PreviewError::Workers(error.to_string()))?;
        let decoded = decoded(reader, &plan, &mut rows);
        let handed = rows.finish();
        let mine = (decoded.is_ok() && handed).then(|| strips.encode_untaken());
        let theirs = scaling.join().expect("scaling does not panic");
        // When the scaling thread stopped first, its error is the cause; otherwise the decoder's is.
        if handed {
            decoded?;
        }
        let (scaled, mut encoded) = theirs?;
        encoded.extend(mine.expect("encoded once decoded")?);
        Ok((scaled, strips.joined(encoded)?))
    })
}

/// The rows handed over in `batches`, scaled as they come, with the strips whose rows are made encoded between
/// batches and, once the rows end, the strips no thread has taken. The scaler (and so the strips' sink) is gone
/// once the rows end, well or not, so no thread waits for strips that never come; after a failure nothing more
/// is encoded.
fn scaled_as_handed(
    batches: handoff::RowBatches,
    mut scaler: RowScaler,
    strips: &encode::Strips,
) -> Result<(scale::Scaled, Vec<encode::EncodedStrip>), PreviewError> {
    let mut encoded = Vec::new();
    while let Some(batch) = batches.next() {
        for row in batch.rows() {
            scaler.push(row)?;
        }
        batches.give_back(batch);
        strips.encode_ready(&mut encoded)?;
    }
    let scaled = scaler.finish()?;
    encoded.extend(strips.encode_untaken()?);
    Ok((scaled, encoded))
}

/// `reader`'s picture decoded into `rows` as `plan` says, a stream that ends early read as a picture cut short.
fn decoded<R: BufRead + Seek>(
    reader: R,
    plan: &rows::Plan,
    rows: &mut handoff::RowHandoff,
) -> Result<(), PreviewError> {
    rows::decode_into(reader, plan, rows, MAX_PREVIEW_PIXEL_BYTES).map_err(|error| match error {
        PreviewError::Decode(image::ImageError::IoError(error))
            if error.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            PreviewError::Truncated
        }
        error => error,
    })
}

/// The MIME type of a picture, from its first bytes; `application/octet-stream` when it is
/// none of the types previews handle.
pub fn mime_type_of(bytes: &[u8]) -> &'static str {
    reve_core::ImageFormat::detect(bytes).map_or(
        "application/octet-stream",
        reve_core::ImageFormat::mime_type,
    )
}

fn base64_len(raw_len: u64) -> usize {
    usize::try_from(raw_len.div_ceil(3) * 4).unwrap_or(usize::MAX)
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

/// The memory a preview of this picture holds at once, refused before decoding
/// when it is more than [`MAX_PREVIEW_PIXEL_BYTES`]: the encoded bytes held,
/// the decoder's buffers, the rows handed between threads, the scaler's band
/// and scaled picture, and the RGB copy and JPEG the encoder makes of that.
fn pixel_memory(
    (width, height): (u32, u32),
    plan: &rows::Plan,
    held_bytes: u64,
) -> Result<u64, PreviewError> {
    let scaler = RowScaler::memory(plan.rows_size, plan.target, plan.pixel_type);
    let encoder = 2 * u64::from(plan.target.0) * u64::from(plan.target.1) * 3;
    let handed = handoff::memory(plan.row_bytes());
    let needed = held_bytes + plan.decoder_bytes + handed + scaler + encoder;
    if needed > MAX_PREVIEW_PIXEL_BYTES {
        return Err(PreviewError::TooManyPixels {
            width,
            height,
            color: scale::describe(plan.pixel_type).to_owned(),
            needed_mib: needed.div_ceil(MIB),
            max_mib: MAX_PREVIEW_PIXEL_BYTES / MIB,
        });
    }
    Ok(needed)
}

/// RGB for the JPEG encoder, with grey spread to three channels and
/// premultiplied alpha flattened onto white (JPEG has no alpha; transparent
/// areas would otherwise turn black).
fn rgb_on_white(pixels: &[u8], channels: usize) -> Cow<'_, [u8]> {
    if channels == 3 {
        return Cow::Borrowed(pixels);
    }
    // A premultiplied channel is at most its alpha; saturating guards the rounding.
    let blend = |premultiplied: u8, alpha: u8| premultiplied.saturating_add(255 - alpha);
    let mut rgb = Vec::with_capacity(pixels.len() / channels * 3);
    for pixel in pixels.chunks_exact(channels) {
        match *pixel {
            [grey] => rgb.extend_from_slice(&[grey; 3]),
            [grey, alpha] => rgb.extend_from_slice(&[blend(grey, alpha); 3]),
            [r, g, b] => rgb.extend_from_slice(&[r, g, b]),
            [r, g, b, alpha] => {
                rgb.extend_from_slice(&[blend(r, alpha), blend(g, alpha), blend(b, alpha)]);
            }
            _ => unreachable!("pictures have one to four channels"),
        }
    }
    Cow::Owned(rgb)
}

#[cfg(test)]
mod tests;
