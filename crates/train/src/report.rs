//! The training report: printed, and written as `<model>.metrics.json` beside the model.

use std::path::{Path, PathBuf};

use pipeline::evaluation::Evaluation;
use pipeline::{Metadata, TrainConfig};
use serde::Serialize;

/// What a training run produced and how long each phase took.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Content hash of the model.
    pub model_version: String,
    /// The model file.
    pub model_path: PathBuf,
    /// The archive read.
    pub archive: PathBuf,
    /// Its SHA-256.
    pub dataset_sha256: String,
    /// Categories, in label order.
    pub categories: Vec<String>,
    /// Terms in the vocabulary.
    pub vocabulary_size: usize,
    /// Settings.
    pub config: TrainConfig,
    /// Training documents.
    pub train_documents: usize,
    /// Test documents.
    pub test_documents: usize,
    /// Accuracy on the training split.
    pub train_accuracy: f64,
    /// Scores on the test split.
    pub test: Evaluation,
    /// Wall-clock seconds per phase.
    pub seconds: Timings,
    /// Peak resident memory of the process (Linux `VmHWM`), when known.
    pub peak_rss_bytes: Option<u64>,
}

/// Wall-clock seconds of each phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timings {
    /// Reading (and downloading) the archive.
    pub read: f64,
    /// Vocabulary, idf and classifier.
    pub fit: f64,
    /// Scoring the train and test splits.
    pub evaluate: f64,
    /// Encoding and writing the model.
    pub write: f64,
    /// The whole run.
    pub total: f64,
}

impl Report {
    pub(crate) fn new(
        meta: &Metadata,
        model_path: &Path,
        archive: &Path,
        s: [f64; 5],
        test_documents: usize,
    ) -> Self {
        Self {
            model_version: meta.model_version.clone(),
            model_path: model_path.to_owned(),
            archive: archive.to_owned(),
            dataset_sha256: meta.dataset_sha256.clone(),
            categories: meta.categories.clone(),
            vocabulary_size: meta.vocabulary_size,
            config: meta.config.clone(),
            train_documents: meta.train_documents,
            test_documents,
            train_accuracy: meta.train_accuracy,
            test: meta.test.clone(),
            seconds: Timings {
                read: s[0],
                fit: s[1],
                evaluate: s[2],
                write: s[3],
                total: s[4],
            },
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        pipeline::artifact::write_atomically(path, &json)?;
        Ok(())
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model {} (naive Bayes on {}, alpha {}, min_df {})",
            self.model_version, self.config.weighting, self.config.alpha, self.config.min_df
        )?;
        writeln!(
            f,
            "vocabulary {} terms, {} training documents, training accuracy {:.4}",
            self.vocabulary_size, self.train_documents, self.train_accuracy
        )?;
        writeln!(f, "test split:")?;
        write!(f, "{}", self.test)?;
        let t = &self.seconds;
        write!(
            f,
            "time: read {:.2} s, fit {:.2} s, evaluate {:.2} s, write {:.2} s, total {:.2} s",
            t.read, t.fit, t.evaluate, t.write, t.total
        )?;
        if let Some(rss) = self.peak_rss_bytes {
            write!(f, "; peak memory {} MiB", rss / (1024 * 1024))?;
        }
        Ok(())
    }
}

/// `data/model.bin` -> `data/model.metrics.json`.
pub(crate) fn path_beside(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    model.with_file_name(format!("{stem}.metrics.json"))
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
