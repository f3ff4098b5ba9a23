use cerbos_actix::authorize;

#[authorize(kind = "contact")]
async fn handler() {}

fn main() {}
