//! The drain signal, handed to every task instead of ad-hoc abort handles.
//!
//! Shutdown has two steps. `begin()` starts the drain: WebSocket upgrades are refused
//! (503), `/ready` answers 503 and connections are asked to `reconnect`. `close()` ends it,
//! once clients have left or `server.drain_secs` ran out: whatever is still open closes
//! now, so pending history can be flushed and the process exits.

use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    draining: CancellationToken,
    closing: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining. Idempotent.
    pub fn begin(&self) {
        self.draining.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Resolves once the drain has begun.
    pub async fn draining(&self) {
        self.draining.cancelled().await
    }

    /// Ends the drain: remaining connections must close now. Implies `begin()`.
    pub fn close(&self) {
        self.draining.cancel();
        self.closing.cancel();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves once remaining connections must close.
    pub async fn closing(&self) {
        self.closing.cancelled().await
    }
}

/// Calls `shutdown.begin()` on the first SIGTERM or SIGINT.
pub fn begin_on_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received: draining");
        shutdown.begin();
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            // Without a SIGTERM handler, Ctrl-C still drains.
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_implies_draining() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_draining());
        shutdown.close();
        assert!(shutdown.is_draining() && shutdown.is_closing());
        shutdown.draining().await;
        shutdown.closing().await;
    }
}
