//! The throwaway PostgreSQL server against the real binaries: install,
//! start on a free port (as an unprivileged uid under root), answer a
//! query, stop on drop, no orphan when the test process dies.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use cerbos_testkit::{Postgres, UNPRIVILEGED_UID};
use common::gone;

mod common;

/// One message of the PostgreSQL wire protocol: its type and body.
fn message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).expect("a message header");
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).expect("a message body");
    (header[0], body)
}

/// Runs `sql` (one row, one text column) over the simple query protocol,
/// as the trusted superuser: no driver needed.
fn query_one(pg: &Postgres, sql: &str) -> String {
    let mut stream = TcpStream::connect(pg.addr()).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", pg.user()), ("database", pg.database())] {
        startup.extend_from_slice(k.as_bytes());
        startup.push(0);
        startup.extend_from_slice(v.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let len = (startup.len() + 4) as u32;
    stream.write_all(&len.to_be_bytes()).unwrap();
    stream.write_all(&startup).unwrap();
    loop {
        match message(&mut stream) {
            (b'Z', _) => break,
            (b'E', body) => panic!("startup failed: {}", String::from_utf8_lossy(&body)),
            (b'R', body) => assert_eq!(&body[..4], &[0, 0, 0, 0], "trust authentication"),
            _ => {}
        }
    }
    let mut query = sql.as_bytes().to_vec();
    query.push(0);
    stream.write_all(b"Q").unwrap();
    stream
        .write_all(&((query.len() + 4) as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&query).unwrap();
    let mut value = None;
    loop {
        match message(&mut stream) {
            (b'D', body) => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                let len = usize::try_from(len).expect("not NULL");
                value = Some(String::from_utf8(body[6..6 + len].to_vec()).unwrap());
            }
            (b'E', body) => panic!("{sql} failed: {}", String::from_utf8_lossy(&body)),
            (b'Z', _) => break,
            _ => {}
        }
    }
    stream.write_all(b"X\0\0\0\x04").unwrap();
    value.expect("one row")
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .unwrap()
}

#[test]
fn starts_answers_select_version_and_is_stopped_on_drop() {
    cerbos_testkit::postgres_bin_dir().expect("PostgreSQL is installed");
    let started = Instant::now();
    let mut pg = Postgres::start().expect("PostgreSQL starts");
    let elapsed = started.elapsed();
    eprintln!(
        "PostgreSQL at {} in {elapsed:?} (initdb {:?})",
        pg.url(),
        pg.initdb_time()
    );
    assert!(pg.is_running());
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    let version = query_one(&pg, "select version()");
    eprintln!("{version}");
    assert!(version.starts_with("PostgreSQL 18."), "{version}");
    assert_eq!(query_one(&pg, "show fsync"), "off");
    let pid = pg.pid().expect("a pid");
    let root = uid_of(std::process::id()) == 0;
    assert_eq!(pg.run_as(), root.then_some(UNPRIVILEGED_UID));
    if root {
        assert_eq!(uid_of(pid), UNPRIVILEGED_UID, "not root");
    }
    let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
    assert!(socket.exists(), "{}", socket.display());
    let dir = pg.socket_dir().to_owned();
    let addr = pg.addr();
    drop(pg);
    assert!(gone(pid), "PostgreSQL was stopped on drop");
    assert!(!dir.exists(), "{} was removed", dir.display());
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn two_servers_run_side_by_side() {
    let a = Postgres::start().expect("starts");
    let b = Postgres::start().expect("starts");
    assert_ne!(a.port(), b.port());
    assert_eq!(query_one(&a, "select 1 + 1"), "2");
    assert_eq!(query_one(&b, "select 'b'"), "b");
}

/// Run by `no_orphan_when_the_test_process_dies` in a child process:
/// starts a server, prints its pid and directory, and dies without running
/// any destructor.
#[test]
fn postgres_orphan_helper() {
    if std::env::var_os("CERBOS_TESTKIT_PG_ORPHAN_HELPER").is_none() {
        return;
    }
    let pg = Postgres::start().expect("starts");
    println!("PG_PID={}", pg.pid().unwrap());
    println!("PG_DIR={}", pg.socket_dir().display());
    std::process::abort();
}

#[test]
fn no_orphan_when_the_test_process_dies() {
    let (pid, dir) = common::run_aborting_helper(
        "postgres_orphan_helper",
        "CERBOS_TESTKIT_PG_ORPHAN_HELPER",
        "PG",
    );
    assert!(
        gone(pid),
        "PostgreSQL {pid} outlived the process that started it"
    );
    common::assert_removed_soon(&dir);
}
