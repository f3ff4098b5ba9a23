use cerbos_axum::authorize;

#[authorize(kind = "contact", actions = [])]
async fn handler() {}

fn main() {}
