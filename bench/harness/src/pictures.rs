//! Photo-like pictures made on the spot: the fake's own sample pictures are
//! smooth and compress to a few kilobytes, while real results are photographs
//! whose PNGs are large. What makes a PNG large is noise, so these are smooth
//! light with sensor-like grain on top, deterministic from their size.

use std::io::Cursor;

use anyhow::Result;
use image::{ImageFormat, RgbImage};

/// Grain amplitude: values 0..GRAIN are added to each channel. A 1024x768
/// picture then encodes to about 1.7 MB and a 4096x4096 one to about 36 MB:
/// somewhat larger than issue 5's 1.2 MB result, so on the hard side.
const GRAIN: u32 = 20;

/// A `width` x `height` photo-like picture, encoded as PNG.
pub fn photo_png(width: u32, height: u32) -> Result<Vec<u8>> {
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
    let picture = RgbImage::from_fn(width, height, |x, y| {
        let red = light(x, w, 200);
        let green = light(y, h, 180) + 20;
        let blue = 120 + light(x + y, w + h, 100);
        let pixel = [red, green, blue]
            .map(|base| u8::try_from((base + grain()).min(255)).unwrap_or(u8::MAX));
        image::Rgb(pixel)
    });
    let mut png = Vec::new();
    picture.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}
