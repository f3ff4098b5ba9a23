//! [`Actions`]: what a route needs the PDP to allow, by HTTP method, and
//! the extra actions reported in the [`PermissionMap`](super::PermissionMap).

use std::sync::Arc;

use http::Method;

use super::ConfigError;

/// The actions a route needs, and the extra actions only computed for the
/// [`PermissionMap`](super::PermissionMap).
///
/// ```
/// use cerbos_tower::layer::Actions;
/// use http::Method;
///
/// // A detail page: needs `read`, shows edit and delete buttons when allowed.
/// let detail = Actions::require(["read"]).with_permissions(["update", "delete"]);
/// // A REST resource: the action follows the HTTP method.
/// let rest = Actions::crud();
/// // Or any mapping.
/// let custom = Actions::by_method()
///     .method(Method::GET, ["view"])
///     .method(Method::POST, ["approve", "view"]);
/// # let _ = (detail, rest, custom);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Actions {
    required: Vec<String>,
    by_method: Vec<(Method, Vec<String>)>,
    extra: Vec<String>,
}

impl Actions {
    /// Actions that must all be allowed, whatever the method.
    pub fn require<A: AsRef<str>>(actions: impl IntoIterator<Item = A>) -> Self {
        Actions {
            required: names(actions),
            ..Actions::default()
        }
    }

    /// Actions chosen by HTTP method; add methods with
    /// [`method`](Self::method). A request with a method that has no
    /// actions is denied (403) without asking the PDP.
    ///
    /// That includes CORS preflight (`OPTIONS`) requests, which carry no
    /// credentials: put the CORS middleware (tower-http's `CorsLayer`,
    /// actix-cors) outside the authorization layer, so that it answers
    /// them before they reach it.
    pub fn by_method() -> Self {
        Actions::default()
    }

    /// The usual REST mapping: `GET` and `HEAD` → `read`, `POST` →
    /// `create`, `PUT` and `PATCH` → `update`, `DELETE` → `delete`.
    pub fn crud() -> Self {
        Actions::by_method()
            .method(Method::GET, ["read"])
            .method(Method::HEAD, ["read"])
            .method(Method::POST, ["create"])
            .method(Method::PUT, ["update"])
            .method(Method::PATCH, ["update"])
            .method(Method::DELETE, ["delete"])
    }

    /// The actions required for requests with `method` (replacing earlier
    /// ones for that method). Required actions set with
    /// [`require`](Self::require) apply to every method in addition.
    pub fn method<A: AsRef<str>>(
        mut self,
        method: Method,
        actions: impl IntoIterator<Item = A>,
    ) -> Self {
        let actions = names(actions);
        match self.by_method.iter_mut().find(|(m, _)| *m == method) {
            Some(entry) => entry.1 = actions,
            None => self.by_method.push((method, actions)),
        }
        self
    }

    /// Extra actions, checked in the same PDP call, that do not decide
    /// whether the request proceeds but appear in the
    /// [`PermissionMap`](super::PermissionMap).
    pub fn with_permissions<A: AsRef<str>>(mut self, actions: impl IntoIterator<Item = A>) -> Self {
        self.extra.extend(names(actions));
        self
    }

    /// Checks the actions (at least one required, no empty name) and
    /// compiles them for the framework adapters
    /// ([`crate::adapter::AuthorizerExt::authorize_actions`]).
    pub fn build(self) -> Result<ActionSet, ConfigError> {
        self.compile().map(ActionSet)
    }

    pub(crate) fn compile(self) -> Result<RouteActions, ConfigError> {
        let check = |action: &String| {
            if action.trim().is_empty() {
                Err(ConfigError::new("an action name must not be empty"))
            } else {
                Ok(())
            }
        };
        self.required
            .iter()
            .chain(&self.extra)
            .chain(self.by_method.iter().flat_map(|(_, a)| a))
            .try_for_each(check)?;
        let list = |required: &[String]| -> Arc<[ActionSpec]> {
            let mut list: Vec<ActionSpec> = Vec::new();
            let mut add = |action: &String, required: bool| {
                if !list.iter().any(|a| *a.action == **action) {
                    list.push(ActionSpec {
                        action: action.as_str().into(),
                        required,
                    });
                }
            };
            required.iter().for_each(|a| add(a, true));
            self.extra.iter().for_each(|a| add(a, false));
            list.into()
        };
        if self.by_method.is_empty() {
            if self.required.is_empty() {
                return Err(ConfigError::new(
                    "a protected route needs at least one required action \
                     (Actions::require([\"read\"]), Actions::crud(), …)",
                ));
            }
            return Ok(RouteActions::Fixed(list(&self.required)));
        }
        let mut by_method = Vec::with_capacity(self.by_method.len());
        for (method, actions) in &self.by_method {
            let all: Vec<String> = self.required.iter().chain(actions).cloned().collect();
            if all.is_empty() {
                return Err(ConfigError::new(format!(
                    "method {method} has no required action; leave it out to deny it"
                )));
            }
            by_method.push((method.clone(), list(&all)));
        }
        Ok(RouteActions::ByMethod(by_method))
    }
}

impl<A: AsRef<str>, const N: usize> From<[A; N]> for Actions {
    fn from(actions: [A; N]) -> Self {
        Actions::require(actions)
    }
}

impl<A: AsRef<str>> From<Vec<A>> for Actions {
    fn from(actions: Vec<A>) -> Self {
        Actions::require(actions)
    }
}

/// Action names as the checks take them (`&str`, `String`, a
/// `Declaration`'s `&&str`, …), owned.
fn names<A: AsRef<str>>(actions: impl IntoIterator<Item = A>) -> Vec<String> {
    actions.into_iter().map(|a| a.as_ref().to_owned()).collect()
}

/// Validated [`Actions`], made by [`Actions::build`], for the framework
/// adapters (see [`crate::adapter`]).
#[derive(Clone, Debug)]
pub struct ActionSet(pub(crate) RouteActions);

/// One action to check for a route.
#[derive(Clone, Debug)]
pub(crate) struct ActionSpec {
    pub(crate) action: Arc<str>,
    pub(crate) required: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum RouteActions {
    Fixed(Arc<[ActionSpec]>),
    ByMethod(Vec<(Method, Arc<[ActionSpec]>)>),
}

impl ActionSet {
    /// Every action the set can ask the PDP about (for any method, the
    /// permission-map actions included), each once: what an application's
    /// guards ask, for `cerbos_testkit::PolicyCoverage`.
    pub fn names(&self) -> Vec<&str> {
        self.0.names()
    }
}

impl RouteActions {
    /// Every action, each once.
    pub(crate) fn names(&self) -> Vec<&str> {
        let lists: Vec<&Arc<[ActionSpec]>> = match self {
            RouteActions::Fixed(list) => vec![list],
            RouteActions::ByMethod(map) => map.iter().map(|(_, list)| list).collect(),
        };
        let mut names: Vec<&str> = Vec::new();
        for spec in lists.into_iter().flat_map(|list| list.iter()) {
            if !names.contains(&&*spec.action) {
                names.push(&spec.action);
            }
        }
        names
    }

    /// The actions to check for a request with `method`; `None` if the
    /// method has none (denied).
    pub(crate) fn for_method(&self, method: &Method) -> Option<&Arc<[ActionSpec]>> {
        match self {
            RouteActions::Fixed(list) => Some(list),
            RouteActions::ByMethod(map) => map.iter().find(|(m, _)| m == method).map(|(_, l)| l),
        }
    }
}
