//! The "edit" the fake performs: real pixels, changed in a way a test can
//! predict exactly and a person can see at a glance.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageEncoder, ImageError, ImageFormat, RgbaImage};

/// The encoding of the result the fake returns.
///
/// The real service answers PNG; the other formats exist so a client's
/// detection of the image type from its bytes can be tested. The result URL
/// still ends in `.png` whatever the format (the CDN's naming is fixed), while
/// the download's `Content-Type` tells the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResultFormat {
    /// `image/png`, lossless: a decoded result equals [`edit`] of the input.
    #[default]
    Png,
    /// `image/jpeg` at quality 90, alpha dropped.
    Jpeg,
    /// `image/webp`, lossless.
    WebP,
}

impl ResultFormat {
    /// The MIME type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::WebP => "image/webp",
        }
    }
}

/// The fake's edit: resize to `size` when given (nearest neighbour, so every
/// output pixel is some input pixel), then invert the
/// colour channels, keeping alpha. Tests compare a client's output with this.
pub fn edit(input: &DynamicImage, size: Option<(u32, u32)>) -> RgbaImage {
    // `DynamicImage`'s own methods are compiled (optimised) inside the image
    // crate; generic per-pixel code here would run unoptimised in tests and
    // take seconds on a 4096x4096 result.
    let resized = match size {
        Some((width, height)) => input.resize_exact(width, height, FilterType::Nearest),
        None => input.clone(),
    };
    let mut image = DynamicImage::ImageRgba8(resized.into_rgba8());
    image.invert();
    image.into_rgba8()
}

/// `image` encoded as `format`.
pub(crate) fn encode(image: &RgbaImage, format: ResultFormat) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    match format {
        ResultFormat::Png => image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)?,
        ResultFormat::Jpeg => {
            let rgb = DynamicImage::ImageRgba8(image.clone()).to_rgb8();
            JpegEncoder::new_with_quality(&mut out, 90).write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )?;
        }
        ResultFormat::WebP => WebPEncoder::new_lossless(&mut out).write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgba8,
        )?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use image::Rgba;

    use super::*;

    #[test]
    fn edit_inverts_colours_and_keeps_alpha() {
        let input = RgbaImage::from_pixel(2, 1, Rgba([10, 200, 0, 77]));
        let edited = edit(&DynamicImage::ImageRgba8(input), None);
        assert_eq!(edited.get_pixel(1, 0), &Rgba([245, 55, 255, 77]));
    }

    #[test]
    fn edit_resizes_when_asked() {
        let input = DynamicImage::ImageRgba8(RgbaImage::new(3, 5));
        assert_eq!(edit(&input, Some((7, 2))).dimensions(), (7, 2));
    }

    #[test]
    fn each_format_encodes_to_its_own_type() {
        let image = RgbaImage::from_pixel(4, 4, Rgba([1, 2, 3, 255]));
        for (format, expected) in [
            (ResultFormat::Png, ImageFormat::Png),
            (ResultFormat::Jpeg, ImageFormat::Jpeg),
            (ResultFormat::WebP, ImageFormat::WebP),
        ] {
            let bytes = encode(&image, format).unwrap();
            assert_eq!(image::guess_format(&bytes).unwrap(), expected);
            assert_eq!(
                ImageFormat::from_mime_type(format.content_type()),
                Some(expected)
            );
        }
    }
}
