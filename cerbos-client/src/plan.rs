//! `PlanResources`: which resources of a kind may this principal act on?

use cerbos_proto::cerbos::{
    engine::v1::{self as engine, plan_resources_filter},
    request::v1 as request,
    response::v1 as response,
    schema::v1::ValidationError,
};

use std::collections::HashMap;

use crate::{
    AttrValue, AuxData, Error, Principal, Result,
    check::{CallOptions, ShortText},
};

/// A `PlanResources` request: a principal, a resource kind (with the
/// attributes already known) and the actions. The answer is a
/// [`PlanFilter`]: a condition on the attributes of the resources that the
/// principal may act on, which becomes a database filter.
///
/// ```
/// use cerbos_client::{PlanResources, Principal};
/// let request = PlanResources::new(Principal::new("john", ["user"]), "contact")
///     .action("read")
///     .with_attr("department", "Sales");
/// assert_eq!(request.actions(), ["read"]);
/// ```
///
/// As for [`CheckResources`](crate::CheckResources), audit annotations and
/// per-call headers go with the request:
///
/// ```
/// use cerbos_client::{PlanResources, Principal};
/// let request = PlanResources::new(Principal::new("john", ["user"]), "contact")
///     .action("read")
///     .annotation("app", "contacts")
///     .annotation("route", "GET /contacts")
///     .header("x-tenant", "acme")
///     .include_meta(true); // filter_debug and matched_scopes in the answer
/// assert_eq!(request.annotations().count(), 2);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct PlanResources {
    principal: Principal,
    resource: engine::plan_resources_input::Resource,
    actions: Vec<String>,
    aux_data: Option<AuxData>,
    include_meta: bool,
    request_id: Option<String>,
    options: CallOptions,
}

impl PlanResources {
    /// A plan request for resources of `kind`, with no actions yet.
    pub fn new(principal: Principal, kind: impl Into<String>) -> Self {
        PlanResources {
            principal,
            resource: engine::plan_resources_input::Resource {
                kind: kind.into(),
                ..Default::default()
            },
            actions: Vec::new(),
            aux_data: None,
            include_meta: false,
            request_id: None,
            options: CallOptions::default(),
        }
    }

    /// Adds an action. With several actions the plan is for the resources on
    /// which every one of them is allowed.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.actions.push(action.into());
        self
    }

    /// Adds several actions.
    pub fn actions_from<A: Into<String>>(mut self, actions: impl IntoIterator<Item = A>) -> Self {
        self.actions.extend(actions.into_iter().map(Into::into));
        self
    }

    /// Sets a resource attribute that is already known.
    pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.resource
            .attr
            .insert(key.into(), value.into().into_proto());
        self
    }

    /// Sets the resource policy version.
    pub fn with_policy_version(mut self, version: impl Into<String>) -> Self {
        self.resource.policy_version = version.into();
        self
    }

    /// Sets the resource scope.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.resource.scope = scope.into();
        self
    }

    call_methods!();

    /// The actions.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// The resource kind.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    pub(crate) fn take_request_id(&mut self) -> Option<String> {
        self.request_id.take()
    }

    /// The per-call headers, taken out of the request.
    pub(crate) fn take_headers(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.options.headers)
    }

    pub(crate) fn into_wire(mut self, request_id: String) -> Result<request::PlanResourcesRequest> {
        if self.actions.is_empty() {
            return Err(Error::InvalidRequest(
                "a PlanResources request needs at least one action".into(),
            ));
        }
        if self.resource.kind.is_empty() {
            return Err(Error::InvalidRequest(
                "a PlanResources request needs a resource kind".into(),
            ));
        }
        if let Some(aux_data) = &self.aux_data {
            aux_data.validate()?;
        }
        let request_context = self.options.take_request_context();
        #[allow(deprecated)]
        Ok(request::PlanResourcesRequest {
            request_id,
            principal: Some(self.principal.into_proto()),
            resource: Some(self.resource),
            actions: self.actions,
            aux_data: self.aux_data.map(|a| a.as_proto().clone()),
            include_meta: self.include_meta,
            request_context,
            ..Default::default()
        })
    }
}

/// The PDP's answer to a [`PlanResources`] request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PlanResourcesResponse {
    /// The request id the PDP echoed.
    pub request_id: String,
    /// The resource kind.
    pub kind: String,
    /// The policy version.
    pub policy_version: String,
    /// The actions planned for.
    pub actions: Vec<String>,
    /// The filter.
    pub filter: PlanFilter,
    /// Schema validation errors for the principal's or resource's attributes.
    pub validation_errors: Vec<ValidationError>,
    /// The PDP's call id (its audit log key).
    pub cerbos_call_id: String,
    /// The PDP's human-readable rendering of the filter, when meta was asked for.
    pub filter_debug: Option<String>,
    /// The scope that matched for each action (action → scope, "" for
    /// none), when meta was asked for; empty otherwise.
    pub matched_scopes: HashMap<String, String>,
    /// The `cerbos-version` response header (inline: no allocation).
    cerbos_version: Option<ShortText>,
}

impl PlanResourcesResponse {
    /// The PDP's version, from the `cerbos-version` header of its answer,
    /// such as `0.55.0`. `None` if the PDP sent none (or a value that is
    /// not text).
    pub fn cerbos_version(&self) -> Option<&str> {
        self.cerbos_version.as_ref().map(ShortText::as_str)
    }

    pub(crate) fn set_cerbos_version(&mut self, version: Option<ShortText>) {
        self.cerbos_version = version;
    }
}

/// Which resources the principal may act on.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanFilter {
    /// Every resource of the kind: no filter needed.
    AlwaysAllowed,
    /// None: the query need not run.
    AlwaysDenied,
    /// The resources for which the condition is true.
    Conditional(Operand),
}

/// A node of a plan's condition tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A constant (numbers may be non-finite: a policy can fold `0.0/0.0`).
    Value(AttrValue),
    /// A variable such as `request.resource.attr.owner`.
    Variable(String),
    /// An operator applied to operands, such as `eq(variable, value)`.
    Expression(Expression),
}

/// An operator applied to operands.
#[derive(Clone, Debug, PartialEq)]
pub struct Expression {
    /// The operator (`eq`, `and`, `in`, `startsWith`, `lambda`, …).
    pub operator: String,
    /// The operands, in the order the policy wrote them.
    pub operands: Vec<Operand>,
}

/// What a plan request asked, to check the answer against: a plan is only
/// trusted for the kind, actions and policy version it was asked for.
#[derive(Clone, Debug)]
pub(crate) struct PlanAsked {
    kind: String,
    actions: Vec<String>,
    policy_version: String,
}

impl PlanAsked {
    pub(crate) fn of(request: &request::PlanResourcesRequest) -> Self {
        let resource = request.resource.as_ref();
        PlanAsked {
            kind: resource.map(|r| r.kind.clone()).unwrap_or_default(),
            actions: request.actions.clone(),
            policy_version: resource
                .map(|r| r.policy_version.clone())
                .unwrap_or_default(),
        }
    }

    /// Why `answer` is not an answer to this request, if it is not.
    fn mismatch(&self, answer: &response::PlanResourcesResponse) -> Option<String> {
        if answer.resource_kind != self.kind {
            return Some(format!(
                "the plan is for kind {:?}, not {:?}",
                answer.resource_kind, self.kind
            ));
        }
        #[allow(deprecated)]
        let answered: &[String] = if answer.actions.is_empty() && !answer.action.is_empty() {
            std::slice::from_ref(&answer.action)
        } else {
            &answer.actions
        };
        let same_actions = answered.len() == self.actions.len()
            && answered.iter().all(|a| self.actions.contains(a))
            && self.actions.iter().all(|a| answered.contains(a));
        if !same_actions {
            return Some(format!(
                "the plan is for actions {answered:?}, not {:?}",
                self.actions
            ));
        }
        // The PDP names the default version "default" when none was asked.
        let version_ok = answer.policy_version == self.policy_version
            || (self.policy_version.is_empty() && answer.policy_version == "default");
        if !version_ok {
            return Some(format!(
                "the plan is for policy version {:?}, not {:?}",
                answer.policy_version, self.policy_version
            ));
        }
        None
    }
}

/// The answer, after checking that it answers `asked`.
pub(crate) fn from_wire_checked(
    answer: response::PlanResourcesResponse,
    asked: &PlanAsked,
) -> Result<PlanResourcesResponse> {
    if let Some(why) = asked.mismatch(&answer) {
        return Err(Error::MalformedResponse(why));
    }
    from_wire(answer)
}

fn from_wire(answer: response::PlanResourcesResponse) -> Result<PlanResourcesResponse> {
    let filter = answer
        .filter
        .ok_or_else(|| Error::MalformedResponse("the plan has no filter".into()))?;
    let filter = match plan_resources_filter::Kind::try_from(filter.kind) {
        Ok(plan_resources_filter::Kind::AlwaysAllowed) => PlanFilter::AlwaysAllowed,
        Ok(plan_resources_filter::Kind::AlwaysDenied) => PlanFilter::AlwaysDenied,
        Ok(plan_resources_filter::Kind::Conditional) => {
            let condition = filter.condition.ok_or_else(|| {
                Error::MalformedResponse("a conditional plan has no condition".into())
            })?;
            PlanFilter::Conditional(operand_from_wire(condition)?)
        }
        _ => {
            return Err(Error::MalformedResponse(format!(
                "unknown plan filter kind {}",
                filter.kind
            )));
        }
    };
    let (filter_debug, matched_scopes) = match answer.meta {
        Some(meta) => (Some(meta.filter_debug), meta.matched_scopes),
        None => (None, HashMap::new()),
    };
    #[allow(deprecated)]
    Ok(PlanResourcesResponse {
        request_id: answer.request_id,
        kind: answer.resource_kind,
        policy_version: answer.policy_version,
        actions: answer.actions,
        filter,
        validation_errors: answer.validation_errors,
        cerbos_call_id: answer.cerbos_call_id,
        filter_debug,
        matched_scopes,
        cerbos_version: None,
    })
}

fn operand_from_wire(op: plan_resources_filter::expression::Operand) -> Result<Operand> {
    use plan_resources_filter::expression::operand::Node;
    match op.node {
        Some(Node::Value(v)) => AttrValue::from_proto(&v)
            .map(Operand::Value)
            .ok_or_else(|| {
                Error::MalformedResponse("a plan value operand has no value kind".into())
            }),
        Some(Node::Variable(name)) => Ok(Operand::Variable(name)),
        Some(Node::Expression(e)) => {
            if e.operator.is_empty() {
                return Err(Error::MalformedResponse(
                    "a plan expression has no operator".into(),
                ));
            }
            Ok(Operand::Expression(Expression {
                operator: e.operator,
                operands: e
                    .operands
                    .into_iter()
                    .map(operand_from_wire)
                    .collect::<Result<_>>()?,
            }))
        }
        None => Err(Error::MalformedResponse("a plan operand is empty".into())),
    }
}

/// Renders the condition in prefix form:
/// `or(eq(request.resource.attr.owner, "alicia"), eq(request.resource.attr.public, true))`.
impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operand::Value(v) => write!(f, "{v}"),
            Operand::Variable(name) => f.write_str(name),
            Operand::Expression(e) => {
                write!(f, "{}(", e.operator)?;
                for (i, operand) in e.operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{operand}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(kind: &str, actions: &[&str], version: &str) -> PlanAsked {
        let request = PlanResources::new(Principal::new("u", ["user"]), kind)
            .actions_from(actions.iter().copied())
            .with_policy_version(version);
        PlanAsked::of(&request.into_wire("r".into()).unwrap())
    }

    #[allow(deprecated)]
    fn answer(kind: &str, actions: &[&str], version: &str) -> response::PlanResourcesResponse {
        response::PlanResourcesResponse {
            resource_kind: kind.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            policy_version: version.into(),
            filter: Some(engine::PlanResourcesFilter {
                kind: plan_resources_filter::Kind::AlwaysAllowed as i32,
                condition: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_plan_is_trusted_only_for_what_was_asked() {
        let contact_read = asked("contact", &["read"], "");
        let good = [
            answer("contact", &["read"], "default"),
            answer("contact", &["read"], ""),
        ];
        for a in good {
            assert!(from_wire_checked(a, &contact_read).is_ok());
        }
        let two = asked("contact", &["read", "edit"], "v2");
        assert!(from_wire_checked(answer("contact", &["edit", "read"], "v2"), &two).is_ok());
        let bad = [
            (answer("company", &["list"], "default"), &contact_read),
            (answer("company", &["read"], "default"), &contact_read),
            (answer("contact", &["list"], "default"), &contact_read),
            (
                answer("contact", &["read", "edit"], "default"),
                &contact_read,
            ),
            (answer("contact", &[], "default"), &contact_read),
            (answer("contact", &["read"], "v1"), &contact_read),
            (answer("contact", &["read", "edit"], "default"), &two),
            (answer("contact", &["read"], "v2"), &two),
        ];
        for (a, asked) in bad {
            let shown = format!("{a:?}");
            assert!(
                matches!(
                    from_wire_checked(a, asked),
                    Err(Error::MalformedResponse(_))
                ),
                "{shown}"
            );
        }
    }

    #[test]
    fn operands_display_in_prefix_form() {
        let op = Operand::Expression(Expression {
            operator: "eq".into(),
            operands: vec![
                Operand::Variable("request.resource.attr.owner".into()),
                Operand::Value("alicia".into()),
            ],
        });
        assert_eq!(
            op.to_string(),
            r#"eq(request.resource.attr.owner, "alicia")"#
        );
    }
}
