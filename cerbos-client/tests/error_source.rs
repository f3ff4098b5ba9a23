//! A transport error stays reachable through `std::error::Error::source`.

use std::error::Error as _;

use cerbos_client::{CheckResources, Client, Error, Principal, Resource, RetryPolicy};

#[tokio::test]
async fn an_unreachable_pdp_keeps_the_transport_error_as_the_source() {
    // A port nothing listens on any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::builder(format!("http://{addr}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client
        .check_resources(
            CheckResources::new(Principal::new("u", ["user"]))
                .resource(Resource::new("doc", "1"), ["read"]),
        )
        .await
        .expect_err("nothing listens");
    let Error::Unavailable { message } = &err else {
        panic!("{err:?}");
    };
    assert!(!message.is_empty());
    assert_eq!(
        err.to_string(),
        format!("the Cerbos PDP is unavailable: {message}")
    );
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(err.source(), |e| (*e).source()).collect();
    assert!(
        chain.iter().any(|e| e.is::<std::io::Error>()),
        "the io error is in the chain: {chain:?}"
    );
    // Clones keep it too.
    assert!(err.clone().source().is_some());

    let connect = Client::builder(format!("http://{addr}")).connect().await;
    let err = connect.expect_err("nothing listens");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.source().is_some());
}

#[test]
fn a_message_made_from_a_string_has_no_source() {
    let err = Error::Unavailable {
        message: "down".into(),
    };
    assert!(err.source().is_none());
    assert_eq!(err.to_string(), "the Cerbos PDP is unavailable: down");
    assert_eq!(format!("{err:?}"), r#"Unavailable { message: "down" }"#);
}
