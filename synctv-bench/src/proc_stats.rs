//! CPU and memory of processes from /proc: the server's (`--server-pid`) and the bench's
//! own, sampled at the start and the end of a measured window. Also the bench's file limit.

use serde::Serialize;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected format of {0}")]
    Format(String),
}

/// Clock ticks per second of /proc/*/stat times (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; a failure returns -1.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime in ticks, from the text of /proc/PID/stat. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total ticks of the whole machine (all cores), from the first line of
/// /proc/stat: `cpu user nice system idle iowait irq softirq steal ...`. Busy is everything
/// but idle and iowait.
pub fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// VmRSS in KiB, from the text of /proc/PID/status.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn read(path: String) -> Result<String, ProcError> {
    std::fs::read_to_string(&path).map_err(|source| ProcError::Read { path, source })
}

/// Voluntary plus involuntary context switches, from the text of /proc/PID/task/TID/status.
pub fn parse_status_switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Context switches of every thread of `pid` so far (threads that ended are not counted).
fn context_switches(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| parse_status_switches(&status))
        .sum()
}

/// CPU seconds, RSS and context switches of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_kib: u64,
    pub context_switches: u64,
}

/// `pid` is a number or `self`.
pub fn sample(pid: &str) -> Result<ProcSample, ProcError> {
    let stat_path = format!("/proc/{pid}/stat");
    let ticks = parse_stat_ticks(&read(stat_path.clone())?).ok_or(ProcError::Format(stat_path))?;
    let status_path = format!("/proc/{pid}/status");
    let rss_kib =
        parse_status_rss_kib(&read(status_path.clone())?).ok_or(ProcError::Format(status_path))?;
    Ok(ProcSample {
        cpu_secs: ticks as f64 / clock_ticks(),
        rss_kib,
        context_switches: context_switches(pid),
    })
}

/// Raise the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Usage of one process over a window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcUsage {
    pub pid: String,
    pub cpu_seconds: f64,
    /// CPU seconds per wall second, in percent of one core.
    pub cpu_percent: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    /// Context switches of all its threads over the window: unlike CPU time, hardly
    /// changed by what else runs on the machine.
    pub context_switches: u64,
}

/// Samples the watched processes (the servers, and the bench itself) at the window start;
/// `finish` turns a second sample into usage over the window.
pub struct Probe {
    pids: Vec<String>,
    start: Instant,
    samples: Vec<Option<ProcSample>>,
    machine: Option<(u64, u64)>,
}

/// Server and bench usage over one window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowUsage {
    pub wall_seconds: f64,
    pub server_cpu_seconds: f64,
    pub servers: Vec<ProcUsage>,
    pub bench: Option<ProcUsage>,
    /// Busy time of the whole machine over the window, in percent of all its cores: near
    /// 100 means the figures are CPU-bound, whoever spent it.
    pub machine_busy_percent: Option<f64>,
    /// CPU seconds spent by everything else on the machine (other builds, Redis,
    /// Postgres unless watched): the load the figures were taken under.
    pub others_cpu_seconds: Option<f64>,
}

impl Probe {
    /// Start watching `server_pids` and the bench itself (sampled as `self`).
    pub fn start(server_pids: &[u32]) -> Self {
        let mut pids: Vec<String> = server_pids.iter().map(u32::to_string).collect();
        pids.push("self".into());
        let samples = pids.iter().map(|p| sample(p).ok()).collect();
        Self {
            pids,
            start: Instant::now(),
            samples,
            machine: machine_ticks(),
        }
    }

    pub fn finish(&self) -> WindowUsage {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let mut usages: Vec<Option<ProcUsage>> = self
            .pids
            .iter()
            .zip(&self.samples)
            .map(|(pid, before)| {
                let before = (*before)?;
                let after = sample(pid).ok()?;
                let cpu = after.cpu_secs - before.cpu_secs;
                Some(ProcUsage {
                    pid: pid.clone(),
                    cpu_seconds: crate::report::round3(cpu),
                    cpu_percent: crate::report::round3(cpu / wall * 100.0),
                    rss_start_kib: before.rss_kib,
                    rss_end_kib: after.rss_kib,
                    context_switches: after
                        .context_switches
                        .saturating_sub(before.context_switches),
                })
            })
            .collect();
        let bench = usages.pop().flatten();
        let servers: Vec<ProcUsage> = usages.into_iter().flatten().collect();
        let server_cpu: f64 = servers.iter().map(|s| s.cpu_seconds).sum();
        let machine = self.machine.zip(machine_ticks()).and_then(|(a, b)| {
            let (busy, total) = (b.0.checked_sub(a.0)?, b.1.checked_sub(a.1)?);
            (total > 0).then_some((busy, total))
        });
        let watched = server_cpu + bench.as_ref().map_or(0.0, |b| b.cpu_seconds);
        WindowUsage {
            wall_seconds: crate::report::round3(wall),
            server_cpu_seconds: crate::report::round3(server_cpu),
            servers,
            bench,
            machine_busy_percent: machine
                .map(|(busy, total)| crate::report::round3(busy as f64 * 100.0 / total as f64)),
            others_cpu_seconds: machine.map(|(busy, _)| {
                crate::report::round3((busy as f64 / clock_ticks() - watched).max(0.0))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        let stat = "1234 (syn ctv) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 \
                    5000 100000000 2500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tsynctv\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t8\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((160, 1180)));
        assert_eq!(parse_machine_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn switches_add_voluntary_and_involuntary() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_status_switches(status), 127);
        assert_eq!(parse_status_switches("Name:\tx\n"), 0);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0);
        assert!(clock_ticks() > 0.0);
    }
}
