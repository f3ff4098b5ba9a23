use cerbos_axum::authorize;

#[authorize(kind = "contact", actions = ["read"])]
fn handler() {}

fn main() {}
