//! The 20 Newsgroups "by date" corpus: which categories exist, and the documents of a subset.
//!
//! [`read_archive`] reads the canonical `20news-bydate.tar.gz` layout as a stream (no extraction);
//! [`download::ensure_archive`] fetches and verifies it for machines with internet.

mod archive;
#[cfg(feature = "download")]
pub mod download;

use std::path::PathBuf;

pub use archive::{read_archive, read_archive_from};

/// The four categories of the original example.
pub const DEFAULT_CATEGORIES: [&str; 4] = [
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
];

/// Every newsgroup of the corpus; a category outside this list is a typo, not a missing folder.
pub const ALL_CATEGORIES: [&str; 20] = [
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
];

/// Folder of the training split inside the archive.
pub const TRAIN_DIR: &str = "20news-bydate-train";
/// Folder of the test split inside the archive.
pub const TEST_DIR: &str = "20news-bydate-test";

/// One post: its id (`category/file`), its text decoded as Latin-1, and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// `category/file name`, unique within a split.
    pub id: String,
    /// The whole post, headers included, as scikit-learn reads it.
    pub text: String,
    /// Index into [`Dataset::categories`].
    pub label: usize,
}

/// The documents of the chosen categories, sorted by category then file name.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Category names; a document's label indexes this list.
    pub categories: Vec<String>,
    /// The training split.
    pub train: Vec<Document>,
    /// The test split.
    pub test: Vec<Document>,
    /// Lowercase hex SHA-256 of the archive file.
    pub sha256: String,
}

/// Why a dataset could not be read; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The archive file could not be opened or read.
    #[error("cannot read archive {path}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the gzip magic bytes.
    #[error("{path} is not a gzip file: expected 20news-bydate.tar.gz from scikit-learn's mirror")]
    NotGzip {
        /// The archive.
        path: PathBuf,
    },
    /// The gzip or tar stream is broken.
    #[error(
        "{path} is not a valid tar.gz archive (corrupt or truncated?); use an intact 20news-bydate.tar.gz"
    )]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The archive's SHA-256 is not the expected one.
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, got {actual}; the file is damaged or not the canonical archive"
    )]
    Checksum {
        /// The archive.
        path: PathBuf,
        /// What was asked for.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// A split folder is absent.
    #[error("{path} has no {split}/ folder: not the 20news-bydate layout")]
    MissingSplit {
        /// The archive.
        path: PathBuf,
        /// `20news-bydate-train` or `20news-bydate-test`.
        split: &'static str,
    },
    /// A category folder is absent from a split.
    #[error("{path} has no {split}/{category}/ folder (categories found: {found})")]
    MissingCategory {
        /// The archive.
        path: PathBuf,
        /// The split.
        split: &'static str,
        /// The category asked for.
        category: String,
        /// Categories present in that split, comma separated.
        found: String,
    },
    /// A category folder holds no document.
    #[error("{path}: {split}/{category}/ is empty; a category needs documents to learn from")]
    EmptyCategory {
        /// The archive.
        path: PathBuf,
        /// The split.
        split: &'static str,
        /// The empty category.
        category: String,
    },
    /// A category name that is not a newsgroup of the corpus.
    #[error("unknown category {name:?}; the 20 Newsgroups categories are: {}", ALL_CATEGORIES.join(", "))]
    UnknownCategory {
        /// The name given.
        name: String,
    },
    /// A category named twice or no category at all.
    #[error("categories must be distinct and at least two, got [{}]", .0.join(", "))]
    BadCategoryList(Vec<String>),
}

/// Checks a category list before any reading, so a typo fails at once.
pub fn validate_categories(categories: &[String]) -> Result<(), DatasetError> {
    if let Some(bad) = categories
        .iter()
        .find(|c| !ALL_CATEGORIES.contains(&c.as_str()))
    {
        return Err(DatasetError::UnknownCategory { name: bad.clone() });
    }
    let mut sorted = categories.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != categories.len() || categories.len() < 2 {
        return Err(DatasetError::BadCategoryList(categories.to_vec()));
    }
    Ok(())
}
