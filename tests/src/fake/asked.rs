//! What a request asks the fake to make, by model: the pictures it gives, the size it wants,
//! and what the published example says the model reports it used.

use serde_json::Value;

/// A validated request of one of the Reve models ([`super::schema::models`]).
pub(crate) struct Asked<'a> {
    model: &'a str,
    /// `image_url` for edit, `image_urls` in order for remix, none for create: the fields its
    /// document says carry pictures.
    pictures: Vec<&'a str>,
    aspect_ratio: Option<&'a str>,
}

/// Whether a field of a request schema carries pictures: a `uri` string, or a list of them.
fn is_picture_field(schema: &Value) -> bool {
    let uri = |schema: &Value| schema["type"] == "string" && schema["format"] == "uri";
    uri(schema) || (schema["type"] == "array" && uri(&schema["items"]))
}

impl<'a> Asked<'a> {
    /// `request`, already checked against its model's document: its pictures are the values of
    /// the fields the document says carry pictures, in order; its aspect ratio the one given,
    /// or the document's default when it takes one.
    pub(crate) fn of(request: &'a Value) -> Asked<'a> {
        let model = request["model"].as_str().unwrap_or_default();
        let schema = super::schema::request_schema(model);
        let properties = schema.and_then(|schema| schema["properties"].as_object());
        let mut pictures = Vec::new();
        let mut aspect_ratio = None;
        for (name, field) in properties.into_iter().flatten() {
            if is_picture_field(field) {
                match &request[name] {
                    Value::Array(items) => pictures.extend(items.iter().filter_map(Value::as_str)),
                    Value::String(picture) => pictures.push(picture.as_str()),
                    _ => {}
                }
            } else if name == "aspect_ratio" {
                aspect_ratio = request[name].as_str().or_else(|| field["default"].as_str());
            }
        }
        Asked {
            model,
            pictures,
            aspect_ratio,
        }
    }

    /// The pictures to fetch, in order; the first is the one the fake's result is made from.
    pub(crate) fn pictures(&self) -> &[&'a str] {
        &self.pictures
    }

    /// The result's size when the model takes an aspect ratio (create and remix: the one asked,
    /// or the document's default); `None` for one that does not (an edit keeps its input's size).
    pub(crate) fn size(&self) -> Option<(u32, u32)> {
        self.aspect_ratio.map(aspect_size)
    }

    /// `meta.usage.tokens_used` of the model's published example.
    /// The fake charges the same in credits ([`super::ledger::credits_of`]).
    pub(crate) fn tokens_used(&self) -> u64 {
        super::ledger::credits_of(self.model)
    }
}

/// The size of a result of `aspect_ratio`. The published create example is 16:9 at 1360x768;
/// the documents give no other size, so the others keep about its area (a megapixel), each
/// side a multiple of 16.
pub(crate) fn aspect_size(aspect_ratio: &str) -> (u32, u32) {
    match aspect_ratio {
        "16:9" => (1360, 768),
        "9:16" => (768, 1360),
        "3:2" => (1248, 832),
        "2:3" => (832, 1248),
        "4:3" => (1152, 864),
        "3:4" => (864, 1152),
        _ => (1024, 1024),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_model_asks_for_its_pictures_size_and_tokens() {
        let create = json!({ "model": "reve/create-image", "prompt": "p", "aspect_ratio": "16:9" });
        let create = Asked::of(&create);
        assert!(create.pictures().is_empty());
        assert_eq!(create.size(), Some((1360, 768)));
        assert_eq!(create.tokens_used(), 126_000);

        let remix =
            json!({ "model": "reve/remix-edit-image", "prompt": "p", "image_urls": ["a", "b"] });
        let remix = Asked::of(&remix);
        assert_eq!(remix.pictures(), ["a", "b"]);
        assert_eq!(remix.size(), Some((1248, 832)), "3:2 by default");
        assert_eq!(remix.tokens_used(), 210_000);

        let edit = json!({ "model": "reve/edit-image", "prompt": "p", "image_url": "a" });
        let edit = Asked::of(&edit);
        assert_eq!(edit.pictures(), ["a"]);
        assert_eq!(edit.size(), None, "an edit keeps its input's size");
    }

    #[test]
    fn every_aspect_ratio_has_its_shape() {
        for ratio in ["16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "1:1"] {
            let (width, height) = aspect_size(ratio);
            let (w, h) = ratio.split_once(':').unwrap();
            let (w, h): (f64, f64) = (w.parse().unwrap(), h.parse().unwrap());
            let shape = f64::from(width) / f64::from(height);
            assert!((shape - w / h).abs() < 0.01, "{ratio}: {width}x{height}");
            assert_eq!((width % 16, height % 16), (0, 0), "{ratio}");
        }
    }
}
