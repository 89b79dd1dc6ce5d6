use super::*;
use image::{DynamicImage, ImageFormat};

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
    let preview = make_preview(&bytes, PreviewLimits::default()).unwrap();
    assert_eq!(preview.mime_type, "image/png");
    assert_eq!(preview.bytes, bytes);
    assert_eq!((preview.width, preview.height), (64, 48));
}

#[test]
fn large_image_is_scaled_to_the_edge_and_byte_budget() {
    let bytes = png(3000, 1500);
    let budget = PreviewLimits {
        max_base64_bytes: 200 * 1024,
        max_edge_px: 1568,
    };
    let preview = make_preview(&bytes, budget).unwrap();
    assert_eq!(preview.mime_type, "image/jpeg");
    assert!(base64_len(preview.bytes.len() as u64) <= budget.max_base64_bytes);
    assert_eq!((preview.width, preview.height), (1568, 784));
    let decoded = image::load_from_memory(&preview.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1568, 784));
}

#[test]
fn tight_byte_budget_shrinks_the_picture_further() {
    let bytes = png(1200, 1200);
    let budget = PreviewLimits {
        max_base64_bytes: 8 * 1024,
        max_edge_px: 1568,
    };
    let preview = make_preview(&bytes, budget).unwrap();
    assert!(base64_len(preview.bytes.len() as u64) <= 8 * 1024);
    assert!(preview.width < 1200);
}

#[test]
fn scaling_keeps_the_aspect_ratio_and_at_least_a_pixel() {
    assert_eq!(fit_within(3000, 1500, 1568), (1568, 784));
    assert_eq!(fit_within(1500, 3000, 1568), (784, 1568));
    assert_eq!(fit_within(4096, 1, 1568), (1568, 1));
    assert_eq!(fit_within(800, 600, 1568), (800, 600));
}

fn encode(image: DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// The one pixel of a preview, decoded back.
fn preview_pixel(bytes: &[u8]) -> [u8; 3] {
    let budget = PreviewLimits {
        max_base64_bytes: 4096,
        max_edge_px: 1,
    };
    let preview = make_preview(bytes, budget).unwrap();
    assert_eq!(preview.mime_type, "image/jpeg");
    let decoded = image::load_from_memory(&preview.bytes).unwrap();
    decoded.to_rgb8().get_pixel(0, 0).0
}

#[test]
fn every_channel_layout_becomes_rgb_on_white() {
    let near = |got: [u8; 3], want: [u8; 3]| {
        got.iter()
            .zip(want)
            .all(|(&got, want)| got.abs_diff(want) <= 12)
    };
    let grey = image::GrayImage::from_pixel(16, 16, image::Luma([40]));
    let grey16 =
        image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(16, 16, image::Luma([40 * 257]));
    let clear = image::GrayAlphaImage::from_pixel(16, 16, image::LumaA([0, 0]));
    let half_red = image::RgbaImage::from_pixel(16, 16, image::Rgba([255, 0, 0, 128]));
    let cases = [
        ("grey", DynamicImage::ImageLuma8(grey), [40, 40, 40]),
        (
            "16-bit grey",
            DynamicImage::ImageLuma16(grey16),
            [40, 40, 40],
        ),
        (
            "transparent grey",
            DynamicImage::ImageLumaA8(clear),
            [255, 255, 255],
        ),
        (
            "half-transparent red",
            DynamicImage::ImageRgba8(half_red),
            [255, 127, 127],
        ),
    ];
    for (name, image, want) in cases {
        let got = preview_pixel(&encode(image));
        assert!(near(got, want), "{name}: {got:?}, expected about {want:?}");
    }
}

#[test]
fn memory_is_reserved_for_what_each_decode_holds_and_a_whole_frame_too_big_is_refused() {
    let huge = (16_384, 16_384);
    let target = fit_within(huge.0, huge.1, 1568);
    let mut declared = Cursor::new(reve_tests::fake::png_declaring(huge.0, huge.1));
    let streamed = rows::plan(&mut declared, huge, target).unwrap();
    assert_eq!(streamed.source, rows::Source::PngRows);
    let needed = pixel_memory(huge, &streamed, READ_BUFFER_BYTES as u64).unwrap();
    assert!(needed < 64 * MIB, "{needed}");

    // A whole RGBA frame of that size is 1 GiB: refused before decoding.
    let whole = rows::Plan {
        source: rows::Source::WholeFrame,
        rows_size: huge,
        target,
        pixel_type: fast_image_resize::PixelType::U8x4,
        decoder_bytes: 16_384 * 16_384 * 4,
    };
    let error = pixel_memory(huge, &whole, 0).unwrap_err();
    assert!(
        matches!(
            error,
            PreviewError::TooManyPixels {
                needed_mib: 1024..,
                max_mib: 512,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("16384x16384 pixels of RGBA; a preview of it would hold"),
        "{error}"
    );
}

#[test]
fn a_huge_png_is_decoded_as_a_stream_so_its_missing_rows_are_a_decode_error() {
    let declared = reve_tests::fake::png_declaring(16_384, 16_384);
    let error = make_preview(&declared, PreviewLimits::default()).unwrap_err();
    assert!(matches!(error, PreviewError::Decode(_)), "{error}");
}

fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn jpeg(image: &image::RgbImage, progressive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = rusty_jpeg::Encoder::new(&mut out, 90);
    encoder.set_progressive(progressive);
    encoder
        .encode(
            image.as_raw(),
            image.width() as u16,
            image.height() as u16,
            rusty_jpeg::ColorType::Rgb,
        )
        .unwrap();
    out
}

/// Two frames, the second the first's negative: a preview of any but the first frame shows.
fn animated_gif(width: u32, height: u32) -> Vec<u8> {
    let first = reve_tests::fake::sample_image(width, height);
    let mut second = first.clone();
    image::imageops::invert(&mut second);
    let mut out = Vec::new();
    let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
    encoder
        .encode_frames([first, second].map(image::Frame::new))
        .unwrap();
    drop(encoder);
    out
}

/// What the preview path made before it streamed: the whole picture decoded by `image`, made 8-bit, then
/// scaled in one call.
fn scaled_whole(bytes: &[u8], target: (u32, u32)) -> Vec<u8> {
    let picture = rows::to_eight_bit(image::load_from_memory(bytes).unwrap());
    let pixel_type = match picture.color().channel_count() {
        1 => fast_image_resize::PixelType::U8,
        2 => fast_image_resize::PixelType::U8x2,
        3 => fast_image_resize::PixelType::U8x3,
        _ => fast_image_resize::PixelType::U8x4,
    };
    let size = (picture.width(), picture.height());
    scale::tests::whole(picture.as_bytes(), size, target, pixel_type)
}

#[test]
fn every_format_streamed_or_scaled_in_its_decoder_matches_the_whole_picture_scaled() {
    let sample = |width, height| reve_tests::fake::sample_image(width, height);
    let rgb = |width, height| DynamicImage::ImageRgba8(sample(width, height)).into_rgb8();
    // A JPEG decoded at a fraction of its size is then scaled by a smaller ratio, where the box filter aliases
    // hard edges differently (the sample's 16-pixel squares: channels 2.5 apart on average at 1604x1200): a
    // smooth picture, as photographs are, shows how far the two decodes are apart.
    let smooth = |width: u32, height: u32| {
        image::RgbImage::from_fn(width, height, |x, y| {
            let wave =
                ((f64::from(x) / 37.0).sin() * (f64::from(y) / 53.0).cos() * 100.0 + 128.0) as u8;
            image::Rgb([(x * 255 / width) as u8, wave, (y * 255 / height) as u8])
        })
    };
    let png = ImageFormat::Png;
    // Each picture, how its rows are decoded, and whether its decoder differs from `image`'s (a JPEG scaled in
    // the inverse DCT rather than averaged after it).
    let cases: Vec<(&str, Vec<u8>, rows::Source, bool)> = vec![
        (
            "RGBA PNG of odd sides",
            reve_tests::fake::sample_png(1001, 777),
            rows::Source::PngRows,
            false,
        ),
        (
            "RGB PNG, wide",
            encoded(DynamicImage::ImageRgb8(rgb(2049, 301)), png),
            rows::Source::PngRows,
            false,
        ),
        (
            "16-bit RGB PNG",
            encoded(
                DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb(613, 1207)).into_rgb16()),
                png,
            ),
            rows::Source::PngRows,
            false,
        ),
        (
            "palette PNG with transparency, two bits a pixel",
            reve_tests::fake::palette_png(999, 555),
            rows::Source::PngRows,
            false,
        ),
        (
            "grey PNG",
            encoded(
                DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb(801, 803)).into_luma8()),
                png,
            ),
            rows::Source::PngRows,
            false,
        ),
        (
            "grey and alpha PNG",
            encoded(
                DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(705, 409, |x, y| {
                    image::LumaA([(x % 251) as u8, ((x + y) % 256) as u8])
                })),
                png,
            ),
            rows::Source::PngRows,
            false,
        ),
        (
            "interlaced PNG",
            reve_tests::fake::interlaced_png(901, 653),
            rows::Source::WholeFrame,
            false,
        ),
        (
            "baseline JPEG",
            jpeg(&smooth(1603, 1201), false),
            rows::Source::JpegScaled,
            true,
        ),
        (
            "progressive JPEG",
            jpeg(&smooth(1201, 1603), true),
            rows::Source::JpegScaled,
            true,
        ),
        (
            "grey JPEG",
            encoded(
                DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(smooth(999, 700)).into_luma8()),
                ImageFormat::Jpeg,
            ),
            rows::Source::JpegScaled,
            true,
        ),
        (
            "animated GIF, first frame",
            animated_gif(411, 301),
            rows::Source::GifRows,
            false,
        ),
        (
            "lossless WebP",
            reve_tests::fake::sample_webp(777, 555),
            rows::Source::WholeFrame,
            false,
        ),
    ];
    for (name, bytes, source, decoded_otherwise) in cases {
        let mut reader = Cursor::new(&bytes);
        let size = ImageReader::new(&mut reader)
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        reader.rewind().unwrap();
        let target = fit_within(size.0, size.1, 300);
        let plan = rows::plan(&mut reader, size, target).unwrap();
        assert_eq!(plan.source, source, "{name}");
        let made = scaled_to(&bytes, size, 300);
        assert_eq!((made.width, made.height), target, "{name}");
        let difference = scale::tests::Difference::of(&made.pixels, &scaled_whole(&bytes, target));
        let close = if decoded_otherwise {
            difference.mean <= 1.0 && difference.largest <= 16
        } else {
            difference.is_rounding()
        };
        assert!(close, "{name}: {difference:?}");
        eprintln!("{name}: {difference:?}");
    }
}

#[test]
fn a_gif_frame_on_a_huge_canvas_is_drawn_a_row_at_a_time() {
    let canvas = reve_tests::fake::gif_canvas(16_000);
    let mut reader = Cursor::new(&canvas);
    let plan = rows::plan(&mut reader, (16_000, 16_000), (1568, 1568)).unwrap();
    assert_eq!(plan.source, rows::Source::GifRows);
    assert!(pixel_memory((16_000, 16_000), &plan, 0).unwrap() < 64 * MIB);
    let made = scaled_to(&canvas, (16_000, 16_000), 64);
    // One black pixel in 16000², on a transparent canvas: nothing shows.
    assert!(made.pixels.iter().all(|&channel| channel == 0));
}

#[test]
fn a_truncated_file_is_a_clear_error_in_every_format() {
    let rgb = DynamicImage::ImageRgba8(reve_tests::fake::sample_image(640, 480)).into_rgb8();
    let cases = [
        ("PNG", reve_tests::fake::sample_png(640, 480)),
        ("interlaced PNG", reve_tests::fake::interlaced_png(640, 480)),
        ("JPEG", jpeg(&rgb, false)),
        ("progressive JPEG", jpeg(&rgb, true)),
        ("GIF", animated_gif(640, 480)),
        ("WebP", reve_tests::fake::sample_webp(640, 480)),
    ];
    for (name, bytes) in cases {
        // A third: inside the first frame, the only one a preview decodes, of the GIF's two.
        let cut = &bytes[..bytes.len() / 3];
        let budget = PreviewLimits {
            max_base64_bytes: 64 * 1024,
            max_edge_px: 320,
        };
        let error = make_preview(cut, budget).expect_err(name);
        assert!(matches!(error, PreviewError::Truncated), "{name}: {error}");
    }
}

#[test]
fn decompression_bomb_is_refused_without_decoding() {
    let bomb = reve_tests::fake::png_declaring(100_000, 100_000);
    let error = make_preview(&bomb, PreviewLimits::default()).unwrap_err();
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

/// `bytes` scaled to fit `edge`, as a preview scales them.
fn scaled_to(bytes: &[u8], size: (u32, u32), edge: u32) -> scale::Scaled {
    let budget = PreviewLimits {
        max_edge_px: edge,
        ..PreviewLimits::default()
    };
    scaled_and_encoded(Cursor::new(bytes), size, budget, 0)
        .unwrap()
        .0
}

/// The JPEG encoded from rows as they are scaled is the picture the scaler made: decoded, it
/// is as close to the scaled picture as the same JPEG encoded from it whole.
#[test]
fn the_jpeg_encoded_as_rows_arrive_shows_the_scaled_picture() {
    for (width, height, edge) in [(640, 480, 1568), (1000, 700, 300), (33, 17, 1568)] {
        let png = reve_tests::fake::sample_png(width, height);
        let budget = PreviewLimits {
            max_edge_px: edge,
            ..PreviewLimits::default()
        };
        let (scaled, streamed) =
            scaled_and_encoded(Cursor::new(&png), (width, height), budget, 0).unwrap();
        let rgb = rgb_on_white(&scaled.pixels, scaled.channels()).into_owned();
        let mut whole = Vec::new();
        rusty_jpeg::Encoder::new(&mut whole, JPEG_QUALITIES[0])
            .encode(
                &rgb,
                scaled.width as u16,
                scaled.height as u16,
                rusty_jpeg::ColorType::Rgb,
            )
            .unwrap();
        let decode = |jpeg: &[u8]| image::load_from_memory(jpeg).unwrap().into_rgb8();
        let (streamed, whole) = (decode(&streamed), decode(&whole));
        assert_eq!(streamed.dimensions(), (scaled.width, scaled.height));
        let against_scaled = scale::tests::Difference::of(streamed.as_raw(), &rgb);
        let whole_against_scaled = scale::tests::Difference::of(whole.as_raw(), &rgb);
        assert!(
            against_scaled.mean <= whole_against_scaled.mean + 0.5,
            "{width}x{height}: streamed {against_scaled:?}, whole {whole_against_scaled:?}"
        );
    }
}

/// A file that tells a wrong size when asked for its end, as a result still downloading does
/// when its server announced a wrong `Content-Length`.
struct WrongLength(Cursor<Vec<u8>>);

impl Read for WrongLength {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for WrongLength {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::End(_) => Ok(100),
            to => self.0.seek(to),
        }
    }
}

/// A picture announced small enough to pass through but bigger than the budget is previewed as
/// a JPEG within it: what is passed through is what was read, not what was announced.
#[test]
fn a_result_bigger_than_its_announced_size_is_not_passed_through() {
    let bytes = png(600, 400);
    let budget = PreviewLimits {
        max_base64_bytes: base64_len(bytes.len() as u64) - 4,
        max_edge_px: 1568,
    };
    let preview = make_preview_from(WrongLength(Cursor::new(bytes.clone())), budget).unwrap();
    assert_eq!(preview.mime_type, "image/jpeg");
    assert!(base64_len(preview.bytes.len() as u64) <= budget.max_base64_bytes);

    // Told the truth, the same picture within the budget passes through.
    let budget = PreviewLimits {
        max_base64_bytes: base64_len(bytes.len() as u64),
        ..budget
    };
    let preview = make_preview_from(WrongLength(Cursor::new(bytes.clone())), budget).unwrap();
    assert_eq!(
        (preview.mime_type, preview.bytes),
        ("image/png", bytes.into())
    );
}
