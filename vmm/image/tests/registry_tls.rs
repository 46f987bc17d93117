//! Registry connections over TLS (rustls): a certificate from a CA the
//! system does not trust is refused, `--insecure` accepts it, and a CA the
//! system trusts (`SSL_CERT_FILE`, as with OpenSSL) makes it verify.
//!
//! One test in its own binary: it sets `SSL_CERT_FILE` for the process.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::tls_server::{
    non_loopback_ip, reachable, serve_https, serve_redirect, TestPki, MANIFEST,
};
use vmrun_image::registry::{Client, ClientOptions};
use vmrun_image::{ImageError, Reference};

fn fetch(registry: &str, insecure: bool) -> Result<Vec<u8>, String> {
    let reference: Reference = format!("{registry}/test/img:v1").parse().unwrap();
    let client = Client::new(
        &reference,
        &ClientOptions {
            insecure,
            credentials: None,
        },
    )
    .map_err(|e| e.to_string())?;
    match client.manifest("v1") {
        Ok((body, content_type)) => {
            assert_eq!(
                content_type.as_deref(),
                Some("application/vnd.oci.image.manifest.v1+json")
            );
            Ok(body)
        }
        Err(e @ ImageError::RegistryTransport { .. }) => Err(e.to_string()),
        Err(e) => panic!("not a transport error: {e}"),
    }
}

fn assert_refused(result: Result<Vec<u8>, String>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "{what}: {err}"
    );
}

#[test]
fn certificates_are_verified_against_the_system_roots_unless_insecure() {
    std::env::remove_var("SSL_CERT_FILE");
    std::env::remove_var("SSL_CERT_DIR");
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let host_ip = non_loopback_ip();
    let mut ips = vec![loopback];
    ips.extend(host_ip);
    let pki = TestPki::new(&ips);
    let https_port = serve_https(&pki);
    // A loopback registry is spoken to over plain HTTP; its redirect to
    // HTTPS (as registries redirect blobs to a CDN) goes through TLS.
    let redirecting = format!("127.0.0.1:{}", serve_redirect(https_port));
    // A registry that is not loopback is spoken to over HTTPS directly.
    let direct = host_ip
        .filter(|ip| reachable(*ip, https_port))
        .map(|ip| format!("{ip}:{https_port}"));

    // The test CA is in no system store: refused.
    assert_refused(fetch(&redirecting, false), "redirect to https, no CA");
    if let Some(direct) = &direct {
        assert_refused(fetch(direct, false), "https registry, no CA");
    }

    // --insecure accepts any certificate.
    let body = fetch(&redirecting, true).expect("redirect to https, --insecure");
    assert_eq!(body, MANIFEST.as_bytes());

    // The CA in the system's trust (SSL_CERT_FILE, as OpenSSL reads it).
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    pki.write_ca(&ca);
    std::env::set_var("SSL_CERT_FILE", &ca);
    let body = fetch(&redirecting, false).expect("redirect to https, CA trusted");
    assert_eq!(body, MANIFEST.as_bytes());
    match &direct {
        Some(direct) => {
            let body = fetch(direct, false).expect("https registry, CA trusted");
            assert_eq!(body, MANIFEST.as_bytes());
        }
        None => common::skip(
            "certificates_are_verified_against_the_system_roots_unless_insecure",
            "no reachable non-loopback address: the direct HTTPS registry part did not run",
        ),
    }
}
