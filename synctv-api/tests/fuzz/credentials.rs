use axum::http::HeaderMap;
use proptest::prelude::*;
use synctv_api::auth::{bearer_token, parse_ticket, TokenService};
use synctv_api::guard::redact::redact_uri;
use synctv_core::{User, UserId};

const CASES: u32 = 1000;

fn tokens() -> TokenService {
    TokenService::new(b"a-secret-for-the-property-tests", 3600)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_tokens_are_refused(token in ".{0,300}") {
        prop_assert!(tokens().verify(&token).is_err());
    }

    /// Three base64url parts, the shape of a JWT, with any content.
    #[test]
    fn jwt_shaped_garbage_is_refused(parts in prop::collection::vec("[A-Za-z0-9_-]{0,80}", 3)) {
        prop_assert!(tokens().verify(&parts.join(".")).is_err());
    }

    /// Any single change to a valid token makes it invalid (or leaves it the same token).
    #[test]
    fn tampered_tokens_are_refused(index in any::<prop::sample::Index>(), byte in b'0'..=b'z') {
        let service = tokens();
        let user = User { id: UserId::from("u1"), name: "alice".into(), created_at: 0 };
        let (token, _) = service.issue(&user).unwrap();
        let mut bytes = token.clone().into_bytes();
        let at = index.index(bytes.len());
        bytes[at] = byte;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        // base64url without padding can encode the same bytes with different final
        // characters; only a token that decodes to the same claims may verify.
        if let Ok(claims) = service.verify(&tampered) {
            prop_assert_eq!(claims, service.verify(&token).unwrap());
        }
    }

    #[test]
    fn arbitrary_tickets_do_not_parse(ticket in ".{0,100}") {
        let parsed = parse_ticket(&ticket);
        // Only 43 base64url characters can be a ticket.
        if parsed.is_some() {
            prop_assert_eq!(ticket.len(), 43);
            prop_assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn authorization_headers_never_panic(value in "[ -~]{0,100}") {
        let mut headers = HeaderMap::new();
        if let Ok(value) = value.parse() {
            headers.insert("authorization", value);
            if let Some(token) = bearer_token(&headers) {
                prop_assert!(!token.is_empty());
            }
        }
    }

    /// Whatever the URL, a token or ticket value in its query never survives redaction.
    #[test]
    fn credentials_never_survive_redaction(
        prefix in "[a-z/]{0,10}",
        params in prop::collection::vec(("[a-zA-Z%0-9]{0,6}", "[A-Za-z0-9._~-]{0,20}"), 0..5),
        name in prop_oneof![Just("token"), Just("ticket"), Just("TOKEN"), Just("%74oken")],
        secret in "[A-Za-z0-9._~-]{12,40}",
        at in any::<prop::sample::Index>(),
    ) {
        let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.insert(at.index(pairs.len() + 1), format!("{name}={secret}"));
        let uri = format!("/{prefix}?{}", pairs.join("&"));
        let redacted = redact_uri(&uri);
        let leaked = redacted.split(['?', '&']).any(|pair| pair.ends_with(&format!("={secret}")) && pair.starts_with(name));
        prop_assert!(!leaked, "{} -> {}", uri, redacted);
    }

    #[test]
    fn any_uri_redacts_without_panicking(uri in ".{0,200}") {
        let _ = redact_uri(&uri);
    }
}
