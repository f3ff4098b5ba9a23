use cerbos_axum::authorize;

#[authorize(kind = "contact")]
async fn handler() {}

fn main() {}
