//! Per-address limits (contract 1.1): guests and room creation per client address, 429
//! `rate_limited` with `Retry-After` over them; `X-Forwarded-For` believed only from
//! `server.trusted_proxies`.

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app_with, Backend, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::json;
use std::future::Future;
use std::time::Instant;

both_backends!(
    guests_are_limited_per_address,
    room_creation_is_limited_per_address,
    forwarded_addresses_count_only_from_trusted_proxies,
);

async fn guests_are_limited_per_address(backend: Backend) {
    // The contract's defaults.
    let app = spawn_app_with(backend, |c| {
        c.limits = synctv_core::config::LimitsConfig::default();
    })
    .await;
    let refused = until_limited(10, || guest_via(&app, None)).await;
    assert_limited(refused, 6).await;
}

async fn room_creation_is_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.rooms_per_minute = synctv_core::config::LimitsConfig::default().rooms_per_minute;
    })
    .await;
    let alice = app.guest("alice").await;
    let refused = until_limited(30, || app.create_room(&alice.token, json!({"name": "r"}))).await;
    assert_limited(refused, 2).await;
    // Another user from the same address shares the address's allowance.
    let bob = app.guest("bob").await;
    let resp = app.create_room(&bob.token, json!({"name": "r"})).await;
    assert_limited(resp, 2).await;
}

async fn forwarded_addresses_count_only_from_trusted_proxies(backend: Backend) {
    let untrusted = spawn_app_with(backend, |c| c.limits.guests_per_minute = 2).await;
    // Claiming another address each time does not help a client that is not a proxy.
    let mut n = 0;
    let refused = until_limited(2, || {
        n += 1;
        guest_via(
            &untrusted,
            Some(if n % 2 == 0 {
                "203.0.113.1"
            } else {
                "203.0.113.2"
            }),
        )
    })
    .await;
    assert_limited(refused, 30).await;

    for proxies in ["127.0.0.1", "127.0.0.0/8"] {
        let behind_proxy = spawn_app_with(backend, |c| {
            c.limits.guests_per_minute = 2;
            c.server.trusted_proxies = vec![proxies.into()];
        })
        .await;
        for client in ["203.0.113.1", "203.0.113.2"] {
            let refused = until_limited(2, || guest_via(&behind_proxy, Some(client))).await;
            assert_limited(refused, 30).await;
        }
        // The proxy's own requests (no header) are its own address's.
        let resp = guest_via(&behind_proxy, None).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
}

async fn guest_via(app: &TestApp, forwarded_for: Option<&str>) -> Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/auth/guest"))
        .json(&json!({"name": "someone"}));
    if let Some(addr) = forwarded_for {
        req = req.header("x-forwarded-for", addr);
    }
    req.send().await.unwrap()
}

/// Sends requests until one is refused; at least `per_minute` must pass first, and no
/// more than what refilled meanwhile (the allowance refills evenly over a minute, so a
/// slow machine may see a few more). The refusal.
async fn until_limited<F, Fut>(per_minute: u32, mut request: F) -> Response
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let mut passed = 0u32;
    loop {
        let resp = request().await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let refilled = started.elapsed().as_secs_f64() * f64::from(per_minute) / 60.0;
            assert!(passed >= per_minute, "refused after {passed}");
            assert!(
                f64::from(passed) <= f64::from(per_minute) + refilled.ceil(),
                "{passed} passed in {:?}",
                started.elapsed()
            );
            return resp;
        }
        assert_eq!(resp.status(), StatusCode::CREATED);
        passed += 1;
        assert!(passed <= 10 * per_minute, "never refused");
    }
}

/// A 429 `rate_limited` whose `Retry-After` is between 1 and `most` seconds.
async fn assert_limited(resp: Response, most: u64) {
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!(
        (1..=most).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
