//! `cargo run -p documents-axum`: the documents API on `LISTEN_ADDR`
//! (default `127.0.0.1:8000`), with the PDP at `CERBOS_ADDR` or a new one
//! with `examples/policies`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = documents_shared::pdp()?; // cerbos
    let client = cerbos_axum::Client::builder(&endpoint).build()?; // cerbos
    let app = documents_axum::app(client, documents_shared::Db::seeded()?)?;
    let addr = documents_shared::listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("documents-axum on http://{addr} (Cerbos PDP at {endpoint})");
    println!("try: curl -H 'authorization: Bearer john-token' http://{addr}/documents");
    axum::serve(listener, app).await?;
    Ok(())
}
