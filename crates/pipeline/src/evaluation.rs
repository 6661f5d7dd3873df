//! Classification quality on a labelled split: accuracy, per-class and macro scores, confusion matrix.

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Class name.
    pub label: String,
    /// Of the documents predicted as this class, the share that are.
    pub precision: f64,
    /// Of the documents of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Documents of this class in the split.
    pub support: usize,
}

/// The scores of a model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Documents scored.
    pub documents: usize,
    /// Share of documents predicted right.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// One entry per class, in class order.
    pub per_class: Vec<ClassScores>,
    /// `confusion[true][predicted]` document counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Scores predictions against the truth; `labels` names the classes `0..labels.len()`.
    pub fn new(labels: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < k && p < k {
                confusion[t][p] += 1;
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassScores> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
                let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let documents = truth.len().min(predicted.len());
        Self {
            documents,
            accuracy: ratio(correct, documents),
            macro_f1: if k == 0 {
                0.0
            } else {
                per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64
            },
            per_class,
            confusion,
        }
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .per_class
            .iter()
            .map(|c| c.label.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "{:width$}  precision  recall     f1  support", "class")?;
        for c in &self.per_class {
            writeln!(
                f,
                "{:width$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}",
                c.label, c.precision, c.recall, c.f1, c.support
            )?;
        }
        writeln!(
            f,
            "accuracy {:.4}   macro-F1 {:.4}   ({} documents)",
            self.accuracy, self.macro_f1, self.documents
        )?;
        writeln!(
            f,
            "confusion matrix (rows: true class, columns: predicted, in the order above):"
        )?;
        for row in &self.confusion {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
            writeln!(f, "  {}", cells.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_a_hand_computed_case() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        // truth a,a,a,b ; predicted a,b,a,b -> a: tp 2, fp 0, fn 1 ; b: tp 1, fp 1, fn 0
        let e = Evaluation::new(&labels, &[0, 0, 0, 1], &[0, 1, 0, 1]);
        assert_eq!(e.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert!((e.accuracy - 0.75).abs() < 1e-12);
        let (a, b) = (&e.per_class[0], &e.per_class[1]);
        assert!((a.precision - 1.0).abs() < 1e-12 && (a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 1.0).abs() < 1e-12);
        assert!((e.macro_f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!((a.support, b.support), (3, 1));
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let e = Evaluation::new(&labels, &[0, 1], &[0, 0]);
        assert_eq!(e.per_class[1].f1, 0.0);
        assert!(e.macro_f1.is_finite());
    }
}
