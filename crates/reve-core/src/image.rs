//! Input images: what a caller may point at, and turning it into the `image_url` the API takes.
//!
//! The API only accepts an http(s) URL or a `data:` URI. A local file therefore becomes a `data:`
//! URI, labelled by what its bytes are, never by its extension. All of this is synchronous on
//! purpose: reading a file blocks, and the caller knows best where blocking work belongs (an
//! async caller wraps it in `tokio::task::spawn_blocking`); the work is a single bounded read
//! and an encode, with nothing to await.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, DecodeSliceError};

use crate::error::{Error, Result};
use crate::format::{ImageFormat, describe_non_image};
use crate::text::shorten;

/// Where an input image comes from.
///
/// `Debug` shows a `data:` URI's media type and length, never its base64.
#[derive(Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An `http://` or `https://` URL the API fetches itself; passed through untouched.
    Url(String),
    /// A validated `data:<image/*>;base64,...` URI; passed through untouched.
    DataUri(String),
    /// A local file, to be read and sent as a `data:` URI.
    File(PathBuf),
}

impl ImageSource {
    /// Classifies and checks `input`: an http(s) URL, a `data:` URI (well-formed, an `image/*`
    /// media type, valid base64), an absolute path, or a `file://` URI.
    ///
    /// Relative paths are refused: what they resolve against (a server's working directory) is
    /// rarely what the person typing them meant.
    pub fn parse(input: &str) -> Result<ImageSource> {
        classify(input, None).map_err(|reason| Error::InvalidInput {
            field: "image",
            reason,
        })
    }

    /// As [`ImageSource::parse`], but a relative path is a file under `base`: for a person at a
    /// shell, who means a bare `cat.png` as the file in the working directory.
    pub fn parse_relative_to(input: &str, base: &Path) -> Result<ImageSource> {
        classify(input, Some(base)).map_err(|reason| Error::InvalidInput {
            field: "image",
            reason,
        })
    }

    /// The local file `input` names, or `None` for a URL or a `data:` URI, classified as
    /// [`ImageSource::parse`] (or, with `base`, [`ImageSource::parse_relative_to`]) does but
    /// without checking or copying a `data:` URI: for a caller that reads a local file itself
    /// and leaves the rest to [`crate::RequestBody::new`], which checks a `data:` URI in place.
    pub fn local_file(input: &str, base: Option<&Path>) -> Result<Option<PathBuf>> {
        match reference(input, base) {
            Ok(Reference::File(path)) => Ok(Some(path)),
            Ok(Reference::Url(_) | Reference::DataUri(_)) => Ok(None),
            Err(reason) => Err(Error::InvalidInput {
                field: "image_url",
                reason,
            }),
        }
    }

    /// Produces the `image_url` to send: URLs and `data:` URIs as they are, a file as a `data:`
    /// URI (see [`data_uri_from_file`]).
    ///
    /// `max_bytes` bounds the image's size in bytes (after base64 decoding for a `data:` URI);
    /// pass [`crate::Config::max_input_bytes`]. Blocking; see the module docs.
    pub fn into_image_url(self, max_bytes: u64) -> Result<String> {
        match self {
            ImageSource::Url(url) => Ok(url),
            ImageSource::DataUri(uri) => {
                check_data_uri_size(&uri, max_bytes).map_err(|reason| Error::InvalidInput {
                    field: "image",
                    reason,
                })?;
                Ok(uri)
            }
            ImageSource::File(path) => {
                let file = open_nonblocking(&path, FinalSymlink::Follow)
                    .map_err(file_error(&path, "open"))?;
                data_uri_from_file(&file, &path, max_bytes)
            }
        }
    }
}

impl fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Url(url) => f.debug_tuple("Url").field(url).finish(),
            ImageSource::DataUri(uri) => {
                let header = uri.split_once(',').map_or("data:", |(header, _)| header);
                write!(
                    f,
                    "DataUri({header},<{} chars>)",
                    uri.len() - header.len() - 1
                )
            }
            ImageSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Encodes an already-open file as a `data:<mime>;base64,...` URI.
///
/// For callers that open the file themselves, after their own checks on the path (an MCP server
/// confining reads to allowed directories), so that what is checked is what is read. `path` is
/// only used in error messages.
///
/// The handle must be a regular file of at most `max_bytes`; its size is checked before anything
/// is read and the read itself is bounded, so a file that grows meanwhile is caught too. The type
/// comes from the first bytes: anything but PNG, JPEG, WebP or GIF is refused with
/// [`Error::NotAnImage`] naming what it looks like. The base64 is written chunk by chunk into one
/// `String` sized up front, so peak memory is about 1.33 times the file size.
pub fn data_uri_from_file(file: &File, path: &Path, max_bytes: u64) -> Result<String> {
    let mut uri = String::new();
    append_data_uri(file, path, max_bytes, &mut uri, 0)?;
    Ok(uri)
}

/// Appends a file's `data:` URI to `out` (the work of [`data_uri_from_file`]), reserving room
/// for it and `room_after` more bytes first, so that a request body can be built around the URI
/// in a single buffer, with no copy of the base64 and no regrowth. Returns the file's size. On
/// error `out` holds part of a URI and is to be discarded.
pub(crate) fn append_data_uri(
    file: &File,
    path: &Path,
    max_bytes: u64,
    out: &mut String,
    room_after: usize,
) -> Result<u64> {
    /// A multiple of 3 so that each chunk encodes to base64 without padding in the middle.
    const CHUNK: usize = 3 * 64 * 1024;

    let metadata = file.metadata().map_err(file_error(path, "inspect"))?;
    if !metadata.is_file() {
        return Err(not_a_regular_file(path));
    }
    if metadata.len() > max_bytes {
        return Err(Error::FileTooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            limit: max_bytes,
        });
    }
    let mut reader = file.take(max_bytes.saturating_add(1));
    let mut chunk = vec![0; CHUNK];
    let mut filled = fill(&mut reader, &mut chunk).map_err(file_error(path, "read"))?;
    let Some(format) = ImageFormat::detect(&chunk[..filled]) else {
        return Err(Error::NotAnImage {
            path: path.to_owned(),
            saw: describe_non_image(&chunk[..filled]),
        });
    };
    let mime = format.mime_type();
    let expected = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
    out.reserve(
        "data:;base64,".len()
            + mime.len()
            + base64::encoded_len(expected, true).unwrap_or(expected)
            + room_after,
    );
    out.push_str("data:");
    out.push_str(mime);
    out.push_str(";base64,");
    let mut total: u64 = 0;
    while filled > 0 {
        total += filled as u64;
        if total > max_bytes {
            return Err(Error::FileTooLarge {
                path: path.to_owned(),
                size: total,
                limit: max_bytes,
            });
        }
        STANDARD.encode_string(&chunk[..filled], out);
        if filled < CHUNK {
            break;
        }
        filled = fill(&mut reader, &mut chunk).map_err(file_error(path, "read"))?;
    }
    tracing::debug!(bytes = total, %format, "encoded local image as a data: URI");
    Ok(total)
}

/// Whether opening a path may follow a symbolic link at its last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSymlink {
    /// Follow it, as any program opening a path a person typed does.
    Follow,
    /// Refuse it (`ELOOP` on Unix), for a path that was resolved and checked first: a symlink
    /// swapped in since then must not redirect the read.
    Refuse,
}

/// Opens a file for reading without waiting: opening a FIFO otherwise blocks until a writer
/// comes, forever if none does. Whatever was opened must then be checked on the handle (as
/// [`data_uri_from_file`] does), so that a path swapped for a FIFO or a device after any earlier
/// check is refused rather than read. Regular files ignore the flag.
pub fn open_nonblocking(path: &Path, symlink: FinalSymlink) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        let nofollow = match symlink {
            FinalSymlink::Follow => 0,
            FinalSymlink::Refuse => libc::O_NOFOLLOW,
        };
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK | nofollow);
    }
    #[cfg(not(unix))]
    let _ = symlink;
    options.open(path)
}

/// Reads until `buf` is full or the input ends, so every chunk but the last is exactly full.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// What an image reference is, borrowed from the caller's text: the one place that decides
/// between a URL, a `data:` URI and a local file. A `data:` URI is recognised by its scheme
/// only, so that classifying a multi-megabyte one neither copies nor scans it; whoever sends it
/// checks it ([`check_data_uri`]).
pub(crate) enum Reference<'a> {
    Url(&'a str),
    DataUri(&'a str),
    File(PathBuf),
}

/// Classifies `input`; with `base`, a relative path is a file under it, otherwise it is refused.
pub(crate) fn reference<'a>(input: &'a str, base: Option<&Path>) -> Result<Reference<'a>, String> {
    let scheme = input
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https") => {
            let url = url::Url::parse(input)
                .map_err(|error| format!("{} is not a valid URL: {error}", quoted(input)))?;
            if url.host().is_none() {
                return Err(format!("{} has no host", quoted(input)));
            }
            Ok(Reference::Url(input))
        }
        Some("data") => Ok(Reference::DataUri(input)),
        Some("file") => file_uri_path(input).map(Reference::File),
        _ if Path::new(input).is_absolute() => Ok(Reference::File(PathBuf::from(input))),
        _ if input.trim().is_empty() => {
            Err("no image given: pass an http(s) URL, a data: URI or an absolute file path".into())
        }
        _ if input.contains("://") => Err(format!(
            "{} is neither an http(s) URL, a data: URI nor an absolute file path",
            quoted(input)
        )),
        _ => match base {
            Some(base) => Ok(Reference::File(base.join(input))),
            None => Err(format!(
                "{} is a relative path; give an absolute path or a file:// URI",
                quoted(input)
            )),
        },
    }
}

/// The checks behind [`ImageSource::parse`] and [`ImageSource::parse_relative_to`], returning
/// the reason on failure so that each caller can name its own field.
fn classify(input: &str, base: Option<&Path>) -> Result<ImageSource, String> {
    Ok(match reference(input, base)? {
        Reference::Url(url) => ImageSource::Url(url.to_owned()),
        Reference::DataUri(uri) => {
            check_data_uri(uri)?;
            ImageSource::DataUri(uri.to_owned())
        }
        Reference::File(path) => ImageSource::File(path),
    })
}

/// The local path a `file:` URI names; only this machine's files (no host, or `localhost`).
fn file_uri_path(uri: &str) -> Result<PathBuf, String> {
    let url = url::Url::parse(uri)
        .map_err(|error| format!("{} is not a valid file: URI: {error}", quoted(uri)))?;
    match url.host_str() {
        None | Some("" | "localhost") => {}
        Some(host) => {
            return Err(format!(
                "{} names the remote host {:?}; only files on this machine can be read",
                quoted(uri),
                shorten(host)
            ));
        }
    }
    url.to_file_path()
        .map_err(|()| format!("{} does not name a local path", quoted(uri)))
}

/// The size limit of [`ImageSource::into_image_url`] on a checked `data:` URI; returns the
/// image's decoded size.
pub(crate) fn check_data_uri_size(uri: &str, max_bytes: u64) -> Result<u64, String> {
    let size = data_uri_payload_len(uri);
    if size > max_bytes {
        return Err(format!(
            "the data: URI holds {size} bytes of image; the limit is {max_bytes} bytes"
        ));
    }
    Ok(size)
}

/// Checks a `data:` URI without decoding it into memory: well-formed, an `image/*` media type,
/// `;base64`, and a payload that decodes (verified in fixed-size pieces).
pub(crate) fn check_data_uri(uri: &str) -> Result<(), String> {
    let Some((header, payload)) = uri.split_once(',') else {
        return Err("the data: URI has no ',' before its data".into());
    };
    let header = &header["data:".len()..];
    let mime = header.split(';').next().unwrap_or_default();
    let is_image = mime.len() > "image/".len()
        && mime
            .get(..6)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("image/"));
    if !is_image {
        return Err(format!(
            "the data: URI's media type is {}; it must be an image/* type such as image/png",
            if mime.is_empty() {
                "missing".to_owned()
            } else {
                quoted(mime)
            }
        ));
    }
    let is_base64 = header
        .rsplit(';')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("base64"));
    if !is_base64 {
        return Err("the data: URI must be base64-encoded (data:image/...;base64,...)".into());
    }
    if payload.is_empty() {
        return Err("the data: URI holds no data".into());
    }
    check_base64(payload.as_bytes())
        .map_err(|problem| format!("the data: URI's base64 does not decode: {problem}"))
}

/// Checks that `payload` is canonical, padded standard base64 without decoding it: the
/// decoder's per-byte work would make this check cost as much as encoding the URI did.
fn check_base64(payload: &[u8]) -> Result<(), String> {
    /// Long enough that the per-piece loop costs nothing, short enough to stay in L1 cache.
    const PIECE: usize = 4096;
    let invalid_at = |offset: usize| {
        format!(
            "invalid character {:?} at position {offset} of the data",
            char::from(payload[offset])
        )
    };
    // Everything before the last 4-character group must be plain alphabet (padding belongs only
    // at the very end); the last group is decoded, which checks its padding and unused bits.
    let last_group = payload.len().saturating_sub(1) / 4 * 4;
    let (body, tail) = payload.split_at(last_group);
    for (index, piece) in body.chunks(PIECE).enumerate() {
        // A branch-free fold the compiler vectorises; the position is only looked for on failure.
        if !piece
            .iter()
            .fold(true, |valid, &byte| valid & is_base64_alphabet(byte))
        {
            let position = piece
                .iter()
                .position(|&byte| !is_base64_alphabet(byte))
                .unwrap_or_default();
            return Err(invalid_at(index * PIECE + position));
        }
    }
    let mut scratch = [0u8; 3];
    STANDARD
        .decode_slice(tail, &mut scratch)
        .map(drop)
        .map_err(|error| match error {
            DecodeSliceError::DecodeError(
                DecodeError::InvalidByte(offset, _) | DecodeError::InvalidLastSymbol(offset, _),
            ) => invalid_at(last_group + offset),
            DecodeSliceError::DecodeError(
                DecodeError::InvalidLength(_) | DecodeError::InvalidPadding,
            ) => "it is truncated or wrongly padded".to_owned(),
            other => other.to_string(),
        })
}

fn is_base64_alphabet(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() | (byte == b'+') | (byte == b'/')
}

/// The decoded size of a checked `data:` URI's payload.
fn data_uri_payload_len(uri: &str) -> u64 {
    let payload = uri.split_once(',').map_or("", |(_, payload)| payload);
    let padding = payload.bytes().rev().take_while(|&b| b == b'=').count();
    (payload.len() / 4 * 3).saturating_sub(padding) as u64
}

/// Quotes user input in a message, shortened: it may be a huge data URI or contain anything.
fn quoted(input: &str) -> String {
    format!("{:?}", shorten(input))
}

fn file_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::File {
        path: path.to_owned(),
        action,
        source,
    }
}

fn not_a_regular_file(path: &Path) -> Error {
    Error::File {
        path: path.to_owned(),
        action: "read",
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a directory, device or pipe)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
    ];

    fn reason(input: &str) -> String {
        match ImageSource::parse(input).unwrap_err() {
            Error::InvalidInput { field, reason } => {
                assert_eq!(field, "image");
                reason
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn local_files_are_told_apart_without_reading_data_uris() {
        let local = |input| ImageSource::local_file(input, None);
        assert_eq!(local("https://example.com/a.png").unwrap(), None);
        // Not checked here: the request body checks a data: URI where it lies.
        assert_eq!(local("data:image/png;base64,@@@").unwrap(), None);
        assert_eq!(
            local("/tmp/a.png").unwrap(),
            Some(PathBuf::from("/tmp/a.png"))
        );
        assert_eq!(
            local("file:///tmp/a%20b.png").unwrap(),
            Some(PathBuf::from("/tmp/a b.png"))
        );
        assert_eq!(
            local("file://localhost/tmp/a.png").unwrap(),
            Some(PathBuf::from("/tmp/a.png"))
        );
        let remote = local("file://evil.example/etc/passwd").unwrap_err();
        assert!(remote.to_string().contains("remote host"), "{remote}");
        let relative = local("a.png").unwrap_err();
        assert!(relative.to_string().contains("relative path"), "{relative}");
        assert_eq!(
            ImageSource::local_file("pets/a.png", Some(Path::new("/home/me"))).unwrap(),
            Some(PathBuf::from("/home/me/pets/a.png"))
        );
    }

    #[test]
    fn urls_pass_through_untouched() {
        let url = "HTTPS://Example.com/a b.png?x=1";
        assert_eq!(
            ImageSource::parse(url).unwrap(),
            ImageSource::Url(url.into())
        );
    }

    #[test]
    fn paths_and_file_uris_become_files() {
        assert_eq!(
            ImageSource::parse("/tmp/cat.png").unwrap(),
            ImageSource::File("/tmp/cat.png".into())
        );
        assert_eq!(
            ImageSource::parse("file:///tmp/a%20cat.png").unwrap(),
            ImageSource::File("/tmp/a cat.png".into())
        );
        assert_eq!(
            reason("cat.png"),
            "\"cat.png\" is a relative path; give an absolute path or a file:// URI"
        );
        assert_eq!(
            reason("file://server/share/cat.png"),
            "\"file://server/share/cat.png\" names the remote host \"server\"; only files on this machine can be read"
        );
    }

    #[test]
    fn data_uris_are_checked_but_kept_verbatim() {
        let uri = format!("data:image/png;base64,{}", STANDARD.encode(PNG_1X1));
        assert_eq!(
            ImageSource::parse(&uri).unwrap(),
            ImageSource::DataUri(uri.clone())
        );
        assert_eq!(
            reason("data:text/plain;base64,aGk="),
            "the data: URI's media type is \"text/plain\"; it must be an image/* type such as image/png"
        );
        assert_eq!(
            reason("data:image/png,rawbytes"),
            "the data: URI must be base64-encoded (data:image/...;base64,...)"
        );
        assert_eq!(
            reason("data:image/png;base64,"),
            "the data: URI holds no data"
        );
        assert!(
            reason("data:image/png;base64,aGk=aGk=")
                .starts_with("the data: URI's base64 does not decode")
        );
        assert!(
            reason("data:image/png;base64,aGk")
                .starts_with("the data: URI's base64 does not decode")
        );
        assert_eq!(
            reason("data:image/png"),
            "the data: URI has no ',' before its data"
        );
    }

    #[test]
    fn a_long_valid_data_uri_is_checked_piece_by_piece() {
        let payload = STANDARD.encode(vec![7u8; 100_001]);
        let uri = format!("data:image/webp;name=x.webp;base64,{payload}");
        assert!(ImageSource::parse(&uri).is_ok());
        assert_eq!(data_uri_payload_len(&uri), 100_001);
        let broken = format!("data:image/png;base64,{}!AAA", "A".repeat(8192));
        assert_eq!(
            reason(&broken),
            "the data: URI's base64 does not decode: invalid character '!' at position 8192 of the data"
        );
        // Padding anywhere but the end, even at a piece boundary, and unused bits that are not
        // zero (a non-canonical encoding) are refused as the decoder would refuse them.
        let inner_padding = format!("data:image/png;base64,{}AA==AAAA", "A".repeat(4092));
        assert_eq!(
            reason(&inner_padding),
            "the data: URI's base64 does not decode: invalid character '=' at position 4094 of the data"
        );
        assert_eq!(
            reason("data:image/png;base64,AAAAaGl="),
            "the data: URI's base64 does not decode: invalid character 'l' at position 6 of the data"
        );
        assert_eq!(
            reason("data:image/png;base64,AAAAAA"),
            "the data: URI's base64 does not decode: it is truncated or wrongly padded"
        );
        let error = ImageSource::parse(&uri)
            .unwrap()
            .into_image_url(100_000)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the data: URI holds 100001 bytes of image; the limit is 100000 bytes"
        );
    }

    #[test]
    fn debug_hides_base64() {
        let source = ImageSource::DataUri("data:image/png;base64,QUJDRA==".into());
        assert_eq!(
            format!("{source:?}"),
            "DataUri(data:image/png;base64,<8 chars>)"
        );
    }

    #[test]
    fn a_file_becomes_a_data_uri_labelled_by_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("really-a-png.jpg");
        std::fs::write(&path, PNG_1X1).unwrap();
        let uri = ImageSource::File(path).into_image_url(1024).unwrap();
        assert_eq!(
            uri,
            format!("data:image/png;base64,{}", STANDARD.encode(PNG_1X1))
        );
    }

    #[test]
    fn a_file_larger_than_one_chunk_round_trips() {
        let mut bytes = PNG_1X1.to_vec();
        bytes.extend((0..500_000u32).map(|i| (i % 251) as u8));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut file_for_read = file.try_clone().unwrap();
        std::io::Seek::rewind(&mut file_for_read).unwrap();
        let uri = data_uri_from_file(&file_for_read, Path::new("/x.png"), 1 << 20).unwrap();
        let payload = uri.strip_prefix("data:image/png;base64,").unwrap();
        assert_eq!(STANDARD.decode(payload).unwrap(), bytes);
    }

    /// A FIFO with no writer: opening it for reading the usual way never returns.
    #[cfg(unix)]
    fn fifo(dir: &Path) -> PathBuf {
        let path = dir.join("pipe.png");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        path
    }

    /// Reads on another thread so that a read that hangs fails the test instead of stalling it.
    #[cfg(unix)]
    fn read_off_thread(path: PathBuf) -> Result<String> {
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(ImageSource::File(path).into_image_url(1 << 20)));
        outcome
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("reading a FIFO or a device returned instead of hanging")
    }

    #[test]
    fn refuses_too_large_non_image_and_non_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.png");
        std::fs::write(&big, [PNG_1X1, &[0; 100]].concat()).unwrap();
        let error = ImageSource::File(big.clone())
            .into_image_url(100)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{big:?} is 133 bytes; the limit is 100 bytes")
        );

        let text = dir.path().join("notes.png");
        std::fs::write(&text, "not a picture").unwrap();
        let error = ImageSource::File(text.clone())
            .into_image_url(100)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{text:?} is text, not an image; expected a PNG, JPEG, WebP or GIF image")
        );

        let error = ImageSource::File(dir.path().to_owned())
            .into_image_url(100)
            .unwrap_err();
        assert!(
            matches!(error, Error::File { action: "read", .. }),
            "{error:?}"
        );

        #[cfg(unix)]
        for special in [Path::new("/dev/zero").to_owned(), fifo(dir.path())] {
            let error = read_off_thread(special.clone()).unwrap_err();
            assert!(
                matches!(error, Error::File { action: "read", .. }),
                "{}: {error:?}",
                special.display()
            );
        }

        let missing = dir.path().join("missing.png");
        let error = ImageSource::File(missing).into_image_url(100).unwrap_err();
        assert!(
            matches!(error, Error::File { action: "open", .. }),
            "{error:?}"
        );
    }
}
