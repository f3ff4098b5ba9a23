//! A server run by a watchdog shell (the `WATCHDOG` scripts of [`crate::Pdp`]
//! and [`crate::Postgres`]): the watchdog starts it, prints its pid, and
//! stops it when its own stdin closes.

use std::{
    ffi::OsStr,
    io::{self, BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::pid_alive;

/// The command that runs `program` with `args` under the watchdog
/// `script` (`/bin/sh -c SCRIPT NAME PROGRAM ARGS...`), appending its
/// output to `log` and cleaning up `dir` (see the scripts).
pub(crate) fn watchdog_command(
    script: &str,
    name: &str,
    program: impl AsRef<OsStr>,
    args: Vec<String>,
    log: &Path,
    dir: &Path,
) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .arg(name)
        .arg(program)
        .args(args)
        .env("CERBOS_TESTKIT_LOG", log)
        .env("CERBOS_TESTKIT_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Why [`Watched::spawn`] failed.
pub(crate) enum SpawnError {
    /// `/bin/sh` did not start.
    Shell(io::Error),
    /// The watchdog's stdout could not be read.
    Read(io::Error),
    /// The watchdog printed this instead of a pid.
    NoPid(String),
}

/// The server and its watchdog.
#[derive(Debug)]
pub(crate) struct Watched {
    watchdog: Child,
    /// Closing it tells the watchdog to stop the server.
    stdin: Option<ChildStdin>,
    /// The server's pid.
    pub(crate) pid: u32,
}

impl Watched {
    /// Spawns a [`watchdog_command`] and reads the server's pid.
    pub(crate) fn spawn(command: &mut Command) -> Result<Watched, SpawnError> {
        let mut watchdog = command.spawn().map_err(SpawnError::Shell)?;
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(SpawnError::Read)?;
        }
        let Ok(pid) = line.trim().parse::<u32>() else {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            return Err(SpawnError::NoPid(line));
        };
        Ok(Watched {
            watchdog,
            stdin,
            pid,
        })
    }

    /// `true` while the watchdog and the server run.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.watchdog.try_wait(), Ok(None)) && pid_alive(self.pid)
    }

    /// Tells the watchdog `stop` (stop the server, keep the directory) and
    /// waits for it; after `grace`, kills the server and the watchdog.
    pub(crate) fn stop(mut self, grace: Duration) -> io::Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            // A watchdog that is already gone cannot read it: fine.
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + grace;
        loop {
            match self.watchdog.try_wait()? {
                Some(_) => return Ok(()),
                None if Instant::now() > deadline => {
                    let _ = Command::new("kill")
                        .args(["-9", &self.pid.to_string()])
                        .status();
                    let _ = self.watchdog.kill();
                    let _ = self.watchdog.wait();
                    return Ok(());
                }
                None => thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The last 40 lines of a server's log.
pub(crate) fn log_tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
