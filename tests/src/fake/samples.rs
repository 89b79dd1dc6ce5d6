//! Pictures generated on the spot, so no test depends on an image file.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

use super::edit::{ResultFormat, encode};

/// A deterministic opaque picture: red rises left to right, green top to
/// bottom, blue alternates in 16-pixel squares. No two neighbouring regions
/// look alike, so a wrong crop, flip or colour swap shows.
pub fn sample_image(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        let red = (u64::from(x) * 255 / u64::from(width.max(2) - 1)).min(255) as u8;
        let green = (u64::from(y) * 255 / u64::from(height.max(2) - 1)).min(255) as u8;
        let blue = if (x / 16 + y / 16) % 2 == 0 { 40 } else { 215 };
        Rgba([red, green, blue, 255])
    })
}

/// [`sample_image`] encoded as PNG.
pub fn sample_png(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, ResultFormat::Png)
}

/// [`sample_image`] encoded as JPEG (quality 90).
pub fn sample_jpeg(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, ResultFormat::Jpeg)
}

/// [`sample_image`] encoded as lossless WebP.
pub fn sample_webp(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, ResultFormat::WebP)
}

/// [`sample_image`] encoded as GIF, a format the input side may meet but the
/// fake never returns.
pub fn sample_gif(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgba8(sample_image(width, height))
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Gif)
        .expect("encoding a generated picture as GIF cannot fail");
    out
}

/// `data:<mime>;base64,<bytes>`, the inline form `image_url` accepts.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

fn encoded(width: u32, height: u32, format: ResultFormat) -> Vec<u8> {
    encode(&sample_image(width, height), format).expect("encoding a generated picture cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_and_of_the_requested_size() {
        assert_eq!(sample_png(33, 20), sample_png(33, 20));
        for bytes in [
            sample_png(33, 20),
            sample_jpeg(33, 20),
            sample_webp(33, 20),
            sample_gif(33, 20),
        ] {
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (33, 20));
        }
    }

    #[test]
    fn a_one_pixel_sample_is_possible() {
        assert_eq!(sample_image(1, 1).dimensions(), (1, 1));
    }

    #[test]
    fn data_uri_is_standard_base64() {
        assert_eq!(
            data_uri("image/png", b"\x89PNG"),
            "data:image/png;base64,iVBORw=="
        );
    }
}
