//! A tiny HTTPS server with a certificate from a test CA (rcgen), and a
//! plain-HTTP server redirecting every request to it: enough of a registry
//! to check how the client verifies certificates.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The manifest every `/manifests/` request gets.
pub const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

/// A test CA and a server certificate it signed.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TestPki {
    /// A CA and a certificate for `ips` signed by it.
    pub fn new(ips: &[IpAddr]) -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "vmrun test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let names: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "vmrun test registry");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// Write the CA certificate to `path`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).unwrap();
    }
}

/// Serve HTTPS on all addresses (a free port) with `pki`'s certificate:
/// `/manifests/` paths get [`MANIFEST`], anything else 404. Returns the port.
pub fn serve_https(pki: &TestPki) -> u16 {
    // ring is the provider the crate uses (see src/registry/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(tls) = ServerConnection::new(config) else {
                    return;
                };
                // A client refusing the certificate ends the handshake:
                // reading the request fails, nothing to answer.
                let mut stream = StreamOwned::new(tls, tcp);
                let Some(path) = request_path(&mut stream) else {
                    return;
                };
                let reply = if path.contains("/manifests/") {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{MANIFEST}",
                        MANIFEST.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(reply.as_bytes());
                let _ = stream.flush();
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    port
}

/// Serve plain HTTP on 127.0.0.1 (a free port), redirecting every request
/// to the same path on `https://127.0.0.1:<https_port>`. Returns the port.
pub fn serve_redirect(https_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut tcp) = conn else { continue };
            std::thread::spawn(move || {
                let Some(path) = request_path(&mut tcp) else {
                    return;
                };
                let reply = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://127.0.0.1:{https_port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tcp.write_all(reply.as_bytes());
            });
        }
    });
    port
}

/// Read a request's head; its path, or None if the connection failed.
fn request_path(stream: &mut impl std::io::Read) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let path = first.split_whitespace().nth(1)?.to_string();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            return Some(path);
        }
    }
}

/// This host's address on its default route, if it has one that is not
/// loopback (no packet is sent to find it).
pub fn non_loopback_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Whether `ip` accepts connections (a firewall may drop them).
pub fn reachable(ip: IpAddr, port: u16) -> bool {
    TcpStream::connect_timeout(&(ip, port).into(), std::time::Duration::from_secs(2)).is_ok()
}
