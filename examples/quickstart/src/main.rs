//! Starts the real Cerbos PDP (installing it on first use) with the policies
//! in `policies/`, checks a few requests and prints the decisions.
//!
//! Run with `cargo run -p quickstart`. Set `CERBOS_ADDR` (for example
//! `http://127.0.0.1:3593`) to use a PDP that is already running instead.

use std::path::PathBuf;

use cerbos_tower::{CheckResources, Client, PlanFilter, PlanResources, Principal, Resource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    println!(
        "using the PDP at CERBOS_ADDR, or starting one with the policies in {}",
        policies.display()
    );
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = cerbos_testkit::pdp_from_env_or_start(&policies)?;
    let client = Client::builder(&endpoint).connect().await?;
    println!(
        "connected to Cerbos {} at {endpoint}\n",
        client.server_info().await?.version
    );

    let albums = [
        Resource::new("album:object", "XX125")
            .with_attr("owner", "bob")
            .with_attr("public", true),
        Resource::new("album:object", "XX225")
            .with_attr("owner", "bob")
            .with_attr("public", false),
        Resource::new("album:object", "XX325")
            .with_attr("owner", "alicia")
            .with_attr("public", false),
    ];
    for principal in [
        Principal::new("alicia", ["user"]),
        Principal::new("root", ["admin"]),
    ] {
        let mut request = CheckResources::new(principal.clone());
        for album in &albums {
            request.push(album.clone(), ["view", "edit"]);
        }
        let response = client.check_resources(request).await?;
        for result in response.results() {
            println!(
                "{:>7} {:<6} view: {:<5} edit: {:<5}",
                principal.id(),
                result.id(),
                result.is_allowed("view"),
                result.is_allowed("edit"),
            );
        }
    }

    let plan = client
        .plan_resources(
            PlanResources::new(Principal::new("alicia", ["user"]), "document").action("read"),
        )
        .await?;
    match plan.filter {
        PlanFilter::Conditional(condition) => {
            println!("\nalicia may read the documents where: {condition}")
        }
        other => println!("\nalicia's plan for reading documents: {other:?}"),
    }
    Ok(())
}
