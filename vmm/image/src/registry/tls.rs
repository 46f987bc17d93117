//! TLS for registry connections: rustls on ring, trusting the system's root
//! certificates (as OpenSSL found them: `SSL_CERT_FILE`, `SSL_CERT_DIR`,
//! else `/etc/ssl/certs` and the other usual places), or, with
//! `--insecure`, any certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{ImageError, Result};

/// The client configuration for a registry connection: certificates
/// checked against the system's roots, or not at all when `insecure`.
pub fn client_config(insecure: bool) -> Result<Arc<ClientConfig>> {
    // rustls 0.23.48 deprecated its ring provider for lacking post-quantum
    // key exchange. ring is what ureq 2 builds rustls with anyway; aws-lc-rs
    // would add a second, much heavier C library to build. Debian 12's
    // OpenSSL 3.0, used before, had no post-quantum key exchange either.
    #[allow(deprecated)]
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ImageError::Tls)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(system_roots())
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The system's root certificates; what cannot be read or parsed is
/// logged and left out (OpenSSL skipped it too).
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!("reading system root certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!("{ignored} system root certificates could not be parsed");
    }
    if added == 0 {
        tracing::warn!(
            "no system root certificates found (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs): \
             https registries cannot be verified"
        );
    }
    roots
}

/// `--insecure`: any server certificate is accepted (expired, self-signed,
/// another name). The handshake's signatures are still checked with the
/// certificate's key, so the connection is at least with its holder.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
