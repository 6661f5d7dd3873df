//! TLS for the span exporters, from the OTLP exporter's standard variables: a collector behind a
//! private CA (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`) or asking for a client certificate
//! (`..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`), PEM files all three.
//!
//! opentelemetry-otlp 0.33 reads none of them, and its gRPC exporter gives an `https://`
//! endpoint no trusted roots at all, so every export to a collector with a public or corporate
//! certificate would fail; here both protocols trust the system's roots plus the configured CA.
//! A file that cannot be read or holds no PEM block stops the start with a line naming the
//! variable, where the exporter would otherwise fail every export much later.

use std::path::PathBuf;

/// The TLS material the variables name, read once at start.
#[derive(Clone, Default)]
pub struct ExportTls {
    /// Extra trusted CA certificates (a PEM bundle), trusted with the system's roots.
    ca: Option<Pem>,
    /// The client certificate chain and its private key, for collectors that require mTLS.
    identity: Option<(Pem, Pem)>,
}

/// The contents of a PEM file, with the variable and path it came from (for messages).
#[derive(Clone)]
struct Pem {
    bytes: Vec<u8>,
    origin: String,
}

impl std::fmt::Debug for ExportTls {
    /// Names the files, never their contents (a private key).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportTls")
            .field("ca", &self.ca.as_ref().map(|p| &p.origin))
            .field(
                "identity",
                &self.identity.as_ref().map(|(c, k)| (&c.origin, &k.origin)),
            )
            .finish()
    }
}

impl ExportTls {
    /// Reads the files the variables name (the `TRACES_` one first, as for every OTLP setting).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(super::env_nonempty)
    }

    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let setting = |suffix: &str| {
            let traces = format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}");
            let generic = format!("OTEL_EXPORTER_OTLP_{suffix}");
            var(&traces)
                .map(|v| (traces, v))
                .or_else(|| var(&generic).map(|v| (generic, v)))
        };
        let ca = setting("CERTIFICATE")
            .map(|(name, path)| read_pem(&name, &path, "CERTIFICATE", "certificate"))
            .transpose()?;
        let identity = match (setting("CLIENT_CERTIFICATE"), setting("CLIENT_KEY")) {
            (None, None) => None,
            (Some((cert_var, cert)), Some((key_var, key))) => Some((
                read_pem(&cert_var, &cert, "CERTIFICATE", "certificate")?,
                read_pem(&key_var, &key, "PRIVATE KEY", "private key")?,
            )),
            (Some((set, _)), None) | (None, Some((set, _))) => {
                let missing = if set.ends_with("KEY") {
                    "OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE"
                } else {
                    "OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY"
                };
                return Err(format!(
                    "{set} is set but {missing} is not; a client certificate needs both (or neither)"
                ));
            }
        };
        Ok(Self { ca, identity })
    }

    /// The HTTP client's TLS settings: the system's roots plus the CA, and the client identity.
    pub fn apply_to_reqwest(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if let Some(ca) = &self.ca {
            let certs = reqwest::Certificate::from_pem_bundle(&ca.bytes)
                .map_err(|e| format!("{}: not a PEM certificate bundle ({e})", ca.origin))?;
            builder = builder.tls_certs_merge(certs);
        }
        if let Some((cert, key)) = &self.identity {
            let mut pem = cert.bytes.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&key.bytes);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "{} with {}: not a usable certificate and key ({e})",
                    cert.origin, key.origin
                )
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }

    /// The gRPC channel's TLS settings for an `https://` endpoint: the system's roots plus the
    /// CA, and the client identity.
    pub fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(&ca.bytes));
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(tonic::transport::Identity::from_pem(
                &cert.bytes,
                &key.bytes,
            ));
        }
        config
    }
}

/// Reads `path` (named by `var`) and checks that it holds a PEM block whose label ends with
/// `label` (`CERTIFICATE`, or `PRIVATE KEY` for PKCS#8, RSA and EC keys alike).
fn read_pem(var: &str, path: &str, label: &str, what: &str) -> Result<Pem, String> {
    let origin = format!("{var}={path}");
    let bytes = std::fs::read(PathBuf::from(path))
        .map_err(|e| format!("cannot read the {what} file {origin}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text.lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if !has_block {
        return Err(format!(
            "{origin} holds no PEM {what} (a \"-----BEGIN ...{label}-----\" block); give the PEM file, not DER"
        ));
    }
    Ok(Pem { bytes, origin })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n";

    fn files() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, CERT).expect("write");
        std::fs::write(&key, KEY).expect("write");
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        (dir, path(cert), path(key))
    }

    fn read(vars: &[(&str, &str)]) -> Result<ExportTls, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ExportTls::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_nothing_configured() {
        let tls = read(&[]).expect("no variables is fine");
        assert!(tls.ca.is_none() && tls.identity.is_none());
    }

    #[test]
    fn the_traces_variable_wins_over_the_generic_one() {
        let (_dir, cert, _) = files();
        let tls = read(&[
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ])
        .expect("the generic path is never read");
        let origin = tls.ca.expect("a CA").origin;
        assert!(
            origin.starts_with("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE="),
            "{origin}"
        );
    }

    #[test]
    fn a_missing_file_names_the_variable_and_the_path() {
        let e = read(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")])
            .expect_err("missing file");
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem")
                && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_a_pem_block_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a]).expect("write");
        let e =
            read(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", &der.to_string_lossy())]).expect_err("DER");
        assert!(e.contains("holds no PEM certificate"), "{e}");
        // A key where the certificate belongs is refused too.
        let (_d, cert, key) = files();
        let e = read(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &key),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &cert),
        ])
        .expect_err("swapped");
        assert!(
            e.contains("CLIENT_CERTIFICATE=") && e.contains("no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn half_a_client_identity_is_refused() {
        let (_dir, cert, key) = files();
        let e = read(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert)]).expect_err("no key");
        assert!(e.contains("CLIENT_KEY is not"), "{e}");
        let e = read(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &key)]).expect_err("no cert");
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY is set")
                && e.contains("CLIENT_CERTIFICATE is not"),
            "{e}"
        );
        let tls = read(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &key),
        ])
        .expect("both halves, from either variable");
        assert!(tls.identity.is_some());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (_dir, cert, key) = files();
        let tls = read(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ])
        .expect("identity");
        let shown = format!("{tls:?}");
        assert!(
            shown.contains("key.pem") && !shown.contains("MHc"),
            "{shown}"
        );
    }
}
