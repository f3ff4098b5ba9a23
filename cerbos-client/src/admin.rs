//! The Cerbos Admin API (`cerbos.svc.v1.CerbosAdminService`): manage the
//! PDP's policies and schemas, reload its store and read its audit log.
//!
//! An [`AdminClient`] is made from a [`Client`] and the admin credentials
//! (`server.adminAPI.adminCredentials` in the PDP's configuration). It uses
//! the client's connection and settings: endpoints, TLS, timeout, retries
//! and headers. The PDP must run with `server.adminAPI.enabled: true`;
//! adding, enabling, disabling and deleting needs a mutable store (a
//! database such as `sqlite3`, `postgres` or `mysql`), and the audit log
//! the `local` audit backend.
//!
//! Policies are the typed [`Policy`] messages: build them in code, or read
//! the YAML or JSON files you already have with [`policy_from_json`] or, for
//! YAML or any other serde format, [`policy_from_deserializer`]. Both follow
//! the proto3 JSON mapping that the PDP's own policy files use, and both
//! reject what they cannot represent (an unknown field, an unknown enum
//! name, a value of the wrong type, a field given twice) instead of
//! dropping it.
//!
//! ```no_run
//! use cerbos_client::{
//!     Client, Principal, Resource,
//!     admin::{AdminCredentials, AuditLogFilter, PolicyFilter, policy_from_json},
//! };
//! # async fn run() -> Result<(), cerbos_client::admin::AdminError> {
//! let client = Client::builder("http://127.0.0.1:3593").build()?;
//! let admin = client.admin(AdminCredentials::new("cerbos", "cerbosAdmin")?);
//!
//! let policy = policy_from_json(
//!     r#"{
//!       "apiVersion": "api.cerbos.dev/v1",
//!       "resourcePolicy": {
//!         "resource": "album:object",
//!         "version": "default",
//!         "rules": [{ "actions": ["view"], "effect": "EFFECT_ALLOW", "roles": ["user"] }]
//!       }
//!     }"#,
//! )?;
//! admin.add_or_update_policy(policy).await?;
//! println!("stored: {:?}", admin.list_policies(&PolicyFilter::new()).await?);
//!
//! // A database store applies changes asynchronously, within moments.
//! let alice = Principal::new("alice", ["user"]);
//! if client.is_allowed(alice, Resource::new("album:object", "X1"), "view").await? {
//!     println!("alice may view X1");
//! }
//!
//! // The decisions the PDP recorded (with the `local` audit backend).
//! let decisions = admin.decision_log(AuditLogFilter::Tail(10)).await?.collect().await?;
//! for entry in decisions {
//!     println!("{} at {:?}", entry.call_id, entry.timestamp);
//! }
//! # Ok(()) }
//! ```
//!
//! For YAML, pass a deserializer of your YAML crate; every document of a
//! multi-document file is a policy:
//!
//! ```no_run
//! # async fn run(admin: cerbos_client::admin::AdminClient) -> Result<(), Box<dyn std::error::Error>> {
//! use cerbos_client::admin::policy_from_deserializer;
//!
//! let text = std::fs::read_to_string("policies/album.yaml")?;
//! for document in serde_yaml::Deserializer::from_str(&text) {
//!     admin.add_or_update_policy(policy_from_deserializer(document)?).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Credentials are sent as `authorization: Basic …` metadata on the admin
//! calls only (not on the [`Client`]'s own calls), are marked sensitive so
//! that HTTP/2 never indexes them, and are never printed: `Debug` shows the
//! user name only. Use TLS (`https://`) for any PDP that is not on the same
//! host.

use std::{collections::HashMap, fmt, marker::PhantomData, sync::OnceLock, time::SystemTime};

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use tokio::time::Instant;
use tonic::{
    codec::Streaming,
    metadata::{AsciiMetadataKey, AsciiMetadataValue},
};

use cerbos_proto::cerbos::{
    request::v1 as request,
    response::v1::{self as response, list_audit_log_entries_response::Entry},
};

use crate::{Client, Error, GrpcCode};

pub use cerbos_proto::cerbos::{
    audit::v1::{AccessLogEntry, DecisionLogEntry},
    policy::v1 as policy,
    policy::v1::Policy,
    response::v1::inspect_policies_response::Result as InspectedPolicy,
    schema::v1::Schema,
};

/// What can go wrong with an Admin API call or a policy's text.
///
/// Like [`Error`], any `Err` means the operation did not happen (or its
/// outcome is unknown, for [`AdminError::Client`] errors such as a timeout).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The PDP rejected the admin credentials (`UNAUTHENTICATED`): a wrong
    /// user name or password, or none.
    #[error("the Cerbos Admin API rejected the credentials: {message}")]
    Unauthenticated {
        /// The PDP's message.
        message: String,
    },

    /// The PDP does not offer this operation (`UNIMPLEMENTED`): the Admin
    /// API is not enabled (`server.adminAPI.enabled`), or the store cannot
    /// do it (a disk or git store is not mutable, some stores have no
    /// regular-expression filters).
    #[error("the Cerbos PDP does not support this admin operation: {message}")]
    Unsupported {
        /// The PDP's message.
        message: String,
    },

    /// A policy's text is not a valid policy (bad JSON or YAML, an unknown
    /// field or enum name, a value of the wrong type). Nothing was sent.
    #[error("invalid Cerbos policy: {message}")]
    InvalidPolicy {
        /// What is wrong, with the path of the offending field where the
        /// parser gives it.
        message: String,
    },

    /// Any other error of the call (see [`Error`]), such as the PDP
    /// rejecting an invalid policy (`InvalidArgument`), or the PDP being
    /// unreachable.
    #[error(transparent)]
    Client(Error),
}

impl From<Error> for AdminError {
    fn from(error: Error) -> Self {
        const UNIMPLEMENTED: GrpcCode = GrpcCode(12);
        const UNAUTHENTICATED: GrpcCode = GrpcCode(16);
        match error {
            Error::Status { code, message } if code == UNAUTHENTICATED => {
                AdminError::Unauthenticated { message }
            }
            Error::Status { code, message } if code == UNIMPLEMENTED => {
                AdminError::Unsupported { message }
            }
            error => AdminError::Client(error),
        }
    }
}

/// The admin user name and password (the PDP checks the password against
/// `server.adminAPI.adminCredentials.passwordHash`).
///
/// `Debug` shows the user name only.
#[derive(Clone)]
pub struct AdminCredentials {
    username: String,
    /// `Basic base64(username:password)`, marked sensitive.
    authorization: AsciiMetadataValue,
}

impl AdminCredentials {
    /// Credentials for `username`. A user name with a `:` (which basic
    /// authentication cannot carry) or control characters, or a password
    /// with control characters, is an [`Error::Config`].
    pub fn new(username: impl Into<String>, password: impl AsRef<str>) -> Result<Self, Error> {
        use base64::Engine as _;
        let username = username.into();
        let password = password.as_ref();
        if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
            return Err(Error::Config(
                "the admin user name must be non-empty, without ':' or control characters".into(),
            ));
        }
        if password.chars().any(char::is_control) {
            return Err(Error::Config(
                "the admin password must not contain control characters".into(),
            ));
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let mut authorization = AsciiMetadataValue::try_from(format!("Basic {encoded}"))
            .map_err(|_| Error::Config("the admin credentials are not a valid header".into()))?;
        authorization.set_sensitive(true);
        Ok(AdminCredentials {
            username,
            authorization,
        })
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A client of the Cerbos Admin API. See the [module docs](self).
///
/// Cheap to clone; every method takes `&self`.
///
/// Every call has the client's timeout and retries: a call that fails with
/// `UNAVAILABLE` is sent again, which is harmless for these idempotent
/// operations (a repeated delete counts 0 the second time).
///
/// A database store applies changes asynchronously: a policy added,
/// enabled, disabled or deleted decides checks within moments of the call's
/// answer, not necessarily at once.
#[derive(Clone)]
pub struct AdminClient {
    client: Client,
    credentials: AdminCredentials,
    authorization: (AsciiMetadataKey, AsciiMetadataValue),
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("client", &self.client)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Client {
    /// An Admin API client over this client's connection and settings
    /// (endpoints, TLS, timeout, retries, headers), authenticating with
    /// `credentials`.
    pub fn admin(&self, credentials: AdminCredentials) -> AdminClient {
        AdminClient::new(self.clone(), credentials)
    }
}

/// The methods' paths.
mod path {
    macro_rules! admin {
        ($($name:ident = $method:literal;)*) => {
            $(pub(super) const $name: &str = concat!("/cerbos.svc.v1.CerbosAdminService/", $method);)*
        };
    }
    admin! {
        ADD_OR_UPDATE_POLICY = "AddOrUpdatePolicy";
        INSPECT_POLICIES = "InspectPolicies";
        LIST_POLICIES = "ListPolicies";
        GET_POLICY = "GetPolicy";
        DELETE_POLICY = "DeletePolicy";
        DISABLE_POLICY = "DisablePolicy";
        ENABLE_POLICY = "EnablePolicy";
        LIST_AUDIT_LOG_ENTRIES = "ListAuditLogEntries";
        ADD_OR_UPDATE_SCHEMA = "AddOrUpdateSchema";
        LIST_SCHEMAS = "ListSchemas";
        GET_SCHEMA = "GetSchema";
        DELETE_SCHEMA = "DeleteSchema";
        RELOAD_STORE = "ReloadStore";
        PURGE_STORE_REVISIONS = "PurgeStoreRevisions";
    }
}

impl AdminClient {
    /// An Admin API client over `client`'s connection and settings; the
    /// same as [`Client::admin`].
    pub fn new(client: Client, credentials: AdminCredentials) -> Self {
        let authorization = (
            AsciiMetadataKey::from_static("authorization"),
            credentials.authorization.clone(),
        );
        AdminClient {
            client,
            credentials,
            authorization,
        }
    }

    /// The [`Client`] this admin client calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn call<Req, Resp>(&self, path: &'static str, request: &Req) -> Result<Resp, AdminError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        Ok(self
            .client
            .admin_unary(path, request, &self.authorization)
            .await?)
    }

    /// Adds policies, or replaces the stored ones with the same ids (a
    /// policy's id comes from its kind, name, version and scope). The PDP
    /// accepts 1 to 100 policies per call and validates them all: an
    /// invalid one fails the whole call with an [`Error::InvalidArgument`]
    /// that says why.
    pub async fn add_or_update_policies(
        &self,
        policies: impl IntoIterator<Item = Policy>,
    ) -> Result<(), AdminError> {
        let policies: Vec<Policy> = policies.into_iter().collect();
        non_empty(
            &policies,
            "add_or_update_policies needs at least one policy",
        )?;
        let _: response::AddOrUpdatePolicyResponse = self
            .call(
                path::ADD_OR_UPDATE_POLICY,
                &request::AddOrUpdatePolicyRequest { policies },
            )
            .await?;
        Ok(())
    }

    /// Adds one policy, or replaces the stored one with the same id.
    pub async fn add_or_update_policy(&self, policy: Policy) -> Result<(), AdminError> {
        self.add_or_update_policies([policy]).await
    }

    /// The ids of the stored policies that match `filter`, sorted as the
    /// PDP sorts them.
    pub async fn list_policies(&self, filter: &PolicyFilter) -> Result<Vec<String>, AdminError> {
        let answer: response::ListPoliciesResponse = self
            .call(
                path::LIST_POLICIES,
                &request::ListPoliciesRequest {
                    include_disabled: filter.include_disabled,
                    name_regexp: filter.name_regexp.clone(),
                    scope_regexp: filter.scope_regexp.clone(),
                    version_regexp: filter.version_regexp.clone(),
                    policy_id: filter.policy_ids.clone(),
                },
            )
            .await?;
        Ok(answer.policy_ids)
    }

    /// What the policies that match `filter` use (actions, variables,
    /// constants, derived roles, attributes), by policy id.
    pub async fn inspect_policies(
        &self,
        filter: &PolicyFilter,
    ) -> Result<HashMap<String, InspectedPolicy>, AdminError> {
        let answer: response::InspectPoliciesResponse = self
            .call(
                path::INSPECT_POLICIES,
                &request::InspectPoliciesRequest {
                    include_disabled: filter.include_disabled,
                    name_regexp: filter.name_regexp.clone(),
                    scope_regexp: filter.scope_regexp.clone(),
                    version_regexp: filter.version_regexp.clone(),
                    policy_id: filter.policy_ids.clone(),
                },
            )
            .await?;
        Ok(answer.results)
    }

    /// The stored policies with these ids (ids that are not stored are
    /// left out).
    pub async fn get_policies<I>(&self, ids: I) -> Result<Vec<Policy>, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "get_policies")?;
        let answer: response::GetPolicyResponse = self
            .call(path::GET_POLICY, &request::GetPolicyRequest { id })
            .await?;
        Ok(answer.policies)
    }

    /// The stored policy with this id, if there is one.
    pub async fn get_policy(&self, id: impl Into<String>) -> Result<Option<Policy>, AdminError> {
        let mut policies = self.get_policies([id.into()]).await?;
        if policies.len() > 1 {
            return Err(Error::MalformedResponse(format!(
                "asked for one policy, got {}",
                policies.len()
            ))
            .into());
        }
        Ok(policies.pop())
    }

    /// Enables policies; returns how many were enabled.
    pub async fn enable_policies<I>(&self, ids: I) -> Result<u32, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "enable_policies")?;
        let answer: response::EnablePolicyResponse = self
            .call(path::ENABLE_POLICY, &request::EnablePolicyRequest { id })
            .await?;
        Ok(answer.enabled_policies)
    }

    /// Disables policies (they stay stored, and the PDP stops using them
    /// at once); returns how many were disabled.
    pub async fn disable_policies<I>(&self, ids: I) -> Result<u32, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "disable_policies")?;
        let answer: response::DisablePolicyResponse = self
            .call(path::DISABLE_POLICY, &request::DisablePolicyRequest { id })
            .await?;
        Ok(answer.disabled_policies)
    }

    /// Deletes policies; returns how many were deleted.
    pub async fn delete_policies<I>(&self, ids: I) -> Result<u32, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "delete_policies")?;
        let answer: response::DeletePolicyResponse = self
            .call(path::DELETE_POLICY, &request::DeletePolicyRequest { id })
            .await?;
        Ok(answer.deleted_policies)
    }

    /// Adds JSON schemas, or replaces the stored ones with the same ids.
    pub async fn add_or_update_schemas(
        &self,
        schemas: impl IntoIterator<Item = Schema>,
    ) -> Result<(), AdminError> {
        let schemas: Vec<Schema> = schemas.into_iter().collect();
        non_empty(&schemas, "add_or_update_schemas needs at least one schema")?;
        let _: response::AddOrUpdateSchemaResponse = self
            .call(
                path::ADD_OR_UPDATE_SCHEMA,
                &request::AddOrUpdateSchemaRequest { schemas },
            )
            .await?;
        Ok(())
    }

    /// The ids of the stored schemas.
    pub async fn list_schemas(&self) -> Result<Vec<String>, AdminError> {
        let answer: response::ListSchemasResponse = self
            .call(path::LIST_SCHEMAS, &request::ListSchemasRequest {})
            .await?;
        Ok(answer.schema_ids)
    }

    /// The stored schemas with these ids. The PDP answers an id it does
    /// not store with an error (`INTERNAL`, "could not get the schema with
    /// id …"), not with fewer schemas.
    pub async fn get_schemas<I>(&self, ids: I) -> Result<Vec<Schema>, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "get_schemas")?;
        let answer: response::GetSchemaResponse = self
            .call(path::GET_SCHEMA, &request::GetSchemaRequest { id })
            .await?;
        Ok(answer.schemas)
    }

    /// Deletes schemas; returns how many were deleted.
    pub async fn delete_schemas<I>(&self, ids: I) -> Result<u32, AdminError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let id = ids_of(ids, "delete_schemas")?;
        let answer: response::DeleteSchemaResponse = self
            .call(path::DELETE_SCHEMA, &request::DeleteSchemaRequest { id })
            .await?;
        Ok(answer.deleted_schemas)
    }

    /// Reloads the store (re-reads policies changed behind the PDP's
    /// back). With `wait`, the call returns once the reload is done;
    /// without, once it started. Stores that cannot reload answer
    /// [`AdminError::Unsupported`].
    pub async fn reload_store(&self, wait: bool) -> Result<(), AdminError> {
        let _: response::ReloadStoreResponse = self
            .call(path::RELOAD_STORE, &request::ReloadStoreRequest { wait })
            .await?;
        Ok(())
    }

    /// Deletes the revisions a mutable store keeps of each policy (every
    /// add, update, disable and enable makes one), keeping the latest
    /// `keep_last` of each (`0`: none); returns how many were deleted.
    /// The policies themselves stay as they are. Stores without revisions
    /// answer [`AdminError::Unsupported`].
    pub async fn purge_store_revisions(&self, keep_last: u32) -> Result<u32, AdminError> {
        let request = request::PurgeStoreRevisionsRequest { keep_last };
        let answer: response::PurgeStoreRevisionsResponse =
            self.call(path::PURGE_STORE_REVISIONS, &request).await?;
        Ok(answer.affected_rows)
    }

    /// The access log entries (one per call to the PDP) that match
    /// `filter`. The PDP must run the `local` audit backend with
    /// `audit.accessLogsEnabled`. Reading the whole answer must finish
    /// within the client's call timeout.
    pub async fn access_log(
        &self,
        filter: AuditLogFilter,
    ) -> Result<AuditLog<AccessLogEntry>, AdminError> {
        self.audit_log(
            request::list_audit_log_entries_request::Kind::Access,
            filter,
        )
        .await
    }

    /// The decision log entries (the inputs and decisions of each check and
    /// plan) that match `filter`. The PDP must run the `local` audit backend
    /// with `audit.decisionLogsEnabled`. Reading the whole answer must
    /// finish within the client's call timeout.
    pub async fn decision_log(
        &self,
        filter: AuditLogFilter,
    ) -> Result<AuditLog<DecisionLogEntry>, AdminError> {
        self.audit_log(
            request::list_audit_log_entries_request::Kind::Decision,
            filter,
        )
        .await
    }

    async fn audit_log<T: LogEntry>(
        &self,
        kind: request::list_audit_log_entries_request::Kind,
        filter: AuditLogFilter,
    ) -> Result<AuditLog<T>, AdminError> {
        let request = request::ListAuditLogEntriesRequest {
            kind: kind as i32,
            filter: Some(filter.into_wire()?),
        };
        let (stream, deadline) = self
            .client
            .admin_stream(path::LIST_AUDIT_LOG_ENTRIES, &request, &self.authorization)
            .await?;
        Ok(AuditLog {
            client: self.client.clone(),
            stream,
            deadline,
            entry: PhantomData,
        })
    }
}

fn non_empty<T>(items: &[T], message: &str) -> Result<(), AdminError> {
    if items.is_empty() {
        return Err(Error::InvalidRequest(message.into()).into());
    }
    Ok(())
}

fn ids_of<I>(ids: I, method: &str) -> Result<Vec<String>, AdminError>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
    non_empty(&ids, &format!("{method} needs at least one id"))?;
    Ok(ids)
}

/// Which policies [`AdminClient::list_policies`] and
/// [`AdminClient::inspect_policies`] return. The default: all enabled
/// policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct PolicyFilter {
    include_disabled: bool,
    name_regexp: String,
    scope_regexp: String,
    version_regexp: String,
    policy_ids: Vec<String>,
}

impl PolicyFilter {
    /// All enabled policies.
    pub fn new() -> Self {
        PolicyFilter::default()
    }

    /// Disabled policies too.
    pub fn include_disabled(mut self, yes: bool) -> Self {
        self.include_disabled = yes;
        self
    }

    /// Only policies whose name (resource kind, principal, role, or derived
    /// roles' name) matches this regular expression.
    pub fn name_regexp(mut self, regexp: impl Into<String>) -> Self {
        self.name_regexp = regexp.into();
        self
    }

    /// Only policies whose scope matches this regular expression.
    pub fn scope_regexp(mut self, regexp: impl Into<String>) -> Self {
        self.scope_regexp = regexp.into();
        self
    }

    /// Only policies whose version matches this regular expression.
    pub fn version_regexp(mut self, regexp: impl Into<String>) -> Self {
        self.version_regexp = regexp.into();
        self
    }

    /// Only the policy with this id (may be given several times).
    pub fn policy_id(mut self, id: impl Into<String>) -> Self {
        self.policy_ids.push(id.into());
        self
    }
}

/// Which audit log entries to read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditLogFilter {
    /// The last N entries (the PDP accepts 1 to 1000).
    Tail(u32),
    /// The entries recorded between two instants.
    Between {
        /// The start (must be in the past).
        start: SystemTime,
        /// The end (must be in the past).
        end: SystemTime,
    },
    /// The entries of the last duration (such as the last hour).
    Since(std::time::Duration),
    /// The entry of one call, by the call id the PDP answered with (a
    /// ULID, as in [`crate::CheckResourcesResponse::cerbos_call_id`]).
    Lookup(String),
}

impl AuditLogFilter {
    fn into_wire(self) -> Result<request::list_audit_log_entries_request::Filter, AdminError> {
        use request::list_audit_log_entries_request::{Filter, TimeRange};
        let invalid = |message: String| AdminError::from(Error::InvalidRequest(message));
        Ok(match self {
            AuditLogFilter::Tail(0) => {
                return Err(invalid("an audit log tail must be at least 1 entry".into()));
            }
            AuditLogFilter::Tail(n) => Filter::Tail(n),
            AuditLogFilter::Between { start, end } => {
                if end < start {
                    return Err(invalid(
                        "an audit log time range must not end before it starts".into(),
                    ));
                }
                Filter::Between(TimeRange {
                    start: Some(start.into()),
                    end: Some(end.into()),
                })
            }
            AuditLogFilter::Since(duration) => {
                Filter::Since(prost_types::Duration::try_from(duration).map_err(|_| {
                    invalid(format!("an audit log duration of {duration:?} is too long"))
                })?)
            }
            AuditLogFilter::Lookup(call_id) => Filter::Lookup(call_id),
        })
    }
}

/// An audit log entry type: [`AccessLogEntry`] or [`DecisionLogEntry`].
pub trait LogEntry: Sized + sealed::Sealed + Send + 'static {
    /// The entry, if the PDP's message carries this kind.
    #[doc(hidden)]
    fn from_entry(entry: Entry) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::AccessLogEntry {}
    impl Sealed for super::DecisionLogEntry {}
}

impl LogEntry for AccessLogEntry {
    fn from_entry(entry: Entry) -> Option<Self> {
        match entry {
            Entry::AccessLogEntry(entry) => Some(entry),
            Entry::DecisionLogEntry(_) => None,
        }
    }
}

impl LogEntry for DecisionLogEntry {
    fn from_entry(entry: Entry) -> Option<Self> {
        match entry {
            Entry::DecisionLogEntry(entry) => Some(entry),
            Entry::AccessLogEntry(_) => None,
        }
    }
}

/// Audit log entries as the PDP streams them; read them with
/// [`AuditLog::next`], [`AuditLog::collect`] or [`AuditLog::into_stream`].
///
/// Reading them all must finish within the client's call timeout (the
/// PDP is told so too): for long reads (`Since` a day, `Tail(1000)` of large
/// entries), make the [`AdminClient`] from a client built with a longer
/// [`timeout`](crate::ClientBuilder::timeout).
pub struct AuditLog<T> {
    client: Client,
    stream: Streaming<response::ListAuditLogEntriesResponse>,
    deadline: Instant,
    entry: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for AuditLog<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<T: LogEntry> AuditLog<T> {
    /// The next entry, or `None` at the end. An entry of the other log, or
    /// a message without one, is an [`Error::MalformedResponse`].
    pub async fn next(&mut self) -> Result<Option<T>, AdminError> {
        let Some(message) = self
            .client
            .admin_stream_next(&mut self.stream, self.deadline)
            .await?
        else {
            return Ok(None);
        };
        let entry = message.entry.and_then(T::from_entry).ok_or_else(|| {
            Error::MalformedResponse(
                "the PDP streamed an audit log entry of another kind, or none".into(),
            )
        })?;
        Ok(Some(entry))
    }

    /// All the (remaining) entries.
    pub async fn collect(mut self) -> Result<Vec<T>, AdminError> {
        let mut entries = Vec::new();
        while let Some(entry) = self.next().await? {
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The (remaining) entries as a [`Stream`](futures_util::Stream), for
    /// stream combinators; it ends after the first error.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<T, AdminError>> + Send {
        futures_util::stream::unfold(Some(self), |log| async move {
            let mut log = log?;
            match log.next().await {
                Ok(Some(entry)) => Some((Ok(entry), Some(log))),
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        })
    }
}

/// The descriptor of `cerbos.policy.v1.Policy`, for the JSON mapping.
fn policy_descriptor() -> Result<&'static MessageDescriptor, AdminError> {
    static DESCRIPTOR: OnceLock<Result<MessageDescriptor, String>> = OnceLock::new();
    DESCRIPTOR
        .get_or_init(|| {
            let pool = DescriptorPool::decode(cerbos_proto::FILE_DESCRIPTOR_SET)
                .map_err(|e| format!("the embedded descriptors do not decode: {e}"))?;
            pool.get_message_by_name("cerbos.policy.v1.Policy")
                .ok_or_else(|| "the embedded descriptors lack cerbos.policy.v1.Policy".into())
        })
        .as_ref()
        .map_err(|message| AdminError::InvalidPolicy {
            message: message.clone(),
        })
}

/// Reads a policy from its JSON text (the proto3 JSON mapping, as in the
/// PDP's policy files: `apiVersion`, `resourcePolicy`, … or the
/// `snake_case` field names). Trailing text, unknown fields, unknown enum
/// names, values of the wrong type and fields given twice (the same key,
/// or both names of a field) are an [`AdminError::InvalidPolicy`].
///
/// ```
/// let policy = cerbos_client::admin::policy_from_json(
///     r#"{"apiVersion": "api.cerbos.dev/v1",
///         "derivedRoles": {"name": "common", "definitions": [
///           {"name": "owner", "parentRoles": ["user"],
///            "condition": {"match": {"expr": "request.resource.attr.owner == request.principal.id"}}}]}}"#,
/// )?;
/// assert_eq!(policy.api_version, "api.cerbos.dev/v1");
///
/// let typo = cerbos_client::admin::policy_from_json(r#"{"apiVersion": "api.cerbos.dev/v1", "resourcePolicyy": {}}"#);
/// assert!(typo.unwrap_err().to_string().contains("resourcePolicyy"));
/// # Ok::<(), cerbos_client::admin::AdminError>(())
/// ```
pub fn policy_from_json(json: &str) -> Result<Policy, AdminError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let policy = policy_from_deserializer(&mut deserializer)?;
    deserializer.end().map_err(|e| AdminError::InvalidPolicy {
        message: e.to_string(),
    })?;
    Ok(policy)
}

/// Reads a policy from any serde format that follows the proto3 JSON
/// mapping, such as a YAML document (pass your YAML crate's
/// deserializer). Unknown fields, unknown enum names, values of the wrong
/// type and fields given twice are an [`AdminError::InvalidPolicy`].
pub fn policy_from_deserializer<'de, D>(deserializer: D) -> Result<Policy, AdminError>
where
    D: serde::Deserializer<'de>,
{
    let invalid = |message: String| AdminError::InvalidPolicy { message };
    let descriptor = policy_descriptor()?.clone();
    // First as a tree that refuses a key given twice (which serde's maps,
    // like most parsers, would resolve by keeping the last value).
    let strict::Unique(value) =
        serde::Deserialize::deserialize(deserializer).map_err(|e| invalid(e.to_string()))?;
    strict::one_name_per_field(&value, &descriptor, "").map_err(invalid)?;
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(descriptor, value, &options)
        .map_err(|e| invalid(e.to_string()))?;
    message
        .transcode_to::<Policy>()
        .map_err(|e| AdminError::InvalidPolicy {
            message: format!("the policy does not convert to its typed form: {e}"),
        })
}

/// A policy as JSON (the proto3 JSON mapping, `camelCase` names, fields at
/// their default values left out): what [`policy_from_json`] reads back.
pub fn policy_to_json(policy: &Policy) -> Result<serde_json::Value, AdminError> {
    use prost::Message as _;
    let descriptor = policy_descriptor()?.clone();
    let message =
        DynamicMessage::decode(descriptor, policy.encode_to_vec().as_slice()).map_err(|e| {
            AdminError::InvalidPolicy {
                message: format!("the policy does not encode: {e}"),
            }
        })?;
    serde_json::to_value(&message).map_err(|e| AdminError::InvalidPolicy {
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_basic_auth_sensitive_and_never_printed() {
        // The PDP's documented default credentials, cerbos:cerbosAdmin.
        let credentials = AdminCredentials::new("cerbos", "cerbosAdmin").unwrap();
        assert_eq!(
            credentials.authorization.to_str().unwrap(),
            "Basic Y2VyYm9zOmNlcmJvc0FkbWlu"
        );
        assert!(credentials.authorization.is_sensitive());
        assert_eq!(credentials.username(), "cerbos");
        let debug = format!("{credentials:?}");
        assert!(
            !debug.contains("cerbosAdmin") && !debug.contains("Y2Vy"),
            "{debug}"
        );
        for (user, password) in [("", "p"), ("a:b", "p"), ("a\nb", "p"), ("a", "p\r\n")] {
            assert!(
                matches!(AdminCredentials::new(user, password), Err(Error::Config(_))),
                "{user:?} {password:?}"
            );
        }
        // Any printable password, ':' included.
        assert!(AdminCredentials::new("a", "pä:ss wörd").is_ok());
    }

    #[test]
    fn statuses_map_to_matchable_admin_errors() {
        let status = |code| Error::Status {
            code: GrpcCode(code),
            message: "m".into(),
        };
        assert!(matches!(
            AdminError::from(status(16)),
            AdminError::Unauthenticated { .. }
        ));
        assert!(matches!(
            AdminError::from(status(12)),
            AdminError::Unsupported { .. }
        ));
        assert!(matches!(
            AdminError::from(status(13)),
            AdminError::Client(Error::Status { .. })
        ));
        assert!(matches!(
            AdminError::from(Error::Timeout(std::time::Duration::from_secs(1))),
            AdminError::Client(Error::Timeout(_))
        ));
    }

    #[test]
    fn audit_log_filters_the_pdp_cannot_take_are_refused() {
        use request::list_audit_log_entries_request::Filter;
        assert!(AuditLogFilter::Tail(0).into_wire().is_err());
        assert_eq!(
            AuditLogFilter::Tail(7).into_wire().unwrap(),
            Filter::Tail(7)
        );
        let now = SystemTime::now();
        let earlier = now - std::time::Duration::from_secs(60);
        assert!(
            AuditLogFilter::Between {
                start: now,
                end: earlier
            }
            .into_wire()
            .is_err()
        );
        let Filter::Between(range) = (AuditLogFilter::Between {
            start: earlier,
            end: now,
        })
        .into_wire()
        .unwrap() else {
            panic!("a range")
        };
        assert_eq!(range.start, Some(earlier.into()));
        assert_eq!(range.end, Some(now.into()));
        let Filter::Since(since) = AuditLogFilter::Since(std::time::Duration::from_millis(1500))
            .into_wire()
            .unwrap()
        else {
            panic!("a duration")
        };
        assert_eq!((since.seconds, since.nanos), (1, 500_000_000));
        assert!(
            AuditLogFilter::Since(std::time::Duration::MAX)
                .into_wire()
                .is_err()
        );
    }

    #[test]
    fn policy_json_keeps_every_value_or_refuses() {
        let policy = policy_from_json(
            r#"{"api_version": "api.cerbos.dev/v1", "disabled": true,
                "metadata": {"annotations": {"team": "a"}, "hash": "18446744073709551615"},
                "exportConstants": {"name": "c", "definitions": {"big": 1e300, "neg": -0.5}}}"#,
        )
        .unwrap();
        assert!(policy.disabled);
        let metadata = policy.metadata.as_ref().unwrap();
        assert_eq!(metadata.hash, Some(u64::MAX));
        assert_eq!(metadata.annotations["team"], "a");
        let json = policy_to_json(&policy).unwrap();
        assert_eq!(json["metadata"]["hash"], "18446744073709551615");
        assert_eq!(policy_from_json(&json.to_string()).unwrap(), policy);
        // A number that does not fit, a duplicate oneof member, a key given
        // twice (at any depth, under either name), a wrong type.
        for text in [
            r#"{"disabled": true, "disabled": false}"#,
            r#"{"apiVersion": "a", "api_version": "b"}"#,
            r#"{"resourcePolicy": {"rules": [{"actions": ["a"], "actions": ["b"]}]}}"#,
            r#"{"resourcePolicy": {"rules": [{"name": "a", "name": "a"}]}}"#,
            r#"{"exportConstants": {"definitions": {"k": {"x": 1, "x": 2}}}}"#,
            r#"{"derivedRoles": {"definitions": [{"parentRoles": ["r"], "parent_roles": ["s"]}]}}"#,
            r#"{"metadata": {"hash": "18446744073709551616"}}"#,
            r#"{"resourcePolicy": {}, "principalPolicy": {}}"#,
            r#"[]"#,
            r#"{"disabled": "yes"}"#,
        ] {
            assert!(
                matches!(
                    policy_from_json(text),
                    Err(AdminError::InvalidPolicy { .. })
                ),
                "{text}"
            );
        }
    }
}

/// The checks serde's data model leaves out: a field given twice.
mod strict {
    use std::fmt;

    use prost_reflect::{Kind, MessageDescriptor};
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};

    /// A JSON tree read from any serde format, refusing duplicate keys.
    pub(super) struct Unique(pub(super) Value);

    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(UniqueVisitor).map(Unique)
        }
    }

    struct UniqueVisitor;

    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a policy value")
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            Unique::deserialize(d).map(|u| u.0)
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::Number(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Unique(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if object.contains_key(&key) {
                    return Err(de::Error::custom(format!("the key {key:?} is given twice")));
                }
                let Unique(value) = map.next_value()?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }

    /// Refuses a field given under both of its names (`apiVersion` and
    /// `api_version`), at every level of `message`. Unknown fields are left
    /// to the deserializer, which refuses them.
    pub(super) fn one_name_per_field(
        value: &Value,
        message: &MessageDescriptor,
        path: &str,
    ) -> Result<(), String> {
        let Value::Object(object) = value else {
            return Ok(());
        };
        let mut seen = Vec::new();
        for (key, value) in object {
            let Some(field) = message
                .get_field_by_json_name(key)
                .or_else(|| message.get_field_by_name(key))
            else {
                continue;
            };
            if seen.contains(&field.number()) {
                return Err(format!(
                    "{path}{} is given twice (as {:?} and {:?})",
                    field.name(),
                    field.json_name(),
                    field.name()
                ));
            }
            seen.push(field.number());
            let Kind::Message(inner) = field.kind() else {
                continue;
            };
            let path = format!("{path}{}.", field.name());
            let check = |value: &Value| {
                if field.is_map() {
                    // A map's values are its entry message's `value` field.
                    let entry_value = inner.map_entry_value_field();
                    match (entry_value.kind(), value) {
                        (Kind::Message(m), Value::Object(entries)) => {
                            entries.values().try_for_each(|v| nested(v, &m, &path))
                        }
                        _ => Ok(()),
                    }
                } else {
                    nested(value, &inner, &path)
                }
            };
            match value {
                Value::Array(items) if field.is_list() => items.iter().try_for_each(check)?,
                value => check(value)?,
            }
        }
        Ok(())
    }

    /// Well-known types (`google.protobuf.Value`, …) have their own JSON
    /// forms: only the policy's own messages are walked.
    fn nested(value: &Value, message: &MessageDescriptor, path: &str) -> Result<(), String> {
        if message.package_name() == "google.protobuf" {
            return Ok(());
        }
        one_name_per_field(value, message, path)
    }
}
