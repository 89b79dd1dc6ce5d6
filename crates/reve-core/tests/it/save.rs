//! Saving results: names, extensions from the real type, never overwriting, never leaving a
//! partial or temporary file behind.

use bytes::Bytes;
use reve_core::{EditedImage, Error, ImageFormat, ResultMetadata};
use reve_tests::{fake, file_names};

fn edited(bytes: Vec<u8>) -> EditedImage {
    EditedImage {
        metadata: ResultMetadata {
            format: ImageFormat::detect(&bytes).expect("a sample image"),
            url: None,
            request_id: Some("rsid-1".into()),
            content_violation: Some(false),
            usage: None,
            charge: reve_core::Charge::default(),
        },
        bytes: Bytes::from(bytes),
    }
}

fn is_generated_name(name: &str, extension: &str) -> bool {
    // reve-YYYYMMDDTHHMMSSZ-xxxxxxxx.ext
    let Some(rest) = name.strip_prefix("reve-") else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(&format!(".{extension}")) else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() == 25
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && &rest[15..17] == "Z-"
        && rest[17..].chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn saves_exact_bytes_under_a_generated_name_creating_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a").join("b");
    let image = edited(fake::sample_webp(20, 10));
    let path = image.save_in(&out, None).unwrap();

    assert_eq!(path.parent(), Some(out.as_path()));
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(is_generated_name(name, "webp"), "{name}");
    assert_eq!(std::fs::read(&path).unwrap(), image.bytes);
    assert_eq!(file_names(&out), vec![name.to_owned()]);
}

#[test]
fn generated_names_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let image = edited(fake::sample_png(8, 8));
    let paths: Vec<_> = (0..20)
        .map(|_| image.save_in(dir.path(), None).unwrap())
        .collect();
    assert_eq!(file_names(dir.path()).len(), 20);
    for path in paths {
        assert_eq!(std::fs::read(path).unwrap(), image.bytes);
    }
}

#[test]
fn a_given_name_gets_the_extension_of_the_real_type() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = edited(fake::sample_jpeg(8, 8));
    assert_eq!(
        jpeg.save_in(dir.path(), Some("cat.png")).unwrap(),
        dir.path().join("cat.jpg")
    );
    assert_eq!(
        jpeg.save_in(dir.path(), Some("cat.jpeg")).unwrap(),
        dir.path().join("cat.jpeg")
    );
    assert_eq!(
        jpeg.save_in(dir.path(), Some("kitten")).unwrap(),
        dir.path().join("kitten.jpg")
    );
    assert_eq!(
        file_names(dir.path()),
        ["cat.jpeg", "cat.jpg", "kitten.jpg"]
    );
}

#[test]
fn an_existing_file_is_never_overwritten_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("edited.png");
    std::fs::write(&existing, "precious").unwrap();

    let error = edited(fake::sample_png(8, 8))
        .save_in(dir.path(), Some("edited.png"))
        .unwrap_err();
    assert!(
        matches!(&error, Error::FileExists { path } if path == &existing),
        "{error:?}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious");
    assert_eq!(file_names(dir.path()), ["edited.png"]);
}

#[test]
fn a_name_with_directories_is_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for name in ["../escape.png", "sub/x.png", "/etc/x.png", ".hidden.png"] {
        let error = edited(fake::sample_png(8, 8))
            .save_in(&out, Some(name))
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidInput {
                    field: "file_name",
                    ..
                }
            ),
            "{name}: {error:?}"
        );
    }
    assert!(!out.exists());
    assert!(file_names(dir.path()).is_empty());
}

#[test]
fn an_unusable_directory_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "file").unwrap();
    let error = edited(fake::sample_png(8, 8))
        .save_in(&blocker, None)
        .unwrap_err();
    assert!(
        matches!(&error, Error::File { path, action: "create directory", .. } if path == &blocker),
        "{error:?}"
    );
    assert_eq!(file_names(dir.path()), ["not-a-dir"]);
}

#[test]
fn dimensions_come_from_the_header_of_each_type() {
    for bytes in [
        fake::sample_png(33, 21),
        fake::sample_jpeg(33, 21),
        fake::sample_webp(33, 21),
        fake::sample_gif(33, 21),
    ] {
        assert_eq!(edited(bytes).dimensions().unwrap(), (33, 21));
    }
    let mut broken = edited(fake::sample_png(33, 21));
    broken.bytes = broken.bytes.slice(..12);
    assert!(matches!(broken.dimensions(), Err(Error::Decode { .. })));
}

#[test]
fn debug_shows_the_size_not_the_bytes() {
    let image = edited(fake::sample_png(8, 8));
    let debug = format!("{image:?}");
    assert!(
        debug.contains(&format!("<{} bytes>", image.bytes.len())),
        "{debug}"
    );
    assert!(!debug.contains("\\x89PNG"), "{debug}");
}
