//! The scenarios, one file each, and what they share: the run context and the measured
//! publish window (`window`) that `fanout` runs once and `max` runs at rising rates.

pub mod churn;
pub mod fanout;
pub mod idle;
pub mod max;
pub mod window;

use crate::connection::Target;
use crate::http::Api;

/// What every scenario gets: the HTTP client, the nodes, the server pids to watch, and a
/// prefix that makes this run's user and room names unique.
pub struct Ctx {
    pub api: Api,
    pub targets: Vec<Target>,
    pub server_pids: Vec<u32>,
    pub prefix: String,
    /// Past this many connections in a run, source addresses spread over 127.0.0.x.
    pub spread_sources_above: usize,
}

impl Ctx {
    pub fn node_urls(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.base.clone()).collect()
    }
}
