//! Text a client controls (a path that matches no route, the `User-Agent`, a method or a
//! content coding the server does not take) goes into log lines, spans and error bodies. It is
//! cut at [`MAX_BYTES`] there, so that no client can make each of them kilobytes long: hyper
//! takes a path of up to 64 KiB and headers up to its read buffer.

use std::borrow::Cow;

/// The longest client text recorded, in bytes (plus the `…` that marks a cut).
pub const MAX_BYTES: usize = 512;

/// `text`, cut at a character boundary at most [`MAX_BYTES`] in, with `…` when it was cut.
pub fn bounded(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character() {
        assert!(matches!(
            bounded("/v1/predict"),
            Cow::Borrowed("/v1/predict")
        ));
        let exact = "a".repeat(MAX_BYTES);
        assert_eq!(bounded(&exact), exact);
        let long = format!("/{}", "x".repeat(10_000));
        let cut = bounded(&long);
        assert_eq!(cut.len(), MAX_BYTES + '…'.len_utf8());
        assert!(cut.starts_with("/xxx") && cut.ends_with('…'));
        // 'é' is two bytes: a cut inside it moves back to its start.
        let accented = format!("{}é{}", "a".repeat(MAX_BYTES - 1), "b".repeat(10));
        assert_eq!(
            bounded(&accented),
            format!("{}…", "a".repeat(MAX_BYTES - 1))
        );
    }
}
