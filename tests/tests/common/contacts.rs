//! The contact directory of `examples/policies/contact.yaml`: users, contacts, what
//! the policy decides (written independently), and resolvers.

use std::{collections::HashMap, sync::Arc};

use cerbos_tower::{
    Principal, Resource,
    layer::{PermissionMap, ResolveError},
};
use http::request::Parts;

#[derive(Clone, Debug)]
pub struct User {
    pub id: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub department: &'static str,
}

pub const USERS: [User; 4] = [
    User {
        id: "1",
        name: "alice",
        role: "admin",
        department: "IT",
    },
    User {
        id: "2",
        name: "john",
        role: "user",
        department: "Sales",
    },
    User {
        id: "3",
        name: "sarah",
        role: "user",
        department: "Sales",
    },
    User {
        id: "4",
        name: "geri",
        role: "user",
        department: "Marketing",
    },
];

#[derive(Clone, Debug)]
pub struct Contact {
    pub owner_id: String,
    pub is_active: bool,
    pub marketing_opt_in: bool,
}

pub type Db = Arc<HashMap<String, Contact>>;

/// `n` contacts with ids 1..=n and pseudo-random owners and flags.
pub fn contacts(n: u64, seed: u64) -> Db {
    let mut rng = Rng(seed);
    Arc::new(
        (1..=n)
            .map(|id| {
                let contact = Contact {
                    owner_id: (1 + rng.below(4)).to_string(),
                    is_active: rng.below(2) == 0,
                    marketing_opt_in: rng.below(2) == 0,
                };
                (id.to_string(), contact)
            })
            .collect(),
    )
}

/// What `examples/policies/contact.yaml` decides, written independently.
pub fn expected(user: &User, contact: &Contact, action: &str) -> bool {
    if user.role == "admin" {
        return true;
    }
    let owner = contact.owner_id == user.id;
    match action {
        "create" => user.department == "Sales",
        "read" => {
            owner
                || (contact.is_active
                    && (user.department == "Sales"
                        || (user.department == "Marketing" && contact.marketing_opt_in)))
        }
        "update" | "delete" => owner,
        _ => false,
    }
}

pub fn user_by_name(name: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.name == name)
}

/// The principal named by the `x-user` header; unknown or missing: 401.
pub fn principal_from_header(parts: &Parts) -> std::future::Ready<Result<Principal, ResolveError>> {
    principal_named(parts.headers.get("x-user").and_then(|v| v.to_str().ok()))
}

/// The principal of the user called `name`; unknown or missing: 401.
pub fn principal_named(name: Option<&str>) -> std::future::Ready<Result<Principal, ResolveError>> {
    std::future::ready(match name.and_then(user_by_name) {
        Some(u) => Ok(Principal::new(u.id, [u.role]).with_attr("department", u.department)),
        None => Err(ResolveError::unauthenticated("unknown user")),
    })
}

/// The permission map the handlers answer for `user` on `contact`, as
/// JSON in check order (read, update, delete).
pub fn permissions_json(user: &User, contact: &Contact) -> String {
    format!(
        "{{\"read\":{},\"update\":{},\"delete\":{}}}",
        expected(user, contact, "read"),
        expected(user, contact, "update"),
        expected(user, contact, "delete")
    )
}

/// The contact with the given id, with its row as attributes.
pub fn load_contact(db: &Db, resource: Resource) -> Result<Option<Resource>, ResolveError> {
    Ok(db.get(resource.id()).map(|c| {
        resource
            .with_attr("owner_id", c.owner_id.as_str())
            .with_attr("is_active", c.is_active)
            .with_attr("marketing_opt_in", c.marketing_opt_in)
    }))
}

/// The contact with the given id as a loader with a row returns it: the
/// resource with the row's attributes, and the row.
pub fn load_contact_row(
    db: &Db,
    resource: Resource,
) -> Result<Option<(Resource, Contact)>, ResolveError> {
    let row = db.get(resource.id()).cloned();
    Ok(load_contact(db, resource)?.zip(row))
}

/// What a handler handed a loaded row answers: its owner and the
/// permission map.
pub fn row_answer(row: &Contact, permissions: &PermissionMap) -> String {
    format!(
        "owner={} {}",
        row.owner_id,
        serde_json::to_string(permissions).unwrap()
    )
}

pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
