//! Request-level security, applied to every route: the response headers that keep pages out of frames and
//! scripts to the app's own, that the request names one of our hosts (DNS rebinding), who is asking (cookie
//! or bearer token), whether a state-changing browser request comes from the app's own origin (CSRF), and that
//! `/api/` routes other than the public catalog are only served to a signed-in user.

use app::context::{Credential, Session};
use app::error::AppError;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::COOKIE_NAME;
use crate::error::ApiError;
use crate::state::AppState;

/// Why presented credentials were refused, kept for `/api/` routes to report.
#[derive(Clone)]
struct AuthFailure(AppError);

/// What every response carries. Leptos hydrates with an inline module script, hence `'unsafe-inline'` for
/// scripts (no external origin is allowed either way); WebAssembly needs `'wasm-unsafe-eval'`. No page may be framed (clickjacking), types are not sniffed, and other sites learn
/// only our origin from links.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'";

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Refuses (421) a request whose `Host` is not loopback, the public URL's host or an allowed one. Probes
/// (`/health`, `/ready`) are exempt: the kubelet names the pod's address, and they reveal nothing.
pub async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/ready" {
        return next.run(request).await;
    }
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).or(request.uri().host());
    match host {
        Some(host) if state.allowed_hosts.allows(host) => next.run(request).await,
        _ => {
            let named = host.unwrap_or("none");
            tracing::debug!(host = named, "request for a host this panel does not serve");
            (StatusCode::MISDIRECTED_REQUEST, format!("this server does not serve the host `{named}`\n"))
                .into_response()
        }
    }
}

/// Puts the request's [`Session`] into its extensions when it carries a valid bearer token or cookie.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Built assets need no identity; skipping them saves a session lookup per file on every page load.
    if request.uri().path().starts_with("/pkg/") {
        return next.run(request).await;
    }
    let presented = match bearer_token(request.headers()) {
        Some(token) => Some((token, Credential::Bearer)),
        None => session_cookie(request.headers()).map(|token| (token, Credential::Cookie)),
    };
    if let Some((token, credential)) = presented {
        match state.auth.authenticate(&token, credential).await {
            Ok(session) => {
                request.extensions_mut().insert(session);
            }
            Err(error @ AppError::Unauthorized(_)) => {
                request.extensions_mut().insert(AuthFailure(error));
            }
            Err(error) => return ApiError(error).into_response(),
        }
    }
    next.run(request).await
}

/// Refuses `/api/` requests without a session, except the public catalog reads (`GET /api/games…`).
/// Applied to the whole router so that a new `/api/` route is protected without anyone remembering to.
pub async fn require_user(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let catalog_read = request.method() == Method::GET && (path == "/api/games" || path.starts_with("/api/games/"));
    if !path.starts_with("/api/") || catalog_read || request.extensions().get::<Session>().is_some() {
        return next.run(request).await;
    }
    let error = match request.extensions().get::<AuthFailure>() {
        Some(AuthFailure(error)) => error.clone(),
        None => {
            AppError::Unauthorized("sign in first: send the session cookie or an `Authorization: Bearer` token".into())
        }
    };
    ApiError(error).into_response()
}

/// CSRF protection. A state-changing request (anything but GET, HEAD, OPTIONS) not authenticated by a bearer
/// token must come from the app's own origin: its `Origin` (or, lacking one, `Referer`) must match the
/// configured public URL, or the request's own `Host` (already checked by [`check_host`]) when none is configured. A request carrying the
/// session cookie but neither header is refused too, since its origin cannot be told. Bearer tokens are not
/// sent by browsers on their own, so those requests cannot be forged cross-site.
pub async fn check_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) || bearer_token(headers).is_some() {
        return next.run(request).await;
    }
    match cross_site(&state, headers) {
        Some(refusal) => ApiError(refusal).into_response(),
        None => next.run(request).await,
    }
}

/// The refusal for a request a browser may have sent on another site's behalf: one whose `Origin` (or
/// `Referer`) is not this site, or that carries the session cookie without naming its origin at all. `None`
/// when the request comes from the app's own pages or from a client that is not a browser.
pub fn cross_site(state: &AppState, headers: &HeaderMap) -> Option<AppError> {
    let refused = |why: &str| AppError::Forbidden(format!("cross-site request refused: {why}"));
    match request_origin(headers) {
        Some(origin) if is_own_origin(&origin, state.public_url.as_deref(), headers) => None,
        Some(origin) => Some(refused(&format!("origin `{origin}` is not this site"))),
        None if session_cookie(headers).is_some() => Some(refused("the request names no Origin or Referer")),
        None => None,
    }
}

/// `scheme://host[:port]` of the page that sent the request.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(origin.to_owned());
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

fn is_own_origin(origin: &str, public_url: Option<&str>, headers: &HeaderMap) -> bool {
    match public_url {
        Some(public) => origin.eq_ignore_ascii_case(public),
        None => {
            let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        }
    }
}

/// Whether the request authenticates with a bearer token: a client that is not a browser, or a page that got
/// the token itself, so not one a browser could have been tricked into sending.
pub fn has_bearer_token(headers: &HeaderMap) -> bool {
    bearer_token(headers).is_some()
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// The signed-in user of a request, for handlers; 401 when there is none.
pub struct CurrentUser(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(CurrentUser)
            .ok_or_else(|| ApiError(AppError::Unauthorized("sign in first".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let map = headers(&[(header::COOKIE, "theme=dark; spawnpoint_session=abc.def.ghi; lang=en")]);
        assert_eq!(session_cookie(&map).as_deref(), Some("abc.def.ghi"));
        assert_eq!(session_cookie(&headers(&[(header::COOKIE, "spawnpoint_session=")])), None);
        assert_eq!(session_cookie(&headers(&[(header::COOKIE, "other_spawnpoint_session=x")])), None);
    }

    #[test]
    fn reads_bearer_tokens_case_insensitively() {
        assert_eq!(bearer_token(&headers(&[(header::AUTHORIZATION, "Bearer t0k")])).as_deref(), Some("t0k"));
        assert_eq!(bearer_token(&headers(&[(header::AUTHORIZATION, "bearer t0k")])).as_deref(), Some("t0k"));
        assert_eq!(bearer_token(&headers(&[(header::AUTHORIZATION, "Basic dXNlcg==")])), None);
        assert_eq!(bearer_token(&headers(&[(header::AUTHORIZATION, "Bearer ")])), None);
    }

    #[test]
    fn the_origin_comes_from_origin_or_else_referer() {
        let map = headers(&[(header::REFERER, "https://panel.example.com/games?x=1")]);
        assert_eq!(request_origin(&map).as_deref(), Some("https://panel.example.com"));
        let map = headers(&[(header::ORIGIN, "https://evil.example"), (header::REFERER, "https://panel.example.com/")]);
        assert_eq!(request_origin(&map).as_deref(), Some("https://evil.example"));
    }

    #[test]
    fn own_origin_is_the_public_url_or_the_host() {
        let host = headers(&[(header::HOST, "127.0.0.1:3000")]);
        assert!(is_own_origin("http://127.0.0.1:3000", None, &host));
        assert!(!is_own_origin("http://127.0.0.1:3001", None, &host));
        assert!(!is_own_origin("http://evil.example", None, &host));
        assert!(!is_own_origin("null", None, &host));
        assert!(is_own_origin("https://panel.example.com", Some("https://panel.example.com"), &host));
        assert!(!is_own_origin("http://127.0.0.1:3000", Some("https://panel.example.com"), &host));
    }
}
