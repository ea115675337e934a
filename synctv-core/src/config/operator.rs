//! The operator's side of the configuration (contract 1.1, "Server API and webhooks"):
//! the server API's key and where webhooks go.

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// Shortest accepted server API key, in bytes: a shorter one is a startup error.
pub const MIN_API_KEY_BYTES: usize = 32;
/// Shortest accepted webhook signing secret, in bytes.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The server API's key (`X-API-Key`); empty means the server API is off (its paths
    /// answer 404).
    pub key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Where webhooks are POSTed; empty means webhooks are off.
    pub url: Option<String>,
    /// The HMAC-SHA256 key of `X-Synctv-Signature`; required with `url`.
    pub secret: Option<String>,
    /// Longest wait for a receiver's answer before the attempt counts as failed.
    pub timeout_secs: u64,
    /// How long a delivery is retried (with backoff) before it is given up; the contract
    /// asks for at least an hour.
    pub retry_for_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            timeout_secs: 10,
            retry_for_secs: 6 * 3600,
        }
    }
}

impl ApiConfig {
    pub(super) fn normalize(&mut self) {
        blank_is_unset(&mut self.key);
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .key
            .as_deref()
            .is_some_and(|k| k.len() < MIN_API_KEY_BYTES)
        {
            return Err(ConfigError::Rule {
                key: "api.key",
                reason: format!("must be at least {MIN_API_KEY_BYTES} bytes"),
            });
        }
        Ok(())
    }
}

impl WebhooksConfig {
    /// Both the URL and the secret are set: webhooks are on.
    pub fn enabled(&self) -> bool {
        self.url.is_some() && self.secret.is_some()
    }

    pub(super) fn normalize(&mut self) {
        blank_is_unset(&mut self.url);
        blank_is_unset(&mut self.secret);
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let rule = |key, reason: String| Err(ConfigError::Rule { key, reason });
        match (&self.url, &self.secret) {
            (Some(url), Some(secret)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return rule("webhooks.url", "must start with http:// or https://".into());
                }
                if secret.len() < MIN_WEBHOOK_SECRET_BYTES {
                    return rule(
                        "webhooks.secret",
                        format!("must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes"),
                    );
                }
            }
            (Some(_), None) => {
                return rule(
                    "webhooks.secret",
                    "required when webhooks.url is set".into(),
                )
            }
            (None, Some(_)) => {
                return rule(
                    "webhooks.url",
                    "required when webhooks.secret is set".into(),
                )
            }
            (None, None) => {}
        }
        if self.timeout_secs == 0 || self.retry_for_secs < 3600 {
            return rule(
                "webhooks",
                "timeout_secs must be at least 1 and retry_for_secs at least 3600 (an hour)".into(),
            );
        }
        Ok(())
    }
}

fn blank_is_unset(value: &mut Option<String>) {
    if value.as_deref().is_some_and(|s| s.trim().is_empty()) {
        *value = None;
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn refused_key(pairs: &[(&str, &str)]) -> &'static str {
        match Config::from_pairs(pairs.iter().copied()) {
            Err(ConfigError::Rule { key, .. }) => key,
            other => panic!("{pairs:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn the_api_key_is_off_when_blank_and_refused_when_short() {
        let off = Config::from_pairs([("SYNCTV__API__KEY", "")]).unwrap();
        assert_eq!(off.api.key, None);
        assert_eq!(refused_key(&[("SYNCTV__API__KEY", "short")]), "api.key");
        let key = "k".repeat(32);
        let on = Config::from_pairs([("SYNCTV__API__KEY", key.as_str())]).unwrap();
        assert_eq!(on.api.key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn webhooks_need_both_a_url_and_a_secret() {
        let secret = "s".repeat(16);
        let url = "http://127.0.0.1:9/hook";
        assert_eq!(
            refused_key(&[("SYNCTV__WEBHOOKS__URL", url)]),
            "webhooks.secret"
        );
        assert_eq!(
            refused_key(&[("SYNCTV__WEBHOOKS__SECRET", secret.as_str())]),
            "webhooks.url"
        );
        assert_eq!(
            refused_key(&[
                ("SYNCTV__WEBHOOKS__URL", "ftp://x"),
                ("SYNCTV__WEBHOOKS__SECRET", secret.as_str())
            ]),
            "webhooks.url"
        );
        assert_eq!(
            refused_key(&[
                ("SYNCTV__WEBHOOKS__URL", url),
                ("SYNCTV__WEBHOOKS__SECRET", secret.as_str()),
                ("SYNCTV__WEBHOOKS__RETRY_FOR_SECS", "60"),
            ]),
            "webhooks"
        );
        let on = Config::from_pairs([
            ("SYNCTV__WEBHOOKS__URL", url),
            ("SYNCTV__WEBHOOKS__SECRET", secret.as_str()),
        ])
        .unwrap();
        assert!(on.webhooks.enabled());
        assert!(!Config::default().webhooks.enabled());
    }
}
