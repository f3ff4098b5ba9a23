use cerbos_axum::authorize;

#[authorize(kind = "contact", kind = "album", actions = ["read"])]
async fn handler() {}

fn main() {}
