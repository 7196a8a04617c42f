//! The dashboard's guard, applied before routing (spec §8): a Host allowlist against DNS
//! rebinding, a per-start token (cookie, Bearer, or `?token=` once on `/`) compared in
//! constant time, and JSON-only, same-origin mutations. No CORS headers are ever sent.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::web::AppState;

/// The cookie the `?token=` is exchanged for.
pub const COOKIE: &str = "styxy_token";

/// A fresh 128-bit token, hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a client asks the server to prove it is this registry's dashboard:
/// `GET /api/identify?nonce=HEX` is answered, without the token, with
/// [`identity_proof`] of the nonce.
pub const IDENTIFY_PATH: &str = "/api/identify";

/// HMAC-SHA256 of `nonce` keyed with the token, in hex: only a server that knows the token
/// can answer, and the answer tells nothing of it. `ui` asks it of whatever listens on its
/// port before it trusts that server with the token.
pub fn identity_proof(token: &str, nonce: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"cargo-styxy ui identify ");
    mac.update(nonce.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether two proofs are equal, in constant time.
pub fn same_proof(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `host[:port]` is one of ours: `localhost`, `127.0.0.1`, `[::1]` or `*.localhost`, with
/// our port.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    if p != port.to_string() {
        return false;
    }
    let name = name.to_ascii_lowercase();
    if name == "localhost" || name == "127.0.0.1" || name == "[::1]" {
        return true;
    }
    // `NAME.localhost`, where NAME is DNS labels (letters, digits, hyphens) and nothing
    // else: `evil.com/.localhost` is a path, not a subdomain.
    name.strip_suffix(".localhost").is_some_and(|sub| {
        sub.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    })
}

/// An `Origin` header value that names one of our hosts over http.
fn origin_allowed(origin: &str, port: u16) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|host| host_allowed(host, port))
}

fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// The token a request presents: `Authorization: Bearer`, else the cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = auth.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

/// The `token` query parameter of a request.
pub fn query_token(req: &Request) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "token").then(|| v.to_owned())
        })
    })
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}\n"),
    )
        .into_response()
}

/// The guard itself.
pub async fn guard(
    State(state): State<std::sync::Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let port = state.port;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, port) {
        return refuse(StatusCode::FORBIDDEN, "forbidden host");
    }
    let method = req.method().clone();
    if ![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    // The one question asked without the token: prove you know it.
    if method == Method::GET && req.uri().path() == IDENTIFY_PATH {
        let nonce = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("nonce=")))
            .filter(|n| (16..=128).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_hexdigit()));
        return match nonce {
            Some(n) => identity_proof(&state.token, n).into_response(),
            None => refuse(StatusCode::BAD_REQUEST, "nonce: 16 to 128 hex digits"),
        };
    }
    // The printed URL's token is exchanged for the cookie on `/`, and only there.
    let exchanging =
        req.uri().path() == "/" && query_token(&req).is_some_and(|t| same_token(&t, &state.token));
    let authorized =
        exchanging || presented(req.headers()).is_some_and(|t| same_token(&t, &state.token));
    if !authorized {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: open the URL `cargo styxy ui` printed",
        );
    }
    if method == Method::POST || method == Method::PUT || method == Method::DELETE {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim() == "application/json")
            });
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "mutations take Content-Type: application/json",
            );
        }
        if let Some(origin) = req.headers().get(header::ORIGIN)
            && !origin.to_str().is_ok_and(|o| origin_allowed(o, port))
        {
            return refuse(StatusCode::FORBIDDEN, "forbidden origin");
        }
    }
    let mut response = next.run(req).await;
    if exchanging {
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            state.token
        );
        if let Ok(v) = cookie.parse() {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// After the exchange, `/?token=…` redirects to `/` so the token leaves the address bar.
pub fn strip_token_redirect() -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/")
        .body(Body::empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_needs_the_token_and_the_nonce() {
        let p = identity_proof("t0ken", "00ff");
        assert_eq!(p.len(), 64);
        assert_eq!(p, identity_proof("t0ken", "00ff"));
        assert_ne!(p, identity_proof("t0ken", "00fe"));
        assert_ne!(p, identity_proof("token", "00ff"));
        assert!(!p.contains("t0ken"));
        assert!(same_proof(&p, &identity_proof("t0ken", "00ff")));
        assert!(!same_proof(&p, &identity_proof("token", "00ff")));
    }

    #[test]
    fn hosts() {
        for ok in [
            "localhost:8000",
            "127.0.0.1:8000",
            "[::1]:8000",
            "app.localhost:8000",
            "my-app.dev.localhost:8000",
            "LOCALHOST:8000",
        ] {
            assert!(host_allowed(ok, 8000), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "localhost:8001",
            "localhost",
            "127.0.0.2:8000",
            "localhost.evil.example:8000",
            "evil.com/.localhost:8000",
            ".localhost:8000",
            "a..localhost:8000",
            "a_b.localhost:8000",
            "[::2]:8000",
            "",
        ] {
            assert!(!host_allowed(bad, 8000), "{bad}");
        }
        assert!(origin_allowed("http://localhost:8000", 8000));
        assert!(!origin_allowed("https://localhost:8000", 8000));
        assert!(!origin_allowed("http://evil.example", 8000));
    }

    #[test]
    fn tokens() {
        let t = new_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, new_token().unwrap());
        assert!(same_token(&t, &t));
        assert!(!same_token(&t[..31], &t));
    }
}
