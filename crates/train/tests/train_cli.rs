//! End-to-end tests of `train`: through [`train::run`] on the real archive when
//! `NEWSGROUPS_ARCHIVE` names it, and through the binary for errors a user can make.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

fn real_archive() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("NEWSGROUPS_ARCHIVE")?);
    path.exists().then_some(path)
}

fn args(archive: &Path, model: &Path) -> train::Args {
    train::Args::parse_from([
        "train",
        "--quiet",
        "--archive",
        archive.to_str().expect("utf-8 path"),
        "--model",
        model.to_str().expect("utf-8 path"),
    ])
}

#[test]
fn trains_on_the_real_archive_reproducibly() {
    let Some(archive) = real_archive() else {
        eprintln!("skipped: set NEWSGROUPS_ARCHIVE to 20news-bydate.tar.gz to run this test");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("a/model.bin");
    let report = train::run(&args(&archive, &first)).expect("train");
    assert_eq!(
        (report.train_documents, report.test_documents),
        (2389, 1590)
    );
    assert!(
        report.test.accuracy >= 0.90,
        "accuracy {}",
        report.test.accuracy
    );
    assert!(
        report.test.macro_f1 >= 0.90,
        "macro-F1 {}",
        report.test.macro_f1
    );
    assert!(
        report.vocabulary_size > 20_000,
        "vocabulary {}",
        report.vocabulary_size
    );

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("a/model.metrics.json")).expect("report file"),
    )
    .expect("report is JSON");
    assert_eq!(
        json["test"]["accuracy"].as_f64(),
        Some(report.test.accuracy)
    );
    assert_eq!(json["test"]["confusion"].as_array().map(Vec::len), Some(4));
    assert!(json["seconds"]["total"].as_f64().is_some_and(|s| s > 0.0));

    let second = dir.path().join("b/model.bin");
    train::run(&args(&archive, &second)).expect("train again");
    let (a, b) = (
        std::fs::read(&first).expect("a"),
        std::fs::read(&second).expect("b"),
    );
    assert!(
        a == b,
        "two runs on the same data must give byte-identical models"
    );

    let loaded = pipeline::ModelFile::load(&first).expect("load");
    assert_eq!(loaded.metadata.test.accuracy, report.test.accuracy);
    assert_eq!(loaded.metadata.dataset_sha256, report.dataset_sha256);
}

fn train_bin(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .current_dir(dir)
        .env_remove("NEWSGROUPS_ARCHIVE")
        .output()
        .expect("run train");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_archive_fails_in_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, stderr) = train_bin(&["--archive", "missing.tar.gz"], dir.path());
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read archive missing.tar.gz"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());
}

#[test]
fn a_file_that_is_not_an_archive_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    let (ok, stderr) = train_bin(&["--archive", "notes.txt"], dir.path());
    assert!(!ok);
    assert!(stderr.contains("notes.txt is not a gzip file"), "{stderr}");
}

#[test]
fn a_typo_in_a_category_lists_the_real_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.tar.gz"), "x").expect("write");
    let (ok, stderr) = train_bin(
        &[
            "--archive",
            "a.tar.gz",
            "--categories",
            "rec.autos,sci.spaec",
        ],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        stderr.contains("unknown category \"sci.spaec\"") && stderr.contains("sci.space"),
        "{stderr}"
    );
}

#[test]
fn no_internet_and_no_archive_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mirror = format!("http://127.0.0.1:{port}/20news-bydate.tar.gz");
    let (ok, stderr) = train_bin(&["--mirror", &mirror], dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("--archive PATH") && stderr.contains(&mirror),
        "{stderr}"
    );
    assert!(!dir.path().join("data/model.bin").exists());
}
