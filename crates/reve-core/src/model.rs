//! What a model's published document says a request may hold, as data: which fields carry
//! pictures and how many, and which text has a length limit. [`crate::RequestBody`] checks every
//! request against it before anything is sent, whatever the model, so a model added by its
//! document in `spec/` is checked like the others without a line written by hand.

use serde::Serialize;

/// A model the API serves, described by its document (generated into each model's module as
/// `DESCRIPTION`, such as [`crate::remix_edit_image::DESCRIPTION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// The model's id, the request's `model`, such as `reve/edit-image`.
    pub id: &'static str,
    /// The request's fields that carry pictures (a `uri` string, or an array of them), in the
    /// order the request lists them.
    pub pictures: &'static [PictureField],
    /// The request's text fields with a length limit.
    pub texts: &'static [TextField],
}

/// A request field that carries one picture or a list of them: each an http(s) URL the API
/// fetches, or a `data:` URI with the picture inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureField {
    /// Its JSON name, such as `image_url` or `image_urls`.
    pub name: &'static str,
    /// Whether it is a list (a JSON array) rather than one picture.
    pub many: bool,
    /// Fewest pictures it takes (a single picture's field takes one when it is required).
    pub min_items: usize,
    /// Most pictures it takes, when the document says.
    pub max_items: Option<usize>,
}

/// A text field with a length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextField {
    /// Its JSON name, such as `prompt`.
    pub name: &'static str,
    /// Longest text the API accepts, in characters (Unicode code points, as JSON Schema counts).
    pub max_length: usize,
}

impl Model {
    /// How many pictures a request may carry at most, over all its picture fields; `None` when
    /// a field has no stated limit.
    pub fn max_pictures(&self) -> Option<usize> {
        self.pictures.iter().map(|field| field.max_items).sum()
    }

    /// The length limit of its text field `name`, if it has one.
    pub fn max_length(&self, name: &str) -> Option<usize> {
        self.texts
            .iter()
            .find(|text| text.name == name)
            .map(|text| text.max_length)
    }
}

impl PictureField {
    /// How many pictures it takes, in words: "1 to 4 pictures", "one picture".
    pub fn takes(&self) -> String {
        match (self.many, self.max_items) {
            (false, _) => "one picture".to_owned(),
            (true, Some(max)) if max == self.min_items => format!("exactly {max} pictures"),
            (true, Some(max)) => format!("{} to {max} pictures", self.min_items),
            (true, None) => format!("at least {} pictures", self.min_items),
        }
    }
}

/// A generated request type of one model (each model's `...Request`), which says which model
/// it asks so that [`crate::RequestBody`] can check it against that model's document.
pub trait ModelRequest: Serialize {
    /// The model this request asks.
    fn model(&self) -> &'static Model;
}
