//! The harness against the real binary: start, health, logs, Unix sockets,
//! restarts on the same port, kill on drop, no orphans, policy compilation.

use std::{path::PathBuf, process::Command, time::Duration};

use cerbos_testkit::{Pdp, compile};
use common::gone;

mod common;

fn fixtures(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn health(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = write!(
        s,
        "GET /_cerbos/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("SERVING")
}

#[test]
fn starts_healthy_on_free_ports_and_is_killed_on_drop() {
    let mut pdp = Pdp::start(fixtures("policies")).expect("starts");
    assert!(pdp.is_running());
    assert!(health(pdp.http_addr()));
    let grpc = pdp.grpc_addr().expect("TCP gRPC");
    assert_ne!(grpc.port(), pdp.http_addr().port());
    assert_eq!(pdp.grpc_endpoint(), format!("http://{grpc}"));
    let pid = pdp.pid().expect("a pid");
    drop(pdp);
    assert!(gone(pid), "the PDP was killed on drop");
}

#[test]
fn serves_grpc_on_a_unix_socket() {
    let pdp = Pdp::builder(fixtures("policies"))
        .grpc_on_unix_socket(true)
        .start()
        .expect("starts");
    let socket = pdp.unix_socket().expect("a socket").to_owned();
    assert!(socket.exists());
    assert_eq!(pdp.grpc_endpoint(), format!("unix:{}", socket.display()));
    assert!(pdp.grpc_addr().is_none());
}

#[test]
fn restarts_on_the_same_ports() {
    let mut pdp = Pdp::builder(fixtures("policies"))
        .log_level("info")
        .start()
        .expect("starts");
    let (http, grpc) = (pdp.http_addr(), pdp.grpc_addr());
    let first = pdp.pid().unwrap();
    pdp.stop().unwrap();
    assert!(!pdp.is_running());
    assert!(gone(first));
    assert!(!health(http));
    pdp.stop().unwrap(); // idempotent
    pdp.restart().expect("restarts");
    assert_eq!((pdp.http_addr(), pdp.grpc_addr()), (http, grpc));
    assert_ne!(pdp.pid().unwrap(), first);
    assert!(health(http));
    assert!(!pdp.logs().is_empty(), "info logs were captured");
}

#[test]
fn a_bad_configuration_fails_with_the_pdp_log() {
    let err = Pdp::builder(fixtures("policies"))
        .set("server.requestLimits.maxActionsPerResource", "100000")
        .health_timeout(Duration::from_secs(10))
        .start()
        .expect_err("an invalid limit");
    let text = err.to_string();
    assert!(text.contains("PDP log"), "{text}");
}

/// Run by `no_orphan_when_the_test_process_is_killed` in a child process:
/// starts a PDP, prints its pid and its directory (where its socket is), and
/// dies without running any destructor.
#[test]
fn orphan_helper() {
    if std::env::var_os("CERBOS_TESTKIT_ORPHAN_HELPER").is_none() {
        return;
    }
    let pdp = Pdp::builder(fixtures("policies"))
        .grpc_on_unix_socket(true)
        .start()
        .expect("starts");
    println!("PDP_PID={}", pdp.pid().unwrap());
    let dir = pdp.unix_socket().unwrap().parent().unwrap();
    println!("PDP_DIR={}", dir.display());
    std::process::abort();
}

#[test]
fn no_orphan_when_the_test_process_is_killed() {
    let (pid, dir) =
        common::run_aborting_helper("orphan_helper", "CERBOS_TESTKIT_ORPHAN_HELPER", "PDP");
    assert!(gone(pid), "PDP {pid} outlived the process that started it");
    // The watchdog removes the directory right after the PDP is gone.
    common::assert_removed_soon(&dir);
}

#[test]
fn compile_reports_success_and_readable_failures() {
    let ok = compile(fixtures("policies")).expect("compiles");
    ok.assert_ok();
    let broken = compile(fixtures("broken")).expect("runs");
    assert!(!broken.success);
    assert!(
        broken
            .output
            .contains("this expectation is wrong on purpose"),
        "{}",
        broken.output
    );
    let panic = std::panic::catch_unwind(|| broken.assert_ok()).expect_err("assert_ok panics");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("cerbos compile failed"), "{message}");
}

#[test]
fn cerbos_bin_must_exist_when_set() {
    // Run in a child so the environment change does not leak into other tests.
    if std::env::var_os("CERBOS_TESTKIT_BIN_HELPER").is_some() {
        let err = cerbos_testkit::cerbos_binary().expect_err("missing CERBOS_BIN");
        assert!(err.to_string().contains("CERBOS_BIN"), "{err}");
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cerbos_bin_must_exist_when_set",
            "--test-threads=1",
        ])
        .env("CERBOS_TESTKIT_BIN_HELPER", "1")
        .env("CERBOS_BIN", "/nonexistent/cerbos")
        .status()
        .unwrap();
    assert!(status.success());
}
