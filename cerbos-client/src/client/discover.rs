//! Discovery of a PDP fleet behind one DNS name (a Kubernetes headless
//! service): resolve every address, balance over them, re-resolve
//! periodically as replicas come and go.

use std::{
    collections::HashSet, fmt, future::Future, io, net::SocketAddr, pin::Pin, sync::Arc,
    time::Duration,
};

use tokio::sync::{mpsc::Sender, watch};
use tonic::transport::Endpoint;
use tonic::transport::channel::Change;

use crate::{Error, Result};

/// The default port of a `dns:` target without one: the PDP's gRPC port.
const DEFAULT_PORT: u16 = 3593;

/// Resolves a fleet's name into the addresses of its PDP replicas.
///
/// [`SystemResolver`] (the default) asks the operating system's resolver;
/// tests and other discovery systems plug in their own:
///
/// ```
/// use std::{future::Future, io, net::SocketAddr, pin::Pin};
/// use cerbos_client::Resolver;
///
/// /// Always the same two replicas.
/// #[derive(Debug)]
/// struct Fixed(Vec<SocketAddr>);
///
/// impl Resolver for Fixed {
///     fn resolve<'a>(
///         &'a self,
///         _host: &'a str,
///         _port: u16,
///     ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
///         Box::pin(std::future::ready(Ok(self.0.clone())))
///     }
/// }
/// ```
pub trait Resolver: fmt::Debug + Send + Sync + 'static {
    /// Every address of `host`, each with `port` (or the port the
    /// discovery system knows). An empty answer or an error keeps the last
    /// good set of replicas.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo`, through Tokio's
/// `lookup_host`): every A and AAAA record of the name.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A `dns:` target: `dns:///host:port`, `dns://authority/host:port` (the
/// authority is not supported) or `dns:host:port`; the port defaults to
/// 3593.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DnsTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl DnsTarget {
    /// `None` if `target` is not a `dns:` target at all.
    pub(crate) fn parse(target: &str) -> Option<Result<DnsTarget>> {
        let rest = target.strip_prefix("dns:")?;
        let name = match rest.strip_prefix("//") {
            Some(authority_and_name) => match authority_and_name.split_once('/') {
                Some(("", name)) => name,
                _ => {
                    return Some(Err(Error::Config(format!(
                        "discovery target {target:?}: a DNS server (authority) is not \
                         supported; use dns:///host:port (the system resolver)"
                    ))));
                }
            },
            None => rest,
        };
        Some(Self::host_port(name).ok_or_else(|| {
            Error::Config(format!(
                "discovery target {target:?} must be dns:///host:port \
                 (for example dns:///cerbos.default.svc.cluster.local:3593)"
            ))
        }))
    }

    fn host_port(name: &str) -> Option<DnsTarget> {
        let (host, port) = if let Some(v6) = name.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        } else {
            match name.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (name, None),
            }
        };
        let port = match port {
            Some(port) => port.parse().ok().filter(|p| *p != 0)?,
            None => DEFAULT_PORT,
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        valid.then(|| DnsTarget {
            host: host.to_owned(),
            port,
        })
    }
}

/// What the client's calls need of discovery: how many replicas the last
/// good resolution found (`None` before the first one).
#[derive(Clone, Debug)]
pub(crate) struct Discovered {
    pub(crate) target: Arc<str>,
    pub(crate) replicas: watch::Receiver<Option<usize>>,
}

impl Discovered {
    /// `Ok` once some replica is known; waits for the first resolution. An
    /// error (no replica ever resolved) is a reason to fail the call
    /// closed, as `UNAVAILABLE` (retried while the call's deadline allows).
    pub(crate) async fn ready(&self) -> Result<(), tonic::Status> {
        let mut replicas = self.replicas.clone();
        let known = match replicas.wait_for(Option::is_some).await {
            Ok(known) => known.unwrap_or(0),
            // The resolving task is gone (the runtime is shutting down).
            Err(_) => 0,
        };
        if known == 0 {
            return Err(tonic::Status::unavailable(format!(
                "no PDP address resolved for {} yet",
                self.target
            )));
        }
        Ok(())
    }
}

/// The resolving task: re-resolves every `interval`, inserting new
/// replicas before removing gone ones, and keeps the last good set when
/// an answer is empty or an error. Ends when the client is dropped.
pub(crate) async fn run(
    target: DnsTarget,
    resolver: Arc<dyn Resolver>,
    interval: Duration,
    endpoint: impl Fn(SocketAddr) -> Result<Endpoint> + Send,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    replicas: watch::Sender<Option<usize>>,
) {
    let name = format!("{}:{}", target.host, target.port);
    let mut current: HashSet<SocketAddr> = HashSet::new();
    loop {
        if changes.is_closed() {
            return;
        }
        match resolver.resolve(&target.host, target.port).await {
            Ok(addresses) if addresses.is_empty() => tracing::warn!(
                target = name.as_str(),
                kept = current.len(),
                "the PDP fleet's name resolved to no address: keeping the last good set"
            ),
            Ok(addresses) => {
                let next: HashSet<SocketAddr> = addresses.into_iter().collect();
                let added: Vec<_> = next.difference(&current).copied().collect();
                let removed: Vec<_> = current.difference(&next).copied().collect();
                for address in &added {
                    match endpoint(*address) {
                        Ok(endpoint) => {
                            if changes
                                .send(Change::Insert(*address, endpoint))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            current.insert(*address);
                        }
                        Err(err) => tracing::warn!(
                            target = name.as_str(),
                            %address,
                            error = %err,
                            "a PDP address cannot be used: skipped"
                        ),
                    }
                }
                for address in &removed {
                    if changes.send(Change::Remove(*address)).await.is_err() {
                        return;
                    }
                    current.remove(address);
                }
                if !added.is_empty() || !removed.is_empty() {
                    tracing::info!(
                        target = name.as_str(),
                        added = ?added,
                        removed = ?removed,
                        replicas = current.len(),
                        "the PDP fleet changed"
                    );
                }
            }
            Err(err) => tracing::warn!(
                target = name.as_str(),
                kept = current.len(),
                error = %err,
                "resolving the PDP fleet's name failed: keeping the last good set"
            ),
        }
        // Known now (possibly still none): calls stop waiting.
        replicas.send_replace(Some(current.len()));
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(target: &str) -> Option<Result<DnsTarget>> {
        DnsTarget::parse(target)
    }

    #[test]
    fn dns_targets() {
        let ok = |host: &str, port| {
            Some(DnsTarget {
                host: host.to_owned(),
                port,
            })
        };
        assert_eq!(
            parse("dns:///cerbos.ns.svc:3593").map(Result::ok),
            Some(ok("cerbos.ns.svc", 3593))
        );
        assert_eq!(
            parse("dns:cerbos:4000").map(Result::ok),
            Some(ok("cerbos", 4000))
        );
        assert_eq!(
            parse("dns:///cerbos").map(Result::ok),
            Some(ok("cerbos", 3593))
        );
        assert_eq!(parse("dns:///[::1]:9").map(Result::ok), Some(ok("::1", 9)));
        assert!(parse("http://cerbos:3593").is_none());
        for bad in [
            "dns:///",
            "dns:///cerbos:0",
            "dns:///cerbos:port",
            "dns:///cerbos:70000",
            "dns://8.8.8.8/cerbos:3593",
            "dns:///cer bos:3593",
            "dns:///[::1",
        ] {
            assert!(matches!(parse(bad), Some(Err(Error::Config(_)))), "{bad}");
        }
    }
}
