//! Helpers shared by the harness tests of the PDP and of PostgreSQL.

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// Whether process `pid` is gone (or a zombie) within 10 s.
pub(crate) fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s)
                if s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

/// The value the helper printed as `NAME=value` (libtest may print the
/// test's name before it on the same line).
fn printed<'a>(stdout: &'a str, name: &str) -> &'a str {
    let marker = format!("{name}=");
    stdout
        .lines()
        .find_map(|l| l.split_once(&marker).map(|(_, value)| value))
        .unwrap_or_else(|| panic!("the helper printed {name}: {stdout}"))
        .trim()
}

/// Runs the test `helper` of this test binary in a child process with the
/// variable `env` set: it starts a server, prints `{name}_PID=` and
/// `{name}_DIR=`, and aborts. Returns the pid and the directory it
/// printed, after asserting that it aborted.
pub(crate) fn run_aborting_helper(helper: &str, env: &str, name: &str) -> (u32, PathBuf) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .expect("the helper runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = printed(&stdout, &format!("{name}_PID")).parse().unwrap();
    let dir = PathBuf::from(printed(&stdout, &format!("{name}_DIR")));
    assert!(!output.status.success(), "the helper aborted");
    (pid, dir)
}

/// Asserts that the watchdog removes `dir` (within 10 s).
pub(crate) fn assert_removed_soon(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} outlived the process", dir.display());
}
