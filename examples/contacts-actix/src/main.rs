//! `cargo run -p contacts-actix`: the contact directory on
//! `LISTEN_ADDR` (default `127.0.0.1:8000`), with the PDP at `CERBOS_ADDR`
//! or a new one with `examples/policies`.

use actix_web::{App, HttpServer};
use cerbos_actix::{Cerbos, Client};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = contacts_shared::pdp()?;
    // One authorizer (and its client), one database, shared by every worker.
    let client = Client::builder(&endpoint).build()?;
    let authorizer = Cerbos::builder(client).build()?.authorizer();
    let db = contacts_shared::Db::seeded()?;
    let addr = contacts_shared::listen_addr();
    println!("contacts-actix on http://{addr} (Cerbos PDP at {endpoint})");
    println!("try: curl -u john: http://{addr}/contacts");
    HttpServer::new(move || {
        App::new().configure(contacts_actix::configure(authorizer.clone(), db.clone()))
    })
    .bind(&addr)?
    .run()
    .await?;
    Ok(())
}
