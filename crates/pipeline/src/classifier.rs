//! Step 4, `predict`: a linear classifier trained with smartcore's multinomial naive Bayes.
//!
//! Naive Bayes is linear in log space: `log P(c | x) = log P(c) + x · log θ_c + const`. We fit it
//! with smartcore, then keep only the fitted log-prior and log-probability table, so prediction is
//! a sparse dot product over the document's terms (a few microseconds) and class probabilities come
//! from a log-sum-exp, which smartcore does not offer.

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::naive_bayes::multinomial::{MultinomialNB, MultinomialNBParameters};

use crate::preprocess::tfidf::SparseVector;

/// Fractional features (tf-idf) are handed to smartcore, which needs unsigned integers, in units
/// of 1/1000; `alpha` is scaled by the same factor, so the fit is the same up to that rounding
/// (checked against scikit-learn: same test accuracy to four digits on 20 Newsgroups).
pub const FIXED_POINT_SCALE: f64 = 1000.0;

/// Errors from fitting the classifier.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The training set has no document.
    #[error("no training documents: check the archive and the category names")]
    NoDocuments,
    /// Fewer than two classes have documents.
    #[error("only {0} class(es) have training documents; a classifier needs at least two")]
    TooFewClasses(usize),
    /// The smoothing parameter is not a positive number.
    #[error("alpha must be a positive number, got {0}")]
    BadAlpha(f64),
    /// smartcore refused the data.
    #[error("smartcore could not fit the model: {0}")]
    Smartcore(String),
}

/// A fitted linear classifier: per-class intercept and weights over the vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearClassifier {
    /// Log prior of each class.
    intercepts: Vec<f64>,
    /// Row-major `classes × features` log-probability table.
    weights: Vec<f64>,
    n_features: usize,
}

impl LinearClassifier {
    /// Fits multinomial naive Bayes with additive smoothing `alpha` on `rows` labelled `labels`
    /// (class indices `0..n_classes`).
    pub fn fit_naive_bayes(
        rows: &[SparseVector],
        labels: &[usize],
        n_classes: usize,
        n_features: usize,
        alpha: f64,
    ) -> Result<Self, FitError> {
        if rows.is_empty() {
            return Err(FitError::NoDocuments);
        }
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(FitError::BadAlpha(alpha));
        }
        let present = (0..n_classes).filter(|c| labels.contains(c)).count();
        if present < 2 || present < n_classes {
            return Err(FitError::TooFewClasses(present));
        }
        let integral = rows
            .iter()
            .flat_map(|r| &r.values)
            .all(|v| v.fract() == 0.0);
        let scale = if integral { 1.0 } else { FIXED_POINT_SCALE };
        let x = dense_counts(rows, n_features, scale)?;
        let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let params = MultinomialNBParameters::default().with_alpha(alpha * scale);
        let nb =
            MultinomialNB::fit(&x, &y, params).map_err(|e| FitError::Smartcore(e.to_string()))?;
        let total: usize = nb.class_count().iter().sum();
        let intercepts = nb
            .class_count()
            .iter()
            .map(|&c| (c as f64 / total as f64).ln())
            .collect();
        let weights = nb.feature_log_prob().iter().flatten().copied().collect();
        Ok(Self {
            intercepts,
            weights,
            n_features,
        })
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.intercepts.len()
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Unnormalized log scores of each class.
    pub fn decision_function(&self, x: &SparseVector) -> Vec<f64> {
        self.intercepts
            .iter()
            .enumerate()
            .map(|(c, &b)| {
                let row = &self.weights[c * self.n_features..(c + 1) * self.n_features];
                b + x
                    .indices
                    .iter()
                    .zip(&x.values)
                    .filter_map(|(&i, &v)| row.get(i as usize).map(|w| w * v))
                    .sum::<f64>()
            })
            .collect()
    }

    /// Class probabilities (softmax of the scores, computed stably in log space).
    pub fn predict_proba(&self, x: &SparseVector) -> Vec<f64> {
        let scores = self.decision_function(x);
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        exp.into_iter().map(|e| e / sum).collect()
    }
}

/// The most probable class of a probability vector (the first one on ties, like `argmax`).
pub fn argmax(probabilities: &[f64]) -> usize {
    probabilities
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 { (i, p) } else { best }
        })
        .0
}

/// smartcore's naive Bayes takes a dense matrix of unsigned integers. u32 keeps it at 4 bytes a
/// cell: 2,389 documents × 30,446 terms is 291 MB, the largest allocation of training.
fn dense_counts(
    rows: &[SparseVector],
    n_features: usize,
    scale: f64,
) -> Result<DenseMatrix<u32>, FitError> {
    let mut cells = vec![0u32; rows.len() * n_features];
    for (r, row) in rows.iter().enumerate() {
        let base = r * n_features;
        for (&i, &v) in row.indices.iter().zip(&row.values) {
            if let Some(cell) = cells.get_mut(base + i as usize) {
                *cell = (v * scale).round().clamp(0.0, f64::from(u32::MAX)) as u32;
            }
        }
    }
    DenseMatrix::new(rows.len(), n_features, cells, false)
        .map_err(|e| FitError::Smartcore(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(pairs: &[(u32, f64)]) -> SparseVector {
        SparseVector {
            indices: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
        }
    }

    fn toy() -> (Vec<SparseVector>, Vec<usize>) {
        let rows = vec![
            sv(&[(0, 3.0), (1, 1.0)]),
            sv(&[(0, 2.0)]),
            sv(&[(2, 2.0), (3, 1.0)]),
            sv(&[(3, 4.0)]),
            sv(&[(1, 1.0), (3, 2.0)]),
        ];
        (rows, vec![0, 0, 1, 1, 1])
    }

    #[test]
    fn matches_the_closed_form_of_multinomial_naive_bayes() {
        let (rows, labels) = toy();
        let m = LinearClassifier::fit_naive_bayes(&rows, &labels, 2, 4, 1.0).expect("fit");
        // Class 0 counts per feature: [5, 1, 0, 0] (total 6); class 1: [0, 1, 2, 7] (total 10).
        let expect0 = [6.0 / 10.0, 2.0 / 10.0, 1.0 / 10.0, 1.0 / 10.0].map(f64::ln);
        let expect1 = [1.0 / 14.0, 2.0 / 14.0, 3.0 / 14.0, 8.0 / 14.0].map(f64::ln);
        for (a, b) in m.weights.iter().zip(expect0.iter().chain(&expect1)) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((m.intercepts[0] - (0.4f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn probabilities_sum_to_one_and_agree_with_smartcore() {
        let (rows, labels) = toy();
        let m = LinearClassifier::fit_naive_bayes(&rows, &labels, 2, 4, 0.5).expect("fit");
        let x = dense_counts(&rows, 4, 1.0).expect("matrix");
        let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let nb = MultinomialNB::fit(&x, &y, MultinomialNBParameters::default().with_alpha(0.5))
            .expect("smartcore fit");
        let theirs: Vec<u32> = nb.predict(&x).expect("smartcore predict");
        for (row, their) in rows.iter().zip(theirs) {
            let p = m.predict_proba(row);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert_eq!(argmax(&p), their as usize);
        }
    }

    #[test]
    fn fractional_features_use_fixed_point() {
        let rows = vec![sv(&[(0, 0.75)]), sv(&[(1, 0.5)])];
        let m = LinearClassifier::fit_naive_bayes(&rows, &[0, 1], 2, 2, 0.25).expect("fit");
        // Class 0: (0.75 + 0.25) / (0.75 + 0.5) for feature 0, the same fit as unscaled.
        assert!((m.weights[0] - (1.0f64 / 1.25).ln()).abs() < 1e-12);
        assert_eq!(argmax(&m.predict_proba(&sv(&[(1, 0.1)]))), 1);
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        let (rows, labels) = toy();
        assert!(matches!(
            LinearClassifier::fit_naive_bayes(&[], &[], 2, 4, 1.0),
            Err(FitError::NoDocuments)
        ));
        assert!(matches!(
            LinearClassifier::fit_naive_bayes(&rows, &labels, 2, 4, 0.0),
            Err(FitError::BadAlpha(_))
        ));
        assert!(matches!(
            LinearClassifier::fit_naive_bayes(&rows, &[0; 5], 2, 4, 1.0),
            Err(FitError::TooFewClasses(1))
        ));
    }
}
