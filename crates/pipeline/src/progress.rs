//! How long-running work (download, archive reading) reports progress without knowing who listens.

/// Receives progress of one stage at a time; the `train` binary draws it as a bar on a terminal.
pub trait Progress: Sync {
    /// A new stage starts; `total` is its size in bytes when known.
    fn start(&self, stage: &str, total: Option<u64>);
    /// `n` more bytes of the current stage are done.
    fn advance(&self, n: u64);
    /// The current stage is over.
    fn finish(&self);
}

/// Progress that goes nowhere (tests, libraries, non-interactive runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A reader that reports the bytes read through it and hashes them with SHA-256 on the way,
/// so an archive is checked in the same pass that parses it.
pub(crate) struct HashingReader<'p, R> {
    inner: R,
    hasher: sha2::Sha256,
    progress: &'p dyn Progress,
}

impl<'p, R> HashingReader<'p, R> {
    pub(crate) fn new(inner: R, progress: &'p dyn Progress) -> Self {
        use sha2::Digest;
        Self {
            inner,
            hasher: sha2::Sha256::new(),
            progress,
        }
    }

    /// Lowercase hex SHA-256 of everything read so far.
    pub(crate) fn hex_digest(self) -> String {
        use sha2::Digest;
        to_hex(&self.hasher.finalize())
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Lowercase hex of bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
