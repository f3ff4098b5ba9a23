//! The Cerbos gRPC client.

#[cfg(feature = "admin")]
mod admin_calls;
mod codec;
mod discover;
mod telemetry;

pub use discover::{Resolver, SystemResolver};

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cerbos_proto::{
    cerbos::{request::v1 as request, response::v1 as response},
    grpc::health::v1::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    },
};
use futures_util::future::try_join_all;
use prost::bytes::Bytes;
use tokio::time::Instant;
use tonic::{
    client::Grpc,
    codegen::http::uri::PathAndQuery,
    metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap},
    transport::{Channel, Endpoint},
};

use crate::{
    CheckResources, CheckResourcesResponse, Error, PlanResources, PlanResourcesResponse, Principal,
    Resource, Result, TRACEPARENT, TRACESTATE, TraceContext,
    check::{self, Batch, Limits, ShortText},
    plan,
};

/// A validated metadata header.
type Header = (AsciiMetadataKey, AsciiMetadataValue);

/// The metadata header the Cerbos playground reads its instance id from
/// (`playground-instance`, as in the official SDKs).
const PLAYGROUND_INSTANCE: &str = "playground-instance";

/// The gRPC service name the PDP reports health for.
const HEALTH_SERVICE: &str = "cerbos.svc.v1.CerbosService";

/// A Cerbos PDP client.
///
/// Cheap to clone, `Send + Sync`, and every method takes `&self`: share one
/// client (or clones of it) across all tasks. Calls are multiplexed over
/// HTTP/2 with no lock.
///
/// ```no_run
/// use cerbos_client::{CheckResources, Client, Principal, Resource};
/// # async fn run() -> Result<(), cerbos_client::Error> {
/// let client = Client::builder("http://127.0.0.1:3593").build()?;
/// let response = client
///     .check_resources(
///         CheckResources::new(Principal::new("alice", ["user"]))
///             .resource(Resource::new("album:object", "X1").with_attr("owner", "alice"), ["view", "edit"]),
///     )
///     .await?;
/// if response.results()[0].is_allowed("edit") {
///     println!("alice may edit X1");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    grpc: Grpc<Channel>,
    health: HealthClient<Channel>,
    config: Arc<CallConfig>,
    /// With a `dns:` target: what the resolver found.
    discovery: Option<discover::Discovered>,
}

/// Per-call settings shared by all clones of a client, prepared once.
#[derive(Debug)]
struct CallConfig {
    timeout: Duration,
    retry: RetryPolicy,
    /// The custom headers, sent with every attempt.
    headers: Vec<Header>,
    /// The `grpc-timeout` of a first attempt: the whole call's timeout,
    /// formatted once (the same value on every call, so HTTP/2 header
    /// compression sends it as an index).
    grpc_timeout: AsciiMetadataValue,
    limits: Limits,
    /// Gives the current trace context for each call.
    trace: Option<TraceProvider>,
}

/// The methods' paths (what tonic's generated stubs send).
const CHECK_RESOURCES: &str = "/cerbos.svc.v1.CerbosService/CheckResources";
const PLAN_RESOURCES: &str = "/cerbos.svc.v1.CerbosService/PlanResources";
const SERVER_INFO: &str = "/cerbos.svc.v1.CerbosService/ServerInfo";

/// How calls are retried when the PDP is unavailable.
///
/// All the calls this client makes are read-only, so they are retried on
/// `UNAVAILABLE` (a connection refused, reset, or closed by the server, as
/// the PDP does every 10 minutes by default) with capped exponential
/// backoff, as long as the call's timeout allows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each retry after it.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(250),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }
}

/// TLS settings for `https://` endpoints.
#[cfg(feature = "tls")]
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct TlsConfig {
    ca_pem: Vec<Vec<u8>>,
    domain_name: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// TLS with no trust anchors yet.
    pub fn new() -> Self {
        TlsConfig::default()
    }

    /// Trusts the CA certificate(s) in `pem`.
    pub fn ca_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Verifies the server's certificate against `name` instead of the
    /// endpoint's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// Presents a client certificate (mTLS): PEM certificate chain and key.
    pub fn identity(mut self, cert_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Self {
        self.identity = Some((cert_pem.as_ref().to_vec(), key_pem.as_ref().to_vec()));
        self
    }

    fn to_tonic(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut tls =
            ClientTlsConfig::new().ca_certificates(self.ca_pem.iter().map(Certificate::from_pem));
        if self.ca_pem.is_empty() {
            tls = tls.with_enabled_roots();
        }
        if let Some(name) = &self.domain_name {
            tls = tls.domain_name(name.clone());
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        tls
    }
}

/// HTTP/2 keepalive settings; see [`ClientBuilder::keepalive`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Builds a [`Client`]. See [`Client::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
    connect_timeout: Duration,
    keepalive: Option<Keepalive>,
    timeout: Duration,
    retry: RetryPolicy,
    headers: Vec<(String, String)>,
    user_agent: Option<String>,
    limits: Limits,
    trace: Option<TraceProvider>,
    resolver: Option<Arc<dyn Resolver>>,
    resolve_interval: Duration,
}

/// A provider of the current trace context, called once per PDP call.
#[derive(Clone)]
struct TraceProvider(Arc<dyn Fn() -> Option<TraceContext> + Send + Sync>);

impl std::fmt::Debug for TraceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceProvider")
    }
}

impl ClientBuilder {
    /// Adds another PDP replica: calls are balanced across all endpoints
    /// (power of two choices over the least loaded connections). For a
    /// fleet whose replicas come and go, use one `dns:` target instead
    /// (see [`resolver`](Self::resolver)).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Configures TLS (custom CA, server name, client certificate) for
    /// `https://` endpoints. Without it, or without a CA in it, `https://`
    /// endpoints trust the platform's root store (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override it, as for OpenSSL).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long establishing a connection may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keepalive: a PING every `interval` on every connection, busy
    /// or idle, and a connection whose PING is not answered within
    /// `timeout` is dropped, so that the next call opens a new one. Default:
    /// every 2 s with a 2 s timeout, so a PDP that vanished without a reset
    /// (a dead node, a half-open connection, a blackholed route) is noticed
    /// within about 4 s instead of never. Both must be greater than zero.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some(Keepalive { interval, timeout });
        self
    }

    /// No HTTP/2 keepalive: a dead connection is only noticed when the
    /// operating system gives up on it (minutes). Not recommended.
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = None;
        self
    }

    /// How long one call may take in all, retries included (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How calls are retried when the PDP is unavailable.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends a metadata header with every call.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the Cerbos playground instance id (the `playground-instance`
    /// header, as the official SDKs do) with every call, to use a
    /// playground instance as the PDP.
    pub fn playground_instance(self, id: impl Into<String>) -> Self {
        self.header(PLAYGROUND_INSTANCE, id)
    }

    /// Propagates the caller's trace to the PDP: `provider` is called once
    /// per call, in the caller's task, and the [`TraceContext`] it gives is
    /// sent as the W3C `traceparent` (and `tracestate`) gRPC metadata, so
    /// the PDP's spans join the caller's trace (app → PDP in one trace).
    /// `None` sends nothing. A call whose per-call headers already carry a
    /// `traceparent` (the tower layer forwarding the incoming request's)
    /// keeps its own.
    ///
    /// No tracing library is imposed. With `tracing-opentelemetry`, the
    /// current span's context is:
    ///
    /// ```ignore
    /// use opentelemetry::trace::TraceContextExt as _;
    /// use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    ///
    /// let client = Client::builder("http://127.0.0.1:3593")
    ///     .trace_context(|| {
    ///         let context = tracing::Span::current().context();
    ///         let span = context.span();
    ///         let ids = span.span_context();
    ///         TraceContext::new(
    ///             u128::from_be_bytes(ids.trace_id().to_bytes()),
    ///             u64::from_be_bytes(ids.span_id().to_bytes()),
    ///             ids.is_sampled(),
    ///         )
    ///     })
    ///     .build()?;
    /// ```
    ///
    /// Any other source works the same way:
    ///
    /// ```no_run
    /// use cerbos_client::{Client, TraceContext};
    /// # fn run() -> Result<(), cerbos_client::Error> {
    /// let client = Client::builder("http://127.0.0.1:3593")
    ///     .trace_context(|| TraceContext::new(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn trace_context(
        mut self,
        provider: impl Fn() -> Option<TraceContext> + Send + Sync + 'static,
    ) -> Self {
        self.trace = Some(TraceProvider(Arc::new(provider)));
        self
    }

    /// Replaces the resolver of a `dns:` target (default:
    /// [`SystemResolver`], the operating system's).
    ///
    /// With `Client::builder("dns:///cerbos.ns.svc.cluster.local:3593")`
    /// (a Kubernetes headless service: one A/AAAA record per ready pod),
    /// the client resolves every address of the name, balances calls over
    /// all of them, and re-resolves every
    /// [`resolve_interval`](Self::resolve_interval) (10 s by default),
    /// adding new replicas before removing gone ones. An empty answer or a
    /// resolver error keeps the last good set (logged as a warning). Until
    /// a first address is known, calls wait for the first resolution
    /// (within their timeout); with none, they fail closed as
    /// [`Error::Unavailable`]. With TLS settings, replicas are reached over
    /// `https://` and their certificates are checked against the target's
    /// host name unless `TlsConfig::domain_name` says otherwise.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cerbos_client::{Client, SystemResolver};
    /// # async fn run() -> Result<(), cerbos_client::Error> {
    /// let client = Client::builder("dns:///cerbos.cerbos.svc.cluster.local:3593")
    ///     .resolver(SystemResolver) // the default; tests plug in their own
    ///     .resolve_interval(Duration::from_secs(5))
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// How often a `dns:` target is re-resolved (default 10 s; must be
    /// greater than zero). See [`resolver`](Self::resolver).
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.resolve_interval = interval;
        self
    }

    /// Sets the user agent (prepended to tonic's).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The PDP's `server.requestLimits.maxResourcesPerRequest` (default 50):
    /// larger requests are split into chunks.
    pub fn max_resources_per_request(mut self, max: usize) -> Self {
        self.limits.max_resources_per_request = max;
        self
    }

    /// The PDP's `server.requestLimits.maxActionsPerResource` (default 50):
    /// a resource with more actions is split across chunks.
    pub fn max_actions_per_resource(mut self, max: usize) -> Self {
        self.limits.max_actions_per_resource = max;
        self
    }

    /// Builds the client. It connects lazily, on the first call, and
    /// reconnects transparently.
    ///
    /// Must run inside a Tokio runtime (the connection's worker task is
    /// spawned on it): outside one, it is an [`Error::Config`] that says so,
    /// not a panic.
    pub fn build(self) -> Result<Client> {
        let (targets, config) = self.prepare()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "ClientBuilder::build must run inside a Tokio runtime (the connection's \
                 worker is spawned on it): call it from async code, or inside \
                 Runtime::enter()"
                    .into(),
            ));
        }
        let endpoints = match targets {
            Targets::Static(endpoints) => endpoints,
            Targets::Dns(target) => return Ok(self.discover(target, config)),
        };
        let channel = match <[Endpoint; 1]>::try_from(endpoints) {
            Ok([endpoint]) => endpoint.connect_lazy(),
            Err(endpoints) => Channel::balance_list(endpoints.into_iter()),
        };
        Ok(Client::from_parts(channel, config, None))
    }

    /// A client of the fleet behind `target`, with its resolving task.
    fn discover(mut self, target: discover::DnsTarget, config: CallConfig) -> Client {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.domain_name.get_or_insert_with(|| target.host.clone());
        }
        let resolver = self
            .resolver
            .take()
            .unwrap_or_else(|| Arc::new(SystemResolver));
        let (channel, changes) = Channel::balance_channel(16);
        let (replicas, known) = tokio::sync::watch::channel(None);
        let discovered = discover::Discovered {
            target: format!("{}:{}", target.host, target.port).into(),
            replicas: known,
        };
        let interval = self.resolve_interval;
        tokio::spawn(discover::run(
            target,
            resolver,
            interval,
            move |address| self.discovered_endpoint(address),
            changes,
            replicas,
        ));
        Client::from_parts(channel, config, Some(discovered))
    }

    /// The endpoint of a discovered replica: `https://` with TLS settings,
    /// `http://` otherwise.
    fn discovered_endpoint(&self, address: SocketAddr) -> Result<Endpoint> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.endpoint_for(&format!("https://{address}"));
        }
        self.endpoint_for(&format!("http://{address}"))
    }

    /// Builds the client and connects now, failing if the PDP cannot be
    /// reached. With several endpoints the connections are still made
    /// lazily.
    pub async fn connect(self) -> Result<Client> {
        let (targets, config) = self.prepare()?;
        let endpoints = match targets {
            Targets::Static(endpoints) => endpoints,
            Targets::Dns(target) => {
                let timeout = config.timeout;
                let client = self.discover(target, config);
                if let Some(discovery) = &client.discovery {
                    tokio::time::timeout(timeout, discovery.ready())
                        .await
                        .map_err(|_| Error::Timeout(timeout))?
                        .map_err(|status| Error::from_status(status, timeout))?;
                }
                return Ok(client);
            }
        };
        let channel = match <[Endpoint; 1]>::try_from(endpoints) {
            Ok([endpoint]) => endpoint
                .connect()
                .await
                .map_err(|e| Error::unavailable(error_chain(&e), e))?,
            Err(endpoints) => Channel::balance_list(endpoints.into_iter()),
        };
        Ok(Client::from_parts(channel, config, None))
    }

    fn prepare(&self) -> Result<(Targets, CallConfig)> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("no PDP endpoint given".into()));
        }
        if self.timeout.is_zero() {
            return Err(Error::Config(
                "the call timeout must be greater than zero".into(),
            ));
        }
        if self
            .keepalive
            .is_some_and(|k| k.interval.is_zero() || k.timeout.is_zero())
        {
            return Err(Error::Config(
                "the keepalive interval and timeout must be greater than zero \
                 (use no_keepalive() to turn keepalive off)"
                    .into(),
            ));
        }
        if self.limits.max_resources_per_request == 0 || self.limits.max_actions_per_resource == 0 {
            return Err(Error::Config(
                "max_resources_per_request and max_actions_per_resource must be at least 1".into(),
            ));
        }
        let dns = self
            .endpoints
            .iter()
            .find_map(|e| discover::DnsTarget::parse(e));
        let targets = match dns {
            Some(target) => {
                let target = target?;
                if self.endpoints.len() > 1 {
                    return Err(Error::Config(
                        "a dns: target already names every replica: do not add other \
                         endpoints to it"
                            .into(),
                    ));
                }
                if self.resolve_interval.is_zero() {
                    return Err(Error::Config(
                        "the resolve interval must be greater than zero".into(),
                    ));
                }
                // The settings of every replica's endpoint, checked now.
                self.discovered_endpoint(SocketAddr::from(([127, 0, 0, 1], target.port)))?;
                Targets::Dns(target)
            }
            None => {
                if self.resolver.is_some() {
                    return Err(Error::Config(
                        "a resolver is set but the endpoint is not a dns: target \
                         (use Client::builder(\"dns:///host:port\"))"
                            .into(),
                    ));
                }
                Targets::Static(
                    self.endpoints
                        .iter()
                        .map(|e| self.endpoint_for(e))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        let headers = parse_headers(&self.headers).map_err(Error::Config)?;
        let config = CallConfig {
            timeout: self.timeout,
            retry: self.retry,
            headers,
            grpc_timeout: grpc_timeout(self.timeout),
            limits: self.limits,
            trace: self.trace.clone(),
        };
        Ok((targets, config))
    }

    fn endpoint_for(&self, address: &str) -> Result<Endpoint> {
        let is_unix = address.starts_with("unix:");
        let is_https = address.starts_with("https://");
        if !is_unix && !is_https && !address.starts_with("http://") {
            return Err(Error::Config(format!(
                "endpoint {address:?} must start with http://, https://, unix: or dns: \
                 (for example http://127.0.0.1:3593, unix:/var/run/cerbos.sock or \
                 dns:///cerbos.ns.svc.cluster.local:3593)"
            )));
        }
        let mut endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| Error::Config(format!("endpoint {address:?} is not valid: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(keepalive) = self.keepalive {
            endpoint = endpoint
                .http2_keep_alive_interval(keepalive.interval)
                .keep_alive_timeout(keepalive.timeout)
                .keep_alive_while_idle(true)
                .tcp_keepalive(Some(keepalive.interval));
        }
        if let Some(ua) = &self.user_agent {
            endpoint = endpoint
                .user_agent(ua.clone())
                .map_err(|_| Error::Config(format!("user agent {ua:?} is not a valid header")))?;
        }
        #[cfg(feature = "tls")]
        if is_https {
            let tls = self.tls.clone().unwrap_or_default().to_tonic();
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::Config(format!("TLS settings for {address:?}: {e}")))?;
        } else if self.tls.is_some() {
            return Err(Error::Config(format!(
                "TLS is configured but endpoint {address:?} is not https://"
            )));
        }
        #[cfg(not(feature = "tls"))]
        if is_https {
            return Err(Error::Config(format!(
                "endpoint {address:?} needs TLS: enable the `tls` feature of cerbos-client"
            )));
        }
        Ok(endpoint)
    }
}

/// Where the PDPs are: a fixed list, or a name to resolve.
enum Targets {
    Static(Vec<Endpoint>),
    Dns(discover::DnsTarget),
}

/// Validates metadata headers (an empty list allocates nothing).
fn parse_headers(headers: &[(String, String)]) -> Result<Vec<Header>, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid gRPC metadata name"))?;
            // gRPC's ASCII values are printable ASCII (0x20 to 0x7E); the
            // HTTP parser alone would also pass other bytes.
            let value = Some(value)
                .filter(|v| v.bytes().all(|b| (0x20..=0x7e).contains(&b)))
                .and_then(|v| v.parse::<AsciiMetadataValue>().ok())
                .ok_or_else(|| format!("the value of header {name:?} is not printable ASCII"))?;
            Ok((key, value))
        })
        .collect()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

/// Whether the PDP is serving, from the gRPC health service.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthStatus {
    /// The PDP is serving.
    Serving,
    /// The PDP is up but not serving.
    NotServing,
    /// The PDP does not know the Cerbos service.
    ServiceUnknown,
    /// Any other answer.
    Unknown,
}

/// The PDP's version information.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The version, such as `0.55.0`.
    pub version: String,
    /// The commit it was built from.
    pub commit: String,
    /// The build date.
    pub build_date: String,
}

impl Client {
    /// A builder for a client of the PDP at `endpoint`: `http://host:port`,
    /// `https://host:port` or `unix:/path/to.sock`, or of the fleet of PDPs
    /// behind a DNS name, `dns:///host:port`, discovered and re-resolved
    /// periodically (see [`ClientBuilder::resolver`]).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoints: vec![endpoint.into()],
            #[cfg(feature = "tls")]
            tls: None,
            connect_timeout: Duration::from_secs(2),
            keepalive: Some(Keepalive::default()),
            timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            headers: Vec::new(),
            user_agent: None,
            limits: Limits {
                max_resources_per_request: 50,
                max_actions_per_resource: 50,
            },
            trace: None,
            resolver: None,
            resolve_interval: Duration::from_secs(10),
        }
    }

    fn from_parts(
        channel: Channel,
        config: CallConfig,
        discovery: Option<discover::Discovered>,
    ) -> Self {
        Client {
            grpc: Grpc::new(channel.clone()),
            health: HealthClient::new(channel),
            config: Arc::new(config),
            discovery,
        }
    }

    /// Checks the actions on the resources of `request`.
    ///
    /// Requests over the PDP's limits are split into chunks that are sent
    /// concurrently and reassembled in request order. Results for other
    /// resources than those asked about, or a missing result, are an
    /// [`Error::MalformedResponse`].
    pub async fn check_resources(
        &self,
        mut request: CheckResources,
    ) -> Result<CheckResourcesResponse> {
        request.validate()?;
        let headers = parse_headers(&request.take_headers()).map_err(Error::InvalidRequest)?;
        let request_id = match request.take_request_id() {
            Some(id) => id,
            None => request_id::next(),
        };
        let (batches, entries) = request.into_wire(&request_id, self.config.limits);
        let headers = &headers[..];
        let (answers, version) = match <[Batch; 1]>::try_from(batches) {
            // The common case, one call: no join.
            Ok([batch]) => {
                let (answer, version) = self.check_batch(&batch.request, headers).await?;
                (vec![(batch, answer)], version)
            }
            Err(batches) => {
                let mut version = None;
                let answers = try_join_all(batches.into_iter().map(|batch| async move {
                    let (answer, version) = self.check_batch(&batch.request, headers).await?;
                    Ok::<_, Error>((batch, answer, version))
                }))
                .await?
                .into_iter()
                .map(|(batch, answer, v)| {
                    // The first call's version, as for the call id.
                    if version.is_none() {
                        version = v;
                    }
                    (batch, answer)
                })
                .collect();
                (answers, version)
            }
        };
        let mut response = check::reassemble(entries, answers)?;
        response.set_cerbos_version(version);
        Ok(response)
    }

    async fn check_batch(
        &self,
        request: &request::CheckResourcesRequest,
        headers: &[Header],
    ) -> Result<(response::CheckResourcesResponse, Option<ShortText>)> {
        self.unary(CHECK_RESOURCES, codec::encode(request), headers)
            .await
    }

    /// Whether `principal` may do `action` on `resource`: `true` only if
    /// the PDP explicitly allowed it. Any failure (unreachable PDP, timeout,
    /// malformed answer) is an `Err`, never `true`: fail closed.
    ///
    /// ```no_run
    /// use cerbos_client::{Client, Principal, Resource};
    /// # async fn run(client: Client) -> Result<(), cerbos_client::Error> {
    /// let alice = Principal::new("alice", ["user"]);
    /// let album = Resource::new("album:object", "X1").with_attr("owner", "alice");
    /// if client.is_allowed(alice, album, "edit").await? {
    ///     println!("alice may edit X1");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn is_allowed(
        &self,
        principal: Principal,
        resource: Resource,
        action: impl Into<String>,
    ) -> Result<bool> {
        let action = action.into();
        let request = CheckResources::new(principal).resource(resource, [action.as_str()]);
        let response = self.check_resources(request).await?;
        Ok(response
            .results()
            .first()
            .is_some_and(|result| result.is_allowed(&action)))
    }

    /// Asks for a query plan: which resources of a kind the principal may
    /// act on.
    pub async fn plan_resources(
        &self,
        mut request: PlanResources,
    ) -> Result<PlanResourcesResponse> {
        let headers = parse_headers(&request.take_headers()).map_err(Error::InvalidRequest)?;
        let request_id = match request.take_request_id() {
            Some(id) => id,
            None => request_id::next(),
        };
        let wire = request.into_wire(request_id)?;
        let asked = plan::PlanAsked::of(&wire);
        let (answer, version) = self
            .unary(PLAN_RESOURCES, codec::encode(&wire), &headers)
            .await?;
        let mut response = plan::from_wire_checked(answer, &asked)?;
        response.set_cerbos_version(version);
        Ok(response)
    }

    /// The PDP's version.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        let (answer, _): (response::ServerInfoResponse, _) = self
            .unary(
                SERVER_INFO,
                codec::encode(&request::ServerInfoRequest {}),
                &[],
            )
            .await?;
        Ok(ServerInfo {
            version: answer.version,
            commit: answer.commit,
            build_date: answer.build_date,
        })
    }

    /// Asks the PDP's gRPC health service whether it is serving.
    pub async fn health(&self) -> Result<HealthStatus> {
        let request = HealthCheckRequest {
            service: HEALTH_SERVICE.to_owned(),
        };
        let mut health = self.health.clone();
        let mut req = tonic::Request::new(request);
        req.set_timeout(self.config.timeout);
        let answer = tokio::time::timeout(self.config.timeout, health.check(req))
            .await
            .map_err(|_| Error::Timeout(self.config.timeout))?
            .map_err(|s| Error::from_status(s, self.config.timeout))?
            .into_inner();
        Ok(match ServingStatus::try_from(answer.status) {
            Ok(ServingStatus::Serving) => HealthStatus::Serving,
            Ok(ServingStatus::NotServing) => HealthStatus::NotServing,
            Ok(ServingStatus::ServiceUnknown) => HealthStatus::ServiceUnknown,
            _ => HealthStatus::Unknown,
        })
    }

    /// Runs one unary call of the method at `path`, with the deadline,
    /// metadata and retries: one deadline for the whole call, retries
    /// included; every attempt sends the same encoded `body` and the
    /// client-wide headers, then the call's `headers` (which win). Also
    /// returns the answer's `cerbos-version` header.
    async fn unary<Resp>(
        &self,
        path: &'static str,
        body: Bytes,
        headers: &[Header],
    ) -> Result<(Resp, Option<ShortText>)>
    where
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let config = &*self.config;
        let deadline = Instant::now() + config.timeout;
        let trace = config.trace_headers(headers);
        let trace = &trace[..];
        let attempts = async {
            let mut backoff = config.retry.initial_backoff;
            let mut attempt = 0;
            loop {
                let metadata = if attempt == 0 {
                    config.metadata(config.grpc_timeout.clone(), trace, headers)
                } else {
                    // Later attempts tell the PDP the time that is left.
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(Error::Timeout(config.timeout));
                    }
                    config.metadata(grpc_timeout(remaining), trace, headers)
                };
                let req = tonic::Request::from_parts(metadata, Default::default(), body.clone());
                let err = match self.send(path, req).await {
                    Ok(answer) => return Ok(answer),
                    Err(status) => Error::from_status(status, config.timeout),
                };
                let Error::Unavailable { message } = &err else {
                    return Err(err);
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                if attempt >= config.retry.max_retries || backoff >= remaining {
                    return Err(err);
                }
                tracing::debug!(
                    attempt,
                    backoff_ms = backoff.as_millis() as u64,
                    error = %message,
                    "Cerbos PDP unavailable, retrying"
                );
                telemetry::retry(path);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.retry.max_backoff);
                attempt += 1;
            }
        };
        let started = Instant::now();
        let result = tokio::time::timeout_at(deadline, attempts)
            .await
            .unwrap_or(Err(Error::Timeout(config.timeout)));
        telemetry::call(path, started.elapsed(), &result);
        result
    }

    /// The gRPC client, ready for one call (as tonic's generated stubs
    /// make it ready): with a `dns:` target, once a replica is known (a
    /// fleet with none fails closed, `UNAVAILABLE`).
    async fn ready_grpc(&self) -> Result<Grpc<Channel>, tonic::Status> {
        if let Some(discovery) = &self.discovery {
            discovery.ready().await?;
        }
        let mut grpc = self.grpc.clone();
        grpc.ready().await.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            let mut status = tonic::Status::unknown(format!("Service was not ready: {e}"));
            status.set_source(Arc::from(e));
            status
        })?;
        Ok(grpc)
    }

    /// One attempt: what tonic's generated stubs do, with pre-encoded bytes.
    async fn send<Resp>(
        &self,
        path: &'static str,
        req: tonic::Request<Bytes>,
    ) -> Result<(Resp, Option<ShortText>), tonic::Status>
    where
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.ready_grpc().await?;
        let answer = grpc
            .unary(
                req,
                PathAndQuery::from_static(path),
                codec::PreEncoded::<Resp>::default(),
            )
            .await?;
        let version = answer
            .metadata()
            .get("cerbos-version")
            .and_then(|v| v.to_str().ok())
            .map(ShortText::new);
        Ok((answer.into_inner(), version))
    }
}

impl CallConfig {
    /// The trace context headers of a call: the provider's, unless the
    /// call's own headers carry a `traceparent`.
    fn trace_headers(&self, call: &[Header]) -> Vec<Header> {
        let Some(TraceProvider(provider)) = &self.trace else {
            return Vec::new();
        };
        if call.iter().any(|(key, _)| key.as_str() == TRACEPARENT) {
            return Vec::new();
        }
        let Some(context) = provider() else {
            return Vec::new();
        };
        let mut headers = Vec::with_capacity(2);
        // Validated when the context was made: visible ASCII.
        if let Ok(value) = AsciiMetadataValue::try_from(context.traceparent()) {
            headers.push((AsciiMetadataKey::from_static(TRACEPARENT), value));
            if let Some(Ok(state)) = context.tracestate().map(AsciiMetadataValue::try_from) {
                headers.push((AsciiMetadataKey::from_static(TRACESTATE), state));
            }
        }
        headers
    }

    /// The metadata of one attempt: the client-wide headers, the trace
    /// context's, the call's (replacing earlier ones of the same name) and
    /// `grpc-timeout`.
    fn metadata(
        &self,
        grpc_timeout: AsciiMetadataValue,
        trace: &[Header],
        call: &[Header],
    ) -> MetadataMap {
        // Room for the headers tonic adds (te, content-type, user-agent…):
        // no growing on the way out.
        let mut metadata =
            MetadataMap::with_capacity(self.headers.len() + trace.len() + call.len() + 8);
        for (key, value) in self.headers.iter().chain(trace).chain(call) {
            metadata.insert(key.clone(), value.clone());
        }
        metadata.insert(AsciiMetadataKey::from_static("grpc-timeout"), grpc_timeout);
        metadata
    }
}

/// The `grpc-timeout` value for `timeout`, as tonic formats it (or, should
/// tonic ever not set it, in milliseconds, the gRPC format's at most 8
/// digits).
fn grpc_timeout(timeout: Duration) -> AsciiMetadataValue {
    let mut request = tonic::Request::new(());
    request.set_timeout(timeout);
    if let Some(value) = request.metadata().get("grpc-timeout") {
        return value.clone();
    }
    let millis = timeout.as_millis().clamp(1, 99_999_999);
    AsciiMetadataValue::try_from(format!("{millis}m"))
        .unwrap_or_else(|_| AsciiMetadataValue::from_static("99999999m"))
}

/// Request ids, as [`crate::new_request_id`] makes them (a random
/// per-process prefix and a counter, `{prefix:016x}-{n:08x}`), without the
/// formatting machinery: one per call on the hot path.
mod request_id {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    };

    pub(super) fn next() -> String {
        static PREFIX: OnceLock<[u8; 17]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| {
            use std::hash::{BuildHasher, RandomState};
            let random = RandomState::new().hash_one((
                std::process::id(),
                std::time::SystemTime::now(),
                "cerbos-client request ids",
            ));
            let mut prefix = [b'-'; 17];
            hex(random, &mut prefix[..16]);
            prefix
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // At least 8 digits, more once the counter needs them.
        let digits = (16 - n.leading_zeros() as usize / 4).max(8);
        let mut id = [0u8; 33];
        id[..17].copy_from_slice(prefix);
        hex(n, &mut id[17..17 + digits]);
        String::from_utf8_lossy(&id[..17 + digits]).into_owned()
    }

    /// Writes `value`'s low `out.len()` hex digits (lowercase) into `out`.
    fn hex(mut value: u64, out: &mut [u8]) {
        for byte in out.iter_mut().rev() {
            *byte = b"0123456789abcdef"[(value & 0xf) as usize];
            value >>= 4;
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn ids_are_prefix_dash_counter_in_hex() {
            let a = super::next();
            let b = super::next();
            assert_eq!(a.len(), 25, "{a}");
            assert_eq!(&a[..17], &b[..17]);
            assert_eq!(a.as_bytes()[16], b'-');
            let n = u64::from_str_radix(&a[17..], 16).unwrap();
            assert_eq!(u64::from_str_radix(&b[17..], 16).unwrap(), n + 1);
            assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
            let mut out = [0u8; 10];
            super::hex(0x1_2345_abcd, &mut out);
            assert_eq!(&out, b"012345abcd");
        }
    }
}
