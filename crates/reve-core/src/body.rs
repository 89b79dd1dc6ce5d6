//! Request bodies: a request checked and serialised once, before anything is sent, and then
//! resent as it is on every retry.

use std::fmt;
use std::fs::File;
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::generated::EditImageRequest;
use crate::generated::edit_image::PROMPT_MAX_LENGTH;
use crate::image::{Reference, append_data_uri, check_data_uri, check_data_uri_size, reference};

/// The JSON body of an edit request, checked and ready to send with [`crate::Client::edit`] or
/// [`crate::Client::edit_into_dir`].
///
/// Building it is where a request can fail locally: nothing that fails here reaches the API.
/// [`RequestBody::with_image_file`] is the fast way to send a local image: its base64 is written
/// straight into the body, one pass over the file and one buffer, rather than into a `data:` URI
/// string that is then checked and copied into the body.
///
/// `Debug` shows the body's size, never its content.
#[derive(Clone)]
pub struct RequestBody {
    json: Bytes,
    /// The decoded size of an inline (`data:` URI) image, for the client's own input limit.
    inline_image_bytes: Option<u64>,
    prompt_chars: usize,
}

impl RequestBody {
    /// Checks `request` and serialises it.
    ///
    /// The prompt must be neither blank nor over [`PROMPT_MAX_LENGTH`] characters, and
    /// `image_url` an http(s) URL or a valid `data:` image URI whose image is at most
    /// `max_input_bytes` (pass [`crate::Config::max_input_bytes`]).
    pub fn new(request: &EditImageRequest, max_input_bytes: u64) -> Result<RequestBody> {
        let prompt_chars = check_prompt(&request.prompt)?;
        let inline_image_bytes = check_image_url(&request.image_url, max_input_bytes)?;
        // Sized up front: a data: URI makes this tens of megabytes, and growing it by doubling
        // would copy it several times and leave the old buffers resident.
        let mut json = Vec::with_capacity(request.image_url.len() + 2 * request.prompt.len() + 256);
        serde_json::to_writer(&mut json, request).map_err(unserialisable)?;
        Ok(RequestBody {
            json: Bytes::from(json),
            inline_image_bytes,
            prompt_chars,
        })
    }

    /// Checks `request` and serialises it with `image_url` set to the `data:` URI of an
    /// already-open local image (whatever `request.image_url` held, typically the file's path).
    ///
    /// The file is checked as [`crate::data_uri_from_file`] checks it (a regular file of at most
    /// `max_input_bytes`, a PNG, JPEG, WebP or GIF by its first bytes; `path` is only used in
    /// error messages), and its base64 is written straight into the body: peak memory is the
    /// body itself, about 1.33 times the file. Blocking, like every file read in this crate.
    pub fn with_image_file(
        request: &EditImageRequest,
        file: &File,
        path: &Path,
        max_input_bytes: u64,
    ) -> Result<RequestBody> {
        let prompt_chars = check_prompt(&request.prompt)?;
        // The other fields go through serde, so the body always has the generated type's shape;
        // only the image's value is written by hand, since valid base64 needs no JSON escaping
        // and is too large to pass through serde's escaping scan.
        let mut template = request.clone();
        template.image_url.clear();
        let Value::Object(fields) = serde_json::to_value(&template).map_err(unserialisable)? else {
            unreachable!("a struct serialises to a JSON object")
        };
        let mut before = String::from("{");
        let mut after = String::new();
        let mut seen_image = false;
        for (name, value) in &fields {
            if name == IMAGE_URL_FIELD {
                seen_image = true;
                continue;
            }
            let text = if seen_image { &mut after } else { &mut before };
            text.push_str(&serde_json::to_string(name).map_err(unserialisable)?);
            text.push(':');
            text.push_str(&value.to_string());
            text.push(',');
        }
        after.pop();
        after.push('}');

        let mut json = before;
        json.push('"');
        json.push_str(IMAGE_URL_FIELD);
        json.push_str("\":\"");
        let image_bytes = append_data_uri(file, path, max_input_bytes, &mut json, after.len() + 2)?;
        json.push('"');
        if !after.starts_with('}') {
            json.push(',');
        }
        json.push_str(&after);
        Ok(RequestBody {
            json: Bytes::from(json.into_bytes()),
            inline_image_bytes: Some(image_bytes),
            prompt_chars,
        })
    }

    /// The serialised JSON, as it is sent.
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// The base64 of the picture this body carries inline (what follows `base64,` in its
    /// `data:` URI), or `None` when it names the picture by URL. A slice of the body, not a
    /// copy: a caller can show the picture exactly as it was sent, without reading the file
    /// again (which may have changed since).
    pub fn inline_image_base64(&self) -> Option<&[u8]> {
        let key = format!("\"{IMAGE_URL_FIELD}\":\"data:");
        // A quote inside a JSON string is escaped, so this opening can only be the field's own.
        let uri = memchr::memmem::find(&self.json, key.as_bytes())? + key.len();
        let uri = &self.json[uri..];
        let end = memchr::memchr(b'"', uri)?;
        let header_end = memchr::memchr(b',', &uri[..end])?;
        uri[..header_end]
            .ends_with(b";base64")
            .then(|| &uri[header_end + 1..end])
    }

    /// The body for one attempt: a reference-counted handle, never a copy.
    pub(crate) fn bytes(&self) -> Bytes {
        self.json.clone()
    }

    /// Refuses a body whose inline image is over the sending client's own limit, which may be
    /// lower than the one the body was built with.
    pub(crate) fn check_image_limit(&self, max_input_bytes: u64) -> Result<()> {
        match self.inline_image_bytes {
            Some(size) if size > max_input_bytes => Err(Error::InvalidInput {
                field: IMAGE_URL_FIELD,
                reason: format!("the image is {size} bytes; the limit is {max_input_bytes} bytes"),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn prompt_chars(&self) -> usize {
        self.prompt_chars
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("json", &format_args!("<{} bytes>", self.json.len()))
            .field("inline_image_bytes", &self.inline_image_bytes)
            .field("prompt_chars", &self.prompt_chars)
            .finish()
    }
}

/// The JSON name of [`EditImageRequest::image_url`].
const IMAGE_URL_FIELD: &str = "image_url";

/// Checks the prompt and returns its length in characters.
fn check_prompt(prompt: &str) -> Result<usize> {
    let invalid = |reason| {
        Err(Error::InvalidInput {
            field: "prompt",
            reason,
        })
    };
    if prompt.trim().is_empty() {
        return invalid("prompt is empty; describe the edit to make".into());
    }
    let chars = prompt.chars().count();
    if chars > PROMPT_MAX_LENGTH {
        return invalid(format!(
            "prompt is {chars} characters; the limit is {PROMPT_MAX_LENGTH}"
        ));
    }
    Ok(chars)
}

/// Checks `image_url`, and returns the decoded size of a `data:` URI's image.
fn check_image_url(image_url: &str, max_input_bytes: u64) -> Result<Option<u64>> {
    let invalid = |reason| Error::InvalidInput {
        field: IMAGE_URL_FIELD,
        reason,
    };
    match reference(image_url, None).map_err(invalid)? {
        // Checked where it lies: copying a URI that a local file makes tens of megabytes long
        // would double what the body costs.
        Reference::DataUri(uri) => {
            check_data_uri(uri).map_err(invalid)?;
            check_data_uri_size(uri, max_input_bytes)
                .map(Some)
                .map_err(invalid)
        }
        Reference::Url(_) => Ok(None),
        Reference::File(_) => Err(invalid(
            "image_url is a local file path, which the API cannot read; convert it to a data: URI first (ImageSource::into_image_url) or build the body with RequestBody::with_image_file".into(),
        )),
    }
}

fn unserialisable(error: serde_json::Error) -> Error {
    Error::InvalidInput {
        field: "request",
        reason: format!("the request could not be serialised: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn reason(request: &EditImageRequest) -> (&'static str, String) {
        match RequestBody::new(request, 1 << 20).unwrap_err() {
            Error::InvalidInput { field, reason } => (field, reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn prompt_length_is_counted_in_code_points() {
        let url = "https://example.com/a.png";
        let at_limit = "é".repeat(PROMPT_MAX_LENGTH);
        assert!(RequestBody::new(&EditImageRequest::new(url, at_limit), 1).is_ok());
        let over = "é".repeat(PROMPT_MAX_LENGTH + 1);
        assert_eq!(
            reason(&EditImageRequest::new(url, over)),
            (
                "prompt",
                "prompt is 2561 characters; the limit is 2560".into()
            )
        );
        assert_eq!(
            reason(&EditImageRequest::new(url, " \n\t")),
            (
                "prompt",
                "prompt is empty; describe the edit to make".into()
            )
        );
    }

    #[test]
    fn image_url_must_be_a_url_or_a_data_uri() {
        let request = |url: &str| EditImageRequest::new(url, "make it blue");
        assert_eq!(reason(&request("/tmp/a.png")).0, "image_url");
        assert_eq!(reason(&request("ftp://example.com/a.png")).0, "image_url");
        assert_eq!(
            reason(&request("data:text/plain;base64,aGk=")),
            (
                "image_url",
                "the data: URI's media type is \"text/plain\"; it must be an image/* type such as image/png".into()
            )
        );
        assert!(RequestBody::new(&request("data:image/png;base64,aGk="), 2).is_ok());
        assert_eq!(
            RequestBody::new(&request("data:image/png;base64,aGk="), 1)
                .unwrap_err()
                .to_string(),
            "the data: URI holds 2 bytes of image; the limit is 1 bytes"
        );
    }

    #[test]
    fn the_inline_image_is_found_whatever_the_prompt_says() {
        // The prompt quotes the field's opening; JSON escapes its quotes, so it is not taken.
        let prompt = r#"write "image_url":"data:image/png;base64,AAAA" on it"#;
        let body = |url: &str| RequestBody::new(&EditImageRequest::new(url, prompt), 1 << 20);
        let inline = body("data:image/png;base64,aGk=").unwrap();
        assert_eq!(inline.inline_image_base64(), Some(b"aGk=".as_slice()));
        let by_url = body("https://example.com/a.png").unwrap();
        assert_eq!(by_url.inline_image_base64(), None);
    }

    #[test]
    fn a_file_body_is_the_json_serde_would_write_for_its_data_uri() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.gif");
        // Lengths 0, 1 and 2 past a multiple of 3 cover every padding case.
        for extra in 0..3 {
            let image = [b"GIF89a".as_slice(), &vec![7; 3 * 70_000 + extra]].concat();
            std::fs::write(&path, &image).unwrap();
            let mut request = EditImageRequest::new(path.to_str().unwrap(), "quote \" and é");
            request.convert_base64_to_url = Some(false);
            let file = File::open(&path).unwrap();
            let body = RequestBody::with_image_file(&request, &file, &path, 1 << 20).unwrap();

            request.image_url = format!("data:image/gif;base64,{}", STANDARD.encode(&image));
            assert_eq!(body.as_json(), serde_json::to_vec(&request).unwrap());
            assert_eq!(body.inline_image_bytes, Some(image.len() as u64));
            assert_eq!(body.prompt_chars(), 13);
            let sent = STANDARD
                .decode(body.inline_image_base64().unwrap())
                .unwrap();
            assert_eq!(sent, image);
        }
        let error = RequestBody::with_image_file(
            &EditImageRequest::new("", "make it blue"),
            &File::open(&path).unwrap(),
            &path,
            100,
        )
        .unwrap_err();
        assert!(
            matches!(error, Error::FileTooLarge { limit: 100, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn an_inline_image_is_held_to_the_sending_clients_limit() {
        let body = RequestBody::new(
            &EditImageRequest::new("data:image/png;base64,aGk=", "make it blue"),
            100,
        )
        .unwrap();
        assert!(body.check_image_limit(2).is_ok());
        assert_eq!(
            body.check_image_limit(1).unwrap_err().to_string(),
            "the image is 2 bytes; the limit is 1 bytes"
        );
        let url_body =
            RequestBody::new(&EditImageRequest::new("https://a.example/x.png", "p"), 1).unwrap();
        assert!(url_body.check_image_limit(0).is_ok());
    }
}
