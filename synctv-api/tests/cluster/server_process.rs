//! The child process of a throwaway server (Redis, NATS) that a test owns: it can be
//! killed (`kill -9`, an outage), paused (SIGSTOP: the server holds its connections
//! but answers nothing) and resumed, and is asked whether it exited while starting.

use std::process::{Child, ExitStatus};
use std::sync::Mutex;

#[derive(Default)]
pub struct ServerProcess(Mutex<Option<Child>>);

impl ServerProcess {
    /// Owns `child` from now on (after a `kill`, the restarted one).
    pub fn set(&self, child: Child) {
        *self.0.lock().unwrap() = Some(child);
    }

    /// `kill -9`, resuming it first so that a paused server dies too; waits for it.
    pub fn kill(&self) {
        self.resume();
        if let Some(mut child) = self.0.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// `Some(status)` once the process has exited (a server that failed to start).
    pub fn exited(&self) -> Option<ExitStatus> {
        self.0.lock().unwrap().as_mut()?.try_wait().ok().flatten()
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = self.0.lock().unwrap().as_ref() {
            // SAFETY: kill(2) with our own child's pid and a valid signal number.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }
}
