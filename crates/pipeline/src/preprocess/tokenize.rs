//! Step 1, `tokenize`: scikit-learn's default analyzer (lowercase, then tokens matching `(?u)\b\w\w+\b`).

use std::ops::Range;

/// The tokens of one document: the lowercased text and the byte ranges of its tokens in it.
///
/// Keeping one buffer instead of a `Vec<String>` avoids an allocation per token on the request path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    text: String,
    spans: Vec<Range<u32>>,
}

impl Tokens {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the document had no token of two or more word characters.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The tokens, in document order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans
            .iter()
            .map(|r| &self.text[r.start as usize..r.end as usize])
    }
}

/// Python's `\w` for `str` patterns: `str.isalnum()` or `_`.
///
/// Rust's `is_alphanumeric` agrees with Python on every Latin-1 character (the training data is
/// Latin-1, see the tests); outside it, a few combining marks that Unicode calls alphabetic differ.
fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lowercases `text` and splits it into runs of two or more word characters.
///
/// A maximal run of word characters is exactly what `\b\w\w+\b` matches, so no regex is needed.
pub fn tokenize(text: &str) -> Tokens {
    if text.is_ascii() {
        return tokenize_ascii(text.to_ascii_lowercase());
    }
    tokenize_chars(text.to_lowercase())
}

/// The split on any text, a character at a time.
fn tokenize_chars(text: String) -> Tokens {
    let mut spans = Vec::with_capacity(text.len() / 5);
    let mut start: Option<(usize, usize)> = None; // (byte offset, chars so far)
    for (i, c) in text.char_indices() {
        match (is_word_char(c), start.as_mut()) {
            (true, Some((_, n))) => *n += 1,
            (true, None) => start = Some((i, 1)),
            (false, Some(&mut (s, n))) => {
                push_run(&mut spans, s, i, n);
                start = None;
            }
            (false, None) => {}
        }
    }
    if let Some((s, n)) = start {
        push_run(&mut spans, s, text.len(), n);
    }
    Tokens { text, spans }
}

/// The same split for ASCII text (most documents), 64 bytes at a time.
///
/// For ASCII, `\w` is `[a-z0-9_]` once lowercased and a character is a byte. Each block of 64
/// bytes becomes a bit mask of word bytes (a loop the compiler vectorizes), and runs are read
/// off the mask's 0/1 transitions: no branch per byte, where a byte loop mispredicts at every
/// word boundary.
fn tokenize_ascii(text: String) -> Tokens {
    let bytes = text.as_bytes();
    let mut spans = Vec::with_capacity(bytes.len() / 5);
    let mut start = 0;
    let mut in_word = false; // whether the byte before the current block is a word byte
    for (block, chunk) in bytes.chunks(64).enumerate() {
        let base = block * 64;
        let mask = word_mask(chunk);
        let before = (mask << 1) | u64::from(in_word);
        let mut transitions = mask ^ before;
        if chunk.len() < 64 {
            // Bits past the end are non-word: an open run ends with the text.
            transitions &= u64::MAX >> (63 - chunk.len());
        }
        while transitions != 0 {
            let i = transitions.trailing_zeros() as usize;
            if (mask >> i) & 1 == 1 {
                start = base + i;
            } else {
                push_run(&mut spans, start, base + i, base + i - start);
            }
            transitions &= transitions - 1;
        }
        in_word = chunk.len() == 64 && mask >> 63 == 1;
    }
    if in_word {
        push_run(&mut spans, start, bytes.len(), bytes.len() - start);
    }
    Tokens { text, spans }
}

/// Bit `i` is set when `chunk[i]` (lowercase ASCII, at most 64 bytes) is a word byte.
fn word_mask(chunk: &[u8]) -> u64 {
    match <&[u8; 64]>::try_from(chunk) {
        Ok(full) => word_mask_64(full),
        Err(_) => {
            let mut padded = [0u8; 64];
            padded[..chunk.len()].copy_from_slice(chunk);
            word_mask_64(&padded)
        }
    }
}

/// A fixed-size block: the byte tests become a few vector compares, and each 8 flags are packed
/// into 8 bits with one multiplication.
fn word_mask_64(block: &[u8; 64]) -> u64 {
    let mut flags = [0u8; 64];
    for (f, &b) in flags.iter_mut().zip(block) {
        *f = u8::from((b.wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'_'));
    }
    let mut mask = 0u64;
    for (i, eight) in flags.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(eight.try_into().unwrap_or_default());
        // Every byte of `w` is 0 or 1; the product puts byte k's bit at bit 56 + k, without carries.
        mask |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
    }
    mask
}

fn push_run(spans: &mut Vec<Range<u32>>, start: usize, end: usize, chars: usize) {
    // Offsets fit in u32 because request bodies are capped far below 4 GiB; saturate rather than
    // wrap if a caller ever passes more.
    if chars >= 2 {
        let to_u32 = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        spans.push(to_u32(start)..to_u32(end));
    }
}

/// Decodes bytes as Latin-1 (ISO-8859-1): every byte is the character with the same code point.
///
/// This is how scikit-learn reads 20 Newsgroups, and it never fails.
pub fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Decodes a request body: UTF-8 when it is valid, Latin-1 otherwise (like the training data).
pub fn decode_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(decode_latin1(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokenize(s).iter().map(str::to_owned).collect()
    }

    /// Strings of every length below 400, each character chosen by `pick` from a xorshift draw.
    fn random_texts(seed: u64, pick: impl Fn(u64) -> char) -> impl Iterator<Item = String> {
        let mut state = seed;
        (0..400).map(move |len| {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    pick(state)
                })
                .collect()
        })
    }

    #[test]
    fn ascii_fast_path_splits_like_the_general_one() {
        // Every ASCII byte, with many short runs; then long words across the 64-byte blocks.
        let short_runs = random_texts(0x2545_f491_4f6c_dd1d, |x| char::from((x % 128) as u8));
        let long_runs = random_texts(0x9e37_79b9_7f4a_7c15, |x| {
            if x.is_multiple_of(23) { ' ' } else { 'W' }
        });
        for text in short_runs.chain(long_runs) {
            let fast = tokenize_ascii(text.to_ascii_lowercase());
            assert_eq!(fast, tokenize_chars(text.to_lowercase()), "{text:?}");
        }
        assert_eq!(toks("ab_1 x y2 Q"), ["ab_1", "y2"]);
        let long = "a".repeat(200);
        assert_eq!(
            toks(&format!("{long} b {long}.")),
            [long.as_str(), long.as_str()]
        );
    }

    #[test]
    fn lowercases_and_drops_one_letter_words() {
        assert_eq!(toks("I drove A Car, 2 cars!"), ["drove", "car", "cars"]);
    }

    #[test]
    fn punctuation_splits_and_underscore_joins() {
        assert_eq!(toks("e-mail a_b 3.14 x,y"), ["mail", "a_b", "14"]);
    }

    #[test]
    fn empty_and_symbol_only_text_has_no_tokens() {
        assert!(tokenize("").is_empty());
        assert!(tokenize(" ... !? - ").is_empty());
    }

    #[test]
    fn non_ascii_matches_python() {
        // Expected values printed by CPython 3.11:
        // re.findall(r'(?u)\b\w\w+\b', 'naïve café Ünïcödé x² ½a a_b 3.14 ÀB éé ß Σ ΑΣ'.lower())
        assert_eq!(
            toks("naïve café Ünïcödé x² ½a a_b 3.14 ÀB éé ß Σ ΑΣ"),
            [
                "naïve",
                "café",
                "ünïcödé",
                "x²",
                "½a",
                "a_b",
                "14",
                "àb",
                "éé",
                "ας"
            ]
        );
    }

    #[test]
    fn latin1_word_characters_match_python() {
        // ''.join(chr(i) for i in range(256) if re.match(r'(?u)\w', chr(i))), from CPython 3.11.
        let python_w = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz\
                        ª²³µ¹º¼½¾ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ";
        let ours: String = (0u8..=255)
            .map(char::from)
            .filter(|&c| is_word_char(c))
            .collect();
        assert_eq!(ours, python_w);
    }

    #[test]
    fn latin1_bytes_decode_one_char_per_byte() {
        let bytes = [b'c', b'a', b'f', 0xE9, b' ', 0xFF, 0xFE];
        assert_eq!(decode_latin1(&bytes), "café ÿþ");
        assert_eq!(toks(&decode_latin1(&bytes)), ["café", "ÿþ"]);
    }

    #[test]
    fn request_text_is_utf8_when_valid_else_latin1() {
        assert_eq!(decode_text("café".as_bytes()), "café");
        assert_eq!(decode_text(&[b'c', b'a', b'f', 0xE9]), "café");
    }
}
