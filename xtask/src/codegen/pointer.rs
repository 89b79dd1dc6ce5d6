//! JSON Pointers (RFC 6901) into the spec, so that every generated item and every error can say where it came from.

use std::fmt;

/// A JSON Pointer, built one reference token at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer(String);

impl Pointer {
    /// The whole document.
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// The pointer to member or index `token` of what `self` points at.
    pub(crate) fn push(&self, token: &str) -> Self {
        Self(format!(
            "{}/{}",
            self.0,
            token.replace('~', "~0").replace('/', "~1")
        ))
    }

    /// The pointer in the form `serde_json::Value::pointer` takes.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        let pointer = Pointer::root().push("paths").push("/v1/a~b");
        assert_eq!(pointer.as_str(), "/paths/~1v1~1a~0b");
    }
}
