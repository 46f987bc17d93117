//! A small blocking Distribution API v2 client (manifests and blobs).

use std::cell::RefCell;
use std::io::Read;
use std::time::Duration;

use super::auth::{authorize, parse_challenge, Credentials};
use super::tls;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fetch::{BlobKind, BlobSource};
use crate::image::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::reference::Reference;
use crate::store::MAX_JSON_BYTES;

/// Manifest media types we accept, for the `Accept` header.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Connection settings.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP (and skip TLS verification) for non-loopback registries.
    pub insecure: bool,
    /// Credentials for basic auth or token requests.
    pub credentials: Option<Credentials>,
}

/// A client bound to one repository.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    reference: Reference,
    name: String,
    credentials: Option<Credentials>,
    authorization: RefCell<Option<String>>,
    plain_http: bool,
}

impl Client {
    /// Create a client for `reference`'s registry and repository.
    pub fn new(reference: &Reference, opts: &ClientOptions) -> Result<Self> {
        let plain_http = reference.is_loopback() || opts.insecure;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls::client_config(opts.insecure)?)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .redirects(8)
            // Blob redirects to CDNs must not carry the registry token.
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .build();
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Client {
            agent,
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.api_host(),
                reference.repository
            ),
            reference: reference.clone(),
            name: reference.to_string(),
            credentials: opts.credentials.clone(),
            authorization: RefCell::new(None),
            plain_http,
        })
    }

    fn get(&self, url: &str, accept: Option<&str>) -> Result<ureq::Response> {
        let mut retried = false;
        loop {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(auth) = self.authorization.borrow().as_deref() {
                req = req.set("Authorization", auth);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !retried => {
                    retried = true;
                    let header = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                    let challenge = parse_challenge(&header).ok_or_else(|| ImageError::Auth {
                        reference: self.name.clone(),
                        registry: self.reference.registry.clone(),
                        reason: format!("unsupported challenge {header:?}"),
                    })?;
                    let scope = format!("repository:{}:pull", self.reference.repository);
                    let auth = authorize(
                        &self.agent,
                        &challenge,
                        self.credentials.as_ref(),
                        &scope,
                        self.plain_http,
                    )
                    .map_err(|reason| ImageError::Auth {
                        reference: self.name.clone(),
                        registry: self.reference.registry.clone(),
                        reason,
                    })?;
                    *self.authorization.borrow_mut() = Some(auth);
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let mut body = String::new();
                    let _ = resp.into_reader().take(512).read_to_string(&mut body);
                    return Err(ImageError::RegistryStatus {
                        reference: self.name.clone(),
                        url: url.to_string(),
                        status,
                        message: body.trim().to_string(),
                    });
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(ImageError::RegistryTransport {
                        reference: self.name.clone(),
                        url: url.to_string(),
                        cause: transport_cause(&t),
                    })
                }
            }
        }
    }

    /// Fetch a manifest by tag or digest: body and `Content-Type`.
    pub fn manifest(&self, tag_or_digest: &str) -> Result<(Vec<u8>, Option<String>)> {
        let url = format!("{}/manifests/{tag_or_digest}", self.base);
        let resp = self.get(&url, Some(ACCEPT))?;
        let ct = resp
            .header("Content-Type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_JSON_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| ImageError::RegistryRead {
                reference: self.name.clone(),
                url: url.clone(),
                source: e,
            })?;
        if body.len() as u64 > MAX_JSON_BYTES {
            return Err(ImageError::InvalidImage {
                reference: self.name.clone(),
                reason: format!("manifest at {url} is larger than {MAX_JSON_BYTES} bytes"),
            });
        }
        let ct = ct.filter(|c| {
            [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&c.as_str())
        });
        Ok((body, ct))
    }
}

impl BlobSource for Client {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self, kind: BlobKind, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        let what = match kind {
            BlobKind::Manifest => "manifests",
            BlobKind::Blob => "blobs",
        };
        let url = format!("{}/{what}/{digest}", self.base);
        let accept = (kind == BlobKind::Manifest).then_some(ACCEPT);
        let resp = self.get(&url, accept)?;
        Ok(Box::new(resp.into_reader()))
    }
}

/// A transport error's kind and innermost cause, without the URL that
/// ureq's own `Display` repeats.
fn transport_cause(t: &ureq::Transport) -> String {
    let mut cause = t.kind().to_string();
    let mut inner: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    let mut last = None;
    while let Some(e) = inner {
        last = Some(e.to_string());
        inner = e.source();
    }
    match (last, t.message()) {
        (Some(root), _) => cause = format!("{cause}: {root}"),
        (None, Some(msg)) => cause = format!("{cause}: {msg}"),
        (None, None) => {}
    }
    cause
}
