//! One description of a generation: what was asked of which model, the pictures it was given,
//! what the API answered and the picture it made.
//!
//! The pipeline fills it in, the job store keeps it as one serialized payload it never reads,
//! the job layer answers with it, and the edges (the tool's `structuredContent` and picture,
//! the resources, the command line's lines and `--json`) are made from it. A field added here is
//! written by its producer and read by its consumer; nothing in between copies it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A generation, from the request to the saved result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The model asked, such as `reve/edit-image`.
    pub model: String,
    pub prompt: String,
    /// The request's other fields as sent, pictures left out (they are in
    /// [`Generation::inputs`]): the model's options, such as an aspect ratio.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The pictures it was given that this server read (a local file or a `data:` URI), in the
    /// order given. A picture given by URL is fetched by the API, never by this server, and is
    /// not among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Picture>,
    /// How many pictures the request carried, however each was given (read here or by URL);
    /// `None` in a record made before models took other than one picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pictures_given: Option<usize>,
    /// The jobs whose results it was given as pictures by reference (`job:ID` or
    /// `reve://jobs/ID/result`), in the order given: its place in a line of versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Where the result goes.
    pub destination: Destination,
    /// How many times the request was sent, when it was retried (recorded before each retry is
    /// sent); `None` for once. The provider's usage logs list each attempt: "not charged" is
    /// concluded only once they list this many, all failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// What the API answered, recorded before the picture is fetched: what a restart needs to
    /// fetch a result that was paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// The name the paid result was about to take and its size, recorded just before the
    /// rename: a restart that finds this file records the result instead of fetching and
    /// saving it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Saving>,
    /// The picture it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Picture>,
    /// How long the API took to answer once the request was sent, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_seconds: Option<f64>,
}

/// Where a generation's result goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// The folder the result is staged in while it arrives, and saved in.
    pub folder: String,
    /// The file name asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the result is saved at all (`--no-save` keeps only its preview and URL).
    pub saves: bool,
}

/// What the API said of a generation, before its picture was fetched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Where the API published the picture (these URLs expire); `None` when it came inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The provider's id for this generation, to quote when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The provider's content flag, when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_violation: Option<bool>,
    /// The provider's id of the inference (its answer's `x-inference-id`): the id its usage
    /// logs and its account's transactions know the charge by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_id: Option<String>,
}

impl From<&reve_core::Generated> for Answer {
    fn from(generated: &reve_core::Generated) -> Answer {
        Answer {
            url: generated.url.clone(),
            request_id: generated.request_id.clone(),
            content_violation: generated.content_violation,
            inference_id: generated.charge.inference_id.clone(),
        }
    }
}

/// A paid result about to be renamed into place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saving {
    pub path: String,
    pub bytes: u64,
}

/// A picture, given or made: what it is, and where it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    /// Its MIME type, detected from its bytes.
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where it is saved, when it is a saved file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Where the API published it, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The smaller picture shown of it, when one was made; its bytes are kept by the job
    /// store's picture cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Shown>,
}

/// The preview shown of a picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
}

impl Generation {
    /// A generation about to be asked of `model`.
    pub fn new(model: &str, prompt: &str, destination: Destination) -> Generation {
        Generation {
            model: model.to_owned(),
            prompt: prompt.to_owned(),
            destination,
            ..Generation::default()
        }
    }

    /// The name asked for, when the result was saved under another: another file had taken it
    /// by the time the paid result was saved, so it was saved beside it under a fresh name.
    pub fn name_taken(&self) -> Option<String> {
        let asked = self.destination.name.as_deref()?;
        let path = self.result.as_ref()?.path.as_deref()?;
        let saved_as = Path::new(path).file_name()?.to_str()?;
        let possible = reve_core::possible_file_names(asked).ok()?;
        if possible.iter().any(|name| name == saved_as) {
            return None;
        }
        let extension = Path::new(saved_as).extension();
        let taken = possible
            .iter()
            .find(|name| Path::new(name).extension() == extension);
        Some(taken.map_or(asked, String::as_str).to_owned())
    }

    /// The URL a paid result can still be fetched from, if the API published one.
    pub fn published_url(&self) -> Option<&str> {
        self.answer.as_ref()?.url.as_deref()
    }

    /// The provider's request id, if the API gave one.
    pub fn request_id(&self) -> Option<&str> {
        self.answer.as_ref()?.request_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(name: Option<&str>, path: &str) -> Generation {
        Generation {
            destination: Destination {
                folder: "/out".into(),
                name: name.map(str::to_owned),
                saves: true,
            },
            result: Some(Picture {
                path: Some(path.into()),
                ..Picture::default()
            }),
            ..Generation::default()
        }
    }

    #[test]
    fn a_name_is_taken_only_when_the_result_was_saved_under_another() {
        assert_eq!(saved(Some("hat.png"), "/out/hat.png").name_taken(), None);
        // The extension corrected to the result's type is the name asked for.
        assert_eq!(saved(Some("hat.jpg"), "/out/hat.png").name_taken(), None);
        assert_eq!(
            saved(Some("hat.png"), "/out/hat-1a2b3c4d.png").name_taken(),
            Some("hat.png".into())
        );
        assert_eq!(saved(None, "/out/reve-1.png").name_taken(), None);
    }

    /// What the store keeps is what it gets back, and an empty part takes no room.
    #[test]
    fn the_payload_round_trips_and_leaves_out_what_is_empty() {
        let generation = saved(Some("hat.png"), "/out/hat.png");
        let text = serde_json::to_string(&generation).unwrap();
        assert!(
            !text.contains("answer") && !text.contains("inputs"),
            "{text}"
        );
        let back: Generation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, generation);
    }
}
