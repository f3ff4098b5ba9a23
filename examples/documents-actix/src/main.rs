//! `cargo run -p documents-actix`: the documents API on `LISTEN_ADDR`
//! (default `127.0.0.1:8000`), with the PDP at `CERBOS_ADDR` or a new one
//! with `examples/policies`.

use actix_web::{App, HttpServer};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = documents_shared::pdp()?; // cerbos
    let client = cerbos_actix::Client::builder(&endpoint).build()?; // cerbos
    let cerbos = documents_actix::cerbos(client)?; // cerbos
    let db = documents_shared::Db::seeded()?;
    // The configuration of every worker is the same: an error is one here.
    let _ = documents_actix::configure(&cerbos, db.clone())?;
    let addr = documents_shared::listen_addr();
    println!("documents-actix on http://{addr} (Cerbos PDP at {endpoint})");
    println!("try: curl -H 'authorization: Bearer john-token' http://{addr}/documents");
    HttpServer::new(move || {
        let configure = documents_actix::configure(&cerbos, db.clone());
        App::new().configure(configure.expect("the same configuration was built above"))
    })
    .bind(&addr)?
    .run()
    .await?;
    Ok(())
}
