//! Registry authentication: `WWW-Authenticate` challenges, anonymous and
//! credentialed bearer tokens, basic auth, and credential lookup in
//! containers/docker auth files.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A username/password pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// Parse `USER:PASSWORD` (as given to `--creds`).
    pub fn parse(s: &str) -> Option<Self> {
        let (u, p) = s.split_once(':')?;
        (!u.is_empty()).then(|| Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }

    /// `Basic …` header value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic auth.
    Basic,
    /// Token auth: fetch a token from `realm`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
        /// `scope` parameter.
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), val));
    }
    out
}

/// Percent-encode a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Answer `challenge`: returns the `Authorization` header value to use.
/// Credentials are only sent to a plain-HTTP token endpoint when
/// `allow_plain_http` (loopback registry or `--insecure`).
pub fn authorize(
    agent: &ureq::Agent,
    challenge: &Challenge,
    creds: Option<&Credentials>,
    default_scope: &str,
    allow_plain_http: bool,
) -> Result<String, String> {
    match challenge {
        Challenge::Basic => creds.map(Credentials::basic_header).ok_or_else(|| {
            "registry requires credentials (use --creds or an auth file)".to_string()
        }),
        Challenge::Bearer {
            realm,
            service,
            scope,
        } => {
            let mut url = format!(
                "{realm}?scope={}",
                url_encode(scope.as_deref().unwrap_or(default_scope))
            );
            if let Some(s) = service {
                url.push_str(&format!("&service={}", url_encode(s)));
            }
            let tls = realm.starts_with("https://");
            let plain_ok = allow_plain_http && realm.starts_with("http://");
            if !(tls || plain_ok) {
                return Err(format!(
                    "refusing token endpoint {realm:?}: not https (use --insecure to allow plain HTTP)"
                ));
            }
            let mut req = agent.get(&url);
            if let Some(c) = creds {
                req = req.set("Authorization", &c.basic_header());
            }
            let resp = req.call().map_err(|e| match e {
                ureq::Error::Status(code, _) => {
                    format!("token endpoint {realm} returned HTTP {code}")
                }
                ureq::Error::Transport(t) => format!("token endpoint {realm}: {t}"),
            })?;
            let mut body = Vec::new();
            resp.into_reader()
                .take(1 << 20)
                .read_to_end(&mut body)
                .map_err(|e| format!("reading token: {e}"))?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| format!("token response is not JSON: {e}"))?;
            let token = v
                .get("token")
                .or_else(|| v.get("access_token"))
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .ok_or("token response has no token")?;
            Ok(format!("Bearer {token}"))
        }
    }
}

/// Auth files consulted, in order: `explicit`, `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`.
pub fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = explicit {
        v.push(p.to_path_buf());
        return v;
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        v.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(PathBuf::from(p).join("containers/auth.json"));
    }
    if let Some(p) = std::env::var_os("HOME") {
        v.push(PathBuf::from(p).join(".docker/config.json"));
    }
    v
}

/// Look up credentials for `registry` in the auth files.
pub fn lookup_credentials(registry: &str, explicit: Option<&Path>) -> Option<Credentials> {
    let keys = if registry == crate::reference::DEFAULT_REGISTRY {
        vec![
            registry.to_string(),
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
        ]
    } else {
        vec![registry.to_string(), format!("https://{registry}")]
    };
    for file in auth_files(explicit) {
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
            tracing::warn!("ignoring unparsable auth file {}", file.display());
            continue;
        };
        for k in &keys {
            let Some(auth) = v
                .pointer(&format!(
                    "/auths/{}",
                    k.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(|e| e.get("auth"))
                .and_then(|a| a.as_str())
            else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()?;
            return Credentials::parse(&String::from_utf8_lossy(&decoded));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            url_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        let c = Credentials::parse("u:p:q").unwrap();
        assert_eq!(c.password, "p:q");
        assert_eq!(c.basic_header(), "Basic dTpwOnE=");
    }

    #[test]
    fn reads_auth_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        std::fs::write(
            &f,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwdw=="}}}"#,
        )
        .unwrap();
        let c = lookup_credentials("127.0.0.1:5000", Some(&f)).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pw"));
        assert!(lookup_credentials("other:1", Some(&f)).is_none());
    }
}
