//! Playback state and the rules that change it (contract: "PlaybackState").
//!
//! These functions are pure: the storage layer calls them inside the transaction that
//! locks the room's state row, so every node applies the same rule to the same state.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// Slowest and fastest accepted playback rate.
pub const MIN_RATE: f64 = 0.25;
pub const MAX_RATE: f64 = 4.0;
/// Longest accepted media URL, in characters.
pub const MAX_MEDIA_URL_CHARS: usize = 2048;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub url: String,
    pub title: Option<String>,
    /// 1.1: the media's length in seconds, when the client knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlaybackState {
    pub media: Option<Media>,
    pub playing: bool,
    pub position: f64,
    pub rate: f64,
    pub updated_at: i64,
    pub version: i64,
    /// 1.1: the buffering waiters a start is held for (empty when the room is not
    /// waiting; see `waiting`).
    #[serde(default)]
    pub waiting_for: Vec<UserId>,
    /// 1.1: when a held start happens without the stragglers (ms), while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<i64>,
}

impl PlaybackState {
    /// A new room: no media, paused at 0, rate 1, version 0.
    pub fn initial(now_ms: i64) -> Self {
        Self {
            media: None,
            playing: false,
            position: 0.0,
            rate: 1.0,
            updated_at: now_ms,
            version: 0,
            waiting_for: Vec::new(),
            wait_until: None,
        }
    }

    /// Where playback stands at `now_ms`, per the contract's formula.
    pub fn position_at(&self, now_ms: i64) -> f64 {
        if self.playing {
            let elapsed = (now_ms - self.updated_at).max(0) as f64 / 1000.0;
            self.position + elapsed * self.rate
        } else {
            self.position
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackAction {
    Play,
    Pause,
    Seek,
    Rate,
}

impl PlaybackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybackAction::Play => "play",
            PlaybackAction::Pause => "pause",
            PlaybackAction::Seek => "seek",
            PlaybackAction::Rate => "rate",
        }
    }
}

/// A validated playback change. Build it with [`PlaybackCommand::new`], which enforces
/// the contract's field rules, so an invalid command never reaches the database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlaybackCommand {
    pub action: PlaybackAction,
    pub position: Option<f64>,
    pub rate: Option<f64>,
    pub if_version: Option<i64>,
    /// 1.1: `play` with `force: true` starts at once, without waiting for anyone.
    #[serde(default)]
    pub force: bool,
}

/// Why a playback message is malformed; each becomes a `bad_request`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaybackCommandError {
    #[error("position must be a finite number of seconds, 0 or more")]
    InvalidPosition,
    #[error("seek needs a position")]
    MissingPosition,
    #[error("rate must be a number from 0.25 to 4")]
    InvalidRate,
    #[error("the rate action needs a rate")]
    MissingRate,
}

impl PlaybackCommand {
    pub fn new(
        action: PlaybackAction,
        position: Option<f64>,
        rate: Option<f64>,
        if_version: Option<i64>,
    ) -> Result<Self, PlaybackCommandError> {
        if let Some(p) = position {
            if !p.is_finite() || p < 0.0 {
                return Err(PlaybackCommandError::InvalidPosition);
            }
        }
        if let Some(r) = rate {
            if !r.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&r) {
                return Err(PlaybackCommandError::InvalidRate);
            }
        }
        match action {
            PlaybackAction::Seek if position.is_none() => {
                Err(PlaybackCommandError::MissingPosition)
            }
            PlaybackAction::Rate if rate.is_none() => Err(PlaybackCommandError::MissingRate),
            _ => Ok(Self {
                action,
                position,
                rate,
                if_version,
                force: false,
            }),
        }
    }

    /// The state after this command, or `None` on an `if_version` conflict.
    pub fn apply(&self, state: &PlaybackState, now_ms: i64) -> Option<PlaybackState> {
        if self.if_version.is_some_and(|v| v != state.version) {
            return None;
        }
        let current = state.position_at(now_ms);
        let mut next = state.clone();
        match self.action {
            PlaybackAction::Play => {
                next.playing = true;
                next.position = self.position.unwrap_or(current);
            }
            PlaybackAction::Pause => {
                next.playing = false;
                next.position = self.position.unwrap_or(current);
            }
            PlaybackAction::Seek => next.position = self.position.unwrap_or(current),
            PlaybackAction::Rate => {
                next.position = current;
                next.rate = self.rate.unwrap_or(state.rate);
            }
        }
        next.updated_at = now_ms;
        next.version = state.version + 1;
        Some(next)
    }
}

/// The state after setting `media`: paused at 0, rate kept, no wait.
pub fn apply_media(state: &PlaybackState, media: Media, now_ms: i64) -> PlaybackState {
    PlaybackState {
        media: Some(media),
        playing: false,
        position: 0.0,
        rate: state.rate,
        updated_at: now_ms,
        version: state.version + 1,
        waiting_for: Vec::new(),
        wait_until: None,
    }
}

/// Checks a media URL: http or https, at most 2048 characters.
pub fn valid_media_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    scheme_ok && !rest.is_empty() && url.chars().count() <= MAX_MEDIA_URL_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(action: PlaybackAction, position: Option<f64>, rate: Option<f64>) -> PlaybackCommand {
        PlaybackCommand::new(action, position, rate, None).unwrap()
    }

    #[test]
    fn play_advances_the_computed_position_and_the_version() {
        let start = PlaybackState::initial(1_000);
        let playing = cmd(PlaybackAction::Play, None, None)
            .apply(&start, 2_000)
            .unwrap();
        assert!(playing.playing);
        assert_eq!(playing.version, 1);
        assert_eq!(playing.position_at(4_000), 2.0);
        let paused = cmd(PlaybackAction::Pause, None, None)
            .apply(&playing, 4_000)
            .unwrap();
        assert_eq!(paused.position, 2.0);
        assert_eq!(paused.position_at(9_000), 2.0);
    }

    #[test]
    fn rate_keeps_position_continuous() {
        let s = cmd(PlaybackAction::Play, Some(10.0), None)
            .apply(&PlaybackState::initial(0), 0)
            .unwrap();
        let r = cmd(PlaybackAction::Rate, None, Some(2.0))
            .apply(&s, 1_000)
            .unwrap();
        assert_eq!(r.position, 11.0);
        assert_eq!(r.position_at(2_000), 13.0);
    }

    #[test]
    fn if_version_mismatch_is_a_conflict() {
        let s = PlaybackState::initial(0);
        let c = PlaybackCommand::new(PlaybackAction::Pause, None, None, Some(3)).unwrap();
        assert!(c.apply(&s, 0).is_none());
        let ok = PlaybackCommand::new(PlaybackAction::Pause, None, None, Some(0)).unwrap();
        assert_eq!(ok.apply(&s, 0).unwrap().version, 1);
    }

    #[test]
    fn invalid_commands_are_refused() {
        use PlaybackCommandError::*;
        let new = PlaybackCommand::new;
        assert_eq!(
            new(PlaybackAction::Seek, None, None, None),
            Err(MissingPosition)
        );
        assert_eq!(
            new(PlaybackAction::Seek, Some(-1.0), None, None),
            Err(InvalidPosition)
        );
        assert_eq!(
            new(PlaybackAction::Seek, Some(f64::NAN), None, None),
            Err(InvalidPosition)
        );
        assert_eq!(
            new(PlaybackAction::Rate, None, None, None),
            Err(MissingRate)
        );
        assert_eq!(
            new(PlaybackAction::Rate, None, Some(4.01), None),
            Err(InvalidRate)
        );
        assert!(new(PlaybackAction::Rate, None, Some(0.25), None).is_ok());
    }

    #[test]
    fn media_pauses_at_zero_and_keeps_rate() {
        let s = cmd(PlaybackAction::Rate, None, Some(1.5))
            .apply(&PlaybackState::initial(0), 0)
            .unwrap();
        let m = apply_media(
            &s,
            Media {
                url: "https://x/v.mp4".into(),
                title: None,
                duration: None,
            },
            5,
        );
        assert_eq!(
            (m.playing, m.position, m.rate, m.version),
            (false, 0.0, 1.5, 2)
        );
    }

    #[test]
    fn media_urls_must_be_http() {
        assert!(valid_media_url("https://example.com/a.mp4"));
        assert!(valid_media_url("HTTP://example.com/a.mp4"));
        assert!(!valid_media_url("ftp://example.com/a.mp4"));
        assert!(!valid_media_url("https://"));
        assert!(!valid_media_url(&format!(
            "https://e.com/{}",
            "a".repeat(2048)
        )));
    }
}
