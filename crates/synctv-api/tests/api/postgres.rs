//! A throwaway PostgreSQL server for this test binary: started on first use on a free
//! loopback port in a temporary directory, and stopped when the process exits. Each test
//! gets its own database on it. Never the machine's shared server.

use std::ffi::CString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
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
    let port = free_port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=500",
        path(&dir)
    );
    let log = dir.join("postgres.log");
    run(
        as_root,
        &bin.join("pg_ctl"),
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
    wait_for_port(port);
    PostgresServer { port, dir }
}

/// Fast shutdown of the server by its pid (no subprocess at exit), then the directory.
extern "C" fn stop_at_exit() {
    let Some(server) = SERVER.get() else { return };
    let pid_file = server.dir.join("data").join("postmaster.pid");
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
    {
        // SIGQUIT: immediate shutdown; the data is thrown away anyway.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(&server.dir);
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
