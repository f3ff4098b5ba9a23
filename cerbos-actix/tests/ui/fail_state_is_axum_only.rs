use cerbos_actix::authorize;

#[authorize(kind = "contact", actions = ["read"], state = AppState)]
async fn handler() {}

fn main() {}
