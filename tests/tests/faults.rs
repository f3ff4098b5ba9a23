//! Recovery from dead connections, through an in-project fault proxy
//! (loopback TCP: pass, latency, blackhole, half-open, reset) in front of
//! the real PDP. While a fault lasts, every check fails closed (an error,
//! never an allow); when it ends, the client is back within seconds,
//! because HTTP/2 keepalive drops a connection whose PINGs go unanswered.
//! Without keepalive, a blackholed connection is never replaced (the
//! control at the end).

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use cerbos_tower::Client;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Bytes flow both ways.
    Pass,
    /// Bytes flow, each chunk late by this much.
    Latency(Duration),
    /// Bytes are read and dropped: connections stay open, nothing arrives,
    /// and a connection that lost bytes is dead for good.
    Blackhole,
    /// Nothing is read any more, as when the peer vanished without a reset:
    /// the connection is dead for good.
    HalfOpen,
    /// Every connection, open or new, is reset.
    Reset,
}

struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
}

impl FaultProxy {
    async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let mode = fault.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                for stream in [&client, &server] {
                    // Closing sends a reset, as a dead peer's kernel would.
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(Duration::ZERO));
                }
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let closed = Arc::new(AtomicBool::new(false));
                let dead = Arc::new(AtomicBool::new(false));
                for (from, to) in [(client_read, server_write), (server_read, client_write)] {
                    tokio::spawn(pump(from, to, mode.clone(), closed.clone(), dead.clone()));
                }
            }
        });
        FaultProxy { addr, fault }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// Copies `from` to `to` as the current fault says, until either side of
/// the connection closes.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
    closed: Arc<AtomicBool>,
    dead: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while !closed.load(Ordering::SeqCst) {
        let mode = *fault.lock().unwrap();
        match mode {
            Fault::Reset => break,
            Fault::Blackhole | Fault::HalfOpen => dead.store(true, Ordering::SeqCst),
            Fault::Pass | Fault::Latency(_) => {}
        }
        if dead.load(Ordering::SeqCst) && mode != Fault::Blackhole {
            // Half-open (or dead since): read nothing, send nothing.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let read = tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await;
        let n = match read {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => n,
        };
        if dead.load(Ordering::SeqCst) {
            continue; // blackholed: dropped
        }
        // The fault now, not when the read began: bytes that arrive after
        // `set` get the new fault.
        let mode = *fault.lock().unwrap();
        if matches!(mode, Fault::Blackhole | Fault::HalfOpen | Fault::Reset) {
            dead.store(true, Ordering::SeqCst);
            continue;
        }
        if let Fault::Latency(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::SeqCst);
}

/// One check through `client`: `Some(true)` allowed, `Some(false)` denied,
/// `None` an error (fail closed).
async fn check(client: &Client) -> Option<bool> {
    let answer = client
        .check_resources(common::alicia_edits_own_album())
        .await;
    answer.ok().map(|r| r.results()[0].is_allowed("edit"))
}

/// Checks for `during`: none may be allowed (the PDP would allow it, but
/// the answer cannot arrive). Returns how many ran.
async fn checks_fail_closed(client: &Client, during: Duration, fault: Fault) -> usize {
    let until = Instant::now() + during;
    let mut n = 0;
    while Instant::now() < until {
        assert_eq!(check(client).await, None, "{fault:?}: a check got through");
        n += 1;
    }
    n
}

/// How long until a check through `client` is allowed again (at most
/// `limit`; `None` if it never is).
async fn recovery(client: &Client, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check(client).await == Some(true) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn client_through(proxy: &FaultProxy) -> cerbos_tower::ClientBuilder {
    Client::builder(format!("http://{}", proxy.addr))
        .timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_recovers_within_seconds_after_every_fault() {
    let pdp = common::shared_pdp();
    let proxy = FaultProxy::start(pdp.grpc_addr().expect("a TCP gRPC address")).await;
    let client = client_through(&proxy).build().unwrap();
    assert_eq!(
        recovery(&client, Duration::from_secs(10)).await.map(|_| ()),
        Some(())
    );

    let mut report = Vec::new();
    for fault in [
        Fault::Latency(Duration::from_millis(1500)),
        Fault::Blackhole,
        Fault::HalfOpen,
        Fault::Reset,
    ] {
        proxy.set(fault);
        let failed = checks_fail_closed(&client, Duration::from_secs(3), fault).await;
        proxy.set(Fault::Pass);
        let took = recovery(&client, Duration::from_secs(15)).await;
        println!("{fault:?}: {failed} checks failed closed during 3 s; recovered in {took:?}");
        let took = took.unwrap_or_else(|| panic!("{fault:?}: no recovery within 15 s"));
        // Keepalive (2 s interval, 2 s timeout) plus a reconnect.
        assert!(
            took < Duration::from_secs(8),
            "{fault:?}: recovery took {took:?}"
        );
        report.push((fault, took));
    }
    println!("recovery times: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keepalive_a_blackholed_connection_is_never_replaced() {
    let pdp = common::shared_pdp();
    let proxy = FaultProxy::start(pdp.grpc_addr().expect("a TCP gRPC address")).await;
    let client = client_through(&proxy).no_keepalive().build().unwrap();
    assert_eq!(
        recovery(&client, Duration::from_secs(10)).await.map(|_| ()),
        Some(())
    );
    proxy.set(Fault::Blackhole);
    checks_fail_closed(&client, Duration::from_secs(2), Fault::Blackhole).await;
    proxy.set(Fault::Pass);
    // The control: the same fault, no keepalive, still down after 8 s.
    assert_eq!(recovery(&client, Duration::from_secs(8)).await, None);
}

#[tokio::test]
async fn keepalive_settings_are_checked() {
    for (interval, timeout) in [
        (Duration::ZERO, Duration::from_secs(1)),
        (Duration::from_secs(1), Duration::ZERO),
    ] {
        let err = Client::builder("http://127.0.0.1:3593")
            .keepalive(interval, timeout)
            .build()
            .expect_err("zero keepalive");
        assert!(err.to_string().contains("keepalive"), "{err}");
    }
}
