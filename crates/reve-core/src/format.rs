//! Image types recognised from their bytes.
//!
//! Both directions need the same answer: a local file sent to the API is labelled by what its bytes
//! are (a `.png` that is really a JPEG must be sent as `image/jpeg`), and a result is saved with the
//! extension of what the API actually returned, whatever its URL claims.

use std::fmt;

/// An image type this crate sends and receives.
///
/// Limited to the types image-editing services commonly accept and return, so that a file the
/// API would reject is refused locally instead of costing a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// Portable Network Graphics.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    WebP,
    /// GIF (the first frame is what an editor sees).
    Gif,
}

impl ImageFormat {
    /// Every supported type, for checks that must hold whichever one a result turns out to be.
    pub const ALL: [ImageFormat; 4] = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ];

    /// Detects the type from the leading magic bytes; `None` when they are not one of ours.
    ///
    /// Only the first few bytes are looked at, so this is cheap on a large buffer and works on the
    /// first chunk of a file being streamed.
    pub fn detect(bytes: &[u8]) -> Option<ImageFormat> {
        match image::guess_format(bytes).ok()? {
            image::ImageFormat::Png => Some(ImageFormat::Png),
            image::ImageFormat::Jpeg => Some(ImageFormat::Jpeg),
            image::ImageFormat::WebP => Some(ImageFormat::WebP),
            image::ImageFormat::Gif => Some(ImageFormat::Gif),
            _ => None,
        }
    }

    /// The MIME type, as used in `data:` URIs and `Content-Type`.
    pub fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::WebP => "image/webp",
            ImageFormat::Gif => "image/gif",
        }
    }

    /// The conventional file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
            ImageFormat::WebP => "webp",
            ImageFormat::Gif => "gif",
        }
    }

    /// Whether `ext` (without the dot, any case) is an accepted spelling for this type, so that a
    /// caller's `photo.jpeg` is kept rather than renamed to `photo.jpg`.
    pub(crate) fn accepts_extension(self, ext: &str) -> bool {
        self.image_crate_format()
            .extensions_str()
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
    }

    pub(crate) fn image_crate_format(self) -> image::ImageFormat {
        match self {
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Gif => image::ImageFormat::Gif,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Png => "PNG",
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::WebP => "WebP",
            ImageFormat::Gif => "GIF",
        })
    }
}

/// Says what some bytes that are not a supported image look like, for an error message a person
/// or a model can act on ("a PDF document", not "invalid image").
///
/// Deliberately never quotes the content itself: the bytes may come from any local file.
pub(crate) fn describe_non_image(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "an empty file".to_owned();
    }
    if let Ok(other) = image::guess_format(bytes) {
        let name = other.extensions_str().first().copied().unwrap_or("unknown");
        return format!(
            "a {} image, which is not supported",
            name.to_ascii_uppercase()
        );
    }
    if bytes.starts_with(b"%PDF") {
        return "a PDF document".to_owned();
    }
    let head = &bytes[..bytes.len().min(512)];
    // A multi-byte character cut at the 512-byte boundary is still text.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    if text && !head.contains(&0) {
        return "text, not an image".to_owned();
    }
    let hex: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!(
        "unrecognised binary data starting with bytes {}",
        hex.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_supported_type_from_its_magic_bytes() {
        assert_eq!(
            ImageFormat::detect(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::detect(b"\xff\xd8\xff\xe0...."),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::detect(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageFormat::WebP)
        );
        assert_eq!(ImageFormat::detect(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::detect(b"BM......"), None);
        assert_eq!(ImageFormat::detect(b""), None);
    }

    #[test]
    fn jpeg_accepts_both_common_extensions() {
        assert!(ImageFormat::Jpeg.accepts_extension("JPEG"));
        assert!(ImageFormat::Jpeg.accepts_extension("jpg"));
        assert!(!ImageFormat::Jpeg.accepts_extension("png"));
    }

    #[test]
    fn describes_what_a_non_image_looks_like_without_quoting_it() {
        assert_eq!(describe_non_image(b""), "an empty file");
        assert_eq!(
            describe_non_image(b"BM\0\0\0\0"),
            "a BMP image, which is not supported"
        );
        assert_eq!(describe_non_image(b"%PDF-1.7\n"), "a PDF document");
        assert_eq!(
            describe_non_image(b"secret: hunter2\n"),
            "text, not an image"
        );
        assert_eq!(
            describe_non_image(&[0, 1, 2, 3, 4]),
            "unrecognised binary data starting with bytes 00 01 02 03"
        );
    }
}
