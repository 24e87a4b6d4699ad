//! Who may use the web page and its API: the token (an `Authorization: Bearer` header or the
//! cookie the page's login form sets), compared in constant time; the same-origin rule for
//! requests that change something; and the token file a device board points at.

use std::net::IpAddr;
use std::path::Path;

use super::http::HttpRequest;

/// The cookie the login form sets.
pub const COOKIE: &str = "fieldtune_token";

/// What the token check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The request may go on.
    Allowed,
    /// No token where one is needed.
    Missing,
    /// A token that is not the right one.
    Wrong,
}

/// Equality that takes the same time wherever the first difference is (lengths are not secret:
/// tokens have a fixed length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from short-cutting the fold.
    std::hint::black_box(diff) == 0
}

/// The token a request presents: the bearer header first, then the cookie.
pub fn presented(request: &HttpRequest) -> Option<String> {
    if let Some(value) = request.header("authorization") {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
    }
    request.header("cookie").and_then(|cookies| {
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
    })
}

/// Decides whether `request` from `peer` may go on: a presented token must be right (from
/// anywhere); without one, only a loopback peer is let in, and only when `trust_localhost`.
pub fn check(
    request: &HttpRequest,
    peer: IpAddr,
    token: Option<&str>,
    trust_localhost: bool,
) -> Access {
    match (presented(request), token) {
        (Some(given), Some(token)) => {
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                Access::Allowed
            } else {
                Access::Wrong
            }
        }
        (Some(_), None) if trust_localhost && peer.is_loopback() => Access::Allowed,
        (Some(_), None) => Access::Wrong,
        (None, _) if trust_localhost && peer.is_loopback() => Access::Allowed,
        (None, _) => Access::Missing,
    }
}

/// Whether a request that changes something comes from this server's own page: an `Origin`
/// header, when present, must name the host the request was sent to, and a browser's
/// `Sec-Fetch-Site` must not say cross-site. Scripts (curl) send neither and pass.
pub fn same_origin(request: &HttpRequest) -> bool {
    if request.header("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match (request.header("origin"), request.header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or("");
            origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
    }
}

/// A new random token: 32 hex digits from the kernel's random source.
///
/// # Errors
/// When /dev/urandom cannot be read.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the token in `path`, creating it (mode 0600, a new random token) when it does not
/// exist yet, so a device board works on first start and the owner reads the token from the file.
///
/// # Errors
/// When the file cannot be read or created, or holds no token.
pub fn token_from_file(path: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "web token file {} holds no usable token (16 or more printable characters, no spaces); write one or delete the file to have a new one made",
                    path.display()
                ));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token().map_err(|e| format!("cannot make a web token: {e}"))?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    format!(
                        "cannot create the web token file {}: {e}; create it yourself (mode 0600) or set web.token_file elsewhere",
                        path.display()
                    )
                })?;
            writeln!(file, "{token}")
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write the web token file {}: {e}", path.display()))?;
            tracing::info!(
                "made a new web token in {} (read it there to log in)",
                path.display()
            );
            Ok(token)
        }
        Err(e) => Err(format!(
            "cannot read the web token file {}: {e}; check its owner and mode (0600, the service's user)",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/api/undo".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn tokens_from_header_or_cookie_are_checked() {
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let token = Some("0123456789abcdef");
        let good = request(&[("authorization", "Bearer 0123456789abcdef")]);
        let cookie = request(&[("cookie", "a=b; fieldtune_token=0123456789abcdef")]);
        let bad = request(&[("authorization", "Bearer 0123456789abcdeX")]);
        let none = request(&[]);
        assert_eq!(check(&good, remote, token, true), Access::Allowed);
        assert_eq!(check(&cookie, remote, token, true), Access::Allowed);
        assert_eq!(check(&bad, remote, token, true), Access::Wrong);
        assert_eq!(check(&bad, local, token, true), Access::Wrong);
        assert_eq!(check(&none, remote, token, true), Access::Missing);
        assert_eq!(check(&none, local, token, true), Access::Allowed);
        assert_eq!(check(&none, local, token, false), Access::Missing);
    }

    #[test]
    fn cross_site_origins_are_told_apart() {
        assert!(same_origin(&request(&[("host", "cam:8080")])));
        assert!(same_origin(&request(&[
            ("host", "cam:8080"),
            ("origin", "http://cam:8080")
        ])));
        assert!(!same_origin(&request(&[
            ("host", "cam:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&request(&[("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
