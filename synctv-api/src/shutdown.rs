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

    /// Resolves once remaining connections must close.
    pub async fn closing(&self) {
        self.closing.cancelled().await
    }
}

/// Calls `shutdown.begin()` on the first SIGTERM or SIGINT. The handlers are installed
/// before this returns, so a signal sent once the server says it is ready is never lost.
pub fn begin_on_signals(shutdown: Shutdown) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received: draining"),
            _ = int.recv() => tracing::info!("SIGINT received: draining"),
        }
        shutdown.begin();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_implies_draining() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_draining());
        shutdown.close();
        assert!(shutdown.is_draining());
        shutdown.draining().await;
        shutdown.closing().await;
    }
}
