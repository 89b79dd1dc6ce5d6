//! Measurements 16 and 17 (issue 17), and the preview steps of the breakdown: what one preview
//! costs in memory, how far its pixels are from the whole-picture path it replaced, and both
//! paths timed on the same staged file.
//!
//! The whole-picture path is rebuilt here as it was before issue 17 (the result read into
//! memory, decoded whole by `image`, scaled by `fast_image_resize`'s box filter in one call,
//! encoded by `rusty_jpeg` at the first of reve-mcp's qualities whose base64 fits), so that
//! "before" is measured in the same run as "after", on the same bytes.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use reve_mcp::{JPEG_QUALITIES, Preview, PreviewLimits, make_preview_from};
use serde_json::{Value, json};

use crate::rpc::proc_status;

/// The sides of the photo-like PNGs whose preview's memory measurement 16 takes.
pub const MEMORY_SIDES: [u32; 2] = [4096, 16_384];

/// One preview's peak extra memory in a fresh process.
#[derive(Default, Clone, Copy)]
pub struct PreviewMemory {
    pub side: u32,
    pub file_bytes: u64,
    /// Today's preview: streamed from the file.
    pub streamed: u64,
    /// The whole-picture path, measured for the 4096x4096 picture only: a 16384x16384 RGB one
    /// is 768 MiB of pixels, which that path refused.
    pub whole: Option<u64>,
}

/// How far today's preview is from the whole-picture path's, channel by channel (0 to 255).
#[derive(Clone)]
pub struct PixelDifference {
    pub picture: String,
    pub mean: f64,
    pub largest: u8,
}

/// The whole-picture path's steps, timed.
pub struct WholePicture {
    pub read_back: Duration,
    pub decode: Duration,
    pub scale_encode: Duration,
    /// The preview it made, as JPEG.
    pub jpeg: Vec<u8>,
}

/// The preview of the picture in `file` as it was made before issue 17, at `size` (today's
/// preview's size, so that the two can be compared pixel for pixel).
pub fn whole_picture_preview(
    mut file: File,
    size: (u32, u32),
    budget: PreviewLimits,
) -> Result<WholePicture> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let read_back = started.elapsed();

    let started = Instant::now();
    let picture = image::load_from_memory(&bytes)?.into_rgb8();
    let decode = started.elapsed();

    let started = Instant::now();
    let source = ImageRef::new(
        picture.width(),
        picture.height(),
        picture.as_raw(),
        PixelType::U8x3,
    )?;
    let mut scaled = Image::new(size.0, size.1, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    Resizer::new().resize(&source, &mut scaled, &options)?;
    let mut fitting = None;
    for quality in JPEG_QUALITIES {
        let mut jpeg = Vec::new();
        rusty_jpeg::Encoder::new(&mut jpeg, quality).encode(
            scaled.buffer(),
            u16::try_from(size.0)?,
            u16::try_from(size.1)?,
            rusty_jpeg::ColorType::Rgb,
        )?;
        if jpeg.len().div_ceil(3) * 4 <= budget.max_base64_bytes {
            fitting = Some(jpeg);
            break;
        }
    }
    let scale_encode = started.elapsed();
    Ok(WholePicture {
        read_back,
        decode,
        scale_encode,
        jpeg: fitting.context("no quality of the whole-picture path fits the budget")?,
    })
}

/// Today's preview of the picture in `file`, made as the server makes it, timed.
pub fn streamed_preview(file: File, budget: PreviewLimits) -> Result<(Preview, Duration)> {
    let started = Instant::now();
    let preview = make_preview_from(file, budget)?;
    Ok((preview, started.elapsed()))
}

/// Measurement 17 for one picture: today's preview against the whole-picture path's, both
/// decoded back to pixels.
pub fn pixel_difference(picture: &str, file: &Path) -> Result<PixelDifference> {
    let budget = PreviewLimits::default();
    let (preview, _) = streamed_preview(File::open(file)?, budget)?;
    if preview.mime_type != "image/jpeg" {
        bail!("{picture} passed through as its own preview: nothing to compare");
    }
    let streamed = decoded(&preview.bytes)?;
    let whole = whole_picture_preview(File::open(file)?, (preview.width, preview.height), budget)?;
    let whole = decoded(&whole.jpeg)?;
    if streamed.len() != whole.len() {
        bail!("the two previews of {picture} differ in size");
    }
    let apart = || streamed.iter().zip(&whole).map(|(a, b)| a.abs_diff(*b));
    let total: u64 = apart().map(u64::from).sum();
    Ok(PixelDifference {
        picture: picture.to_owned(),
        mean: total as f64 / streamed.len().max(1) as f64,
        largest: apart().max().unwrap_or(0),
    })
}

fn decoded(jpeg: &[u8]) -> Result<Vec<u8>> {
    Ok(image::load_from_memory(jpeg)?.into_rgb8().into_raw())
}

/// Measurement 16 for one picture: the median peak extra memory of `runs` fresh processes
/// each making one preview of `file` (`reve-bench --probe-preview`).
pub fn memory(harness: &Path, file: &Path, whole: bool, runs: usize) -> Result<u64> {
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let mut command = std::process::Command::new(harness);
        command.arg("--probe-preview").arg(file);
        if whole {
            command.arg("--whole-picture");
        }
        let output = command.output().context("starting the preview probe")?;
        if !output.status.success() {
            bail!(
                "the preview probe failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: Value = serde_json::from_slice(&output.stdout)?;
        peaks.push(report["peak_extra_bytes"].as_u64().unwrap_or_default());
    }
    Ok(crate::measure::median(peaks))
}

/// The child's side of [`memory`]: one preview in this fresh process, its peak RSS minus the
/// RSS before it, printed as JSON.
pub fn probe(file: &Path, whole: bool) -> Result<()> {
    let pid = std::process::id();
    let before = proc_status(pid, "VmRSS")?;
    let budget = PreviewLimits::default();
    if whole {
        let mut header = Vec::new();
        File::open(file)?.take(64 * 1024).read_to_end(&mut header)?;
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(header))
            .with_guessed_format()?
            .into_dimensions()?;
        let edge = budget.max_edge_px;
        let longer = width.max(height);
        let size = (width * edge / longer, height * edge / longer);
        whole_picture_preview(File::open(file)?, size, budget)?;
    } else {
        streamed_preview(File::open(file)?, budget)?;
    }
    let peak = proc_status(pid, "VmHWM")?;
    println!(
        "{}",
        json!({ "peak_extra_bytes": peak.saturating_sub(before) })
    );
    Ok(())
}
