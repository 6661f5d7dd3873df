//! Step 3, `tfidf`: scikit-learn's `TfidfTransformer()` defaults (smooth idf, l2 norm, raw tf).

use serde::{Deserialize, Serialize};

use super::vectorize::TermCounts;

/// A sparse feature vector: sorted indices and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    /// Feature indices, strictly increasing.
    pub indices: Vec<u32>,
    /// The value of each of `indices`.
    pub values: Vec<f64>,
}

impl From<&TermCounts> for SparseVector {
    fn from(c: &TermCounts) -> Self {
        Self {
            indices: c.indices.clone(),
            values: c.counts.iter().map(|&n| f64::from(n)).collect(),
        }
    }
}

/// Inverse document frequencies: `idf(t) = ln((1 + n) / (1 + df(t))) + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idf {
    idf: Vec<f64>,
}

impl Idf {
    /// Fits on the training documents' counts; `n_features` is the vocabulary size.
    pub fn fit<'a>(counts: impl IntoIterator<Item = &'a TermCounts>, n_features: usize) -> Self {
        let mut df = vec![0u64; n_features];
        let mut n_documents = 0u64;
        for c in counts {
            n_documents += 1;
            for &i in &c.indices {
                if let Some(d) = df.get_mut(i as usize) {
                    *d += 1;
                }
            }
        }
        let n = n_documents as f64;
        let idf = df
            .into_iter()
            .map(|d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0)
            .collect();
        Self { idf }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.idf.len()
    }

    /// True when fitted on an empty vocabulary.
    pub fn is_empty(&self) -> bool {
        self.idf.is_empty()
    }

    /// The idf weight of one feature.
    pub fn weight(&self, index: u32) -> Option<f64> {
        self.idf.get(index as usize).copied()
    }

    /// tf-idf weights of a document, scaled to unit Euclidean length (all zeros stay all zeros).
    pub fn transform(&self, counts: &TermCounts) -> SparseVector {
        let mut v = SparseVector::from(counts);
        for (value, &i) in v.values.iter_mut().zip(&v.indices) {
            *value *= self.weight(i).unwrap_or(0.0);
        }
        let norm = v.values.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.values.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{tokenize::tokenize, vectorize::Vocabulary};

    fn assert_close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-8, "{a:?} vs {b:?}");
        }
    }

    /// Reference values from scikit-learn 1.9:
    /// `TfidfTransformer().fit_transform(CountVectorizer().fit_transform(docs)).toarray()`.
    #[test]
    fn matches_scikit_learn_on_a_small_corpus() {
        let docs = ["the car the engine", "the puck", "car puck goal goal"];
        let tokens: Vec<_> = docs.iter().map(|d| tokenize(d)).collect();
        let vocabulary = Vocabulary::fit(&tokens, 1); // car engine goal puck the
        let counts: Vec<_> = tokens.iter().map(|t| vocabulary.count(t)).collect();
        let idf = Idf::fit(&counts, vocabulary.len());
        let n = 3.0_f64;
        let smooth = |df: f64| ((1.0 + n) / (1.0 + df)).ln() + 1.0;
        assert_close(
            &idf.idf,
            &[
                smooth(2.0),
                smooth(1.0),
                smooth(1.0),
                smooth(2.0),
                smooth(2.0),
            ],
        );
        assert_close(
            &idf.transform(&counts[0]).values,
            &[0.38550292, 0.50689001, 0.77100584],
        );
        assert_close(
            &idf.transform(&counts[1]).values,
            &[std::f64::consts::FRAC_1_SQRT_2; 2],
        );
        assert_close(
            &idf.transform(&counts[2]).values,
            &[0.3349067, 0.88072413, 0.3349067],
        );
    }

    #[test]
    fn document_without_known_terms_stays_zero() {
        let idf = Idf {
            idf: vec![1.0, 2.0],
        };
        let v = idf.transform(&TermCounts::default());
        assert!(v.indices.is_empty() && v.values.is_empty());
    }
}
