//! Download of the canonical archive with mirror fallback, SHA-256 verification and a cache.
//!
//! The file is streamed into a temporary file beside the cache and renamed only once its checksum
//! is right, so an interrupted or corrupted download never leaves a half file where the cache is.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::progress::{HashingReader, Progress, to_hex};

/// SHA-256 of the canonical `20news-bydate.tar.gz` (the one scikit-learn verifies).
pub const CANONICAL_SHA256: &str =
    "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610";

/// Where scikit-learn downloads the archive, then the original author's copy as a fallback.
pub const MIRRORS: [&str; 2] = [
    "https://ndownloader.figshare.com/files/5975967",
    "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",
];

/// File name of the cached archive.
pub const ARCHIVE_NAME: &str = "20news-bydate.tar.gz";

/// The archive is about 14 MB; anything far larger is not it.
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Why the archive could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The cache folder could not be written.
    #[error("cannot write to the cache folder {path}")]
    Cache {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every mirror failed.
    #[error("could not download the dataset from any mirror ({}); without internet, pass a local copy with --archive PATH (env NEWSGROUPS_ARCHIVE)", .0.join("; "))]
    AllMirrorsFailed(Vec<String>),
}

/// What [`ensure_archive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The cached file was already there with the right checksum.
    Cached(PathBuf),
    /// The file was downloaded from this URL.
    Downloaded(PathBuf, String),
}

impl Fetched {
    /// The archive on disk.
    pub fn path(&self) -> &Path {
        match self {
            Self::Cached(p) | Self::Downloaded(p, _) => p,
        }
    }
}

/// Returns `cache_dir/20news-bydate.tar.gz`, downloading it from the first mirror that answers
/// with the right SHA-256 unless a valid copy is already cached.
pub fn ensure_archive(
    cache_dir: &Path,
    urls: &[String],
    sha256: &str,
    progress: &dyn Progress,
) -> Result<Fetched, DownloadError> {
    let target = cache_dir.join(ARCHIVE_NAME);
    if file_sha256(&target).is_some_and(|h| h.eq_ignore_ascii_case(sha256)) {
        return Ok(Fetched::Cached(target));
    }
    std::fs::create_dir_all(cache_dir).map_err(|source| DownloadError::Cache {
        path: cache_dir.to_owned(),
        source,
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_global(Some(Duration::from_secs(15 * 60)))
        .user_agent(concat!("doc-classifier-train/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut failures = Vec::new();
    for url in urls {
        match download_one(&agent, url, &target, sha256, progress) {
            Ok(()) => return Ok(Fetched::Downloaded(target, url.clone())),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(DownloadError::AllMirrorsFailed(failures))
}

fn download_one(
    agent: &ureq::Agent,
    url: &str,
    target: &Path,
    sha256: &str,
    progress: &dyn Progress,
) -> Result<(), String> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total = response.body().content_length();
    progress.start("downloading", total);
    let mut temp = crate::artifact::readable_temp_file(dir, ".20news-download-")
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let body = response.body_mut().as_reader().take(MAX_BYTES + 1);
    let mut reader = HashingReader::new(body, progress);
    let copied = std::io::copy(&mut reader, temp.as_file_mut());
    progress.finish();
    let n = copied.map_err(|e| format!("download interrupted: {e}"))?;
    if n > MAX_BYTES {
        return Err(format!(
            "response is larger than {MAX_BYTES} bytes; not the dataset"
        ));
    }
    let actual = reader.hex_digest();
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(format!(
            "checksum mismatch: expected sha256 {sha256}, got {actual}"
        ));
    }
    temp.as_file_mut()
        .flush()
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| e.to_string())?;
    temp.persist(target).map_err(|e| {
        format!(
            "cannot move the download to {}: {}",
            target.display(),
            e.error
        )
    })?;
    Ok(())
}

/// SHA-256 of a file, or `None` if it cannot be read.
pub fn file_sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(to_hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A tiny HTTP/1.1 server on 127.0.0.1 answering `path -> (status, body)`; records the paths asked.
    fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                log.lock().expect("lock").push(path.clone());
                let (status, body) = routes
                    .iter()
                    .find(|r| r.0 == path)
                    .map_or((404, b"not found".to_vec()), |r| (r.1, r.2.clone()));
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(&body));
            }
        });
        (base, asked)
    }

    fn sha(bytes: &[u8]) -> String {
        use sha2::Digest;
        to_hex(&sha2::Sha256::digest(bytes))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn falls_back_to_the_next_mirror_verifies_and_caches() {
        let payload = b"pretend archive".to_vec();
        let (base, asked) = serve(vec![("/good", 200, payload.clone())]);
        let dir = tempfile::tempdir().expect("tempdir");
        let urls = vec![format!("{base}/missing"), format!("{base}/good")];
        let got = ensure_archive(dir.path(), &urls, &sha(&payload), &NoProgress).expect("download");
        assert_eq!(
            got,
            Fetched::Downloaded(dir.path().join(ARCHIVE_NAME), urls[1].clone())
        );
        assert_eq!(std::fs::read(got.path()).expect("read"), payload);
        assert_eq!(leftovers(dir.path()), [ARCHIVE_NAME]);

        // A second call finds the valid cache and asks nobody.
        let before = asked.lock().expect("lock").len();
        let again = ensure_archive(dir.path(), &urls, &sha(&payload), &NoProgress).expect("cached");
        assert!(matches!(again, Fetched::Cached(_)));
        assert_eq!(asked.lock().expect("lock").len(), before);
    }

    #[test]
    fn wrong_checksum_leaves_no_file_and_says_why() {
        let (base, _) = serve(vec![("/evil", 200, b"tampered".to_vec())]);
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ensure_archive(
            dir.path(),
            &[format!("{base}/evil")],
            CANONICAL_SHA256,
            &NoProgress,
        )
        .expect_err("bad checksum");
        let msg = err.to_string();
        assert!(
            msg.contains("checksum mismatch") && msg.contains("--archive"),
            "{msg}"
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn a_stale_cache_is_replaced() {
        let payload = b"fresh".to_vec();
        let (base, _) = serve(vec![("/a", 200, payload.clone())]);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ARCHIVE_NAME), b"half a downl").expect("write");
        let got = ensure_archive(
            dir.path(),
            &[format!("{base}/a")],
            &sha(&payload),
            &NoProgress,
        )
        .expect("download");
        assert!(matches!(got, Fetched::Downloaded(..)));
        assert_eq!(std::fs::read(got.path()).expect("read"), payload);
    }

    #[test]
    fn unreachable_mirror_is_reported() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ensure_archive(
            dir.path(),
            &[format!("http://127.0.0.1:{port}/x")],
            CANONICAL_SHA256,
            &NoProgress,
        )
        .expect_err("closed port");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}
