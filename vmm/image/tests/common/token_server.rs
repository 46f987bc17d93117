//! A minimal Docker token server for the registry's `token` auth: hands a
//! pre-signed RS256 JWT (made with the `openssl` CLI) to clients that
//! present the right basic credentials, 401 to everyone else.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

pub const ISSUER: &str = "vmrun-test-issuer";
pub const SERVICE: &str = "vmrun-test-registry";

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if let Some(data) = stdin {
        child.stdin.take()?.write_all(data).ok()?;
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// Make a key + self-signed cert in `dir` and a token granting `actions`
/// on `repo`. Returns (cert path, token) or None if openssl is unusable.
pub fn make_token(
    dir: &Path,
    repo: &str,
    actions: &[&str],
) -> Option<(std::path::PathBuf, String)> {
    let key = dir.join("token-key.pem");
    let cert = dir.join("token-cert.pem");
    openssl(&["genrsa", "-out", key.to_str()?, "2048"], None)?;
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str()?,
            "-subj",
            "/CN=vmrun-test-token",
            "-days",
            "2",
            "-out",
            cert.to_str()?,
        ],
        None,
    )?;
    let der = openssl(&["x509", "-in", cert.to_str()?, "-outform", "DER"], None)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let header = serde_json::json!({
        "alg": "RS256", "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "vmrun", "aud": SERVICE,
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": format!("{now}"),
        "access": [{"type": "repository", "name": repo, "actions": actions}],
    });
    let input = format!(
        "{}.{}",
        b64url(&serde_json::to_vec(&header).ok()?),
        b64url(&serde_json::to_vec(&claims).ok()?)
    );
    let sig = openssl(
        &["dgst", "-sha256", "-sign", key.to_str()?],
        Some(input.as_bytes()),
    )?;
    Some((cert, format!("{input}.{}", b64url(&sig))))
}

/// Serve tokens on a loopback port (thread lives until the test ends).
/// Returns the realm URL.
pub fn serve(token: String, basic_auth: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorized = false;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") && v.trim() == basic_auth {
                        authorized = true;
                    }
                }
                line.clear();
            }
            let resp = if authorized {
                let body = serde_json::json!({"token": token, "access_token": token}).to_string();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(resp.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}/token")
}
