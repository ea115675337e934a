//! The `synctv` command line: subcommands, startup errors, and what its logs look like.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn synctv() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_synctv"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    command
}

#[test]
fn help_lists_the_subcommands() {
    let out = synctv().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("serve") && help.contains("migrate"), "{help}");
}

#[test]
fn a_bad_setting_stops_the_server_naming_the_key() {
    for (key, value, named) in [
        ("SYNCTV__SERVER__PORT", "not-a-port", "SERVER.PORT"),
        ("SYNCTV__SERVER__NO_SUCH_KEY", "1", "NO_SUCH_KEY"),
        ("SYNCTV__AUTH__JWT_SECRET", "short", "auth.jwt_secret"),
        ("SYNCTV__API__KEY", "shorter-than-32-bytes", "api.key"),
        (
            "SYNCTV__WEBHOOKS__URL",
            "http://127.0.0.1:9/",
            "webhooks.secret",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = synctv()
            .current_dir(dir.path())
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(named), "{key}: {stderr}");
        assert!(
            stderr.lines().count() <= 2,
            "a message, not a backtrace: {stderr}"
        );
    }
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = synctv()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/synctv.db").is_file());
}

#[test]
fn every_json_log_line_names_the_node_once() {
    let dir = tempfile::tempdir().unwrap();
    let lines = serve_and_stop(dir.path(), &[("SYNCTV__LOG__FORMAT", "json")]);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["node_id"], "node-under-test", "{line}");
        assert_eq!(line.matches("node-under-test").count(), 1, "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("allows at most")),
        "{lines:?}"
    );
}

#[test]
fn every_text_log_line_names_the_node_once() {
    let dir = tempfile::tempdir().unwrap();
    let lines = serve_and_stop(dir.path(), &[("SYNCTV__LOG__FORMAT", "text")]);
    for line in &lines {
        assert!(line.ends_with("node_id=node-under-test"), "{line}");
        assert_eq!(line.matches("node-under-test").count(), 1, "{line}");
    }
}

/// `sqlite:///absolute/path` and `sqlite://./relative` name files that the server
/// creates when they do not exist yet, as it creates the embedded default.
#[test]
fn sqlite_urls_name_files_the_server_creates() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("new.db");
    assert!(absolute.is_absolute());
    for (url, file) in [
        (format!("sqlite://{}", absolute.display()), absolute.clone()),
        (
            "sqlite://./other.db".to_owned(),
            dir.path().join("other.db"),
        ),
    ] {
        assert!(!file.exists());
        let lines = serve_and_stop(dir.path(), &[("SYNCTV__DATABASE__URL", &url)]);
        assert!(file.is_file(), "{url} made no file: {lines:?}");
        assert!(!dir.path().join("data").exists(), "{url} used the default");
    }
}

#[test]
fn a_sqlite_file_in_a_missing_directory_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    for url in [
        format!("sqlite://{}/new.db", missing.display()),
        "sqlite://./no-such-dir/new.db".to_owned(),
    ] {
        let out = synctv()
            .current_dir(dir.path())
            .env("SYNCTV__SERVER__PORT", free_port().to_string())
            .env("SYNCTV__DATABASE__URL", &url)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("no-such-dir") && stderr.contains("does not exist"),
            "{url}: {stderr}"
        );
        assert!(!missing.exists());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `synctv` in `dir` with `env` until it says it is ready, sends SIGTERM, checks it
/// exits 0, and returns what it logged.
fn serve_and_stop(dir: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut command = synctv();
    command
        .current_dir(dir)
        .env("SYNCTV__SERVER__PORT", free_port().to_string())
        .env("SYNCTV__CLUSTER__NODE_ID", "node-under-test")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("synctv ready") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("synctv did not start: {:?}", reader.join().unwrap());
    }
    // SAFETY: signalling the child this test started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let lines = reader.join().unwrap();
    assert!(lines.len() >= 3, "{lines:?}");
    lines
}
