//! Pictures generated on the spot, so no test depends on an image file.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

use super::edit::{ResultFormat, encode};

/// A deterministic opaque picture: red rises left to right, green top to
/// bottom, blue alternates in 16-pixel squares. No two neighbouring regions
/// look alike, so a wrong crop, flip or colour swap shows.
pub fn sample_image(width: u32, height: u32) -> RgbaImage {
    // Built from two precomputed rows so that a 4096x4096 picture takes a
    // fraction of a second even unoptimised.
    let ramp = |position: u32, length: u32| {
        let steps = u64::from(length.max(2) - 1);
        u8::try_from((u64::from(position) * 255 / steps).min(255)).unwrap_or(u8::MAX)
    };
    let row = |band: u32| -> Vec<u8> {
        (0..width)
            .flat_map(|x| {
                let blue = if (x / 16 + band).is_multiple_of(2) {
                    40
                } else {
                    215
                };
                [ramp(x, width), 0, blue, 255]
            })
            .collect()
    };
    let rows = [row(0), row(1)];
    let mut raw = Vec::with_capacity(rows[0].len() * height as usize);
    for y in 0..height {
        let start = raw.len();
        raw.extend_from_slice(&rows[(y / 16 % 2) as usize]);
        let green = ramp(y, height);
        for pixel in raw[start..].chunks_exact_mut(4) {
            pixel[1] = green;
        }
    }
    RgbaImage::from_raw(width, height, raw).expect("the buffer holds width x height pixels")
}

/// The colours of [`two_colour_png`]'s left and right halves: far from each other and from
/// their inverses, so a test can tell from one pixel which picture, and which half, it sees.
pub const TWO_COLOURS: [[u8; 3]; 2] = [[250, 130, 10], [20, 60, 240]];

/// A picture whose left half and right half are the two [`TWO_COLOURS`]: flat areas that keep
/// their colour through any preview's scaling and through a browser's, away from the middle.
pub fn two_colour_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, _| {
        image::Rgb(TWO_COLOURS[usize::from(x >= width / 2)])
    });
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("encoding a generated picture cannot fail");
    bytes
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

/// A GIF declaring a `side` x `side` canvas that holds a single 1x1 frame: a few dozen bytes
/// whose decoded first frame is the whole canvas, drawn a row at a time by a streaming decoder.
pub fn gif_canvas(side: u16) -> Vec<u8> {
    canvas_gif(side, false)
}

/// [`gif_canvas`] with its frame marked interlaced, which a decoder must hold whole: the
/// canvas, four bytes a pixel.
pub fn interlaced_gif_canvas(side: u16) -> Vec<u8> {
    canvas_gif(side, true)
}

fn canvas_gif(side: u16, interlaced: bool) -> Vec<u8> {
    let [low, high] = side.to_le_bytes();
    let mut gif = b"GIF89a".to_vec();
    // Logical screen, with a two-colour global table.
    gif.extend_from_slice(&[low, high, low, high, 0x80, 0, 0]);
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    // One 1x1 image at the origin, its LZW data, and the trailer.
    let flags = if interlaced { 0x40 } else { 0 };
    gif.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, flags]);
    gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0, 0x3b]);
    gif
}

/// A `side` x `side` black grey-scale PNG: a few MB at most, decoding to `side`² bytes.
pub fn grey_png(side: u32) -> Vec<u8> {
    use image::ImageEncoder as _;
    let pixels = vec![0u8; (side as usize) * (side as usize)];
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, side, side, image::ExtendedColorType::L8)
    .expect("encoding a generated picture cannot fail");
    png
}

/// A valid PNG header declaring `width` x `height` RGB pixels, with an
/// image stream that is empty: a few dozen bytes that a careless decoder
/// would allocate gigabytes for (a decompression bomb, for tests of the
/// limits that must stop one).
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    png_of_chunks(
        &ihdr(width, height, 2, false),
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    )
}

/// [`sample_image`] as an Adam7-interlaced RGB PNG, which no encoder at hand writes: the rows of
/// each of the seven passes, unfiltered, in one zlib stream.
pub fn interlaced_png(width: u32, height: u32) -> Vec<u8> {
    use std::io::Write as _;
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let image = sample_image(width, height);
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= width || y0 >= height {
            continue;
        }
        for y in (y0..height).step_by(dy as usize) {
            raw.push(0);
            for x in (x0..width).step_by(dx as usize) {
                raw.extend_from_slice(&image.get_pixel(x, y).0[..3]);
            }
        }
    }
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&raw).expect("writing to memory cannot fail");
    let data = zlib.finish().expect("writing to memory cannot fail");
    png_of_chunks(&ihdr(width, height, 2, true), &data)
}

/// A PNG of noise, which compresses to about its raw size: `side`² x 3 bytes.
pub fn noise_png(side: u32) -> Vec<u8> {
    // xorshift32: any noise will do, and this needs no crate.
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state.to_le_bytes()[0]
    };
    let image = RgbImage::from_fn(side, side, |_, _| image::Rgb([next(), next(), next()]));
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .expect("encoding a generated picture cannot fail");
    png
}

/// A palette PNG of four colours in vertical stripes, one colour half transparent and one fully
/// (a tRNS chunk), at two bits a pixel.
pub fn palette_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Two);
    encoder.set_palette(vec![250, 130, 10, 20, 60, 240, 0, 0, 0, 255, 255, 255]);
    encoder.set_trns(vec![255, 128, 0]);
    let mut writer = encoder
        .write_header()
        .expect("writing to memory cannot fail");
    let row_bytes = (width as usize).div_ceil(4);
    let mut data = Vec::with_capacity(row_bytes * height as usize);
    for _ in 0..height {
        let mut row = vec![0u8; row_bytes];
        for x in 0..width as usize {
            let index = ((x * 4 / width as usize) & 3) as u8;
            row[x / 4] |= index << (6 - 2 * (x % 4));
        }
        data.extend_from_slice(&row);
    }
    writer
        .write_image_data(&data)
        .expect("writing to memory cannot fail");
    writer.finish().expect("writing to memory cannot fail");
    out
}

/// The IHDR chunk's data: 8 bits a channel, of PNG colour type `color`.
fn ihdr(width: u32, height: u32, color: u8, interlaced: bool) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, color, 0, 0, u8::from(interlaced)]);
    header
}

/// A PNG of the header `ihdr` and one IDAT chunk of `data`.
fn png_of_chunks(ihdr: &[u8], data: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", data), (b"IEND", &[])] {
        let length = u32::try_from(data.len()).expect("a test's chunks are under 4 GiB");
        png.extend_from_slice(&length.to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    png
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
    fn the_sample_is_the_picture_described() {
        let image = sample_image(64, 33);
        assert_eq!(image.get_pixel(0, 0).0, [0, 0, 40, 255]);
        assert_eq!(image.get_pixel(63, 32).0, [255, 255, 215, 255]);
        assert_eq!(image.get_pixel(16, 0).0, [64, 0, 215, 255]);
        assert_eq!(image.get_pixel(16, 16).0, [64, 127, 40, 255]);
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
