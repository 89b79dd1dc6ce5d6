//! Photo-like pictures made on the spot: the fake's own sample pictures are
//! smooth and compress to a few kilobytes, while real results are photographs
//! whose PNGs are large. What makes a PNG large is noise, so these are smooth
//! light with sensor-like grain on top, deterministic from their size.

use std::io::{BufWriter, Cursor, Write as _};
use std::path::Path;

use anyhow::Result;
use image::{ImageFormat, RgbImage};

/// Grain amplitude: values 0..GRAIN are added to each channel. A 1024x768
/// picture then encodes to about 1.7 MB and a 4096x4096 one to about 36 MB:
/// somewhat larger than issue 5's 1.2 MB result, so on the hard side.
const GRAIN: u32 = 20;

/// The pixels of a `width` x `height` photo-like picture, in row order: each
/// call gives the next pixel.
fn photo_pixels(width: u32, height: u32) -> impl FnMut(u32, u32) -> [u8; 3] {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (u64::from(width) << 32 | u64::from(height));
    let mut grain = move || {
        // xorshift64: fast, deterministic, and noisy enough to defeat deflate.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        u32::try_from(state >> 40).unwrap_or(0) % GRAIN
    };
    let (w, h) = (width.max(2) - 1, height.max(2) - 1);
    let light = |position: u32, span: u32, scale: u32| position * scale / span;
    move |x, y| {
        let red = light(x, w, 200);
        let green = light(y, h, 180) + 20;
        let blue = 120 + light(x + y, w + h, 100);
        [red, green, blue].map(|base| u8::try_from((base + grain()).min(255)).unwrap_or(u8::MAX))
    }
}

/// A `width` x `height` photo-like picture, encoded as PNG.
pub fn photo_png(width: u32, height: u32) -> Result<Vec<u8>> {
    let mut pixel = photo_pixels(width, height);
    let picture = RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut png = Vec::new();
    picture.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}

/// The same picture as JPEG (quality 90), the other format a result may come in.
pub fn photo_jpeg(width: u32, height: u32) -> Result<Vec<u8>> {
    let mut pixel = photo_pixels(width, height);
    let picture = RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&picture)?;
    Ok(jpeg)
}

/// A photo-like PNG written to `path` a row at a time, for pictures too large to hold
/// (16384x16384 is 768 MiB of pixels); deflated fast, since only its size matters.
pub fn write_photo_png(path: &Path, width: u32, height: u32) -> Result<()> {
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?.into_stream_writer()?;
    let mut pixel = photo_pixels(width, height);
    let mut row = Vec::with_capacity(width as usize * 3);
    for y in 0..height {
        row.clear();
        row.extend((0..width).flat_map(|x| pixel(x, y)));
        writer.write_all(&row)?;
    }
    writer.finish()?;
    Ok(())
}
