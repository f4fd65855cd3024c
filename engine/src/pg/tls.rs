//! TLS to the database server, with libpq's `sslmode` semantics.
//!
//! | `sslmode`     | TLS                         | server certificate checked                 |
//! |---------------|-----------------------------|--------------------------------------------|
//! | `disable`     | never                       | -                                          |
//! | `allow`       | only if plain text is refused | chain, when a root certificate is present |
//! | `prefer`      | tried first (default)       | chain, when a root certificate is present  |
//! | `require`     | always                      | chain, when a root certificate is present  |
//! | `verify-ca`   | always                      | chain (root certificate required)          |
//! | `verify-full` | always                      | chain and host name                        |
//!
//! The root certificate is `sslrootcert` or, as libpq does, `~/.postgresql/root.crt` when it
//! exists; `sslrootcert=system` uses the system's trust store (and then implies
//! `verify-full`, as in libpq 16). A client certificate is `sslcert`/`sslkey` or
//! `~/.postgresql/postgresql.crt`/`.key` when present; `sslcrl` names a revocation list.
//! Unix-socket connections never use TLS (libpq ignores `sslmode` there).
//!
//! Built on rustls with the ring provider: no system OpenSSL is needed to build or run.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::{Serialize, Serializer};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// Parse a libpq `sslmode` value.
    pub fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode `{other}` (expected disable, allow, prefer, require, verify-ca or verify-full)"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must chain to a trusted root.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SslMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The TLS settings of a connection, as libpq names them (file paths as given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings<'a> {
    pub sslmode: Option<&'a str>,
    pub sslrootcert: Option<&'a str>,
    pub sslcert: Option<&'a str>,
    pub sslkey: Option<&'a str>,
    pub sslcrl: Option<&'a str>,
}

/// How to connect over TCP: the effective mode and, unless it is `disable`, the connector.
pub struct TlsPlan {
    pub mode: SslMode,
    pub connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// What the server's certificate is checked against, for messages.
    pub checks: String,
}

impl fmt::Debug for TlsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPlan")
            .field("mode", &self.mode)
            .field("checks", &self.checks)
            .finish_non_exhaustive()
    }
}

/// The effective `sslmode`: the one given, else `prefer`, or `verify-full` with
/// `sslrootcert=system` (libpq 16), which refuses weaker modes.
pub fn effective_mode(s: &TlsSettings<'_>) -> Result<SslMode, String> {
    let system = s.sslrootcert == Some("system");
    let mode = match s.sslmode.filter(|m| !m.is_empty()) {
        Some(m) => SslMode::parse(m)?,
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if system && mode != SslMode::VerifyFull && mode != SslMode::Disable {
        return Err(format!(
            "sslmode `{mode}` may not be used with sslrootcert=system (use verify-full)"
        ));
    }
    Ok(mode)
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
}

/// `~/.postgresql/<name>` when it exists (libpq's default locations).
fn default_file(name: &str) -> Option<PathBuf> {
    let p = home_dir()?.join(".postgresql").join(name);
    p.is_file().then_some(p)
}

fn read_pem_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    const MAX: u64 = 4 << 20;
    let f = std::fs::File::open(path)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{what} `{}` is not a regular file", path.display()));
    }
    if meta.len() > MAX {
        return Err(format!(
            "{what} `{}` is larger than {} MiB",
            path.display(),
            MAX >> 20
        ));
    }
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX), &mut buf)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    Ok(buf)
}

fn load_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem_file(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} `{}` is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} `{}` holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// libpq refuses a private key others can read: owned by this user and not accessible to
/// group or others, or owned by root and at most group-readable.
fn check_key_mode(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read private key `{}`: {e}", path.display()))?;
    let mode = meta.mode();
    let me = nix::unistd::geteuid().as_raw();
    let loose = if meta.uid() == me {
        mode & 0o077 != 0
    } else if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        false
    };
    if loose {
        return Err(format!(
            "private key `{}` has group or world access (mode {:o}); it must be 0600 (or 0640 owned by root)",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// Work out how to connect over TCP for these settings: reads the root certificate, client
/// certificate and key, and the revocation list. Errors name the file and what is wrong.
pub fn plan(s: &TlsSettings<'_>) -> Result<TlsPlan, String> {
    let mode = effective_mode(s)?;
    if mode == SslMode::Disable {
        return Ok(TlsPlan {
            mode,
            connector: None,
            checks: "no TLS".into(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    // Roots.
    let mut roots = RootCertStore::empty();
    let root_desc;
    match s.sslrootcert.filter(|r| !r.is_empty()) {
        Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(
                    "sslrootcert=system, but no trusted certificates were found in the system's store"
                        .into(),
                );
            }
            root_desc = Some("the system's trusted certificates".to_string());
        }
        Some(path) => {
            let path = Path::new(path);
            if !path.exists() && !mode.verifies() {
                // libpq: a missing root file only matters when verifying.
                root_desc = None;
            } else {
                add_roots(&mut roots, path)?;
                root_desc = Some(format!("root certificate `{}`", path.display()));
            }
        }
        None => match default_file("root.crt") {
            Some(path) => {
                add_roots(&mut roots, &path)?;
                root_desc = Some(format!("root certificate `{}`", path.display()));
            }
            None => root_desc = None,
        },
    }
    if mode.verifies() && root_desc.is_none() {
        return Err(format!(
            "sslmode={mode} needs a root certificate to check the server's against: set sslrootcert (database.yml, --database-url or PGSSLROOTCERT) or put it in ~/.postgresql/root.crt"
        ));
    }

    // Revocation list.
    let mut crls = Vec::new();
    if let Some(path) = s.sslcrl.filter(|c| !c.is_empty()) {
        let path = Path::new(path);
        let pem = read_pem_file("revocation list", path)?;
        crls = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("revocation list `{}` is not valid PEM: {e}", path.display()))?;
    }

    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let (builder, checks) = match &root_desc {
        None => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone()))),
            "no certificate check (no root certificate)".to_string(),
        ),
        Some(desc) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            if mode == SslMode::VerifyFull {
                (
                    builder.with_webpki_verifier(webpki),
                    format!("certificate chain against {desc} and host name"),
                )
            } else {
                (
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))),
                    format!("certificate chain against {desc}"),
                )
            }
        }
    };

    // Client certificate.
    let cert = match s.sslcert.filter(|c| !c.is_empty()) {
        Some(c) => Some(PathBuf::from(c)),
        None => default_file("postgresql.crt"),
    };
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let certs = load_certs("client certificate", &cert)?;
            let key = match s.sslkey.filter(|k| !k.is_empty()) {
                Some(k) => PathBuf::from(k),
                None => home_dir()
                    .map(|h| h.join(".postgresql/postgresql.key"))
                    .unwrap_or_default(),
            };
            check_key_mode(&key)?;
            let pem = read_pem_file("private key", &key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("private key `{}`: {e}", key.display()))?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| {
                format!(
                    "client certificate `{}` and key `{}` do not go together: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
    };
    Ok(TlsPlan {
        mode,
        connector: Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
        checks,
    })
}

fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    for c in load_certs("root certificate", path)? {
        roots
            .add(c)
            .map_err(|e| format!("root certificate `{}`: {e}", path.display()))?;
    }
    Ok(())
}

/// `require`/`prefer`/`allow` without a root certificate: encrypt, check the handshake's
/// signatures, but accept any certificate (libpq's behaviour).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (and `require`/`prefer`/`allow` with a root certificate): the chain must lead
/// to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and revocation) before the name: a name error means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_system_roots_imply_verify_full() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).unwrap().as_str(), m);
        }
        assert!(SslMode::parse("requir").unwrap_err().contains("requir"));
        let s = TlsSettings {
            sslrootcert: Some("system"),
            ..Default::default()
        };
        assert_eq!(effective_mode(&s).unwrap(), SslMode::VerifyFull);
        let s = TlsSettings {
            sslmode: Some("require"),
            sslrootcert: Some("system"),
            ..Default::default()
        };
        assert!(effective_mode(&s).unwrap_err().contains("system"));
        assert_eq!(
            effective_mode(&TlsSettings::default()).unwrap(),
            SslMode::Prefer
        );
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let s = TlsSettings {
            sslmode: Some("verify-ca"),
            sslrootcert: Some("/nonexistent/root.crt"),
            ..Default::default()
        };
        let e = plan(&s).unwrap_err();
        assert!(e.contains("/nonexistent/root.crt"), "{e}");
    }
}
