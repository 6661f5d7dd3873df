//! The model file: a versioned, checksummed envelope around the bincode-encoded model.
//!
//! Layout (little endian):
//!
//! | bytes  | content                                     |
//! |--------|---------------------------------------------|
//! | 0..8   | magic `b"20NGMDL\x1a"`                       |
//! | 8..10  | format version (`u16`)                      |
//! | 10..18 | payload length (`u64`)                      |
//! | 18..50 | SHA-256 of the payload                      |
//! | 50..   | payload: bincode 2 of [`ModelFile`]          |
//!
//! The checksum is verified before decoding, so truncation and bit rot are reported as such and
//! never reach the decoder. Everything in the file is deterministic: the same data and settings
//! give the same bytes (wall-clock figures go to the metrics report instead).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::dataset::Dataset;
use crate::evaluation::Evaluation;
use crate::model::{Model, TrainConfig};
use crate::progress::to_hex;

/// First bytes of every model file.
pub const MAGIC: [u8; 8] = *b"20NGMDL\x1a";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 8 + 32;
/// Bound on decoder allocations, far above a real model (a few MB), so a forged length cannot
/// make the loader allocate gigabytes.
const DECODE_LIMIT: usize = 512 * 1024 * 1024;

/// What a model file says about the model, readable without the model itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Short content hash of the model: the same model always has the same version.
    pub model_version: String,
    /// Category names, in label order.
    pub categories: Vec<String>,
    /// Number of terms in the vocabulary.
    pub vocabulary_size: usize,
    /// Settings the model was trained with.
    pub config: TrainConfig,
    /// Training documents.
    pub train_documents: usize,
    /// Accuracy on the training split.
    pub train_accuracy: f64,
    /// Scores on the test split.
    pub test: Evaluation,
    /// SHA-256 of the dataset archive.
    pub dataset_sha256: String,
    /// Version of the `pipeline` crate that trained it.
    pub crate_version: String,
    /// Seconds since the epoch from `SOURCE_DATE_EPOCH`, when it was set at training.
    pub created_at: Option<u64>,
}

impl Metadata {
    /// What a training run on `dataset` with `config` knows about its model. The facts the
    /// model itself holds (version, categories, vocabulary size) are filled in by
    /// [`ModelFile::new`]; `created_at` stays unset, for the caller to stamp if it wants to.
    pub fn of_training(
        dataset: &Dataset,
        config: &TrainConfig,
        train_accuracy: f64,
        test: Evaluation,
    ) -> Self {
        Self {
            model_version: String::new(),
            categories: dataset.categories.clone(),
            vocabulary_size: 0,
            config: config.clone(),
            train_documents: dataset.train.len(),
            train_accuracy,
            test,
            dataset_sha256: dataset.sha256.clone(),
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: None,
        }
    }
}

/// The decoded content of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Facts about the model.
    pub metadata: Metadata,
    /// The model.
    pub model: Model,
}

/// Why a model file could not be written or read; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file could not be opened, read or written.
    #[error("cannot access model file {path} (train one with `cargo run --release -p train`)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the magic bytes.
    #[error(
        "{path} is not a model file of this project (wrong magic bytes); pass the model.bin written by `train`"
    )]
    NotAModel {
        /// The file.
        path: PathBuf,
    },
    /// Written by a newer build.
    #[error(
        "{path} has model format v{found}, newer than this build reads (v{FORMAT_VERSION}); upgrade serve or retrain with this version"
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u16,
    },
    /// Written by a build whose format is no longer read.
    #[error(
        "{path} has model format v{found}, older than this build reads (v{FORMAT_VERSION}); retrain it"
    )]
    OlderFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u16,
    },
    /// Shorter than its header says.
    #[error(
        "{path} is truncated: {expected} bytes expected, {actual} found; copy or train it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Checksum mismatch, trailing bytes, or a payload that does not decode.
    #[error("{path} is corrupted ({reason}); copy or train it again")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model could not be encoded.
    #[error("cannot encode the model: {0}")]
    Encode(String),
}

impl ModelFile {
    /// Wraps a trained model with its metadata, computing the content-hash version.
    pub fn new(model: Model, mut metadata: Metadata) -> Result<Self, ArtifactError> {
        let bytes = encode(&model)?;
        metadata.model_version = to_hex(&sha2::Sha256::digest(&bytes)[..6]);
        metadata.categories = model.categories().to_vec();
        metadata.vocabulary_size = model.vocabulary().len();
        Ok(Self { metadata, model })
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ArtifactError> {
        let payload = encode(self)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&sha2::Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses a whole file; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ArtifactError> {
        let path = path.to_owned();
        if bytes.len() < MAGIC.len() || bytes[..8] != MAGIC {
            return Err(ArtifactError::NotAModel { path });
        }
        let header_actual = bytes.len() as u64;
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(ArtifactError::Truncated {
                path,
                expected: HEADER_LEN as u64,
                actual: header_actual,
            });
        };
        let version = u16::from_le_bytes([header[8], header[9]]);
        match version.cmp(&FORMAT_VERSION) {
            std::cmp::Ordering::Greater => {
                return Err(ArtifactError::NewerFormat {
                    path,
                    found: version,
                });
            }
            std::cmp::Ordering::Less => {
                return Err(ArtifactError::OlderFormat {
                    path,
                    found: version,
                });
            }
            std::cmp::Ordering::Equal => {}
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[10..18]);
        let expected = (HEADER_LEN as u64).saturating_add(u64::from_le_bytes(len));
        if header_actual < expected {
            return Err(ArtifactError::Truncated {
                path,
                expected,
                actual: header_actual,
            });
        }
        if header_actual > expected {
            let reason = format!(
                "{} unexpected bytes after the payload",
                header_actual - expected
            );
            return Err(ArtifactError::Corrupted { path, reason });
        }
        let payload = &bytes[HEADER_LEN..];
        if sha2::Sha256::digest(payload)[..] != header[18..50] {
            return Err(ArtifactError::Corrupted {
                path,
                reason: "checksum mismatch".into(),
            });
        }
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (file, read): (Self, usize) = bincode::serde::decode_from_slice(payload, config)
            .map_err(|e| ArtifactError::Corrupted {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if read != payload.len() {
            return Err(ArtifactError::Corrupted {
                path,
                reason: "payload has trailing bytes".into(),
            });
        }
        file.model
            .check_consistency()
            .map_err(|reason| ArtifactError::Corrupted { path, reason })?;
        Ok(file)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the file atomically: a temporary file in the same folder, fsync, rename, fsync of
    /// the folder. A crash leaves either the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        let bytes = self.to_bytes()?;
        write_atomically(path, &bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let io = |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut temp = readable_temp_file(dir, ".model-").map_err(io)?;
    temp.write_all(bytes).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    // Make the rename itself durable.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// A temporary file in `dir` that will be readable by others once renamed (0644 less the umask),
/// like a file made with `File::create`, so a non-root server can read what root trained.
pub(crate) fn readable_temp_file(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ArtifactError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| ArtifactError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Dataset, Document};
    use crate::evaluation::Evaluation;

    fn trained() -> ModelFile {
        let doc = |text: &str, label| Document {
            id: String::new(),
            text: text.into(),
            label,
        };
        let dataset = Dataset {
            categories: vec!["rec.autos".into(), "rec.sport.hockey".into()],
            train: vec![
                doc("engine brakes car", 0),
                doc("puck goalie ice", 1),
                doc("car wheels", 0),
            ],
            test: vec![doc("car", 0)],
            sha256: "ab".repeat(32),
        };
        let model = Model::train(&dataset, &TrainConfig::default()).expect("train");
        let test = model.evaluate(&dataset.test);
        let metadata = Metadata::of_training(&dataset, &TrainConfig::default(), 1.0, test);
        ModelFile::new(model, metadata).expect("wrap")
    }

    fn load(bytes: &[u8]) -> Result<ModelFile, ArtifactError> {
        ModelFile::from_bytes(bytes, Path::new("m.bin"))
    }

    #[test]
    fn round_trip_keeps_model_and_metadata() {
        let file = trained();
        assert_eq!(file.metadata.model_version.len(), 12);
        assert_eq!(file.metadata.vocabulary_size, file.model.vocabulary().len());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/model.bin");
        file.save(&path).expect("save");
        let back = ModelFile::load(&path).expect("load");
        assert_eq!(back, file);
        assert_eq!(
            back.model.classify("my car needs brakes"),
            file.model.classify("my car needs brakes")
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .flatten()
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn metadata_of_training_carries_the_run_and_the_model_fills_in_the_rest() {
        let file = trained();
        let m = &file.metadata;
        assert_eq!(m.train_documents, 3);
        assert_eq!(m.dataset_sha256, "ab".repeat(32));
        assert_eq!(m.crate_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(m.created_at, None, "a timestamp is the caller's to add");
        assert_eq!(m.categories, file.model.categories());
        assert!(m.vocabulary_size > 0);
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(
            trained().to_bytes().expect("a"),
            trained().to_bytes().expect("b")
        );
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.bin");
        trained().save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o004, 0o004, "mode {mode:o}");
    }

    #[test]
    fn every_truncation_is_reported_as_such() {
        let bytes = trained().to_bytes().expect("encode");
        for cut in [
            9,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 1,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let err = load(&bytes[..cut]).expect_err("truncated");
            assert!(
                matches!(err, ArtifactError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn flipped_bits_anywhere_in_the_payload_are_caught() {
        let bytes = trained().to_bytes().expect("encode");
        for at in [HEADER_LEN, HEADER_LEN + 7, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let err = load(&bad).expect_err("corrupt");
            assert!(
                matches!(err, ArtifactError::Corrupted { .. }),
                "byte {at}: {err}"
            );
        }
        let mut bad = bytes.clone();
        bad[20] ^= 1; // the stored checksum itself
        assert!(matches!(load(&bad), Err(ArtifactError::Corrupted { .. })));
        let mut longer = bytes;
        longer.push(0);
        assert!(matches!(
            load(&longer),
            Err(ArtifactError::Corrupted { .. })
        ));
    }

    #[test]
    fn foreign_files_are_not_models() {
        for foreign in [
            &b""[..],
            b"20NG",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0",
            b"{\"json\": true}",
        ] {
            assert!(matches!(
                load(foreign),
                Err(ArtifactError::NotAModel { .. })
            ));
        }
    }

    #[test]
    fn newer_and_older_formats_are_refused_with_advice() {
        let bytes = trained().to_bytes().expect("encode");
        let mut newer = bytes.clone();
        newer[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let err = load(&newer).expect_err("newer");
        assert!(
            matches!(err, ArtifactError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1)
        );
        assert!(err.to_string().contains("upgrade"), "{err}");
        let mut older = bytes;
        older[8..10].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(
            load(&older),
            Err(ArtifactError::OlderFormat { found: 0, .. })
        ));
    }

    #[test]
    fn a_well_formed_but_inconsistent_payload_is_refused() {
        let mut file = trained();
        file.model = {
            let doc = |text: &str, label| Document {
                id: String::new(),
                text: text.into(),
                label,
            };
            let three = Dataset {
                categories: vec!["a".into(), "b".into(), "c".into()],
                train: vec![doc("x1 yy", 0), doc("zz", 1), doc("ww", 2)],
                test: vec![],
                sha256: String::new(),
            };
            let mut m = Model::train(&three, &TrainConfig::default()).expect("train");
            m.drop_category_for_test();
            m
        };
        let bytes = file.to_bytes().expect("encode");
        let err = load(&bytes).expect_err("inconsistent");
        assert!(matches!(err, ArtifactError::Corrupted { .. }), "{err}");
        let _ = Evaluation::new(&[], &[], &[]);
    }

    #[test]
    fn missing_file_says_how_to_get_one() {
        let err = ModelFile::load(Path::new("/nonexistent/model.bin")).expect_err("missing");
        assert!(
            err.to_string().contains("cargo run --release -p train"),
            "{err}"
        );
    }
}
