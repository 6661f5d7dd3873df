//! Streaming reader of the `20news-bydate.tar.gz` layout: `<split>/<category>/<post>`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path};

use super::{Dataset, DatasetError, Document, TEST_DIR, TRAIN_DIR, validate_categories};
use crate::preprocess::tokenize::decode_latin1;
use crate::progress::{HashingReader, Progress};

const SPLITS: [&str; 2] = [TRAIN_DIR, TEST_DIR];

/// Reads the chosen categories from an archive file; with `expected_sha256`, fails unless the
/// file has that SHA-256 (checked in the same pass, before anything is returned).
pub fn read_archive(
    path: &Path,
    categories: &[String],
    expected_sha256: Option<&str>,
    progress: &dyn Progress,
) -> Result<Dataset, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    progress.start("reading archive", Some(size));
    let dataset = read_archive_from(file, path, categories, progress);
    progress.finish();
    let dataset = dataset?;
    match expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&dataset.sha256) => {
            Err(DatasetError::Checksum {
                path: path.to_owned(),
                expected: expected.to_ascii_lowercase(),
                actual: dataset.sha256,
            })
        }
        _ => Ok(dataset),
    }
}

/// Reads the chosen categories from any reader of a tar.gz stream; `path` only names it in errors.
pub fn read_archive_from(
    reader: impl Read,
    path: &Path,
    categories: &[String],
    progress: &dyn Progress,
) -> Result<Dataset, DatasetError> {
    validate_categories(categories)?;
    let corrupt = |source| DatasetError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let mut input = BufReader::with_capacity(1 << 16, HashingReader::new(reader, progress));
    let head = input.fill_buf().map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Err(DatasetError::NotGzip {
            path: path.to_owned(),
        });
    }
    let mut tar = tar::Archive::new(flate2::bufread::GzDecoder::new(input));
    let mut seen = Seen::default();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let parts = components(&entry.path().map_err(corrupt)?);
        let Some((split, category)) = seen.note(&parts) else {
            continue;
        };
        let wanted = categories.iter().position(|c| c == category);
        if let (Some(label), true, Some(file)) =
            (wanted, entry.header().entry_type().is_file(), parts.get(2))
        {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            let id = format!("{category}/{file}");
            seen.documents[split].push(Document {
                id,
                text: decode_latin1(&bytes),
                label,
            });
        }
    }
    // Hash the whole file, not just up to the tar end marker.
    let mut rest = tar.into_inner().into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(corrupt)?;
    let sha256 = rest.into_inner().hex_digest();
    let [mut train, mut test] = seen.check(path, categories)?;
    for docs in [&mut train, &mut test] {
        docs.sort_by(|a, b| (a.label, &a.id).cmp(&(b.label, &b.id)));
    }
    Ok(Dataset {
        categories: categories.to_vec(),
        train,
        test,
        sha256,
    })
}

/// Path components as strings, without `./` prefixes.
fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// What the archive held: split folders, category folders per split, documents per split.
#[derive(Default)]
struct Seen {
    splits: BTreeSet<usize>,
    categories: [BTreeMap<String, usize>; 2],
    documents: [Vec<Document>; 2],
}

impl Seen {
    /// Records the split and category of an entry; returns them when the entry is inside both.
    fn note<'p>(&mut self, parts: &'p [String]) -> Option<(usize, &'p str)> {
        let split = SPLITS
            .iter()
            .position(|s| Some(*s) == parts.first().map(String::as_str))?;
        self.splits.insert(split);
        let category = parts.get(1)?;
        let files = self.categories[split].entry(category.clone()).or_default();
        if parts.len() > 2 {
            *files += 1;
        }
        Some((split, category))
    }

    fn check(self, path: &Path, categories: &[String]) -> Result<[Vec<Document>; 2], DatasetError> {
        for (i, split) in SPLITS.iter().enumerate() {
            if !self.splits.contains(&i) {
                return Err(DatasetError::MissingSplit {
                    path: path.to_owned(),
                    split,
                });
            }
            for category in categories {
                match self.categories[i].get(category) {
                    None => {
                        return Err(DatasetError::MissingCategory {
                            path: path.to_owned(),
                            split,
                            category: category.clone(),
                            found: self.categories[i]
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                    Some(0) => {
                        return Err(DatasetError::EmptyCategory {
                            path: path.to_owned(),
                            split,
                            category: category.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(self.documents)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::progress::NoProgress;

    /// Builds a small tar.gz in memory; `entries` are (path, contents), a trailing `/` makes a folder.
    pub(crate) fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            if path.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
            } else {
                header.set_size(data.len() as u64);
            }
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        builder
            .into_inner()
            .and_then(|gz| gz.finish())
            .expect("finish")
    }

    fn cats(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn read(bytes: &[u8], categories: &[&str]) -> Result<Dataset, DatasetError> {
        read_archive_from(
            bytes,
            Path::new("fixture.tar.gz"),
            &cats(categories),
            &NoProgress,
        )
    }

    pub(crate) fn fixture() -> Vec<u8> {
        tar_gz(&[
            ("20news-bydate-train/", b""),
            ("20news-bydate-train/rec.autos/2", b"engine car"),
            ("20news-bydate-train/rec.autos/10", b"caf\xe9 car"),
            ("./20news-bydate-train/sci.space/1", b"orbit"),
            ("20news-bydate-train/rec.sport.hockey/5", b"puck goal"),
            ("20news-bydate-test/rec.autos/3", b"car"),
            ("20news-bydate-test/rec.sport.hockey/6", b"puck"),
            ("20news-bydate-test/sci.space/7", b"moon"),
        ])
    }

    #[test]
    fn reads_chosen_categories_sorted_and_latin1() {
        let d = read(&fixture(), &["rec.sport.hockey", "rec.autos"]).expect("read");
        let ids: Vec<_> = d.train.iter().map(|x| (x.id.as_str(), x.label)).collect();
        assert_eq!(
            ids,
            [
                ("rec.sport.hockey/5", 0),
                ("rec.autos/10", 1),
                ("rec.autos/2", 1)
            ]
        );
        assert_eq!(d.train[1].text, "café car");
        assert_eq!(d.test.len(), 2);
        assert_eq!(d.sha256.len(), 64);
    }

    #[test]
    fn checksum_is_of_the_whole_file_and_is_enforced() {
        use sha2::Digest;
        let bytes = fixture();
        let expected = crate::progress::to_hex(&sha2::Sha256::digest(&bytes));
        assert_eq!(
            read(&bytes, &["rec.autos", "sci.space"])
                .expect("read")
                .sha256,
            expected
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.tar.gz");
        std::fs::write(&path, &bytes).expect("write");
        let c = cats(&["rec.autos", "sci.space"]);
        assert!(read_archive(&path, &c, Some(&expected.to_uppercase()), &NoProgress).is_ok());
        let err =
            read_archive(&path, &c, Some(&"0".repeat(64)), &NoProgress).expect_err("mismatch");
        assert!(matches!(err, DatasetError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains(&expected));
    }

    #[test]
    fn not_gzip_is_named() {
        let err = read(b"PK\x03\x04 a zip file", &["rec.autos", "sci.space"]).expect_err("zip");
        assert!(matches!(err, DatasetError::NotGzip { .. }), "{err}");
    }

    #[test]
    fn gzip_that_is_not_tar_is_corrupt() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 2000]).expect("write");
        let err =
            read(&gz.finish().expect("gz"), &["rec.autos", "sci.space"]).expect_err("not tar");
        assert!(matches!(err, DatasetError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn truncated_archive_is_corrupt() {
        let bytes = fixture();
        let err = read(&bytes[..bytes.len() / 2], &["rec.autos", "sci.space"]).expect_err("cut");
        assert!(matches!(err, DatasetError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn missing_split_category_and_empty_category_are_named() {
        let only_train = tar_gz(&[
            ("20news-bydate-train/rec.autos/1", b"car"),
            ("20news-bydate-train/sci.space/1", b"x"),
        ]);
        let err = read(&only_train, &["rec.autos", "sci.space"]).expect_err("no test split");
        assert!(
            matches!(
                err,
                DatasetError::MissingSplit {
                    split: TEST_DIR,
                    ..
                }
            ),
            "{err}"
        );

        let err = read(&fixture(), &["rec.autos", "sci.med"]).expect_err("no sci.med");
        assert!(
            matches!(&err, DatasetError::MissingCategory { category, .. } if category == "sci.med"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("rec.autos, rec.sport.hockey, sci.space"),
            "{err}"
        );

        let empty = tar_gz(&[
            ("20news-bydate-train/rec.autos/1", b"car"),
            ("20news-bydate-train/sci.med/", b""),
            ("20news-bydate-test/rec.autos/1", b"car"),
            ("20news-bydate-test/sci.med/1", b"pill"),
        ]);
        let err = read(&empty, &["rec.autos", "sci.med"]).expect_err("empty");
        assert!(
            matches!(
                err,
                DatasetError::EmptyCategory {
                    split: TRAIN_DIR,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_or_repeated_categories_fail_before_reading() {
        let err = read(b"", &["rec.autos", "rec.auto"]).expect_err("typo");
        assert!(matches!(err, DatasetError::UnknownCategory { .. }), "{err}");
        assert!(err.to_string().contains("rec.sport.hockey"));
        let err = read(b"", &["rec.autos", "rec.autos"]).expect_err("twice");
        assert!(matches!(err, DatasetError::BadCategoryList(_)), "{err}");
    }
}
