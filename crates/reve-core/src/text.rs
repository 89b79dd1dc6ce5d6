//! Text for messages: what a caller sent, shortened so a huge argument cannot make a huge
//! message, and an error with its causes on one line. Shared by the whole workspace, so that
//! every message quotes input the same way.

/// How many characters of what a caller sent a message quotes.
const QUOTED_CHARS: usize = 200;

/// What a caller sent, as a message may quote it: a `data:` URI by its header and length (its
/// base64 says nothing to a reader), anything else by its first 200 characters and its length.
/// A model can send megabytes, and the message goes back into its context.
pub fn shorten(text: &str) -> String {
    let is_data_uri = text
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"));
    if is_data_uri && let Some((header, _)) = text.split_once(',') {
        return format!("{},… ({} characters)", shorten(header), text.len());
    }
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

/// An error and its causes on one line. Many errors' own text ("error sending request") hides
/// the part that says what actually happened ("connection refused"); a cause whose text is
/// already there is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_with_its_length_and_short_text_kept() {
        assert_eq!(shorten("cat.png"), "cat.png");
        let long = "é".repeat(300);
        let shortened = shorten(&long);
        assert!(shortened.starts_with(&"é".repeat(200)), "{shortened}");
        assert!(shortened.ends_with("… (600 bytes in all)"), "{shortened}");
    }

    #[test]
    fn data_uris_are_named_by_their_header() {
        let uri = format!("data:image/png;base64,{}", "A".repeat(10_000));
        assert_eq!(shorten(&uri), "data:image/png;base64,… (10022 characters)");
    }

    #[test]
    fn causes_are_joined_once() {
        let inner = std::io::Error::other("connection refused");
        let outer = std::io::Error::other(Wrapped(inner));
        assert_eq!(error_chain(&outer), "could not connect: connection refused");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not connect")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
