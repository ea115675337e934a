//! Secrets out of logs: a token or ticket in a URL's query (`GET /ws?ticket=…`, or a
//! version 1 client's `?token=`) is replaced before the URL reaches a log line.

use std::borrow::Cow;

/// Query parameters whose values are credentials.
const SECRET_PARAMS: [&str; 2] = ["token", "ticket"];
const REDACTED: &str = "REDACTED";

/// `uri` with the value of every `token` and `ticket` query parameter replaced by
/// `REDACTED`; borrowed unchanged when there is none.
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let Some((path, query)) = uri.split_once('?') else {
        return Cow::Borrowed(uri);
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let is_secret = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        SECRET_PARAMS
            .iter()
            .any(|secret| name.eq_ignore_ascii_case(secret) || decoded_is(name, secret))
    };
    if !query.split('&').any(is_secret) {
        return Cow::Borrowed(uri);
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(pair) => format!("{name}={REDACTED}"),
            _ if is_secret(pair) => format!("{pair}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", redacted.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Cow::Owned(out)
}

/// Whether a percent-encoded parameter name (`%74oken`) decodes to `secret`: the server's
/// query parser decodes names, so an encoded name is the same parameter.
fn decoded_is(name: &str, secret: &str) -> bool {
    if !name.contains(['%', '+']) {
        return false;
    }
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).eq_ignore_ascii_case(secret)
}

#[cfg(test)]
mod tests {
    use super::redact_uri;

    #[test]
    fn tokens_and_tickets_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_uri("/ws?token=abc.def.ghi&x=1"),
            "/ws?token=REDACTED&x=1"
        );
        assert_eq!(
            redact_uri("/ws?a=1&ticket=secret#frag"),
            "/ws?a=1&ticket=REDACTED#frag"
        );
        assert_eq!(
            redact_uri("/ws?TOKEN=a&token=b"),
            "/ws?TOKEN=REDACTED&token=REDACTED"
        );
        assert_eq!(redact_uri("/ws?%74oken=abc"), "/ws?%74oken=REDACTED");
        assert_eq!(redact_uri("/ws?token"), "/ws?token=REDACTED");
        assert_eq!(redact_uri("/ws?tokens=a"), "/ws?tokens=a");
        assert_eq!(redact_uri("/api/v1/rooms"), "/api/v1/rooms");
        assert_eq!(redact_uri("/x?%"), "/x?%");
        assert_eq!(redact_uri("/x?%7"), "/x?%7");
    }
}
