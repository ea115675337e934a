//! Throwaway PostgreSQL servers, on free loopback ports in temporary directories; never
//! the machine's shared server. `PostgresServer::get()` is the one this test binary
//! shares (each test makes its own database on it), stopped when the process exits;
//! `PostgresServer::private()` is a test's own, which it may stop and start again to
//! play a database outage, stopped when dropped.

use std::ffi::CString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

static SERVER: OnceLock<PostgresServer> = OnceLock::new();

impl PostgresServer {
    /// The process-wide server, started on first call.
    pub fn get() -> &'static PostgresServer {
        SERVER.get_or_init(|| {
            let server = start();
            // SAFETY: registering a plain extern "C" fn with no captured state.
            unsafe { libc::atexit(stop_at_exit) };
            server
        })
    }

    /// A server of the calling test's own.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn private() -> PostgresServer {
        start()
    }

    /// Stops the server at once, keeping its data (an outage).
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn stop(&self) {
        kill_and_wait(&self.dir);
    }

    /// Starts it again after `stop`, on the same port with the same data.
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn restart(&self) {
        pg_ctl_start(self);
    }

    /// The URL of the maintenance database, for `CREATE DATABASE`.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; its URL.
    pub async fn create_database(&self) -> String {
        use sqlx::Connection;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        self.url(&name)
    }
}

fn start() -> PostgresServer {
    let bin =
        find_bin_dir().expect("PostgreSQL binaries (initdb, pg_ctl) not found; run ./scripts/test");
    let dir = tempfile::Builder::new()
        .prefix("synctv-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        // initdb refuses to run as root: the server runs as `postgres`, which owns the dir.
        chown_to_postgres(&dir);
    }
    let data = dir.join("data");
    run(
        as_root,
        &bin.join("initdb"),
        &[
            "-D",
            path(&data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    );
    let server = PostgresServer {
        port: free_port(),
        dir,
        bin,
        as_root,
    };
    pg_ctl_start(&server);
    server
}

/// `fsync=off` keeps tests fast and still survives a killed server (the OS holds the
/// data); `synchronous_commit` stays on, or a killed server would lose recent commits.
fn pg_ctl_start(server: &PostgresServer) {
    let dir = &server.dir;
    let options = format!(
        "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c full_page_writes=off -c max_connections=500",
        server.port,
        path(dir)
    );
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    run(
        server.as_root,
        &server.bin.join("pg_ctl"),
        &[
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            path(&data),
            "-l",
            path(&log),
            "-o",
            &options,
        ],
    );
    wait_for_port(server.port);
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        kill_and_wait(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared server, at exit (statics are never dropped).
extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        kill_and_wait(&server.dir);
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}

/// Immediate shutdown by pid (SIGQUIT; no subprocess, so it is safe at exit).
fn kill_and_wait(dir: &Path) {
    let pid_file = dir.join("data").join("postmaster.pid");
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
    else {
        return;
    };
    // SAFETY: plain signals to the postmaster this harness started.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        // Pacing, not synchronisation: the loop ends when the process is gone.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(as_postgres: bool, program: &Path, args: &[&str]) {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `initdb` and `pg_ctl` in PATH, else the newest /usr/lib/postgresql/*/bin.
pub fn find_bin_dir() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    in_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn chown_to_postgres(dir: &Path) {
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer into static storage, read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "no `postgres` user: install postgresql");
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not listen on {port}"
        );
        // Pacing, not synchronisation: the loop ends when the port answers.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
