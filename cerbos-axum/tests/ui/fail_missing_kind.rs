use cerbos_axum::authorize;

#[authorize(actions = ["read"])]
async fn handler() {}

fn main() {}
