//! Throwaway PostgreSQL servers that replicate: a primary made by `initdb`, standbys
//! cloned from it by `pg_basebackup -R`, a WAL archive, and the faults a drill needs
//! (`kill -9` of a server and all its processes, promotion, replay paused). Each lives
//! in its own temporary directory on a free loopback port and is killed on drop.

use crate::postgres::find_bin_dir;
use crate::process::free_port;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct PgNode {
    pub name: String,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
    /// `-c` settings given at every start.
    settings: Vec<String>,
}

/// Where a primary copies each finished WAL segment (`archive_command`).
pub struct WalArchive {
    pub dir: PathBuf,
}

/// A plain base backup (`data/` inside `dir`), deleted on drop.
pub struct BaseBackup {
    pub dir: PathBuf,
}

impl Drop for BaseBackup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PgNode {
    /// A fresh primary with the database `synctv`; `settings` (`name=value`) at start.
    pub fn primary(name: &str, settings: &[&str]) -> PgNode {
        let node = PgNode::empty(name, settings);
        node.run(
            "initdb",
            &[
                "-D",
                &node.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        node.start();
        node.psql("postgres", "CREATE DATABASE synctv");
        node
    }

    /// Runs `sql` with `psql` on `database`; its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.run_out(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-tAX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
        .trim()
        .to_owned()
    }

    /// Makes `standby` synchronous: from now on a commit returns only once it holds it.
    pub fn require_sync_standby(&self, standby: &str) {
        self.psql(
            "postgres",
            &format!("ALTER SYSTEM SET synchronous_standby_names = '{standby}'"),
        );
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started; its
    /// `application_name` is `name`, which `synchronous_standby_names` may list.
    pub fn standby_of(primary: &PgNode, name: &str) -> PgNode {
        let node = PgNode::empty(
            name,
            &[&format!(
                "primary_conninfo=host=127.0.0.1 port={} user=postgres application_name={name}",
                primary.port
            )],
        );
        node.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &node.data(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        node.start();
        node
    }

    /// A new server restored from `backup` (a plain base backup directory) plus every
    /// segment in `archive`: it replays the archive to its end and becomes a primary.
    pub fn restored(name: &str, backup: &BaseBackup, archive: &WalArchive) -> PgNode {
        let node = PgNode::empty(
            name,
            &[&format!(
                "restore_command=cp {}/%f %p",
                archive.dir.display()
            )],
        );
        node.run("cp", &["-a", path(&backup.dir.join("data")), &node.data()]);
        node.run("touch", &[&format!("{}/recovery.signal", node.data())]);
        node.start();
        node
    }

    /// A plain base backup of this server, taken now, in a new directory.
    pub fn base_backup(&self) -> BaseBackup {
        let dir = new_dir("synctv-pg-backup-", self.as_root);
        self.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                path(&dir.join("data")),
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        BaseBackup { dir }
    }

    fn empty(name: &str, settings: &[&str]) -> PgNode {
        let bin = find_bin_dir().expect("PostgreSQL binaries not found; run ./scripts/test");
        // Where initdb really lives holds the other tools (psql, pg_basebackup) too, even
        // when PATH only links initdb and pg_ctl.
        let bin = std::fs::canonicalize(bin.join("initdb"))
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf))
            .unwrap_or(bin);
        let as_root = unsafe { libc::geteuid() } == 0;
        let dir = new_dir(&format!("synctv-pg-{name}-"), as_root);
        PgNode {
            name: name.to_owned(),
            port: free_port(),
            dir,
            bin,
            as_root,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/synctv`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/synctv", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start(&self) {
        // fsync off keeps drills fast; a killed server loses nothing by it (the kernel
        // keeps what was written), and a killed server is the fault these drills play.
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
             -c wal_level=replica -c max_wal_senders=10 -c hot_standby=on \
             -c wal_receiver_status_interval=1s",
            self.port,
            path(&self.dir)
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c '{setting}'"));
        }
        let log = self.dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "120",
                "-D",
                &self.data(),
                "-l",
                path(&log),
                "-o",
                &options,
            ],
        );
    }

    /// `kill -9` of the postmaster and every process it started: the host is gone.
    pub fn kill9(&self) {
        let Some(pid) = self.postmaster_pid() else {
            return;
        };
        let children = children_of(pid);
        // SAFETY: signals to processes of the server this harness started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            for child in &children {
                libc::kill(*child, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while (unsafe { libc::kill(pid, 0) } == 0 || children.iter().any(|c| alive(*c)))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(self.dir.join("data").join("postmaster.pid"));
    }

    /// `pg_ctl promote -w`: the standby becomes a primary; returns once it takes writes.
    pub fn promote(&self) {
        self.run("pg_ctl", &["promote", "-w", "-t", "60", "-D", &self.data()]);
    }

    /// The server's own log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> String {
        path(&self.dir.join("data")).to_owned()
    }

    fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    fn run(&self, program: &str, args: &[&str]) {
        self.run_out(program, args);
    }

    fn run_out(&self, program: &str, args: &[&str]) -> String {
        let program = if program == "cp" || program == "touch" {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).output().expect("run a postgres tool");
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}\n{}\n{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl WalArchive {
    pub fn new() -> WalArchive {
        let as_root = unsafe { libc::geteuid() } == 0;
        WalArchive {
            dir: new_dir("synctv-pg-archive-", as_root),
        }
    }

    /// The settings that make a primary archive every finished segment here.
    pub fn settings(&self) -> [String; 3] {
        [
            "archive_mode=on".to_owned(),
            format!("archive_command=cp %p {}/%f", self.dir.display()),
            "archive_timeout=60".to_owned(),
        ]
    }
}

impl Drop for WalArchive {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new temporary directory, owned by `postgres` when running as root (initdb and the
/// server refuse to run as root).
pub fn new_dir(prefix: &str, as_root: bool) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap()
        .keep();
    if as_root {
        let name = CString::new("postgres").unwrap();
        // SAFETY: getpwnam returns a pointer into static storage, read at once.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        assert!(!pw.is_null(), "no `postgres` user: install postgresql");
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    dir
}

fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command may hold spaces: the fields after its closing paren.
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); its state letter says it is dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
