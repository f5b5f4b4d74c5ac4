//! Peer-link TLS, Syncthing-style: every node has its own key and
//! self-signed certificate, and a parent trusts exactly the certificate
//! whose fingerprint the link token pinned (no CA, no names).
//!
//! Owns the node's peer certificate files (`DIR/tls/peer-cert.pem`, and
//! `DIR/tls/peer-key.pem` mode 0600, made at first need unless
//! `serve.tls_cert`/`serve.tls_key` name others), the fingerprint (SHA-256
//! of the certificate's DER, lowercase hex: what
//! `openssl x509 -noout -fingerprint -sha256` prints, without the colons)
//! and the client-side verifier that checks it. Knows nothing of HTTP or of
//! the protocol; does not read or write the configuration file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::ServeConfig;

/// Directory of the generated certificate, inside a data directory.
pub const TLS_DIR: &str = "tls";
const CERT_FILE: &str = "peer-cert.pem";
const KEY_FILE: &str = "peer-key.pem";

/// Words of the verifier's refusal: the pull recognises a pinning failure
/// by them (the TLS error reaches it only as text inside the HTTP error).
pub const PIN_MISMATCH: &str = "is not the certificate pinned for this link";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Bad { path: PathBuf, detail: String },
    #[error("making the node's certificate: {0}")]
    Generate(String),
    #[error("serve.tls_cert and serve.tls_key: set both, or neither (the node then makes its own)")]
    Half,
    #[error("TLS client: {0}")]
    Client(String),
    #[error(
        "'{0}' is not a certificate fingerprint (64 hex digits: the SHA-256 of the certificate's DER)"
    )]
    Fingerprint(String),
}

/// The certificate and key files this node's peer API presents.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the (first) certificate's DER, lowercase hex.
    pub fingerprint: String,
}

/// Where the peer certificate and key are: the configured files when both
/// are set, else the generated ones in `DIR/tls/`.
pub fn identity_paths(dir: &Path, serve: &ServeConfig) -> (PathBuf, PathBuf) {
    match (&serve.tls_cert, &serve.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (
            dir.join(TLS_DIR).join(CERT_FILE),
            dir.join(TLS_DIR).join(KEY_FILE),
        ),
    }
}

/// The node's peer identity, making a key and self-signed certificate
/// first when none is configured and none was made before (`lumpy serve`
/// and `lumpy peer add` both call this, so a token can be printed before
/// the first start).
pub fn ensure_identity(dir: &Path, serve: &ServeConfig) -> Result<Identity, TlsError> {
    if serve.tls_cert.is_some() != serve.tls_key.is_some() {
        return Err(TlsError::Half);
    }
    let (cert, key) = identity_paths(dir, serve);
    let configured = serve.tls_cert.is_some();
    if !configured && !cert.exists() {
        generate(&cert, &key)?;
    }
    let der = first_cert(&cert)?;
    Ok(Identity {
        cert,
        key,
        fingerprint: fingerprint(&der),
    })
}

/// Writes a new key (0600) then its certificate, each durably: a crash
/// between the two leaves a key without a certificate, which the next call
/// replaces (the certificate's presence is what counts as "made").
fn generate(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let made = rcgen::generate_simple_self_signed(vec!["lumpy-peer".to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    crate::durable::write(
        key,
        made.signing_key.serialize_pem().as_bytes(),
        None,
        Some(0o600),
    )
    .map_err(io(key))?;
    crate::durable::write(cert, made.cert.pem().as_bytes(), None, Some(0o644)).map_err(io(cert))
}

/// The first certificate of a PEM file, as DER.
pub fn first_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| TlsError::Bad {
            path: path.to_path_buf(),
            detail: "no certificate in it".into(),
        })?
        .map_err(|e| TlsError::Bad {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a fingerprint as an operator may paste it: 64 hex digits, any
/// case, colons allowed (openssl's form). Returns it lowercase, no colons.
pub fn parse_fingerprint(text: &str) -> Result<String, TlsError> {
    crate::config::sha256_fingerprint(text).ok_or_else(|| TlsError::Fingerprint(text.to_string()))
}

/// A rustls client configuration that accepts exactly the certificate with
/// `pinned` fingerprint (whatever its names, issuer or dates: the pin is
/// the trust), offering h2 and HTTP/1.1.
pub fn pinned_client_config(pinned: &str) -> Result<rustls::ClientConfig, TlsError> {
    let pinned = parse_fingerprint(pinned)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert {
        pinned,
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts the one certificate whose SHA-256 is `pinned`; the handshake
/// signatures are still checked against that certificate's key, so only
/// its key holder passes.
#[derive(Debug)]
struct PinnedCert {
    pinned: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity.as_ref());
        // Both are public values: a plain comparison leaks nothing secret.
        if got == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate (sha256 {got}) {PIN_MISMATCH} (sha256 {})",
                self.pinned
            )))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_makes_its_identity_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let serve = ServeConfig::default();
        let a = ensure_identity(dir.path(), &serve).unwrap();
        let b = ensure_identity(dir.path(), &serve).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint, "made once, then kept");
        assert_eq!(a.fingerprint.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&a.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let other = tempfile::tempdir().unwrap();
        let c = ensure_identity(other.path(), &serve).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint, "each node its own key");
        let half = ServeConfig {
            tls_cert: Some(a.cert.clone()),
            ..ServeConfig::default()
        };
        assert!(matches!(
            ensure_identity(other.path(), &half),
            Err(TlsError::Half)
        ));
    }

    #[test]
    fn fingerprints_parse_in_openssl_form() {
        let f = "AB:".repeat(31) + "AB";
        assert_eq!(parse_fingerprint(&f).unwrap(), "ab".repeat(32));
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        assert!(pinned_client_config("nope").is_err());
    }
}
