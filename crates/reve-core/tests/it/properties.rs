//! Property tests of the input parsers: whatever a model or a user types as
//! an image, parsing never panics, and what it accepts is what the API can
//! take. Case counts are bounded so that `cargo test` stays quick.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use reve_core::{EditImageRequest, Error, ImageSource};

const CASES: u32 = 256;

/// Text that exercises the parsers' edges: schemes, separators, percent
/// signs, NUL and other control characters, Windows paths and non-ASCII.
fn nasty_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("http://".to_owned()),
        Just("HTTPS://".to_owned()),
        Just("data:".to_owned()),
        Just("file://".to_owned()),
        Just("file:".to_owned()),
        Just("localhost".to_owned()),
        Just("image/png".to_owned()),
        Just(";base64,".to_owned()),
        Just("C:\\".to_owned()),
        Just("\\\\server\\share\\".to_owned()),
        Just("/".to_owned()),
        Just("..".to_owned()),
        Just("%".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("\0".to_owned()),
        Just("\u{202e}".to_owned()),
        "[\\x00-\\x1f]{1,3}",
        "[A-Za-z0-9+/=]{0,12}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// A `data:` URI from plausible and implausible parts.
fn data_uri() -> impl Strategy<Value = (String, String)> {
    let mime = prop_oneof![
        Just("image/png"),
        Just("IMAGE/WEBP"),
        Just("image/"),
        Just("text/plain"),
        Just(""),
    ];
    let params = prop_oneof![Just(""), Just(";name=a.png"), Just(";charset=utf-8")];
    let encoding = prop_oneof![Just(";base64"), Just(";BASE64"), Just("")];
    // Lengths around the parser's 4096-character pieces matter most.
    let payload = prop_oneof![
        "[A-Za-z0-9+/]{0,64}={0,3}",
        "[A-Za-z0-9+/=]{4090,4100}",
        "[A-Za-z0-9+/]{8188,8200}={0,2}",
        "[A-Za-z0-9+/=!@ \\n-]{0,40}",
    ];
    (mime, params, encoding, payload).prop_map(|(mime, params, encoding, payload)| {
        (format!("data:{mime}{params}{encoding},{payload}"), payload)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn parsing_any_text_is_an_answer_never_a_panic(input in nasty_text()) {
        match ImageSource::parse(&input) {
            Ok(ImageSource::Url(url)) => {
                prop_assert_eq!(&url, &input);
                prop_assert!(url.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("http")));
            }
            Ok(ImageSource::DataUri(uri)) => prop_assert_eq!(&uri, &input),
            Ok(ImageSource::File(path)) => prop_assert!(path.is_absolute(), "{path:?}"),
            Err(Error::InvalidInput { field, reason }) => {
                prop_assert_eq!(field, "image");
                prop_assert!(!reason.is_empty());
                // Quoted input is cut short, so a huge input never makes a huge message.
                prop_assert!(reason.len() < 1024, "{} bytes", reason.len());
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn a_data_uri_is_accepted_exactly_when_its_base64_decodes(
        (uri, payload) in data_uri(),
        limit in 0u64..10_000,
    ) {
        let lower = uri.to_ascii_lowercase();
        let shaped_right = lower.starts_with("data:image/")
            && !lower.starts_with("data:image/;")
            && !lower.starts_with("data:image/,")
            && lower.split(',').next().is_some_and(|header| header.ends_with(";base64"));
        let decoded = STANDARD.decode(&payload).ok().filter(|bytes| !bytes.is_empty());
        let parsed = ImageSource::parse(&uri);
        prop_assert_eq!(
            parsed.is_ok(),
            shaped_right && decoded.is_some(),
            "{:?}", parsed.as_ref().err()
        );
        if let (Ok(source), Some(bytes)) = (parsed, decoded) {
            match source.into_image_url(limit) {
                Ok(sent) => {
                    prop_assert_eq!(sent, uri);
                    prop_assert!(bytes.len() as u64 <= limit);
                }
                Err(error) => {
                    prop_assert!(bytes.len() as u64 > limit);
                    let message = error.to_string();
                    let expected = format!("holds {} bytes of image", bytes.len());
                    prop_assert!(message.contains(&expected), "{}", message);
                }
            }
        }
    }

    #[test]
    fn file_uris_with_a_host_are_refused_and_percent_escapes_decode(
        host in prop_oneof![Just(String::new()), Just("localhost".to_owned()), "[a-z]{1,10}(\\.[a-z]{2,5})?"],
        segments in proptest::collection::vec("[a-zA-Z0-9 ._%~-]{1,12}", 1..4),
    ) {
        let encoded: Vec<String> = segments
            .iter()
            .map(|segment| {
                segment
                    .bytes()
                    .map(|byte| match byte {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'-' => {
                            char::from(byte).to_string()
                        }
                        other => format!("%{other:02X}"),
                    })
                    .collect()
            })
            .collect();
        let uri = format!("file://{host}/{}", encoded.join("/"));
        let parsed = ImageSource::parse(&uri);
        if host.is_empty() || host == "localhost" {
            let expected = format!("/{}", segments.join("/"));
            let single_dots = segments.iter().any(|s| s == "." || s == "..");
            if !single_dots {
                prop_assert_eq!(parsed.unwrap(), ImageSource::File(expected.into()));
            }
        } else {
            prop_assert!(parsed.is_err(), "{uri} was accepted");
        }
    }

    #[test]
    fn windows_paths_are_not_mistaken_for_local_ones(
        drive in "[A-Za-z]",
        rest in "[A-Za-z0-9 ._\\\\-]{0,30}",
    ) {
        for input in [format!("{drive}:\\{rest}"), format!("\\\\{rest}")] {
            prop_assert!(ImageSource::parse(&input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn requests_serialise_any_prompt_and_url(prompt in any::<String>(), url in nasty_text()) {
        let request = EditImageRequest::new(url.clone(), prompt.clone());
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        prop_assert_eq!(json["prompt"].as_str(), Some(prompt.as_str()));
        prop_assert_eq!(json["image_url"].as_str(), Some(url.as_str()));
    }
}

#[test]
fn huge_inputs_are_refused_with_short_messages() {
    for input in [
        "x".repeat(8 * 1024 * 1024),
        format!("data:text/plain;base64,{}", "A".repeat(8 * 1024 * 1024)),
        format!("/{}", "a/".repeat(1024 * 1024)),
        format!("http://{}", "\0".repeat(1024 * 1024)),
    ] {
        if let Err(error) = ImageSource::parse(&input) {
            assert!(
                error.to_string().len() < 1024,
                "{} bytes",
                error.to_string().len()
            );
        }
    }
}
