//! `cargo run -p contacts-axum`: the contact directory on
//! `LISTEN_ADDR` (default `127.0.0.1:8000`), with the PDP at `CERBOS_ADDR`
//! or a new one with `examples/policies`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = contacts_shared::pdp()?;
    let client = cerbos_axum::Client::builder(&endpoint).build()?;
    let app = contacts_axum::app(client, contacts_shared::Db::seeded()?)?;
    let addr = contacts_shared::listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("contacts-axum on http://{addr} (Cerbos PDP at {endpoint})");
    println!("try: curl -u john: http://{addr}/contacts");
    axum::serve(listener, app).await?;
    Ok(())
}
