//! What each URL does: the page, the login form, the live frame, thumbnails, `/metrics`, and the
//! JSON API, which turns every call into a control [`Request`] for the service loop.

use std::net::IpAddr;
use std::sync::mpsc;

use super::auth::{self, Access};
use super::http::{HttpRequest, Response};
use super::{Shared, REPLY_TIMEOUT};
use crate::control::{Incoming, Reply, Request};

/// The page: one file of HTML, CSS and JS, built into the binary.
const PAGE: &str = include_str!("page.html");

/// What a request gets.
pub(super) enum Answer {
    /// One response.
    Full(Response),
    /// The live stream (the client may have it).
    Stream,
}

/// Answers one request.
pub(super) fn answer<T>(request: &HttpRequest, peer: IpAddr, shared: &Shared<T>) -> Answer {
    if request.method == "GET" && request.path == "/stream" {
        return match respond(request, peer, shared) {
            Some(refused) => Answer::Full(refused),
            None => Answer::Stream,
        };
    }
    Answer::Full(
        respond(request, peer, shared)
            .unwrap_or_else(|| Response::json(404, &Reply::error("nothing at /stream"))),
    )
}

/// The response to one request; None for the stream when the client may have it.
fn respond<T>(request: &HttpRequest, peer: IpAddr, shared: &Shared<T>) -> Option<Response> {
    let method = request.method.as_str();
    let path = request.path.as_str();
    // The page holds no data: it asks for the token itself when the API says 401.
    if method == "GET" && (path == "/" || path == "/index.html") {
        return Some(Response::bytes(200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())
            .with("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' blob:; frame-ancestors 'none'"));
    }
    if method == "POST" && !auth::same_origin(request) {
        tracing::warn!(
            "web: refused a {method} {path} from {peer} sent by another site ({})",
            request
                .header("origin")
                .unwrap_or("Sec-Fetch-Site: cross-site")
        );
        return Some(Response::json(
            403,
            &Reply::error("refused: this request came from a page of another site"),
        ));
    }
    if method == "POST" && path == "/login" {
        return Some(login(request, peer, shared));
    }
    match auth::check(
        request,
        peer,
        shared.token.as_deref(),
        shared.trust_localhost,
    ) {
        Access::Allowed => {}
        Access::Missing => {
            return Some(Response::json(
                401,
                &Reply::error("this device needs its token: send `Authorization: Bearer TOKEN` or log in on the page"),
            )
            .with("WWW-Authenticate", "Bearer"))
        }
        Access::Wrong => {
            tracing::warn!("web: wrong token from {peer} for {method} {path}");
            return Some(
                Response::json(401, &Reply::error("wrong token"))
                    .with("WWW-Authenticate", "Bearer"),
            );
        }
    }
    Some(match (method, path) {
        ("GET", "/stream") => return None,
        ("GET", "/frame") => frame(shared),
        ("GET", "/metrics") => match ask(shared, Request::Status) {
            Reply {
                ok: true,
                data: Some(data),
                ..
            } => match serde_json::from_value(data) {
                Ok(status) => Response::bytes(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    (super::metrics::render(&status)
                        + &super::metrics::render_streams(&shared.live.streams))
                        .into_bytes(),
                ),
                Err(e) => Response::text(500, format!("status does not decode: {e}\n")),
            },
            reply => reply_response(reply),
        },
        ("GET", "/api/status") => reply_response(ask(shared, Request::Status)),
        ("GET", "/api/current") => reply_response(ask(shared, Request::Current)),
        ("GET", "/api/samples") => match request.query_value("class") {
            Some(class) => reply_response(ask(shared, Request::Samples { class })),
            None => Response::json(
                400,
                &Reply::error("name the class: /api/samples?class=NAME"),
            ),
        },
        ("GET", p) if p.starts_with("/api/thumb/") => thumbnail(shared, &p["/api/thumb/".len()..]),
        ("POST", p) if p.starts_with("/api/") => post(shared, &p["/api/".len()..], &request.body),
        (_, p) if p.starts_with("/api/") || p == "/frame" || p == "/metrics" || p == "/stream" => {
            Response::json(405, &Reply::error(format!("{method} is not served on {p}")))
        }
        _ => Response::json(404, &Reply::error(format!("nothing at {path}"))),
    })
}

/// The login form: a right token sets the cookie and goes back to the page.
fn login<T>(request: &HttpRequest, peer: IpAddr, shared: &Shared<T>) -> Response {
    let body = String::from_utf8_lossy(&request.body);
    let given = body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| super::http::percent_decode(v))
    });
    let right = match (&given, &shared.token) {
        (Some(given), Some(token)) => auth::constant_time_eq(given.as_bytes(), token.as_bytes()),
        _ => false,
    };
    if !right {
        tracing::warn!("web: wrong token from {peer} at the login form");
        return Response::json(401, &Reply::error("wrong token"));
    }
    let token = shared.token.as_deref().unwrap_or_default();
    Response::text(303, "logged in\n")
        .with("Location", "/")
        .with(
            "Set-Cookie",
            format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
                auth::COOKIE
            ),
        )
}

/// A POST to `/api/CMD`: the body's JSON fields and `"cmd": CMD` make a control request.
fn post<T>(shared: &Shared<T>, command: &str, body: &[u8]) -> Response {
    let mut fields = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) | Err(_) => {
                return Response::json(
                    400,
                    &Reply::error(
                        "the body is not a JSON object; send e.g. {\"class\":\"Blight\"}",
                    ),
                )
            }
        }
    };
    fields.insert("cmd".into(), serde_json::Value::String(command.to_string()));
    match crate::control::parse_request(&serde_json::Value::Object(fields).to_string()) {
        Ok(request) => reply_response(ask(shared, request)),
        Err(reply) => Response::json(400, &reply),
    }
}

/// The latest frame as an image.
fn frame<T>(shared: &Shared<T>) -> Response {
    let Some(latest) = shared.live.latest() else {
        return Response::json(503, &Reply::error("no frame processed yet"));
    };
    shared.live.mark_served(&latest);
    match latest.image() {
        Some((kind, bytes)) => Response::bytes(200, kind, bytes.to_vec())
            .with("X-Frame-Seq", latest.seq.to_string())
            .with(
                "X-Frame-Class",
                super::http::percent_encode(latest.class.as_deref().unwrap_or("unknown")),
            )
            .with("X-Frame-Probability", latest.probability.to_string()),
        None => Response::json(
            500,
            &Reply::error("the frame is in a format a browser cannot show"),
        ),
    }
}

/// A sample's thumbnail.
fn thumbnail<T>(shared: &Shared<T>, id: &str) -> Response {
    let Ok(sample) = id.parse::<u64>() else {
        return Response::json(400, &Reply::error(format!("{id:?} is not a sample id")));
    };
    let reply = ask(shared, Request::Thumbnail { sample });
    let hex = reply
        .data
        .as_ref()
        .and_then(|d| d.get("jpeg_hex"))
        .and_then(|h| h.as_str())
        .and_then(from_hex);
    match hex {
        Some(bytes) if reply.ok => Response::bytes(200, "image/jpeg", bytes),
        _ => reply_response(if reply.ok {
            Reply::error(format!("sample {sample} has no thumbnail"))
        } else {
            reply
        }),
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Hands `request` to the service loop and waits for its reply (this web thread waits, never
/// the loop).
fn ask<T>(shared: &Shared<T>, request: Request) -> Reply {
    let (tx, rx) = mpsc::channel();
    if shared
        .to_service
        .send((shared.wrap)(Incoming { request, reply: tx }))
        .is_err()
    {
        return Reply::error("the service is shutting down");
    }
    rx.recv_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|_| Reply::error("the service did not answer in time"))
}

fn reply_response(reply: Reply) -> Response {
    let status = if reply.ok { 200 } else { 422 };
    Response::json(status, &reply)
}
