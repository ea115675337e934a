//! The real `synctv` binary as a child process, for what only a process can show: exit
//! codes, SIGTERM, and `kill -9`.

use crate::wait::wait_for;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct SynctvProcess {
    child: Child,
    pub port: u16,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl SynctvProcess {
    /// Starts `synctv` with `env` on a free port and waits until `/health` answers.
    pub async fn start(env: &[(&str, String)]) -> SynctvProcess {
        Self::start_on(free_port(), env).await
    }

    pub async fn start_on(port: u16, env: &[(&str, String)]) -> SynctvProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_synctv"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SYNCTV__SERVER__PORT", port.to_string())
            .env("SYNCTV__LOG__LEVEL", "warn")
            // Every test signs in from 127.0.0.1; the per-address limits have their own tests.
            .env("SYNCTV__LIMITS__GUESTS_PER_MINUTE", "100000")
            .env("SYNCTV__LIMITS__ROOMS_PER_MINUTE", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn synctv");
        let mut process = SynctvProcess { child, port };
        let client = reqwest::Client::new();
        let health = process.url("/health");
        wait_for(
            Duration::from_secs(30),
            &format!("synctv healthy on port {port}"),
            || {
                let exited = process.child.try_wait().ok().flatten();
                let request = client.get(&health).send();
                async move {
                    if let Some(status) = exited {
                        panic!("synctv on port {port} exited before it was healthy: {status}");
                    }
                    request
                        .await
                        .is_ok_and(|r| r.status().is_success())
                        .then_some(())
                }
            },
        )
        .await;
        process
    }

    /// A guest's token, from `POST /api/v1/auth/guest`.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn guest_token(&self, name: &str) -> String {
        let guest: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/v1/auth/guest"))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("guest request")
            .json()
            .await
            .expect("guest body");
        guest["token"].as_str().expect("a token").to_owned()
    }

    /// A new room's id, created with `token`.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn create_room(&self, token: &str, name: &str) -> String {
        let room: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("room request")
            .json()
            .await
            .expect("room body");
        room["id"].as_str().expect("a room id").to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the process is still running (it has not exited or crashed).
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: no drain, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn terminate(&self) {
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
    }

    /// Waits for the process to exit, up to `patience`.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn wait_exit(&mut self, patience: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for(patience, "synctv exited", || {
            let status = child.try_wait().expect("wait");
            async move { status }
        })
        .await
    }

    /// The value of one series of this process's `/metrics` (`name` or
    /// `name{label="value"}`), 0 while it was never recorded. The process is a test's own,
    /// so no other test moves its counters.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().expect("a metric value"))
    }
}

impl Drop for SynctvProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
