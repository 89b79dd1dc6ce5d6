//! What a request asks the fake to make, by model: the pictures it gives, the size it wants,
//! and what the published example says the model reports it used.

use serde_json::Value;

/// A validated request of one of the Reve models ([`super::schema::models`]).
pub(crate) struct Asked<'a> {
    model: &'a str,
    /// `image_url` for edit, `image_urls` in order for remix, none for create.
    pictures: Vec<&'a str>,
    aspect_ratio: Option<&'a str>,
}

/// The default of `aspect_ratio` in the create and remix documents.
const DEFAULT_ASPECT_RATIO: &str = "3:2";

impl<'a> Asked<'a> {
    /// `request`, already checked against its model's document.
    pub(crate) fn of(request: &'a Value) -> Asked<'a> {
        let model = request["model"].as_str().unwrap_or_default();
        let pictures = match request.get("image_urls").and_then(Value::as_array) {
            Some(urls) => urls.iter().filter_map(Value::as_str).collect(),
            None => request["image_url"].as_str().into_iter().collect(),
        };
        Asked {
            model,
            pictures,
            aspect_ratio: request.get("aspect_ratio").and_then(Value::as_str),
        }
    }

    /// The pictures to fetch, in order; the first is the one the fake's result is made from.
    pub(crate) fn pictures(&self) -> &[&'a str] {
        &self.pictures
    }

    /// Whether the model takes an aspect ratio (create and remix), whose size then decides the
    /// result's; an edit keeps its input's size.
    pub(crate) fn size(&self) -> Option<(u32, u32)> {
        let takes_aspect_ratio = self.model != "reve/edit-image";
        takes_aspect_ratio.then(|| aspect_size(self.aspect_ratio.unwrap_or(DEFAULT_ASPECT_RATIO)))
    }

    /// `meta.usage.tokens_used` of the model's published example.
    pub(crate) fn tokens_used(&self) -> u64 {
        match self.model {
            "reve/create-image" => 126_000,
            _ => 210_000,
        }
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
