//! Request bodies: a request checked and serialised once, before anything is sent, and then
//! resent as it is on every retry.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::billing::ClientRequestId;
use crate::error::{Error, Result};
use crate::image::{Reference, append_data_uri, check_data_uri, check_data_uri_size, reference};
use crate::model::{Model, ModelRequest, PictureField};

/// The JSON body of a request to any of the models, checked and ready to send with
/// [`crate::Client::edit`] or [`crate::Client::edit_into_dir`].
///
/// Building it is where a request can fail locally: nothing that fails here reaches the API.
/// It is checked against its model's document ([`Model`]): the text limits, each picture field's
/// count, and each picture (an http(s) URL, or a valid `data:` image URI within the size limit).
/// [`RequestBody::with_image_files`] is the fast way to send local pictures: each file's base64
/// is written straight into the body, one pass over the file and one buffer, rather than into a
/// `data:` URI string that is then checked and copied into the body.
///
/// `Debug` shows the body's size, never its content.
#[derive(Clone)]
pub struct RequestBody {
    json: Bytes,
    model: &'static Model,
    /// Sent as `X-Client-Request-Id`, to find the request by in the usage logs.
    client_request_id: Option<ClientRequestId>,
    /// Each picture the body carries, in the request's order.
    pictures: Vec<SentPicture>,
    prompt_chars: usize,
}

/// One picture of a body: inline (where its base64 lies in the body, and its decoded size) or
/// named by URL.
#[derive(Debug, Clone)]
struct SentPicture {
    inline: Option<(Range<usize>, u64)>,
}

/// Where each picture of a request comes from, for [`RequestBody::with_image_files`].
#[derive(Debug, Clone, Copy)]
pub enum PictureSource<'a> {
    /// The value the request holds: an http(s) URL or a `data:` URI.
    AsGiven,
    /// An open local file (its path only names it in errors), whose `data:` URI replaces
    /// whatever the request holds in its place.
    File(&'a File, &'a Path),
}

impl RequestBody {
    /// Checks `request` and serialises it.
    ///
    /// The prompt must be neither blank nor over its model's limit (for `reve/edit-image`,
    /// [`crate::edit_image::PROMPT_MAX_LENGTH`] characters), each picture field must hold as many
    /// pictures as the model's document allows, and each picture must be an http(s) URL or a
    /// valid `data:` image URI whose image is at most `max_input_bytes` (pass
    /// [`crate::Config::max_input_bytes`]).
    pub fn new(request: &impl ModelRequest, max_input_bytes: u64) -> Result<RequestBody> {
        RequestBody::with_image_files(request, &[], max_input_bytes)
    }

    /// Checks `request` and serialises it with its one picture set to the `data:` URI of an
    /// already-open local image (whatever the request held there, typically the file's path);
    /// [`RequestBody::with_image_files`] for one picture.
    pub fn with_image_file(
        request: &impl ModelRequest,
        file: &File,
        path: &Path,
        max_input_bytes: u64,
    ) -> Result<RequestBody> {
        RequestBody::with_image_files(request, &[PictureSource::File(file, path)], max_input_bytes)
    }

    /// Checks `request` and serialises it, its pictures (in the request's order, across its
    /// picture fields) taken from `sources`: an open local file's `data:` URI, or the request's
    /// own value; pictures past the end of `sources` are taken as given.
    ///
    /// Each file is checked as [`crate::data_uri_from_file`] checks it (a regular file of at
    /// most `max_input_bytes`, a PNG, JPEG, WebP or GIF by its first bytes; its path is only used
    /// in error messages), and its base64 is written straight into the body: peak memory is the
    /// body itself, about 1.33 times the files. Blocking, like every file read in this crate.
    pub fn with_image_files(
        request: &impl ModelRequest,
        sources: &[PictureSource<'_>],
        max_input_bytes: u64,
    ) -> Result<RequestBody> {
        let model = request.model();
        let Value::Object(fields) = serde_json::to_value(request).map_err(unserialisable)? else {
            unreachable!("a request serialises to a JSON object")
        };
        let prompt_chars = check_texts(model, &fields)?;
        // Sized up front for what is known: a data: URI makes this tens of megabytes, and
        // growing it by doubling would copy it several times and leave the old buffers resident.
        let given: usize = fields
            .iter()
            .map(|(name, value)| name.len() + value.as_str().map_or(64, str::len) + 8)
            .sum();
        let mut json = String::with_capacity(given + 256);
        let mut pictures = Vec::new();
        json.push('{');
        for (index, (name, value)) in fields.iter().enumerate() {
            if index > 0 {
                json.push(',');
            }
            json.push_str(&serde_json::to_string(name).map_err(unserialisable)?);
            json.push(':');
            match model.pictures.iter().find(|field| field.name == name) {
                Some(field) => write_pictures(
                    field,
                    value,
                    sources,
                    max_input_bytes,
                    &mut json,
                    &mut pictures,
                )?,
                None => json.push_str(&value.to_string()),
            }
        }
        json.push('}');
        Ok(RequestBody {
            json: Bytes::from(json.into_bytes()),
            model,
            client_request_id: None,
            pictures,
            prompt_chars,
        })
    }

    /// This body, sent with `id` as its `X-Client-Request-Id`: the id the provider's usage
    /// logs report the request under (`client_request_id`), and echo in the answer
    /// ([`crate::Charge::client_request_id`]). It is not part of the JSON.
    #[must_use]
    pub fn with_client_request_id(mut self, id: ClientRequestId) -> RequestBody {
        self.client_request_id = Some(id);
        self
    }

    /// The id this body is sent with as `X-Client-Request-Id`, if any.
    pub fn client_request_id(&self) -> Option<&ClientRequestId> {
        self.client_request_id.as_ref()
    }

    /// The model this body asks.
    pub fn model(&self) -> &'static Model {
        self.model
    }

    /// The serialised JSON, as it is sent.
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// The base64 of the first picture this body carries, when it carries it inline (what
    /// follows `base64,` in its `data:` URI); `None` when it names it by URL or has none.
    pub fn inline_image_base64(&self) -> Option<&[u8]> {
        self.inline_images_base64().next().flatten()
    }

    /// The base64 of each picture this body carries, in the request's order: `Some` for one
    /// inline (what follows `base64,` in its `data:` URI), `None` for one named by URL. Slices of
    /// the body, not copies: a caller can show each picture exactly as it was sent, without
    /// reading its file again (which may have changed since).
    pub fn inline_images_base64(&self) -> impl Iterator<Item = Option<&[u8]>> {
        self.pictures.iter().map(|picture| {
            picture
                .inline
                .as_ref()
                .map(|(range, _)| &self.json[range.clone()])
        })
    }

    /// The body for one attempt: a reference-counted handle, never a copy.
    pub(crate) fn bytes(&self) -> Bytes {
        self.json.clone()
    }

    /// Refuses a body with an inline picture over the sending client's own limit, which may be
    /// lower than the one the body was built with.
    pub(crate) fn check_image_limit(&self, max_input_bytes: u64) -> Result<()> {
        let largest = self
            .pictures
            .iter()
            .filter_map(|picture| picture.inline.as_ref().map(|(_, size)| *size))
            .max();
        match largest {
            Some(size) if size > max_input_bytes => Err(Error::InvalidInput {
                field: self
                    .model
                    .pictures
                    .first()
                    .map_or("image", |field| field.name),
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
        let inline: Vec<Option<u64>> = self
            .pictures
            .iter()
            .map(|picture| picture.inline.as_ref().map(|(_, size)| *size))
            .collect();
        f.debug_struct("RequestBody")
            .field("model", &self.model.id)
            .field("json", &format_args!("<{} bytes>", self.json.len()))
            .field("inline_image_bytes", &inline)
            .field("prompt_chars", &self.prompt_chars)
            .field("client_request_id", &self.client_request_id)
            .finish()
    }
}

/// The field every Reve model describes its picture with: it must say something.
const PROMPT_FIELD: &str = "prompt";

/// Checks the request's text fields against their limits, and that the prompt is not blank;
/// returns the prompt's length in characters.
fn check_texts(model: &Model, fields: &serde_json::Map<String, Value>) -> Result<usize> {
    let mut prompt_chars = 0;
    for text in model.texts {
        let Some(value) = fields.get(text.name).and_then(Value::as_str) else {
            continue;
        };
        let chars = value.chars().count();
        if chars > text.max_length {
            return Err(Error::InvalidInput {
                field: text.name,
                reason: format!(
                    "{} is {chars} characters; the limit is {}",
                    text.name, text.max_length
                ),
            });
        }
    }
    if let Some(prompt) = fields.get(PROMPT_FIELD).and_then(Value::as_str) {
        if prompt.trim().is_empty() {
            return Err(Error::InvalidInput {
                field: PROMPT_FIELD,
                reason: "prompt is empty; describe the picture you want".into(),
            });
        }
        prompt_chars = prompt.chars().count();
    }
    Ok(prompt_chars)
}

/// Writes a picture field's value (one picture, or a list of them) into `json`, checking its
/// count and each picture, and recording each in `pictures`; a picture whose source is a file
/// gets the file's `data:` URI.
fn write_pictures(
    field: &'static PictureField,
    value: &Value,
    sources: &[PictureSource<'_>],
    max_input_bytes: u64,
    json: &mut String,
    pictures: &mut Vec<SentPicture>,
) -> Result<()> {
    let invalid = |reason: String| Error::InvalidInput {
        field: field.name,
        reason,
    };
    let items: Vec<&Value> = match (field.many, value) {
        (true, Value::Array(items)) => items.iter().collect(),
        (false, Value::String(_)) => vec![value],
        // An optional picture field left out serialises as nothing; `null` is written as is.
        (_, Value::Null) => {
            json.push_str("null");
            return Ok(());
        }
        _ => return Err(invalid(format!("{} must be {}", field.name, field.takes()))),
    };
    let count = items.len();
    if field.many && (count < field.min_items || field.max_items.is_some_and(|max| count > max)) {
        return Err(invalid(format!(
            "{} has {count} picture{}; the model takes {}",
            field.name,
            if count == 1 { "" } else { "s" },
            field.takes()
        )));
    }
    if field.many {
        json.push('[');
    }
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        let Some(text) = item.as_str() else {
            return Err(invalid(format!("each of {} must be a string", field.name)));
        };
        let start = json.len() + 1;
        let inline = match sources.get(pictures.len()) {
            Some(PictureSource::File(file, path)) => {
                json.push('"');
                let size = append_data_uri(file, path, max_input_bytes, json, 64)?;
                json.push('"');
                Some((base64_range(json, start), size))
            }
            Some(PictureSource::AsGiven) | None => {
                let size = check_picture(field.name, text, max_input_bytes).map_err(|reason| {
                    invalid(if field.many {
                        format!("picture {} of {}: {reason}", index + 1, field.name)
                    } else {
                        reason
                    })
                })?;
                json.push_str(&serde_json::to_string(text).map_err(unserialisable)?);
                // A data: URI's header and base64 need no escaping, so its base64 lies
                // verbatim in the body.
                size.map(|size| (base64_range(json, start), size))
            }
        };
        pictures.push(SentPicture { inline });
    }
    if field.many {
        json.push(']');
    }
    Ok(())
}

/// Where the base64 of the `data:` URI written from `start` (just inside its quote) to the
/// closing quote at the end of `json` lies.
fn base64_range(json: &str, start: usize) -> Range<usize> {
    let uri = &json[start..json.len() - 1];
    let payload = uri.find(',').map_or(uri.len(), |comma| comma + 1);
    start + payload..json.len() - 1
}

/// Checks one picture: an http(s) URL, or a valid `data:` URI of at most `max_input_bytes`,
/// whose decoded size it returns.
fn check_picture(name: &str, picture: &str, max_input_bytes: u64) -> Result<Option<u64>, String> {
    match reference(picture, None)? {
        // Checked where it lies: copying a URI that a local file makes tens of megabytes long
        // would double what the body costs.
        Reference::DataUri(uri) => {
            check_data_uri(uri)?;
            check_data_uri_size(uri, max_input_bytes).map(Some)
        }
        Reference::Url(_) => Ok(None),
        Reference::File(_) => Err(format!(
            "{name} is a local file path, which the API cannot read; convert it to a data: URI first (ImageSource::into_image_url) or build the body with RequestBody::with_image_files"
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
    use crate::edit_image::PROMPT_MAX_LENGTH;
    use crate::{CreateImageRequest, EditImageRequest, RemixEditImageRequest};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn reason(request: &impl ModelRequest) -> (&'static str, String) {
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
                "prompt is empty; describe the picture you want".into()
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
            assert_eq!(body.pictures.len(), 1);
            assert_eq!(
                body.pictures[0].inline.as_ref().map(|(_, size)| *size),
                Some(image.len() as u64)
            );
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

    /// A remix's pictures are counted against its document, each checked, files and given
    /// pictures mixed in order, and every inline one found where it lies in the body.
    #[test]
    fn a_remix_carries_its_pictures_in_order_within_the_documents_count() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("in.gif");
        let image = [b"GIF89a".as_slice(), &[1, 2, 3, 4]].concat();
        std::fs::write(&gif, &image).unwrap();
        let file = File::open(&gif).unwrap();
        let pictures = vec![
            "https://example.com/a.png".to_owned(),
            gif.display().to_string(),
            "data:image/png;base64,aGk=".to_owned(),
        ];
        let request = RemixEditImageRequest::new(pictures, "put them together");
        let body = RequestBody::with_image_files(
            &request,
            &[
                PictureSource::AsGiven,
                PictureSource::File(&file, &gif),
                PictureSource::AsGiven,
            ],
            1 << 20,
        )
        .unwrap();
        let sent: Vec<Option<&[u8]>> = body.inline_images_base64().collect();
        let gif_base64 = STANDARD.encode(&image);
        assert_eq!(
            sent,
            [None, Some(gif_base64.as_bytes()), Some(b"aGk=".as_slice())]
        );
        let json: Value = serde_json::from_slice(body.as_json()).unwrap();
        assert_eq!(
            json["image_urls"],
            serde_json::json!([
                "https://example.com/a.png",
                format!("data:image/gif;base64,{gif_base64}"),
                "data:image/png;base64,aGk="
            ])
        );
        assert_eq!(body.model().id, "reve/remix-edit-image");

        let five = vec!["https://example.com/a.png".to_owned(); 5];
        assert_eq!(
            reason(&RemixEditImageRequest::new(five, "p")),
            (
                "image_urls",
                "image_urls has 5 pictures; the model takes 1 to 4 pictures".into()
            )
        );
        assert_eq!(
            reason(&RemixEditImageRequest::new(Vec::new(), "p")),
            (
                "image_urls",
                "image_urls has 0 pictures; the model takes 1 to 4 pictures".into()
            )
        );
        let bad_fourth = [
            vec!["https://example.com/a.png".to_owned(); 3],
            vec!["data:text/plain;base64,aGk=".to_owned()],
        ]
        .concat();
        assert_eq!(
            reason(&RemixEditImageRequest::new(bad_fourth, "p")),
            (
                "image_urls",
                "picture 4 of image_urls: the data: URI's media type is \"text/plain\"; it must be an image/* type such as image/png".into()
            )
        );
    }

    /// A create has no picture, and its body is what serde writes.
    #[test]
    fn a_create_carries_no_picture() {
        let request = CreateImageRequest::new("a lighthouse at dawn");
        let body = RequestBody::new(&request, 1).unwrap();
        assert_eq!(body.as_json(), serde_json::to_vec(&request).unwrap());
        assert_eq!(body.inline_images_base64().count(), 0);
        assert_eq!(body.model().id, "reve/create-image");
        assert_eq!(
            reason(&CreateImageRequest::new("")).1,
            "prompt is empty; describe the picture you want"
        );
    }
}
