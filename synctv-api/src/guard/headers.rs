//! Security headers. Every response says `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`; the page itself also
//! carries a Content-Security-Policy that lets it run only its own script and style,
//! connect only to this server and the configured public URLs, and play media from any
//! http or https URL (the media users set are theirs to choose).

use axum::extract::Request;
use axum::http::header::{REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// Adds the headers every response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The page's Content-Security-Policy. `host` is the request's `Host` (the page opens
/// its WebSocket there); `public_urls` are the other servers it may connect to.
pub fn page_policy(host: Option<&str>, public_urls: &[String]) -> String {
    let mut connect = vec!["'self'".to_owned()];
    if let Some(host) = host.filter(|h| is_safe_host(h)) {
        // The page's own host, whichever scheme the proxy in front of it speaks.
        connect.extend([format!("ws://{host}"), format!("wss://{host}")]);
    }
    for url in public_urls {
        let Some((scheme, rest)) = url.trim().split_once("://") else {
            continue;
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if !is_safe_host(authority) {
            continue;
        }
        let (web, socket) = if scheme.eq_ignore_ascii_case("https") {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        connect.extend([
            format!("{web}://{authority}"),
            format!("{socket}://{authority}"),
        ]);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' http: https: blob:; connect-src {}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'",
        connect.join(" ")
    )
}

/// A host[:port] that cannot smuggle a directive into the policy.
fn is_safe_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_this_host_and_the_public_urls() {
        let policy = page_policy(
            Some("a.example:8080"),
            &["https://b.example/".into(), "http://c.example:81".into()],
        );
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("media-src 'self' http: https: blob:;"));
        assert!(policy.contains("frame-ancestors 'none'"));
        for source in [
            "ws://a.example:8080",
            "wss://a.example:8080",
            "https://b.example",
            "wss://b.example",
            "http://c.example:81",
            "ws://c.example:81",
        ] {
            assert!(policy.contains(&format!(" {source}")), "{source}: {policy}");
        }
        assert!(!policy.contains("unsafe"));
    }

    #[test]
    fn a_hostile_host_header_cannot_add_a_directive() {
        let policy = page_policy(Some("x; script-src *"), &["https://y; z".into()]);
        assert!(!policy.contains("script-src *"), "{policy}");
        assert!(!policy.contains("y; z"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
    }
}
