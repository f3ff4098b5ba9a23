//! Discovery of a PDP fleet: three real PDPs on loopback ports behind a
//! test resolver whose answer the test changes while traffic runs.

mod common;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cerbos_testkit::Pdp;
use cerbos_tower::{Client, Error, Resolver};

/// What the test resolver answers.
#[derive(Clone, Debug)]
enum Answer {
    Addresses(Vec<SocketAddr>),
    Fails,
}

/// A resolver whose answer the test sets; counts its resolutions.
#[derive(Clone, Debug)]
struct Fleet {
    answer: Arc<Mutex<Answer>>,
    resolutions: Arc<AtomicUsize>,
}

impl Fleet {
    fn new(answer: Answer) -> Self {
        Fleet {
            answer: Arc::new(Mutex::new(answer)),
            resolutions: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Waits until the client has resolved at least twice after now (so
    /// the answer set before this call was applied).
    async fn resolved(&self) {
        let start = self.resolutions.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.resolutions.load(Ordering::SeqCst) < start + 2 {
            assert!(Instant::now() < deadline, "the client stopped resolving");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Resolver for Fleet {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        assert_eq!((host, port), ("cerbos.fleet.test", 3593));
        let answer = match &*self.answer.lock().unwrap() {
            Answer::Addresses(addresses) => Ok(addresses.clone()),
            Answer::Fails => Err(io::Error::other("the DNS server is down")),
        };
        self.resolutions.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(answer))
    }
}

fn pdp() -> Pdp {
    Pdp::builder(common::policy_dir())
        .log_level("info")
        .start()
        .expect("a real PDP starts")
}

fn served(pdp: &Pdp) -> usize {
    pdp.logs().matches("CheckResources").count()
}

/// Waits (at most 20 s) until `pdp` has served more than `than` calls.
async fn serves_more(pdp: &Pdp, than: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = served(pdp);
        if n > than {
            return n;
        }
        assert!(Instant::now() < deadline, "{what}: no call after {than}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client(fleet: &Fleet) -> Client {
    common::live_client("dns:///cerbos.fleet.test:3593")
        .resolver(fleet.clone())
        .resolve_interval(Duration::from_millis(100))
        .build()
        .expect("a client of the fleet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_the_fleet_as_replicas_come_and_go_without_errors() {
    let mut a = pdp();
    let b = pdp();
    let c = pdp();
    let addr = |pdp: &Pdp| pdp.grpc_addr().expect("PDPs listen on TCP");
    let fleet = Fleet::new(Answer::Addresses(vec![addr(&a)]));
    let client = client(&fleet);

    // Traffic from four tasks for the whole test; every answer must allow.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, ok, errors) =
                (client.clone(), stop.clone(), ok.clone(), errors.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match client
                        .check_resources(common::alicia_edits_own_album())
                        .await
                    {
                        Ok(r) if r.results()[0].is_allowed("edit") => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => errors.lock().unwrap().push(format!("not allowed: {r:?}")),
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    serves_more(&a, 0, "the only replica").await;

    // Scale out: the new replicas take calls.
    fleet.set(Answer::Addresses(vec![addr(&a), addr(&b), addr(&c)]));
    serves_more(&b, 0, "replica b after scaling out").await;
    serves_more(&c, 0, "replica c after scaling out").await;

    // An empty answer and a failing resolver keep the last good set.
    fleet.set(Answer::Addresses(Vec::new()));
    fleet.resolved().await;
    let (sa, sb, sc) = (served(&a), served(&b), served(&c));
    fleet.set(Answer::Fails);
    fleet.resolved().await;
    serves_more(&a, sa, "a, kept through empty and failed resolutions").await;
    serves_more(&b, sb, "b, kept").await;
    serves_more(&c, sc, "c, kept").await;

    // Scale in: a leaves the answer; once re-resolved, it is stopped (as a
    // pod that was removed from the service and then terminated).
    fleet.set(Answer::Addresses(vec![addr(&b), addr(&c)]));
    fleet.resolved().await;
    // Calls already sent to `a` finish first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.stop().expect("a stops");
    let (sb, sc) = (served(&b), served(&c));
    let before = ok.load(Ordering::SeqCst);
    serves_more(&b, sb + 50, "b after a left").await;
    serves_more(&c, sc + 50, "c after a left").await;

    stop.store(true, Ordering::SeqCst);
    for task in traffic {
        task.await.unwrap();
    }
    let errors = errors.lock().unwrap();
    let total = ok.load(Ordering::SeqCst);
    assert!(
        errors.is_empty(),
        "{} errors in {total} calls: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(total > before, "calls went on after a was stopped");
    eprintln!(
        "{total} allowed calls, 0 errors; a served {}, b {}, c {}",
        served(&a),
        served(&b),
        served(&c)
    );
}

#[tokio::test]
async fn with_no_replica_calls_fail_closed_and_bad_settings_are_errors() {
    // Nothing resolved, ever: a call fails as unavailable, not allowed.
    let fleet = Fleet::new(Answer::Addresses(Vec::new()));
    let client = common::live_client("dns:///cerbos.fleet.test:3593")
        .resolver(fleet.clone())
        .resolve_interval(Duration::from_millis(50))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = client
        .is_allowed(
            cerbos_tower::Principal::new("alicia", ["user"]),
            cerbos_tower::Resource::new("album:object", "X3").with_attr("owner", "alicia"),
            "edit",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Timeout(_)),
        "{err:?}"
    );
    fleet.set(Answer::Fails);
    let err = Client::builder("dns:///cerbos.fleet.test:3593")
        .resolver(fleet.clone())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    for (builder, what) in [
        (
            Client::builder("dns:///cerbos.fleet.test:3593").endpoint("http://127.0.0.1:1"),
            "other endpoints",
        ),
        (
            Client::builder("http://127.0.0.1:3593").resolver(fleet.clone()),
            "not a dns: target",
        ),
        (
            Client::builder("dns:///cerbos.fleet.test").resolve_interval(Duration::ZERO),
            "resolve interval",
        ),
        (Client::builder("dns:///"), "dns:///host:port"),
    ] {
        let err = builder.build().unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains(what)),
            "{what}: {err:?}"
        );
    }
}
