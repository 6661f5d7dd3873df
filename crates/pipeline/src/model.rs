//! The trained model: vocabulary, idf, classifier, and the named steps that turn text into a
//! prediction. Each step is its own method so a server can time and trace it.

use serde::{Deserialize, Serialize};

use crate::classifier::{FitError, LinearClassifier, argmax};
use crate::dataset::{Dataset, Document};
use crate::evaluation::Evaluation;
use crate::preprocess::tfidf::{Idf, SparseVector};
use crate::preprocess::tokenize::{Tokens, tokenize};
use crate::preprocess::vectorize::{TermCounts, Vocabulary};

/// Which term weights the classifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weighting {
    /// Raw term counts: what multinomial naive Bayes models; best in 5-fold cross-validation.
    Counts,
    /// tf-idf with smooth idf and l2 norm, as scikit-learn's `TfidfTransformer()`.
    TfIdf,
}

impl std::fmt::Display for Weighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Counts => "counts",
            Self::TfIdf => "tfidf",
        })
    }
}

impl std::str::FromStr for Weighting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "counts" => Ok(Self::Counts),
            "tfidf" => Ok(Self::TfIdf),
            other => Err(format!("unknown weighting {other:?}; use counts or tfidf")),
        }
    }
}

/// Training settings. The defaults were chosen by 5-fold cross-validation on the training split
/// (see `bench/model_selection.py`), never on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Keep terms found in at least this many training documents.
    pub min_df: usize,
    /// Additive smoothing of naive Bayes.
    pub alpha: f64,
    /// Term weights the classifier reads.
    pub weighting: Weighting,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            min_df: 1,
            alpha: 0.1,
            weighting: Weighting::Counts,
        }
    }
}

/// A fitted text classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    categories: Vec<String>,
    vocabulary: Vocabulary,
    idf: Idf,
    weighting: Weighting,
    classifier: LinearClassifier,
}

/// The outcome of the `predict` step.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the most probable category.
    pub label: usize,
    /// Probability of each category, in [`Model::categories`] order.
    pub probabilities: Vec<f64>,
}

impl Prediction {
    /// Probability of the predicted category.
    pub fn confidence(&self) -> f64 {
        self.probabilities.get(self.label).copied().unwrap_or(0.0)
    }
}

impl Model {
    /// Fits vocabulary, idf and classifier on the training split.
    pub fn train(dataset: &Dataset, config: &TrainConfig) -> Result<Self, FitError> {
        let tokens: Vec<Tokens> = dataset.train.iter().map(|d| tokenize(&d.text)).collect();
        let vocabulary = Vocabulary::fit(&tokens, config.min_df);
        let counts: Vec<TermCounts> = tokens.iter().map(|t| vocabulary.count(t)).collect();
        drop(tokens);
        let idf = Idf::fit(&counts, vocabulary.len());
        let rows: Vec<SparseVector> = counts
            .iter()
            .map(|c| weigh(config.weighting, &idf, c))
            .collect();
        let labels: Vec<usize> = dataset.train.iter().map(|d| d.label).collect();
        let n_classes = dataset.categories.len();
        let classifier = LinearClassifier::fit_naive_bayes(
            &rows,
            &labels,
            n_classes,
            vocabulary.len(),
            config.alpha,
        )?;
        Ok(Self {
            categories: dataset.categories.clone(),
            vocabulary,
            idf,
            weighting: config.weighting,
            classifier,
        })
    }

    /// Category names, in label order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// The fitted vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The term weights the classifier reads.
    pub fn weighting(&self) -> Weighting {
        self.weighting
    }

    /// Step 1: lowercase and split into tokens.
    pub fn tokenize(&self, text: &str) -> Tokens {
        tokenize(text)
    }

    /// Step 2: count in-vocabulary tokens.
    pub fn count(&self, tokens: &Tokens) -> TermCounts {
        self.vocabulary.count(tokens)
    }

    /// The tf-idf vector of a document (scikit-learn's `TfidfTransformer` semantics).
    pub fn tfidf(&self, counts: &TermCounts) -> SparseVector {
        self.idf.transform(counts)
    }

    /// Step 3: the features the classifier reads, tf-idf or raw counts per [`Model::weighting`].
    pub fn weigh(&self, counts: &TermCounts) -> SparseVector {
        weigh(self.weighting, &self.idf, counts)
    }

    /// Step 4: class probabilities and the most probable class.
    pub fn predict(&self, features: &SparseVector) -> Prediction {
        let probabilities = self.classifier.predict_proba(features);
        Prediction {
            label: argmax(&probabilities),
            probabilities,
        }
    }

    /// All four steps at once.
    pub fn classify(&self, text: &str) -> Prediction {
        self.predict(&self.weigh(&self.count(&self.tokenize(text))))
    }

    /// Scores the model on labelled documents.
    pub fn evaluate(&self, documents: &[Document]) -> Evaluation {
        let truth: Vec<usize> = documents.iter().map(|d| d.label).collect();
        let predicted: Vec<usize> = documents
            .iter()
            .map(|d| self.classify(&d.text).label)
            .collect();
        Evaluation::new(&self.categories, &truth, &predicted)
    }

    /// Checks that the parts agree in shape (a decoded file may be well-formed yet inconsistent).
    pub(crate) fn check_consistency(&self) -> Result<(), String> {
        let (v, i, f) = (
            self.vocabulary.len(),
            self.idf.len(),
            self.classifier.n_features(),
        );
        if v != i || v != f {
            return Err(format!(
                "vocabulary has {v} terms but idf has {i} and the classifier {f}"
            ));
        }
        if self.categories.len() != self.classifier.n_classes() || self.categories.len() < 2 {
            return Err(format!(
                "{} categories but the classifier has {} classes",
                self.categories.len(),
                self.classifier.n_classes()
            ));
        }
        Ok(())
    }
}

fn weigh(weighting: Weighting, idf: &Idf, counts: &TermCounts) -> SparseVector {
    match weighting {
        Weighting::TfIdf => idf.transform(counts),
        Weighting::Counts => SparseVector::from(counts),
    }
}

#[cfg(test)]
impl Model {
    /// Makes the categories disagree with the classifier, as a damaged file could.
    pub(crate) fn drop_category_for_test(&mut self) {
        self.categories.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str, label: usize) -> Document {
        Document {
            id: String::new(),
            text: text.into(),
            label,
        }
    }

    fn dataset() -> Dataset {
        Dataset {
            categories: vec!["autos".into(), "hockey".into()],
            train: vec![
                doc("car engine car", 0),
                doc("brakes car", 0),
                doc("puck ice goal", 1),
                doc("goal puck", 1),
            ],
            test: vec![doc("car brakes", 0), doc("puck", 1)],
            sha256: String::new(),
        }
    }

    #[test]
    fn steps_compose_to_classify() {
        for weighting in [Weighting::Counts, Weighting::TfIdf] {
            let config = TrainConfig {
                weighting,
                ..TrainConfig::default()
            };
            let model = Model::train(&dataset(), &config).expect("train");
            let text = "A new ENGINE for the car, not a puck";
            let tokens = model.tokenize(text);
            let counts = model.count(&tokens);
            // 'a' is too short to be a token; new, for, the, not are unknown.
            assert_eq!((counts.tokens, counts.out_of_vocabulary), (7, 4));
            let stepwise = model.predict(&model.weigh(&counts));
            assert_eq!(stepwise, model.classify(text));
            assert_eq!(stepwise.label, 0);
            assert!(stepwise.confidence() > 0.5);
            assert_eq!(model.evaluate(&dataset().test).accuracy, 1.0);
        }
    }

    #[test]
    fn tfidf_weighting_feeds_tfidf_and_counts_feeds_counts() {
        let tfidf = Model::train(
            &dataset(),
            &TrainConfig {
                weighting: Weighting::TfIdf,
                ..TrainConfig::default()
            },
        )
        .expect("train");
        let counts = tfidf.count(&tfidf.tokenize("car car puck"));
        assert_eq!(tfidf.weigh(&counts), tfidf.tfidf(&counts));
        let raw = Model::train(&dataset(), &TrainConfig::default()).expect("train");
        let counts = raw.count(&raw.tokenize("car car puck"));
        assert_eq!(raw.weigh(&counts).values, [2.0, 1.0]);
    }

    #[test]
    fn weighting_parses_from_its_display() {
        for w in [Weighting::Counts, Weighting::TfIdf] {
            assert_eq!(w.to_string().parse::<Weighting>(), Ok(w));
        }
        assert!("bm25".parse::<Weighting>().is_err());
    }
}
