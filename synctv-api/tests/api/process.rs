//! The real `synctv` binary as a child process, for what only a process can show: exit
//! codes, SIGTERM, and `kill -9`.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
        let process = SynctvProcess { child, port };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(process.url("/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("synctv did not become healthy on port {port}");
    }

    /// A guest's token, from `POST /api/v1/auth/guest`.
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

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `kill -9`: no drain, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
    }

    /// Waits for the process to exit, up to `patience`.
    pub async fn wait_exit(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "synctv did not exit in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
