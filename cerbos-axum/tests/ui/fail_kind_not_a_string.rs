use cerbos_axum::authorize;

#[authorize(kind = contact, actions = ["read"])]
async fn handler() {}

fn main() {}
