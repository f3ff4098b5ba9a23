use cerbos_actix::authorize;

#[authorize(kind = "contact", actions = ["read"], colour = "blue")]
async fn handler() {}

fn main() {}
