//! What the layer decided: [`Decision`], [`Reason`] and [`PermissionMap`].

use std::{fmt, sync::Arc};

use crate::Effect;

/// Why a request was let through or rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The PDP explicitly allowed every required action.
    Allowed,
    /// The PDP answered, and at least one required action is not an
    /// explicit `EFFECT_ALLOW` (deny, no match, unspecified or unknown).
    Denied,
    /// No usable answer: the PDP could not be reached, timed out, or its
    /// answer was malformed or incomplete. Treated as a denial.
    Unreachable,
    /// Authorization was bypassed for local development (see
    /// [`CerbosBuilder::allow_bypass`](super::CerbosBuilder::allow_bypass)).
    /// The PDP was not asked.
    Bypassed,
}

impl Reason {
    /// The reason as a lowercase word, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Denied => "denied",
            Reason::Unreachable => "unreachable",
            Reason::Bypassed => "bypassed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action of a decision.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActionOutcome {
    pub(crate) action: Arc<str>,
    pub(crate) required: bool,
    /// `None` when the PDP was not asked or did not answer for it.
    pub(crate) effect: Option<Effect>,
}

/// The outcome of authorizing one request.
///
/// Inserted into the request extensions (together with a [`PermissionMap`])
/// before the inner service runs, and carried by
/// the [`Rejection`](super::Rejection) of a denied or unreachable check.
///
/// With the `axum` feature it is an axum extractor (and `Option<Decision>`
/// one); on a route the layer does not protect it answers 500, with a body
/// that says which layer to add.
#[derive(Clone, PartialEq)]
pub struct Decision {
    pub(crate) reason: Reason,
    pub(crate) resource_kind: String,
    pub(crate) resource_id: String,
    pub(crate) actions: Vec<ActionOutcome>,
    pub(crate) cerbos_call_id: String,
    pub(crate) request_id: String,
}

impl Decision {
    /// `true` if the request may proceed: [`Reason::Allowed`] or
    /// [`Reason::Bypassed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self.reason, Reason::Allowed | Reason::Bypassed)
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The kind of the resource that was checked.
    pub fn resource_kind(&self) -> &str {
        &self.resource_kind
    }

    /// The id of the resource that was checked.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// Every action that was checked (required and extra), with the PDP's
    /// effect, or `None` when the PDP was not asked or gave no answer for it.
    pub fn actions(&self) -> impl ExactSizeIterator<Item = (&str, Option<Effect>)> + '_ {
        self.actions.iter().map(|a| (&*a.action, a.effect))
    }

    /// The actions that had to be allowed for the request to proceed.
    pub fn required_actions(&self) -> impl Iterator<Item = &str> + '_ {
        self.actions
            .iter()
            .filter(|a| a.required)
            .map(|a| &*a.action)
    }

    /// The effect the PDP gave `action`, if it was checked and answered.
    pub fn effect(&self, action: &str) -> Option<Effect> {
        self.actions
            .iter()
            .find(|a| &*a.action == action)
            .and_then(|a| a.effect)
    }

    /// Which of the checked actions are allowed.
    pub fn permissions(&self) -> PermissionMap {
        let bypassed = self.reason == Reason::Bypassed;
        PermissionMap {
            entries: self
                .actions
                .iter()
                .map(|a| {
                    let allowed = bypassed || a.effect.is_some_and(Effect::is_allow);
                    (a.action.clone(), allowed)
                })
                .collect(),
        }
    }

    /// The PDP's call id (the key of its audit log entry); empty when the
    /// PDP did not answer or was not asked.
    pub fn cerbos_call_id(&self) -> &str {
        &self.cerbos_call_id
    }

    /// The request id sent to the PDP: the request's `x-request-id`
    /// header when it had a usable one, otherwise a generated one.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("reason", &self.reason)
            .field("resource_kind", &self.resource_kind)
            .field("resource_id", &self.resource_id)
            .field("actions", &ActionsDebug(&self.actions))
            .field("cerbos_call_id", &self.cerbos_call_id)
            .field("request_id", &self.request_id)
            .finish()
    }
}

struct ActionsDebug<'a>(&'a [ActionOutcome]);

impl fmt::Debug for ActionsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|a| (&*a.action, a.effect)))
            .finish()
    }
}

/// Which actions the principal may perform on the request's resource: the
/// route's required actions (all `true` when the request reached the
/// handler) and its extra actions.
///
/// Keys are the bare action names. An action that was not checked is not
/// allowed. Serializes as a JSON object `{"read": true, "delete": false}`.
///
/// With the `axum` feature it is an axum extractor (and
/// `Option<PermissionMap>` one); on a route the layer does not protect it
/// answers 500, with a body that says which layer to add.
///
/// ```
/// # use cerbos_tower::layer::PermissionMap;
/// let permissions = PermissionMap::from_iter([("read", true), ("delete", false)]);
/// assert!(permissions.is_allowed("read"));
/// assert!(!permissions.is_allowed("delete"));
/// assert!(!permissions.is_allowed("publish"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PermissionMap {
    entries: Vec<(Arc<str>, bool)>,
}

impl PermissionMap {
    /// `true` only if `action` was checked and allowed.
    pub fn is_allowed(&self, action: &str) -> bool {
        self.get(action).unwrap_or(false)
    }

    /// `Some(allowed)` if `action` was checked, `None` otherwise.
    pub fn get(&self, action: &str) -> Option<bool> {
        self.entries
            .iter()
            .find(|(a, _)| &**a == action)
            .map(|(_, allowed)| *allowed)
    }

    /// The actions and whether each is allowed, in check order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, bool)> + '_ {
        self.entries.iter().map(|(a, allowed)| (&**a, *allowed))
    }

    /// The number of actions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` if no action was checked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The map as a JSON object of booleans.
    pub fn to_json(&self) -> serde_json::Value {
        self.iter()
            .map(|(a, allowed)| (a.to_owned(), serde_json::Value::Bool(allowed)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

impl<A: Into<Arc<str>>> FromIterator<(A, bool)> for PermissionMap {
    fn from_iter<T: IntoIterator<Item = (A, bool)>>(iter: T) -> Self {
        let mut map = PermissionMap::default();
        for (action, allowed) in iter {
            let action = action.into();
            match map.entries.iter_mut().find(|(a, _)| *a == action) {
                Some(entry) => entry.1 = allowed,
                None => map.entries.push((action, allowed)),
            }
        }
        map
    }
}

impl fmt::Debug for PermissionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for PermissionMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (action, allowed) in self.iter() {
            map.serialize_entry(action, &allowed)?;
        }
        map.end()
    }
}

/// A row with the [`PermissionMap`] of its resource: a listing's row with
/// what the user may do to it (its edit and delete buttons), from
/// `Authz::with_permissions` in the adapters or by hand.
///
/// Serializes as the row's own fields followed by `permissions`, as in
/// GitHub's API: `{"id": 1, "title": "…", "permissions": {"update": true}}`.
/// The row must serialize as a struct or a map, and have no `permissions`
/// field of its own.
///
/// ```
/// # use cerbos_tower::layer::{PermissionMap, WithPermissions};
/// #[derive(serde::Serialize)]
/// struct Document { id: u32 }
///
/// let row = WithPermissions::new(Document { id: 1 }, PermissionMap::from_iter([("update", true)]));
/// assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"id":1,"permissions":{"update":true}}"#);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WithPermissions<T> {
    /// The row.
    #[serde(flatten)]
    pub row: T,
    /// What the principal may do to it.
    pub permissions: PermissionMap,
}

impl<T> WithPermissions<T> {
    /// `row` with its `permissions`.
    pub fn new(row: T, permissions: PermissionMap) -> Self {
        WithPermissions { row, permissions }
    }
}
