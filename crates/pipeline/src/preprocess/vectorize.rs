//! Step 2, `count`: the fitted vocabulary and the term counts of a document against it
//! (scikit-learn's `CountVectorizer` with `min_df`).

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::tokenize::Tokens;

/// The fitted vocabulary: terms sorted by code point, a term's index is its feature column.
///
/// Serialized as the sorted term list only, so the bytes are the same on every run (a hash map's
/// iteration order is not); the lookup table is rebuilt on load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    terms: Vec<String>,
    index: FxHashMap<String, u32>,
}

/// The counts of in-vocabulary terms of one document, sorted by feature index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermCounts {
    /// Feature indices, strictly increasing.
    pub indices: Vec<u32>,
    /// How many times each of `indices` occurs.
    pub counts: Vec<u32>,
    /// All tokens of the document, in or out of the vocabulary.
    pub tokens: usize,
    /// Tokens not in the vocabulary.
    pub out_of_vocabulary: usize,
}

impl TermCounts {
    /// Share of tokens the model has never seen (0 for a document with no tokens): a drift signal.
    pub fn out_of_vocabulary_ratio(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.out_of_vocabulary as f64 / self.tokens as f64
        }
    }
}

impl From<Vec<String>> for Vocabulary {
    fn from(terms: Vec<String>) -> Self {
        let index = terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { terms, index }
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(v: Vocabulary) -> Self {
        v.terms
    }
}

impl Vocabulary {
    /// Keeps every term that occurs in at least `min_df` documents (scikit-learn's `min_df` as a count).
    pub fn fit<'a>(documents: impl IntoIterator<Item = &'a Tokens>, min_df: usize) -> Self {
        let mut document_frequency: FxHashMap<&str, usize> = FxHashMap::default();
        let mut seen: FxHashMap<&str, ()> = FxHashMap::default();
        for tokens in documents {
            seen.clear();
            for term in tokens.iter() {
                if seen.insert(term, ()).is_none() {
                    *document_frequency.entry(term).or_default() += 1;
                }
            }
        }
        let mut terms: Vec<String> = document_frequency
            .into_iter()
            .filter(|&(_, df)| df >= min_df.max(1))
            .map(|(t, _)| t.to_owned())
            .collect();
        // Byte order of UTF-8 is code-point order, which is how Python sorts the vocabulary.
        terms.sort_unstable();
        Self::from(terms)
    }

    /// Number of terms (feature columns).
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True when no term survived fitting.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The feature index of `term`, if it is in the vocabulary.
    pub fn get(&self, term: &str) -> Option<u32> {
        self.index.get(term).copied()
    }

    /// The term of a feature index.
    pub fn term(&self, index: u32) -> Option<&str> {
        self.terms.get(index as usize).map(String::as_str)
    }

    /// Counts the in-vocabulary tokens of a document.
    pub fn count(&self, tokens: &Tokens) -> TermCounts {
        // Sized for every token up front: growing by doubling costs more than the lookups.
        let mut hits: Vec<u32> = Vec::with_capacity(tokens.len());
        hits.extend(tokens.iter().filter_map(|t| self.get(t)));
        let out_of_vocabulary = tokens.len() - hits.len();
        sort_indices(&mut hits);
        let mut counts = TermCounts {
            tokens: tokens.len(),
            out_of_vocabulary,
            indices: Vec::with_capacity(hits.len()),
            counts: Vec::with_capacity(hits.len()),
        };
        for i in hits {
            match counts.indices.last() {
                Some(&last) if last == i => {
                    if let Some(c) = counts.counts.last_mut() {
                        *c += 1;
                    }
                }
                _ => {
                    counts.indices.push(i);
                    counts.counts.push(1);
                }
            }
        }
        counts
    }
}

/// Sorts feature indices: a least-significant-digit radix sort, a byte per pass, skipping the
/// high bytes no index uses (two passes for a vocabulary under 65,536 terms). It takes a third
/// of the time of a comparison sort on the few hundred hits of a document; short lists still use
/// the comparison sort.
fn sort_indices(v: &mut Vec<u32>) {
    if v.len() < 64 {
        v.sort_unstable();
        return;
    }
    let max = v.iter().copied().max().unwrap_or(0);
    let mut other = vec![0u32; v.len()];
    let mut shift = 0;
    while shift < 32 && (max >> shift) != 0 {
        let mut offsets = [0usize; 256];
        for &x in v.iter() {
            offsets[((x >> shift) & 0xff) as usize] += 1;
        }
        let mut total = 0;
        for o in &mut offsets {
            let n = *o;
            *o = total;
            total += n;
        }
        for &x in v.iter() {
            let digit = ((x >> shift) & 0xff) as usize;
            other[offsets[digit]] = x;
            offsets[digit] += 1;
        }
        std::mem::swap(v, &mut other);
        shift += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::tokenize::tokenize;

    fn fit(docs: &[&str], min_df: usize) -> Vocabulary {
        let tokens: Vec<Tokens> = docs.iter().map(|d| tokenize(d)).collect();
        Vocabulary::fit(&tokens, min_df)
    }

    #[test]
    fn vocabulary_is_sorted_by_code_point() {
        let v = fit(&["zebra apple Éclair eclair", "apple"], 1);
        let terms: Vec<&str> = (0..v.len() as u32).filter_map(|i| v.term(i)).collect();
        // Python: sorted({'zebra', 'apple', 'éclair', 'eclair'})
        assert_eq!(terms, ["apple", "eclair", "zebra", "éclair"]);
    }

    #[test]
    fn min_df_counts_documents_not_occurrences() {
        let v = fit(&["puck puck puck", "goal puck", "goal"], 2);
        assert_eq!(v.len(), 2);
        assert!(v.get("puck").is_some() && v.get("goal").is_some());
        let v = fit(&["puck puck puck", "goal"], 2);
        assert!(v.is_empty());
    }

    #[test]
    fn radix_sort_sorts_like_sort_unstable() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for (len, bits) in [
            (0, 8),
            (10, 16),
            (64, 8),
            (65, 15),
            (300, 16),
            (1000, 24),
            (777, 32),
        ] {
            let mut v: Vec<u32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 32) as u32 >> (32 - bits)
                })
                .collect();
            let mut expected = v.clone();
            expected.sort_unstable();
            sort_indices(&mut v);
            assert_eq!(v, expected, "{len} values of {bits} bits");
        }
    }

    #[test]
    fn counts_are_sorted_and_oov_is_counted() {
        let v = fit(&["the car and the bike"], 1); // and, bike, car, the
        let c = v.count(&tokenize("The car, the CAR, the truck"));
        assert_eq!(
            c.indices,
            [v.get("car").unwrap_or(99), v.get("the").unwrap_or(99)]
        );
        assert_eq!(c.counts, [2, 3]);
        assert_eq!((c.tokens, c.out_of_vocabulary), (6, 1));
        assert!((c.out_of_vocabulary_ratio() - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn empty_document_has_zero_oov_ratio() {
        let v = fit(&["car"], 1);
        let c = v.count(&tokenize(""));
        assert_eq!((c.tokens, c.indices.len()), (0, 0));
        assert_eq!(c.out_of_vocabulary_ratio(), 0.0);
    }
}
