//! The errors of the cluster layer.

use std::sync::Arc;
use synctv_core::storage::StorageError;

/// Cloneable, because one failed group commit answers every change that was in it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClusterError {
    /// The database could not be reached; nothing was committed or acked.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Arc<StorageError>),
    /// The database refused the change for another reason.
    #[error("storage error: {0}")]
    Storage(#[source] Arc<StorageError>),
    /// The node is shutting down and takes no more changes.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Redis could not be reached when the node started in cluster mode.
    #[error("cannot reach redis: {0}")]
    Redis(String),
    /// NATS could not be reached when the node started in cluster mode.
    #[error("cannot reach nats: {0}")]
    Nats(String),
    /// The database took longer than the contract's 10 s to answer.
    #[error("the database did not answer in time")]
    Timeout,
}

impl From<StorageError> for ClusterError {
    fn from(e: StorageError) -> Self {
        if e.is_unavailable() {
            ClusterError::Unavailable(Arc::new(e))
        } else {
            ClusterError::Storage(Arc::new(e))
        }
    }
}
