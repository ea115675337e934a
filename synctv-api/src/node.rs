//! Who this node is, and how many connections its file-descriptor limit allows.

use rand::Rng;
use synctv_core::Config;

/// File descriptors kept back for the database pool, the listener, logs and the like.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// This node's id: the configured one, else the host name plus a random suffix (so two
/// processes on one host differ). Written back into `config`, so everything that reads
/// the config afterwards sees the same id.
pub fn resolve_node_id(config: &mut Config) -> String {
    if let Some(id) = &config.cluster.node_id {
        return id.clone();
    }
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "synctv".into());
    let suffix: u32 = rand::thread_rng().gen_range(0..0x100_0000);
    let id = format!("{host}-{suffix:06x}");
    config.cluster.node_id = Some(id.clone());
    id
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit in force, or
/// `None` when it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            tracing::warn!(
                soft = limit.rlim_cur,
                hard = limit.rlim_max,
                "cannot raise the file limit"
            );
        }
    }
    Some(limit.rlim_cur)
}

/// The node's connection ceiling: the configured limit, lowered to what the file limit
/// leaves after [`RESERVED_DESCRIPTORS`] (each WebSocket holds one descriptor).
pub fn connection_ceiling(configured: usize, file_limit: Option<u64>) -> usize {
    match file_limit {
        None => configured,
        Some(n) => {
            let usable = n.saturating_sub(RESERVED_DESCRIPTORS).max(1);
            configured.min(usize::try_from(usable).unwrap_or(usize::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_is_the_lower_of_config_and_file_limit() {
        assert_eq!(connection_ceiling(100_000, Some(1024)), 768);
        assert_eq!(connection_ceiling(10, Some(1024)), 10);
        assert_eq!(connection_ceiling(10, None), 10);
        assert_eq!(connection_ceiling(10, Some(100)), 1);
    }

    #[test]
    fn node_id_is_resolved_once() {
        let mut config = Config::default();
        let id = resolve_node_id(&mut config);
        assert_eq!(resolve_node_id(&mut config), id);
        assert_eq!(config.cluster.node_id.as_deref(), Some(id.as_str()));
    }
}
