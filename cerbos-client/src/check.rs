//! `CheckResources`: can this principal do these actions on these resources?

use std::ops::Range;

use std::collections::HashMap;

use cerbos_proto::cerbos::{
    audit::v1::RequestContext, engine::v1::OutputEntry, request::v1 as request,
    response::v1 as response, schema::v1::ValidationError,
};

use crate::{AttrValue, AuxData, Error, Principal, Resource, Result};

/// The effect of a policy decision for one action.
///
/// Only [`Effect::Allow`] allows. Every other value, including effects this
/// crate does not know, denies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `EFFECT_ALLOW`.
    Allow,
    /// `EFFECT_DENY`.
    Deny,
    /// `EFFECT_NO_MATCH`: no policy matched (treated as a denial).
    NoMatch,
    /// `EFFECT_UNSPECIFIED` (treated as a denial).
    Unspecified,
    /// A value this crate does not know (treated as a denial).
    Unknown(i32),
}

impl Effect {
    /// Maps the wire value; unknown values become [`Effect::Unknown`].
    pub fn from_wire(value: i32) -> Self {
        match value {
            0 => Effect::Unspecified,
            1 => Effect::Allow,
            2 => Effect::Deny,
            3 => Effect::NoMatch,
            other => Effect::Unknown(other),
        }
    }

    /// `true` only for [`Effect::Allow`].
    pub fn is_allow(self) -> bool {
        self == Effect::Allow
    }
}

/// One resource and the actions to check on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceEntry {
    /// The resource.
    pub resource: Resource,
    /// The actions to check.
    pub actions: Vec<String>,
}

/// A `CheckResources` request: one principal, any number of resources, each
/// with its own actions.
///
/// The client splits requests over the PDP's limits (50 resources, 50 actions
/// per resource by default) into chunks, sends them concurrently and
/// reassembles the results in request order.
///
/// ```
/// use cerbos_client::{CheckResources, Principal, Resource};
/// let request = CheckResources::new(Principal::new("alice", ["user"]))
///     .resource(Resource::new("contact", "1"), ["read", "update"])
///     .resource(Resource::new("contact", "2"), ["read"])
///     .request_id("req-42");
/// assert_eq!(request.entries().len(), 2);
/// ```
///
/// The per-call builder methods that `CheckResources` and `PlanResources`
/// share (their `aux_data`, `include_meta`, `request_id` and `options`
/// fields).
macro_rules! call_methods {
    () => {
        /// Sends auxiliary data (JWTs) with the request.
        pub fn aux_data(mut self, aux_data: AuxData) -> Self {
            self.aux_data = Some(aux_data);
            self
        }

        /// Adds an audit annotation (`request_context.annotations`): the
        /// PDP's decision log records it with the call, for example which
        /// app, route and trace made it. A second annotation with the same
        /// key replaces the first.
        pub fn annotation(mut self, key: impl Into<String>, value: impl Into<AttrValue>) -> Self {
            self.options
                .annotations
                .insert(key.into(), value.into().into_proto());
            self
        }

        /// The audit annotations, in no particular order.
        pub fn annotations(&self) -> impl Iterator<Item = (&str, AttrValue)> + '_ {
            self.options.annotations()
        }

        /// Sends a gRPC metadata header with this call (every attempt of
        /// it), over a client-wide header of the same name
        /// ([`ClientBuilder::header`](crate::ClientBuilder::header)). An
        /// invalid name or value makes the call an
        /// [`Error::InvalidRequest`](crate::Error::InvalidRequest), and
        /// nothing is sent.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.options.headers.push((name.into(), value.into()));
            self
        }

        /// The per-call headers, in the order they were added.
        pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
            self.options
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
        }

        /// Asks the PDP for meta information with its answer: the matched
        /// policies and effective derived roles of a check, the filter's
        /// rendering and the matched scopes of a plan.
        pub fn include_meta(mut self, include: bool) -> Self {
            self.include_meta = include;
            self
        }

        /// Sets the request id sent to the PDP (default: a generated one).
        pub fn request_id(mut self, id: impl Into<String>) -> Self {
            self.request_id = Some(id.into());
            self
        }
    };
}

/// Per-call options: audit annotations that the PDP's decision log records
/// with the call, and gRPC metadata headers for this call only.
///
/// ```
/// use cerbos_client::{CheckResources, Principal, Resource};
/// let request = CheckResources::new(Principal::new("alice", ["user"]))
///     .resource(Resource::new("contact", "1"), ["read"])
///     // In the decision log: "requestContext": {"annotations": {"app": "contacts", ...}}
///     .annotation("app", "contacts")
///     .annotation("route", "GET /contacts/{id}")
///     .annotation("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
///     // Sent as gRPC metadata with this call (over a client-wide header of the same name).
///     .header("x-tenant", "acme")
///     .include_meta(true);
/// assert_eq!(request.annotations().count(), 3);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct CheckResources {
    principal: Principal,
    entries: Vec<ResourceEntry>,
    aux_data: Option<AuxData>,
    include_meta: bool,
    request_id: Option<String>,
    options: CallOptions,
}

/// What a request carries besides the question: audit annotations and
/// per-call headers (empty, unallocated, when unused).
///
/// `Debug` shows annotation keys and header names, never their values (a
/// header may carry a credential).
#[derive(Clone, Default)]
pub(crate) struct CallOptions {
    pub(crate) annotations: HashMap<String, prost_types::Value>,
    pub(crate) headers: Vec<(String, String)>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.annotations.keys().collect();
        keys.sort();
        let names: Vec<_> = self.headers.iter().map(|(name, _)| name).collect();
        f.debug_struct("CallOptions")
            .field("annotations", &keys)
            .field("headers", &names)
            .finish()
    }
}

impl CallOptions {
    /// The wire `request_context`: `None` without annotations.
    pub(crate) fn request_context(&self) -> Option<RequestContext> {
        (!self.annotations.is_empty()).then(|| RequestContext {
            annotations: self.annotations.clone(),
        })
    }

    /// The wire `request_context`, consuming the annotations.
    pub(crate) fn take_request_context(&mut self) -> Option<RequestContext> {
        (!self.annotations.is_empty()).then(|| RequestContext {
            annotations: std::mem::take(&mut self.annotations),
        })
    }

    pub(crate) fn annotations(&self) -> impl Iterator<Item = (&str, AttrValue)> + '_ {
        self.annotations
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), AttrValue::from_proto(v)?)))
    }
}

impl CheckResources {
    /// A request for `principal`, with no resources yet.
    pub fn new(principal: Principal) -> Self {
        CheckResources {
            principal,
            entries: Vec::new(),
            aux_data: None,
            include_meta: false,
            request_id: None,
            options: CallOptions::default(),
        }
    }

    /// Adds a resource with the actions to check on it.
    pub fn resource<A: Into<String>>(
        mut self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Self {
        self.push(resource, actions);
        self
    }

    /// Adds a resource with the actions to check on it (by reference).
    pub fn push<A: Into<String>>(
        &mut self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> &mut Self {
        self.entries.push(ResourceEntry {
            resource,
            actions: actions.into_iter().map(Into::into).collect(),
        });
        self
    }

    call_methods!();

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The resources and their actions, in request order.
    pub fn entries(&self) -> &[ResourceEntry] {
        &self.entries
    }

    /// The request id set with [`Self::request_id`], if any.
    pub fn request_id_ref(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The auxiliary data set with [`Self::aux_data`], if any.
    pub fn aux_data_ref(&self) -> Option<&AuxData> {
        self.aux_data.as_ref()
    }

    pub(crate) fn take_request_id(&mut self) -> Option<String> {
        self.request_id.take()
    }

    /// The per-call headers, taken out of the request.
    pub(crate) fn take_headers(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.options.headers)
    }

    /// Checks the request before anything is sent.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(aux_data) = &self.aux_data {
            aux_data.validate()?;
        }
        if self.entries.is_empty() {
            return Err(Error::InvalidRequest(
                "a CheckResources request needs at least one resource".into(),
            ));
        }
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.actions.is_empty() {
                return Err(Error::InvalidRequest(format!(
                    "resource #{i} ({} {:?}) has no actions to check",
                    entry.resource.kind(),
                    entry.resource.id()
                )));
            }
        }
        Ok(())
    }

    /// Splits the request into wire requests within the limits. Also
    /// returns the number of entries, to reassemble the answers into.
    pub(crate) fn into_wire(self, request_id: &str, limits: Limits) -> (Vec<Batch>, usize) {
        let entries = self.entries.len();
        (self.into_batches(request_id, limits), entries)
    }

    fn into_batches(self, request_id: &str, limits: Limits) -> Vec<Batch> {
        let plan = plan_batches(
            self.entries.iter().map(|e| e.actions.len()),
            |i| {
                let resource = &self.entries[i].resource;
                (resource.id(), resource.kind())
            },
            limits.max_resources_per_request,
            limits.max_actions_per_resource,
        );
        let aux_data = self.aux_data.map(|a| a.as_proto().clone());
        let request_context = self.options.request_context();
        let wire = |principal: Principal, resources| request::CheckResourcesRequest {
            request_id: request_id.to_owned(),
            principal: Some(principal.into_proto()),
            resources,
            aux_data: aux_data.clone(),
            include_meta: self.include_meta,
            request_context: request_context.clone(),
        };
        if plan.len() == 1 && plan[0].len() == self.entries.len() {
            // The common case: one request, nothing split, nothing cloned.
            let pieces = plan.into_iter().next().unwrap_or_default();
            let resources = self
                .entries
                .into_iter()
                .map(|e| request::check_resources_request::ResourceEntry {
                    actions: e.actions,
                    resource: Some(e.resource.into_proto()),
                })
                .collect();
            return vec![Batch {
                request: wire(self.principal, resources),
                pieces,
            }];
        }
        plan.into_iter()
            .map(|pieces| {
                let resources = pieces
                    .iter()
                    .map(|p| {
                        let entry = &self.entries[p.entry];
                        request::check_resources_request::ResourceEntry {
                            actions: entry.actions[p.actions.clone()].to_vec(),
                            resource: Some(entry.resource.as_proto().clone()),
                        }
                    })
                    .collect();
                Batch {
                    request: wire(self.principal.clone(), resources),
                    pieces,
                }
            })
            .collect()
    }
}

/// A short text kept inline, such as the `cerbos-version` header of an
/// answer (`0.55.0`): no allocation per call for it. Longer text goes on the
/// heap.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum ShortText {
    Inline { len: u8, buf: [u8; 30] },
    Heap(Box<str>),
}

impl ShortText {
    pub(crate) fn new(text: &str) -> Self {
        let mut buf = [0; 30];
        match buf.get_mut(..text.len()) {
            Some(head) => {
                head.copy_from_slice(text.as_bytes());
                ShortText::Inline {
                    len: text.len() as u8,
                    buf,
                }
            }
            None => ShortText::Heap(text.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` at a char boundary: always UTF-8.
            ShortText::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or("")
            }
            ShortText::Heap(text) => text,
        }
    }
}

impl std::fmt::Debug for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The PDP's per-request limits that the client chunks requests to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_resources_per_request: usize,
    pub(crate) max_actions_per_resource: usize,
}

/// A part of one resource entry: the entry's index and a range of its actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) entry: usize,
    pub(crate) actions: Range<usize>,
}

/// One wire request and the pieces of the original request it carries.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) request: request::CheckResourcesRequest,
    pub(crate) pieces: Vec<Piece>,
}

/// Splits entries (given by their action counts, and their resource's id
/// and kind by index) into batches of at most `max_resources` pieces, each piece with at most
/// `max_actions` actions. Two entries for the same resource (kind and id,
/// for example with different attributes) never share a batch: answers
/// are matched to entries by position and resource, and two such results
/// could not be told apart.
pub(crate) fn plan_batches<'a>(
    action_counts: impl Iterator<Item = usize>,
    resource_of: impl Fn(usize) -> (&'a str, &'a str),
    max_resources: usize,
    max_actions: usize,
) -> Vec<Vec<Piece>> {
    let max_resources = max_resources.max(1);
    let max_actions = max_actions.max(1);
    let mut batches = vec![Vec::new()];
    for (entry, count) in action_counts.enumerate() {
        // An earlier entry for the same resource in the batch: start a new one.
        let key = resource_of(entry);
        let clashes = |batch: &Vec<Piece>| {
            batch
                .iter()
                .any(|p| p.entry != entry && resource_of(p.entry) == key)
        };
        if batches.last().is_some_and(clashes) {
            batches.push(Vec::new());
        }
        let mut start = 0;
        while start < count {
            let end = (start + max_actions).min(count);
            if batches.last().is_some_and(|b| b.len() == max_resources) {
                batches.push(Vec::new());
            }
            if let Some(batch) = batches.last_mut() {
                batch.push(Piece {
                    entry,
                    actions: start..end,
                });
            }
            start = end;
        }
    }
    batches
}

/// `true` if `answered` holds an effect for exactly the actions of `asked`
/// (which may name an action twice): none missing, none extra.
fn answers_exactly(asked: &[String], answered: &std::collections::HashMap<String, i32>) -> bool {
    // Every answered action was asked (compared, not hashed: the lists are
    // short), and there are as many as distinct asked actions: the two sets
    // are equal.
    let distinct = asked
        .iter()
        .enumerate()
        .filter(|(i, action)| !asked[..*i].contains(action))
        .count();
    answered.len() == distinct && answered.keys().all(|a| asked.contains(a))
}

/// Reassembles the answers to the batches (in batch order) into one result
/// per original entry (`entries` of them), checking every result against
/// the wire request it answers: the resource and exactly the actions that
/// request asked about. An extra, missing, duplicated or reordered result,
/// or an effect for an action nobody asked about in that call, makes the
/// whole answer malformed (fail closed).
pub(crate) fn reassemble(
    entries: usize,
    answers: Vec<(Batch, response::CheckResourcesResponse)>,
) -> Result<CheckResourcesResponse> {
    // The common case: one call with every entry whole and in order.
    if let [(batch, _)] = answers.as_slice()
        && batch.pieces.len() == entries
        && batch.pieces.iter().enumerate().all(|(i, p)| p.entry == i)
    {
        let Some((batch, answer)) = answers.into_iter().next() else {
            return Err(Error::MalformedResponse("no answer".to_owned()));
        };
        verify(&batch, &answer)?;
        return Ok(CheckResourcesResponse {
            request_id: answer.request_id,
            results: answer
                .results
                .into_iter()
                .map(|inner| ResourceResult { inner })
                .collect(),
            cerbos_call_id: answer.cerbos_call_id,
            more_call_ids: Vec::new(),
            cerbos_version: None,
        });
    }
    let mut results: Vec<Option<ResourceResult>> = (0..entries).map(|_| None).collect();
    let mut request_id = String::new();
    let mut cerbos_call_ids = Vec::with_capacity(answers.len());
    for (batch, answer) in answers {
        verify(&batch, &answer)?;
        if request_id.is_empty() {
            request_id = answer.request_id;
        }
        cerbos_call_ids.push(answer.cerbos_call_id);
        for (piece, entry) in batch.pieces.iter().zip(answer.results) {
            let slot = results.get_mut(piece.entry).ok_or_else(|| {
                Error::MalformedResponse("result for an unknown entry".to_owned())
            })?;
            match slot {
                None => *slot = Some(ResourceResult { inner: entry }),
                Some(existing) => existing.merge(entry, piece.entry)?,
            }
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::MalformedResponse("missing result".to_owned())))
        .collect::<Result<Vec<_>>>()?;
    let mut call_ids = cerbos_call_ids.into_iter();
    Ok(CheckResourcesResponse {
        request_id,
        results,
        cerbos_call_id: call_ids.next().unwrap_or_default(),
        more_call_ids: call_ids.collect(),
        cerbos_version: None,
    })
}

/// Checks an answer against the call it answers: one result per resource
/// entry of the call, in order, each for that entry's resource and exactly
/// its actions.
fn verify(batch: &Batch, answer: &response::CheckResourcesResponse) -> Result<()> {
    let asked = &batch.request.resources;
    if answer.results.len() != asked.len() {
        return Err(Error::MalformedResponse(format!(
            "asked about {} resources, got {} results",
            asked.len(),
            answer.results.len()
        )));
    }
    for ((piece, asked), result) in batch.pieces.iter().zip(asked).zip(&answer.results) {
        let same = match (&result.resource, &asked.resource) {
            (Some(got), Some(asked)) => got.kind == asked.kind && got.id == asked.id,
            _ => false,
        };
        if !same {
            return Err(Error::MalformedResponse(format!(
                "result #{} is not for the resource asked about",
                piece.entry
            )));
        }
        if !answers_exactly(&asked.actions, &result.actions) {
            return Err(Error::MalformedResponse(format!(
                "result #{} does not answer exactly the {} actions asked ({} answered)",
                piece.entry,
                asked.actions.len(),
                result.actions.len()
            )));
        }
    }
    Ok(())
}

/// The PDP's answer to a [`CheckResources`] request: one [`ResourceResult`]
/// per resource, in request order.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResourcesResponse {
    request_id: String,
    results: Vec<ResourceResult>,
    /// The first call's id, and those of the other calls when the request
    /// was split (no allocation for the usual single call).
    cerbos_call_id: String,
    more_call_ids: Vec<String>,
    /// The `cerbos-version` response header (inline: no allocation).
    cerbos_version: Option<ShortText>,
}

impl CheckResourcesResponse {
    /// A response from its wire form, as is (no check against a request).
    ///
    /// For PDP implementations other than [`Client`](crate::Client), such
    /// as the stubs in tests behind `cerbos_tower::layer::Pdp`: the layer
    /// checks the answer against what it asked.
    pub fn from_proto(answer: response::CheckResourcesResponse) -> Self {
        CheckResourcesResponse {
            request_id: answer.request_id,
            results: answer
                .results
                .into_iter()
                .map(|inner| ResourceResult { inner })
                .collect(),
            cerbos_call_id: answer.cerbos_call_id,
            more_call_ids: Vec::new(),
            cerbos_version: None,
        }
    }

    /// The results, in request order.
    pub fn results(&self) -> &[ResourceResult] {
        &self.results
    }

    /// The first result for the resource with `kind` and `id`.
    pub fn find(&self, kind: &str, id: &str) -> Option<&ResourceResult> {
        self.results
            .iter()
            .find(|r| r.kind() == kind && r.id() == id)
    }

    /// `true` if every action on every resource is allowed.
    pub fn all_allowed(&self) -> bool {
        self.results.iter().all(ResourceResult::all_allowed)
    }

    /// The request id the PDP echoed.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The PDP's call id (its audit log key). When the request was split
    /// into several calls, the first one's; see [`Self::cerbos_call_ids`].
    pub fn cerbos_call_id(&self) -> &str {
        &self.cerbos_call_id
    }

    /// The call ids of every call the request was split into, in order.
    pub fn cerbos_call_ids(&self) -> impl Iterator<Item = &str> + '_ {
        std::iter::once(self.cerbos_call_id.as_str())
            .chain(self.more_call_ids.iter().map(String::as_str))
    }

    /// The PDP's version, from the `cerbos-version` header of its answer
    /// (of the first call, when the request was split), such as `0.55.0`.
    /// `None` if the PDP sent none (or a value that is not text).
    pub fn cerbos_version(&self) -> Option<&str> {
        self.cerbos_version.as_ref().map(ShortText::as_str)
    }

    pub(crate) fn set_cerbos_version(&mut self, version: Option<ShortText>) {
        self.cerbos_version = version;
    }

    /// Consumes the response, giving the results.
    pub fn into_results(self) -> Vec<ResourceResult> {
        self.results
    }
}

impl IntoIterator for CheckResourcesResponse {
    type Item = ResourceResult;
    type IntoIter = std::vec::IntoIter<ResourceResult>;
    fn into_iter(self) -> Self::IntoIter {
        self.results.into_iter()
    }
}

/// The decision for one resource: the effect of each action, plus outputs,
/// validation errors and (if asked for) meta.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceResult {
    inner: response::check_resources_response::ResultEntry,
}

impl ResourceResult {
    /// The resource id.
    pub fn id(&self) -> &str {
        self.inner.resource.as_ref().map_or("", |r| r.id.as_str())
    }

    /// The resource kind.
    pub fn kind(&self) -> &str {
        self.inner.resource.as_ref().map_or("", |r| r.kind.as_str())
    }

    /// The effect for `action`, or `None` if the PDP did not answer for it.
    pub fn effect(&self, action: &str) -> Option<Effect> {
        let actions = &self.inner.actions;
        // A few actions are found faster by comparing than by hashing.
        let effect = if actions.len() <= 8 {
            actions.iter().find(|(a, _)| *a == action).map(|(_, e)| e)
        } else {
            actions.get(action)
        };
        effect.copied().map(Effect::from_wire)
    }

    /// `true` only if the PDP explicitly allowed `action`. Missing, denied,
    /// unspecified and unknown effects are `false`.
    pub fn is_allowed(&self, action: &str) -> bool {
        self.effect(action).is_some_and(Effect::is_allow)
    }

    /// `true` if every action in the answer is allowed (and there is one).
    pub fn all_allowed(&self) -> bool {
        !self.inner.actions.is_empty() && self.actions().all(|(_, e)| e.is_allow())
    }

    /// Every action in the answer with its effect.
    pub fn actions(&self) -> impl Iterator<Item = (&str, Effect)> + '_ {
        self.inner
            .actions
            .iter()
            .map(|(a, e)| (a.as_str(), Effect::from_wire(*e)))
    }

    /// Schema validation errors for the principal's or resource's attributes.
    pub fn validation_errors(&self) -> &[ValidationError] {
        &self.inner.validation_errors
    }

    /// Outputs of the rules that matched.
    pub fn outputs(&self) -> &[OutputEntry] {
        &self.inner.outputs
    }

    /// The output of the rule named `src` (`None` if there is none, or if
    /// its value is malformed).
    pub fn output(&self, src: &str) -> Option<AttrValue> {
        let output = self.inner.outputs.iter().find(|o| o.src == src)?;
        match &output.val {
            None => Some(AttrValue::Null),
            Some(value) => AttrValue::from_proto(value),
        }
    }

    /// Matched policies and derived roles, when the request asked for meta.
    pub fn meta(&self) -> Option<&response::check_resources_response::result_entry::Meta> {
        self.inner.meta.as_ref()
    }

    /// The protobuf message.
    pub fn as_proto(&self) -> &response::check_resources_response::ResultEntry {
        &self.inner
    }

    /// Adds the answer to another piece of the same entry. An action both
    /// answers name (asked twice, in two pieces) must have the same effect
    /// in both, or the answer is malformed.
    fn merge(
        &mut self,
        other: response::check_resources_response::ResultEntry,
        entry: usize,
    ) -> Result<()> {
        for (action, effect) in other.actions {
            match self.inner.actions.get(&action) {
                Some(mine) if *mine != effect => {
                    return Err(Error::MalformedResponse(format!(
                        "result #{entry} gives two effects for the same action"
                    )));
                }
                Some(_) => {}
                None => {
                    self.inner.actions.insert(action, effect);
                }
            }
        }
        for err in other.validation_errors {
            if !self.inner.validation_errors.contains(&err) {
                self.inner.validation_errors.push(err);
            }
        }
        self.inner.outputs.extend(other.outputs);
        match (&mut self.inner.meta, other.meta) {
            (Some(mine), Some(theirs)) => {
                mine.actions.extend(theirs.actions);
                for role in theirs.effective_derived_roles {
                    if !mine.effective_derived_roles.contains(&role) {
                        mine.effective_derived_roles.push(role);
                    }
                }
            }
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(batches: &[Vec<Piece>]) -> Vec<usize> {
        batches.iter().map(Vec::len).collect()
    }

    /// Batches for entries of distinct resources with these action counts.
    fn plan(counts: &[usize], max_resources: usize, max_actions: usize) -> Vec<Vec<Piece>> {
        let ids: Vec<String> = (0..counts.len()).map(|i| i.to_string()).collect();
        plan_batches(
            counts.iter().copied(),
            |i| (ids[i].as_str(), "k"),
            max_resources,
            max_actions,
        )
    }

    #[test]
    fn small_requests_are_one_batch() {
        let b = plan(&[2, 3], 50, 50);
        assert_eq!(sizes(&b), [2]);
        assert_eq!(
            b[0][1],
            Piece {
                entry: 1,
                actions: 0..3
            }
        );
    }

    #[test]
    fn many_resources_are_split_in_order() {
        let b = plan(&[1; 120], 50, 50);
        assert_eq!(sizes(&b), [50, 50, 20]);
        let entries: Vec<usize> = b.iter().flatten().map(|p| p.entry).collect();
        assert_eq!(entries, (0..120).collect::<Vec<_>>());
    }

    #[test]
    fn many_actions_are_split_into_pieces() {
        let b = plan(&[70, 1], 2, 50);
        assert_eq!(sizes(&b), [2, 1]);
        assert_eq!(b[0][0].actions, 0..50);
        assert_eq!(b[0][1].actions, 50..70);
        assert_eq!(
            b[1][0],
            Piece {
                entry: 1,
                actions: 0..1
            }
        );
    }

    #[test]
    fn zero_limits_do_not_loop_forever() {
        let b = plan(&[3], 0, 0);
        assert_eq!(b.iter().flatten().count(), 3);
    }

    #[test]
    fn entries_for_the_same_resource_never_share_a_batch() {
        let entries = [
            (1, ("1", "doc")),
            (1, ("2", "doc")),
            (1, ("1", "doc")),
            (1, ("3", "doc")),
        ];
        let b = plan_batches(entries.iter().map(|e| e.0), |i| entries[i].1, 50, 50);
        assert_eq!(sizes(&b), [2, 2]);
        for batch in &b {
            let mut keys: Vec<_> = batch.iter().map(|p| entries[p.entry].1).collect();
            keys.dedup();
            assert_eq!(keys.len(), batch.len(), "{batch:?}");
        }
    }

    /// The wire batches for entries `(id, actions)` of kind `doc`, at most
    /// `max_resources` per call and `max_actions` per entry.
    fn wire(
        entries: &[(&str, &[&str])],
        max_resources: usize,
        max_actions: usize,
    ) -> (Vec<Batch>, usize) {
        let mut request = CheckResources::new(Principal::new("u", ["user"]));
        for (id, actions) in entries {
            request.push(Resource::new("doc", *id), actions.iter().copied());
        }
        let limits = Limits {
            max_resources_per_request: max_resources,
            max_actions_per_resource: max_actions,
        };
        request.into_wire("r", limits)
    }

    fn answer(results: &[(&str, &[(&str, i32)])]) -> response::CheckResourcesResponse {
        use response::check_resources_response::{ResultEntry, result_entry::Resource};
        response::CheckResourcesResponse {
            results: results
                .iter()
                .map(|(id, actions)| ResultEntry {
                    resource: Some(Resource {
                        id: (*id).into(),
                        kind: "doc".into(),
                        ..Default::default()
                    }),
                    actions: actions.iter().map(|(a, e)| ((*a).to_owned(), *e)).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Reassembles `answers`, one per batch of `wire`.
    fn reassembled(
        (batches, entries): (Vec<Batch>, usize),
        answers: Vec<response::CheckResourcesResponse>,
    ) -> Result<CheckResourcesResponse> {
        assert_eq!(batches.len(), answers.len(), "one answer per call");
        reassemble(entries, batches.into_iter().zip(answers).collect())
    }

    fn malformed(result: Result<CheckResourcesResponse>) -> bool {
        matches!(result, Err(Error::MalformedResponse(_)))
    }

    const ALLOW: i32 = 1;
    const DENY: i32 = 2;

    #[test]
    fn an_answer_names_exactly_the_actions_its_piece_asked() {
        // One entry with two actions in two pieces (one action each), in
        // one call: `read` in the first piece, `write` in the second.
        let asked = || wire(&[("1", &["read", "write"])], 50, 1);
        let pieces = |first: &[(&str, i32)], second: &[(&str, i32)]| {
            vec![answer(&[("1", first), ("1", second)])]
        };
        let ok = reassembled(asked(), pieces(&[("read", DENY)], &[("write", ALLOW)])).unwrap();
        assert!(!ok.results()[0].is_allowed("read"));
        assert!(ok.results()[0].is_allowed("write"));

        // A lying second piece adds `read: ALLOW`, which it was not asked:
        // it must not override the first piece's DENY.
        let extra = pieces(&[("read", DENY)], &[("write", ALLOW), ("read", ALLOW)]);
        assert!(malformed(reassembled(asked(), extra)));
        // Missing, renamed and empty answers are malformed too.
        for bad in [
            pieces(&[], &[("write", ALLOW)]),
            pieces(&[("reed", ALLOW)], &[("write", ALLOW)]),
            pieces(&[("read", ALLOW)], &[]),
        ] {
            assert!(malformed(reassembled(asked(), bad)));
        }
        // The same across calls (one piece per call).
        let calls = || wire(&[("1", &["read", "write"])], 1, 1);
        let ok = vec![
            answer(&[("1", &[("read", DENY)])]),
            answer(&[("1", &[("write", ALLOW)])]),
        ];
        assert!(reassembled(calls(), ok).is_ok());
        let lie = vec![
            answer(&[("1", &[("read", DENY)])]),
            answer(&[("1", &[("write", ALLOW), ("read", ALLOW)])]),
        ];
        assert!(malformed(reassembled(calls(), lie)));
    }

    #[test]
    fn an_action_asked_twice_must_get_one_effect() {
        // `read` asked twice, once in each piece.
        let asked = || wire(&[("1", &["read", "read"])], 50, 1);
        let pieces = |first: i32, second: i32| {
            vec![answer(&[
                ("1", &[("read", first)]),
                ("1", &[("read", second)]),
            ])]
        };
        assert!(
            reassembled(asked(), pieces(ALLOW, ALLOW))
                .unwrap()
                .all_allowed()
        );
        for (a, b) in [(DENY, ALLOW), (ALLOW, DENY)] {
            assert!(malformed(reassembled(asked(), pieces(a, b))));
        }
        // In one piece, the one answer for a duplicated action is enough,
        // and another action is still an extra one.
        let whole = || wire(&[("1", &["read", "read"])], 50, 50);
        let one = vec![answer(&[("1", &[("read", ALLOW)])])];
        assert!(reassembled(whole(), one).unwrap().all_allowed());
        let extra = vec![answer(&[("1", &[("read", ALLOW), ("delete", ALLOW)])])];
        assert!(malformed(reassembled(whole(), extra)));
    }

    #[test]
    fn reordered_extra_or_missing_results_are_malformed() {
        let asked = || wire(&[("1", &["read"]), ("2", &["read"])], 50, 50);
        let good = answer(&[("1", &[("read", ALLOW)]), ("2", &[("read", ALLOW)])]);
        assert!(reassembled(asked(), vec![good]).is_ok());
        for bad in [
            answer(&[("2", &[("read", ALLOW)]), ("1", &[("read", ALLOW)])]),
            answer(&[("1", &[("read", ALLOW)])]),
            answer(&[
                ("1", &[("read", ALLOW)]),
                ("2", &[("read", ALLOW)]),
                ("3", &[("read", ALLOW)]),
            ]),
            answer(&[("1", &[("read", ALLOW)]), ("1", &[("read", ALLOW)])]),
        ] {
            assert!(malformed(reassembled(asked(), vec![bad])));
        }
    }

    #[test]
    fn short_text_holds_any_length() {
        for text in ["", "0.55.0", &"x".repeat(30), &"é".repeat(40)] {
            assert_eq!(ShortText::new(text).as_str(), text);
        }
        assert!(matches!(ShortText::new("0.55.0"), ShortText::Inline { .. }));
    }

    #[test]
    fn annotations_go_in_the_request_context_of_every_chunk() {
        let request = CheckResources::new(Principal::new("u", ["user"]))
            .resource(Resource::new("doc", "1"), ["read"])
            .resource(Resource::new("doc", "2"), ["read"])
            .annotation("app", "contacts")
            .annotation("n", f64::NAN);
        let limits = Limits {
            max_resources_per_request: 1,
            max_actions_per_resource: 1,
        };
        let (batches, _) = request.into_wire("r", limits);
        assert_eq!(batches.len(), 2);
        for batch in &batches {
            let context = batch.request.request_context.as_ref().unwrap();
            assert_eq!(
                AttrValue::from_proto(&context.annotations["app"]),
                Some("contacts".into())
            );
            assert!(
                AttrValue::from_proto(&context.annotations["n"])
                    .is_some_and(|v| v.as_f64().unwrap().is_nan())
            );
        }
        let (plain, _) = wire(&[("1", &["read"])], 50, 50);
        assert!(plain[0].request.request_context.is_none());
    }

    #[test]
    fn debug_shows_annotation_keys_and_header_names_only() {
        let request = CheckResources::new(Principal::new("u", ["user"]))
            .annotation("trace_id", "secret-trace")
            .header("authorization", "Bearer secret-token");
        let shown = format!("{request:?}");
        assert!(shown.contains("trace_id") && shown.contains("authorization"));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn unknown_effects_deny() {
        for v in [0, 2, 3, 4, -1, i32::MAX] {
            assert!(!Effect::from_wire(v).is_allow());
        }
        assert!(Effect::from_wire(1).is_allow());
    }
}
