use cerbos_axum::authorize;

#[authorize(kind = "contact", actions = ["read"], colour = "blue")]
async fn handler() {}

fn main() {}
