//! Every (resource kind, action) the contact examples can ask about, from
//! their `#[authorize]` handlers' and in-handler checks' declarations, is
//! covered by `examples/policies`; a typo in a kind or an action would
//! fail here, with the list of what no policy covers, before production.
//! The same for the documents examples.

mod common;

use cerbos_testkit::PolicyCoverage;
use cerbos_tower::adapter::Declaration;

#[test]
fn the_contact_examples_ask_only_what_the_policies_cover() {
    let coverage = PolicyCoverage::load(common::contact_policy_dir()).unwrap();
    assert_eq!(
        coverage.kinds().keys().collect::<Vec<_>>(),
        ["contact", "document"],
        "the policies of the examples"
    );
    for (app, declarations) in [
        ("contacts-axum", contacts_axum::declarations()),
        ("contacts-actix", contacts_actix::declarations()),
    ] {
        let asked: Vec<_> = declarations.iter().flat_map(Declaration::asked).collect();
        assert_eq!(asked.len(), 9, "{app}: {asked:?}");
        if let Err(gaps) = coverage.check(asked) {
            panic!("{app}: {gaps}");
        }
    }
}

/// The documents examples: their `#[authorize]` handler (`read`, and the
/// `update`/`delete` permissions) and their in-handler checks (the list's
/// plan and per-row permissions, `create`).
#[test]
fn the_documents_examples_ask_only_what_the_policies_cover() {
    let coverage = PolicyCoverage::load(common::contact_policy_dir()).unwrap();
    for (app, declarations) in [
        ("documents-axum", documents_axum::declarations()),
        ("documents-actix", documents_actix::declarations()),
    ] {
        let asked: Vec<_> = declarations.iter().flat_map(Declaration::asked).collect();
        assert_eq!(asked.len(), 7, "{app}: {asked:?}");
        assert!(asked.contains(&("document", "create")), "{app}: {asked:?}");
        if let Err(gaps) = coverage.check(asked) {
            panic!("{app}: {gaps}");
        }
    }
}

#[test]
fn a_kind_typo_and_an_action_no_rule_mentions_are_listed() {
    let coverage = PolicyCoverage::load(common::contact_policy_dir()).unwrap();
    // `contact` grants `*` to admins, so every action of it is mentioned;
    // the test policies (tests/policies) have narrower rules.
    let tests = PolicyCoverage::load(common::policy_dir()).unwrap();
    let typo = Declaration {
        kind: "contcat",
        actions: &["read"],
        permissions: &["update"],
        id_param: None,
    };
    let gaps = coverage.check(typo.asked()).unwrap_err();
    assert_eq!(
        gaps.missing_kinds.keys().collect::<Vec<_>>(),
        ["contcat"],
        "{gaps}"
    );
    assert!(gaps.missing_actions.is_empty(), "{gaps}");
    assert!(
        gaps.to_string().contains(
            "resource kind \"contcat\" has no resource policy (asked: \"read\", \"update\")"
        ),
        "{gaps}"
    );
    let (kind, actions) = tests
        .kinds()
        .iter()
        .find(|(_, actions)| !actions.contains("*"))
        .expect("a test policy without a wildcard rule");
    let mentioned = actions
        .iter()
        .next()
        .expect("a rule with an action")
        .clone();
    let gaps = tests
        .check([
            (kind.as_str(), mentioned.as_str()),
            (kind.as_str(), "no-such-action"),
        ])
        .unwrap_err();
    assert!(gaps.missing_kinds.is_empty(), "{gaps}");
    assert_eq!(
        gaps.missing_actions[kind].iter().collect::<Vec<_>>(),
        ["no-such-action"],
        "{gaps}"
    );
}

/// Guards list what they ask: axum's `guard` and `guard_loaded`, actix's
/// `guard_with`, each `(kind, action)` once, checked against the policies.
#[tokio::test]
async fn guards_list_what_they_ask() {
    use cerbos_axum::{Actions, Cerbos, CerbosExt as _, PathResource, ResolveError, Resource};

    let coverage = PolicyCoverage::load(common::contact_policy_dir()).unwrap();
    let cerbos = Cerbos::builder(common::contact_client()).build().unwrap();
    let crud = cerbos.guard("contact", Actions::crud()).unwrap();
    assert_eq!(
        crud.asked().unwrap(),
        [
            ("contact", "read"),
            ("contact", "create"),
            ("contact", "update"),
            ("contact", "delete")
        ]
    );
    async fn load(r: Resource, _: ()) -> Result<Option<Resource>, ResolveError> {
        Ok(Some(r))
    }
    let loaded = cerbos
        .guard_loaded(
            PathResource::new("contcat"),
            Actions::require(["read"]).with_permissions(["update"]),
            (),
            load,
        )
        .unwrap();
    assert_eq!(loaded.asked(), [("contcat", "read"), ("contcat", "update")]);
    // A closure resolver has no fixed kind: nothing to list, said so.
    let closure = cerbos
        .guard_with(
            |_: &http::request::Parts| std::future::ready(Ok(Resource::new("contact", "1"))),
            ["read"],
        )
        .unwrap();
    assert!(closure.asked().is_none());
    let actix = cerbos_actix::CerbosExt::guard(&cerbos, "contact", ["delete"]).unwrap();
    let mut asked = crud.asked().unwrap();
    asked.extend(actix.asked().unwrap());
    assert_eq!(coverage.check(asked), Ok(()));
    let gaps = coverage.check(loaded.asked()).unwrap_err();
    assert_eq!(gaps.missing_kinds.keys().collect::<Vec<_>>(), ["contcat"]);
}
