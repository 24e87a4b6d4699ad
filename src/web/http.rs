//! A minimal HTTP/1.1 reader and writer on std, for the web page and its API: one request per
//! connection (every response says `Connection: close`), a bounded head and body, no chunked
//! request bodies. Enough for a browser, curl and scripts; nothing a device does not need.

use std::io::{Read, Write};
use std::time::Instant;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, … as sent.
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string after `?` (empty when absent).
    pub query: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` in the query string (no percent-decoding beyond `%XX` and `+`).
    pub fn query_value(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v))
        })
    }
}

/// Decodes `%XX` escapes and `+` (form and query encoding); bad escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved ASCII (for header values: `decodeURIComponent`
/// reads them back).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The client closed before a complete request (nothing to answer).
    Closed,
    /// Nothing complete before the deadline.
    Idle,
    /// Head plus body longer than the limit.
    TooLarge,
    /// Not HTTP/1.x as this server reads it.
    Malformed(String),
}

/// Reads one request of at most `max` bytes (head and body together) before `deadline`. The
/// stream's read timeout is set by the caller; a timeout before the deadline keeps reading.
///
/// # Errors
/// [`ReadError`].
pub fn read_request<S: Read>(
    stream: &mut S,
    max: usize,
    deadline: Instant,
    set_timeout: &mut dyn FnMut(std::time::Duration) -> bool,
) -> Result<HttpRequest, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024.min(max));
    let mut chunk = [0u8; 2048];
    let mut head_end = None;
    let mut need = None;
    loop {
        if head_end.is_none() {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                head_end = Some(i + 4);
            }
        }
        if let Some(end) = head_end {
            if need.is_none() {
                let length = content_length(&buf[..end])?;
                if end + length > max {
                    return Err(ReadError::TooLarge);
                }
                need = Some(end + length);
            }
            if need.is_some_and(|n| buf.len() >= n) {
                break;
            }
        } else if buf.len() > max {
            return Err(ReadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !set_timeout(left) {
            return Err(ReadError::Idle);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => {
                if buf.len() + n > max + 4 && head_end.is_none() {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
    let end = head_end.unwrap_or(buf.len());
    let total = need.unwrap_or(end);
    if buf.len() > total && total > max {
        return Err(ReadError::TooLarge);
    }
    parse(&buf[..end], buf[end..total.min(buf.len())].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Result<usize, ReadError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| ReadError::Malformed("the request head is not UTF-8".into()))?;
    let mut length = 0;
    for line in text.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                length = value.trim().parse().map_err(|_| {
                    ReadError::Malformed(format!(
                        "Content-Length {:?} is not a number",
                        value.trim()
                    ))
                })?;
            } else if name == "transfer-encoding" {
                return Err(ReadError::Malformed(
                    "chunked request bodies are not accepted; send Content-Length".into(),
                ));
            }
        }
    }
    Ok(length)
}

fn parse(head: &[u8], body: Vec<u8>) -> Result<HttpRequest, ReadError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| ReadError::Malformed("the request head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!(
            "request line {first:?} is not `METHOD /path HTTP/1.1`"
        )));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(ReadError::Malformed(format!(
            "request line {first:?} is not `METHOD /path HTTP/1.1`"
        )));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpRequest {
        method: method.to_string(),
        path: percent_decode(path),
        query: query.to_string(),
        headers,
        body,
    })
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A plain-text body.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: text.into().into_bytes(),
        }
    }

    /// Any body.
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the response and its body.
    ///
    /// # Errors
    /// The write failure.
    pub fn write_to<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(bytes: &[u8], max: usize) -> Result<HttpRequest, ReadError> {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        read_request(
            &mut cursor,
            max,
            Instant::now() + Duration::from_secs(5),
            &mut |_| true,
        )
    }

    #[test]
    fn a_post_with_a_body_is_read_whole() {
        let r = read(
            b"POST /api/label?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            1000,
        )
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/label");
        assert_eq!(r.query_value("x").as_deref(), Some("1"));
        assert_eq!(r.header("host"), Some("a"));
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn too_large_heads_and_bodies_are_refused() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(3000));
        assert_eq!(read(long.as_bytes(), 1000), Err(ReadError::TooLarge));
        let body = b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n";
        assert_eq!(read(body, 1000), Err(ReadError::TooLarge));
    }

    #[test]
    fn a_cut_request_is_closed_and_garbage_is_malformed() {
        assert_eq!(read(b"GET / HTTP/1.1\r\n", 1000), Err(ReadError::Closed));
        assert!(matches!(
            read(b"hello there\r\n\r\n", 1000),
            Err(ReadError::Malformed(_))
        ));
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
