//! The Admin API against the real PDP, started by the testkit with the
//! Admin API enabled, a mutable (SQLite) store and the local audit backend:
//! policies from YAML and JSON, get/list/inspect/enable/disable/delete with
//! the decisions they cause, schemas, store reloads, the audit log with
//! every filter, and the errors a caller matches on.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use cerbos_client::{
    CheckResources, Client, Effect, Error, Principal, Resource,
    admin::{
        AdminClient, AdminCredentials, AdminError, AuditLogFilter, PolicyFilter, Schema,
        policy_from_deserializer, policy_from_json, policy_to_json,
    },
};
use cerbos_testkit::{ADMIN_PASSWORD, ADMIN_USERNAME, Pdp};

/// Generous: the tests check behaviour, not latency.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Derived roles and a resource policy that uses them, as two YAML
/// documents (the way policy files are written).
const DOCUMENT_POLICIES: &str = r#"
apiVersion: api.cerbos.dev/v1
description: Who is who for documents
derivedRoles:
  name: document_roles
  definitions:
    - name: owner
      parentRoles: ["user"]
      condition:
        match:
          expr: request.resource.attr.owner == request.principal.id
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  importDerivedRoles: [document_roles]
  rules:
    - actions: ["view", "edit"]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
    - actions: ["view"]
      effect: EFFECT_ALLOW
      roles: ["auditor"]
      condition:
        match:
          all:
            of:
              - expr: request.resource.attr.public == true
              - expr: has(request.principal.attr.department)
"#;

const RESOURCE_POLICY_ID: &str = "resource.document.vdefault";
const DERIVED_ROLES_ID: &str = "derived_roles.document_roles";

fn admin_pdp() -> Pdp {
    admin_pdp_builder()
        .start()
        .expect("the PDP starts with the Admin API, a SQLite store and the audit log")
}

fn admin_pdp_builder() -> cerbos_testkit::PdpBuilder {
    Pdp::builder_with_mutable_store()
        .admin_api(true)
        .audit_log(true)
}

fn client(pdp: &Pdp) -> Client {
    Client::builder(pdp.grpc_endpoint())
        .timeout(TIMEOUT)
        .build()
        .expect("the client builds")
}

fn admin(client: &Client) -> AdminClient {
    client.admin(AdminCredentials::new(ADMIN_USERNAME, ADMIN_PASSWORD).expect("valid credentials"))
}

fn yaml_policies(text: &str) -> Vec<cerbos_client::admin::Policy> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| policy_from_deserializer(document).expect("the YAML policy parses"))
        .collect()
}

/// Alice's document, which she owns.
fn alice_on_own_document(action: &str) -> CheckResources {
    CheckResources::new(Principal::new("alice", ["user"])).resource(
        Resource::new("document", "d1").with_attr("owner", "alice"),
        [action],
    )
}

async fn effect(client: &Client, action: &str) -> Effect {
    let response = client
        .check_resources(alice_on_own_document(action))
        .await
        .expect("the check succeeds");
    response.results()[0]
        .effect(action)
        .expect("the PDP decided the action")
}

/// Waits until the PDP decides `expected` for alice's `action` on her own
/// document: a database store applies changes asynchronously, within
/// moments of the admin call's answer. Fails after 10 s.
async fn settles(client: &Client, action: &str, expected: Effect) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = effect(client, action).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{action}: still {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn policies_from_yaml_decide_and_follow_disable_enable_delete() {
    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);

    // An empty store: nothing is allowed.
    assert_eq!(effect(&client, "edit").await, Effect::Deny);

    let policies = yaml_policies(DOCUMENT_POLICIES);
    assert_eq!(policies.len(), 2);
    admin
        .add_or_update_policies(policies.clone())
        .await
        .expect("the policies are added");
    settles(&client, "edit", Effect::Allow).await;
    let bob_edits = client
        .is_allowed(
            Principal::new("bob", ["user"]),
            Resource::new("document", "d1").with_attr("owner", "alice"),
            "edit",
        )
        .await
        .unwrap();
    assert!(!bob_edits, "the owner rule applies to the owner only");

    // List: both ids; a filter narrows them.
    let ids = admin.list_policies(&PolicyFilter::new()).await.unwrap();
    assert_eq!(ids, [DERIVED_ROLES_ID, RESOURCE_POLICY_ID]);
    let ids = admin
        .list_policies(&PolicyFilter::new().name_regexp("^document$"))
        .await
        .unwrap();
    assert_eq!(ids, [RESOURCE_POLICY_ID]);

    // Get: the policy as added (the store adds metadata).
    let stored = admin
        .get_policy(RESOURCE_POLICY_ID)
        .await
        .unwrap()
        .expect("the policy is stored");
    let mut without_metadata = stored.clone();
    without_metadata.metadata = None;
    assert_eq!(without_metadata, policies[1]);
    let json = policy_to_json(&stored).unwrap();
    assert_eq!(json["resourcePolicy"]["resource"], "document");
    assert_eq!(json["resourcePolicy"]["rules"][0]["effect"], "EFFECT_ALLOW");
    assert_eq!(
        admin.get_policy("resource.nothing.vdefault").await.unwrap(),
        None
    );
    let both = admin
        .get_policies([RESOURCE_POLICY_ID, DERIVED_ROLES_ID])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);

    // Inspect: what the resource policy uses.
    let inspected = admin
        .inspect_policies(&PolicyFilter::new().policy_id(RESOURCE_POLICY_ID))
        .await
        .unwrap();
    let result = &inspected[RESOURCE_POLICY_ID];
    let mut actions = result.actions.clone();
    actions.sort();
    assert_eq!(actions, ["edit", "view"]);
    assert!(
        result.derived_roles.iter().any(|role| role.name == "owner"),
        "{result:?}"
    );
    let mut attributes: Vec<_> = result.attributes.iter().map(|a| a.name.as_str()).collect();
    attributes.sort();
    assert_eq!(attributes, ["department", "public"], "{result:?}");

    // Disable: the PDP stops using the policy (fail closed).
    assert_eq!(
        admin.disable_policies([RESOURCE_POLICY_ID]).await.unwrap(),
        1
    );
    settles(&client, "edit", Effect::Deny).await;
    assert_eq!(
        admin.list_policies(&PolicyFilter::new()).await.unwrap(),
        [DERIVED_ROLES_ID]
    );
    assert_eq!(
        admin
            .list_policies(&PolicyFilter::new().include_disabled(true))
            .await
            .unwrap(),
        [DERIVED_ROLES_ID, RESOURCE_POLICY_ID]
    );

    // Enable: allowed again.
    assert_eq!(
        admin.enable_policies([RESOURCE_POLICY_ID]).await.unwrap(),
        1
    );
    settles(&client, "edit", Effect::Allow).await;

    // Update: the same id, now without "edit".
    let view_only = policy_from_json(
        r#"{"apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {"resource": "document", "version": "default",
              "importDerivedRoles": ["document_roles"],
              "rules": [{"actions": ["view"], "effect": "EFFECT_ALLOW", "derivedRoles": ["owner"]}]}}"#,
    )
    .unwrap();
    admin.add_or_update_policy(view_only).await.unwrap();
    settles(&client, "edit", Effect::Deny).await;
    assert_eq!(effect(&client, "view").await, Effect::Allow);

    // Delete: denied, and gone from the store.
    assert_eq!(
        admin.delete_policies([RESOURCE_POLICY_ID]).await.unwrap(),
        1
    );
    settles(&client, "view", Effect::Deny).await;
    assert_eq!(
        admin
            .list_policies(&PolicyFilter::new().include_disabled(true))
            .await
            .unwrap(),
        [DERIVED_ROLES_ID]
    );
    assert_eq!(admin.get_policy(RESOURCE_POLICY_ID).await.unwrap(), None);
}

#[tokio::test]
async fn invalid_policies_are_errors_and_change_nothing() {
    // Local: unknown fields, unknown enum names, wrong types, trailing text.
    for (text, needle) in [
        (
            r#"{"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": {"resource": "x", "versoin": "default"}}"#,
            "versoin",
        ),
        (
            r#"{"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": {"resource": "x", "version": "default",
                "rules": [{"actions": ["a"], "effect": "EFFECT_MAYBE", "roles": ["r"]}]}}"#,
            "EFFECT_MAYBE",
        ),
        (
            r#"{"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": {"resource": "x", "version": 1}}"#,
            "string",
        ),
        (r#"{"apiVersion": "api.cerbos.dev/v1"} {}"#, "trailing"),
    ] {
        match policy_from_json(text) {
            Err(AdminError::InvalidPolicy { message }) => {
                assert!(
                    message.contains(needle),
                    "{message:?} should name {needle:?}"
                )
            }
            other => panic!("{text}: expected InvalidPolicy, got {other:?}"),
        }
    }
    let yaml = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: x\n  rulez: []\n";
    let err = policy_from_deserializer(serde_yaml::Deserializer::from_str(yaml)).unwrap_err();
    assert!(
        matches!(&err, AdminError::InvalidPolicy { message } if message.contains("rulez")),
        "{err:?}"
    );

    // Remote: the PDP validates what parses (here a rule without actions)
    // and stores nothing.
    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);
    let invalid = policy_from_json(
        r#"{"apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {"resource": "document", "version": "default",
              "rules": [{"actions": [], "effect": "EFFECT_ALLOW", "roles": ["user"]}]}}"#,
    )
    .unwrap();
    let err = admin.add_or_update_policy(invalid).await.unwrap_err();
    assert!(
        matches!(&err, AdminError::Client(Error::InvalidArgument { .. })),
        "{err:?}"
    );
    assert!(
        admin
            .list_policies(&PolicyFilter::new().include_disabled(true))
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing to send is an error before anything is sent.
    let err = admin.add_or_update_policies([]).await.unwrap_err();
    assert!(
        matches!(&err, AdminError::Client(Error::InvalidRequest(_))),
        "{err:?}"
    );
    let none: [&str; 0] = [];
    assert!(matches!(
        admin.delete_policies(none).await.unwrap_err(),
        AdminError::Client(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn schemas_add_get_list_delete() {
    let pdp = admin_pdp_builder()
        .set("schema.enforcement", "reject")
        .start()
        .expect("the PDP starts");
    let client = client(&pdp);
    let admin = admin(&client);
    let definition = br#"{"$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "properties": {"owner": {"type": "string"}}, "required": ["owner"]}"#;
    admin
        .add_or_update_schemas([Schema {
            id: "document.json".into(),
            definition: definition.to_vec(),
        }])
        .await
        .expect("the schema is added");
    assert_eq!(admin.list_schemas().await.unwrap(), ["document.json"]);
    let schemas = admin.get_schemas(["document.json"]).await.unwrap();
    assert_eq!(schemas.len(), 1);
    assert_eq!(schemas[0].id, "document.json");
    let stored: serde_json::Value = serde_json::from_slice(&schemas[0].definition).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(definition).unwrap();
    assert_eq!(stored, sent);

    // A policy that uses the schema: a document without an owner fails
    // validation, and is denied.
    let policy = policy_from_json(
        r#"{"apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {"resource": "document", "version": "default",
              "schemas": {"resourceSchema": {"ref": "cerbos:///document.json"}},
              "rules": [{"actions": ["view"], "effect": "EFFECT_ALLOW", "roles": ["user"]}]}}"#,
    )
    .unwrap();
    admin.add_or_update_policy(policy).await.unwrap();
    settles(&client, "view", Effect::Allow).await;
    let response = client
        .check_resources(
            CheckResources::new(Principal::new("alice", ["user"]))
                .resource(Resource::new("document", "d1"), ["view"]),
        )
        .await
        .unwrap();
    assert!(!response.results()[0].is_allowed("view"));
    assert!(
        response.results()[0]
            .validation_errors()
            .iter()
            .any(|e| e.message.contains("owner")),
        "{:?}",
        response.results()[0]
    );

    admin.delete_policies([RESOURCE_POLICY_ID]).await.unwrap();
    assert_eq!(admin.delete_schemas(["document.json"]).await.unwrap(), 1);
    assert!(admin.list_schemas().await.unwrap().is_empty());
    // The PDP answers an unknown schema id with an error, not an empty list.
    let err = admin.get_schemas(["document.json"]).await.unwrap_err();
    assert!(
        matches!(&err, AdminError::Client(Error::Status { message, .. }) if message.contains("document.json")),
        "{err:?}"
    );
    // Invalid JSON schema: the PDP refuses it.
    let err = admin
        .add_or_update_schemas([Schema {
            id: "broken.json".into(),
            definition: b"this is not JSON at all".to_vec(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdminError::Client(Error::InvalidArgument { .. })),
        "{err:?}"
    );
}

/// Polls `read` until it returns entries (the local backend flushes every
/// second), at most for 10 s.
async fn eventually<T, F, Fut>(mut read: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, AdminError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = read().await.expect("the audit log reads");
        if !entries.is_empty() || tokio::time::Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn audit_log_tail_since_between_lookup() {
    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);
    admin
        .add_or_update_policies(yaml_policies(DOCUMENT_POLICIES))
        .await
        .unwrap();
    settles(&client, "edit", Effect::Allow).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = SystemTime::now();

    let mut call_ids = Vec::new();
    for action in ["view", "edit", "delete"] {
        let response = client
            .check_resources(alice_on_own_document(action))
            .await
            .unwrap();
        call_ids.push(response.cerbos_call_id().to_owned());
    }
    let [_, edit_call, delete_call] = &call_ids[..] else {
        unreachable!()
    };

    // Lookup: the decision of one call, with its input and output.
    let found = eventually(|| async {
        admin
            .decision_log(AuditLogFilter::Lookup(edit_call.clone()))
            .await?
            .collect()
            .await
    })
    .await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let entry = &found[0];
    assert_eq!(&entry.call_id, edit_call);
    let Some(cerbos_client::proto::cerbos::audit::v1::decision_log_entry::Method::CheckResources(
        check,
    )) = &entry.method
    else {
        panic!("a check's entry: {entry:?}");
    };
    assert_eq!(check.inputs[0].principal.as_ref().unwrap().id, "alice");
    assert_eq!(check.inputs[0].actions, ["edit"]);
    let decided = &check.outputs[0].actions["edit"];
    assert_eq!(
        decided.effect,
        cerbos_client::proto::cerbos::effect::v1::Effect::Allow as i32
    );
    assert!(decided.policy.contains("document"), "{decided:?}");

    // Tail: the last entries, newest first: the three checks (admin calls
    // make no decisions).
    let tail = eventually(|| async {
        let entries = admin
            .decision_log(AuditLogFilter::Tail(3))
            .await?
            .collect()
            .await?;
        Ok(if entries.iter().any(|e| &e.call_id == delete_call) {
            entries
        } else {
            Vec::new()
        })
    })
    .await;
    let tail_ids: Vec<_> = tail.iter().rev().map(|e| e.call_id.clone()).collect();
    assert_eq!(tail_ids, call_ids);
    let last = admin
        .decision_log(AuditLogFilter::Tail(1))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(&last[0].call_id, delete_call);

    // Since and between: all three checks.
    // (read as a stream this time)
    let mut stream = std::pin::pin!(
        admin
            .decision_log(AuditLogFilter::Since(Duration::from_secs(300)))
            .await
            .unwrap()
            .into_stream()
    );
    let mut since = Vec::new();
    while let Some(entry) = tokio_stream::StreamExt::next(&mut stream).await {
        since.push(entry.unwrap());
    }
    for id in &call_ids {
        assert!(since.iter().any(|e| &e.call_id == id), "{id} in {since:?}");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let between = admin
        .decision_log(AuditLogFilter::Between {
            start: before,
            end: SystemTime::now(),
        })
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let between_ids: Vec<_> = between.iter().map(|e| e.call_id.clone()).collect();
    assert_eq!(between_ids, call_ids, "oldest first");
    // A range before the checks: none of them.
    let earlier = admin
        .decision_log(AuditLogFilter::Between {
            start: before - Duration::from_secs(3600),
            end: before - Duration::from_secs(1800),
        })
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(earlier.is_empty(), "{earlier:?}");

    // The access log: the same call, as a call to CheckResources.
    let access = eventually(|| async {
        admin
            .access_log(AuditLogFilter::Lookup(edit_call.clone()))
            .await?
            .collect()
            .await
    })
    .await;
    assert_eq!(access.len(), 1, "{access:?}");
    assert_eq!(&access[0].call_id, edit_call);
    assert_eq!(
        access[0].method,
        "/cerbos.svc.v1.CerbosService/CheckResources"
    );
    let recent = admin
        .access_log(AuditLogFilter::Tail(1000))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    for id in &call_ids {
        assert!(recent.iter().any(|e| &e.call_id == id), "{id}");
    }
    // The admin calls are logged too, without their credentials.
    assert!(
        recent
            .iter()
            .any(|e| e.method == "/cerbos.svc.v1.CerbosAdminService/AddOrUpdatePolicy"),
        "{recent:?}"
    );
    for entry in &recent {
        assert!(!entry.metadata.contains_key("authorization"), "{entry:?}");
    }

    // Filters the PDP cannot take are errors before anything is sent.
    let err = admin
        .decision_log(AuditLogFilter::Tail(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Client(Error::InvalidRequest(_))),
        "{err:?}"
    );
    // A malformed call id: the PDP rejects it.
    let err = admin
        .decision_log(AuditLogFilter::Lookup("not-a-ulid".into()))
        .await;
    let err = match err {
        Err(err) => err,
        Ok(log) => log.collect().await.unwrap_err(),
    };
    assert!(
        matches!(err, AdminError::Client(Error::InvalidArgument { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_and_never_printed() {
    let pdp = admin_pdp();
    let client = client(&pdp);
    let wrong = client.admin(AdminCredentials::new(ADMIN_USERNAME, "not-the-password").unwrap());
    let debug = format!("{wrong:?}");
    assert!(!debug.contains("not-the-password"), "{debug}");
    assert!(debug.contains(ADMIN_USERNAME), "{debug}");
    for result in [
        wrong.list_policies(&PolicyFilter::new()).await.map(drop),
        wrong.list_schemas().await.map(drop),
        wrong
            .add_or_update_policies(yaml_policies(DOCUMENT_POLICIES))
            .await,
        wrong.decision_log(AuditLogFilter::Tail(1)).await.map(drop),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, AdminError::Unauthenticated { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("credentials"), "{err}");
    }
    // Nothing was added.
    assert!(
        admin(&client)
            .list_policies(&PolicyFilter::new().include_disabled(true))
            .await
            .unwrap()
            .is_empty()
    );
    // A user name basic authentication cannot carry.
    assert!(matches!(
        AdminCredentials::new("a:b", "x"),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn purging_store_revisions_keeps_the_latest_and_the_policies() {
    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);
    // Three writes of the policies: the store keeps a revision of each.
    for _ in 0..3 {
        admin
            .add_or_update_policies(yaml_policies(DOCUMENT_POLICIES))
            .await
            .expect("the policies are stored");
    }
    settles(&client, "edit", Effect::Allow).await;
    // Two policies, three revisions each: keeping one of each deletes four.
    assert_eq!(admin.purge_store_revisions(1).await.expect("purged"), 4);
    assert_eq!(
        admin.purge_store_revisions(1).await.expect("purged"),
        0,
        "nothing older than the latest is left"
    );
    assert_eq!(
        admin.purge_store_revisions(0).await.expect("purged"),
        2,
        "the latest revision of each policy"
    );
    assert_eq!(admin.purge_store_revisions(0).await.expect("purged"), 0);
    // The policies themselves are untouched.
    assert_eq!(effect(&client, "edit").await, Effect::Allow);
    let ids = admin.list_policies(&PolicyFilter::new()).await.unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn reload_store_rereads_a_disk_store_that_cannot_be_changed() {
    // A disk store without file watching: a new policy file is only used
    // after a reload.
    let dir = std::env::temp_dir().join(format!("cerbos-admin-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pdp = Pdp::builder(&dir)
        .admin_api(true)
        .start()
        .expect("the PDP starts");
    let client = client(&pdp);
    let admin = admin(&client);
    assert_eq!(effect(&client, "edit").await, Effect::Deny);

    let mut documents = DOCUMENT_POLICIES.split("---");
    std::fs::write(dir.join("roles.yaml"), documents.next().unwrap()).unwrap();
    std::fs::write(dir.join("document.yaml"), documents.next().unwrap()).unwrap();
    assert_eq!(
        effect(&client, "edit").await,
        Effect::Deny,
        "not reloaded yet"
    );
    admin.reload_store(true).await.expect("the store reloads");
    assert_eq!(effect(&client, "edit").await, Effect::Allow);

    // A disk store is not mutable: a clear, matchable error.
    let err = admin
        .add_or_update_policies(yaml_policies(DOCUMENT_POLICIES))
        .await
        .unwrap_err();
    assert!(matches!(&err, AdminError::Unsupported { .. }), "{err:?}");
    let err = admin.purge_store_revisions(0).await.unwrap_err();
    assert!(matches!(&err, AdminError::Unsupported { .. }), "{err:?}");
    drop(pdp);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_mutable_store_has_no_directory_to_watch() {
    let err = Pdp::builder_with_mutable_store()
        .watch_for_changes(true)
        .start()
        .unwrap_err();
    assert!(
        matches!(&err, cerbos_testkit::Error::Config(m) if m.contains("watch_for_changes")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_pdp_without_the_admin_api_says_so() {
    let pdp =
        Pdp::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("the PDP starts");
    let client = client(&pdp);
    let err = admin(&client).list_schemas().await.unwrap_err();
    assert!(matches!(&err, AdminError::Unsupported { .. }), "{err:?}");
}

#[tokio::test]
async fn typed_policies_decide_and_round_trip_through_json() {
    use cerbos_client::admin::policy::{
        Policy, PrincipalPolicy, PrincipalRule, policy::PolicyType, principal_rule::Action,
    };
    use cerbos_client::proto::cerbos::effect::v1::Effect as WireEffect;

    // A principal policy built in code: bob may edit any document.
    let policy = Policy {
        api_version: "api.cerbos.dev/v1".into(),
        policy_type: Some(PolicyType::PrincipalPolicy(PrincipalPolicy {
            principal: "bob".into(),
            version: "default".into(),
            rules: vec![PrincipalRule {
                resource: "document".into(),
                actions: vec![Action {
                    action: "edit".into(),
                    effect: WireEffect::Allow as i32,
                    ..Default::default()
                }],
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    // JSON and back: the same message.
    let json = policy_to_json(&policy).unwrap();
    assert_eq!(
        json["principalPolicy"]["rules"][0]["actions"][0]["effect"],
        "EFFECT_ALLOW"
    );
    assert_eq!(policy_from_json(&json.to_string()).unwrap(), policy);

    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);
    admin.add_or_update_policy(policy.clone()).await.unwrap();
    let bob_edits = || {
        client.is_allowed(
            Principal::new("bob", ["user"]),
            Resource::new("document", "d9"),
            "edit",
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !bob_edits().await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob is never allowed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = admin.list_policies(&PolicyFilter::new()).await.unwrap();
    assert_eq!(ids, ["principal.bob.vdefault"]);
    let mut stored = admin
        .get_policy("principal.bob.vdefault")
        .await
        .unwrap()
        .expect("stored");
    stored.metadata = None;
    assert_eq!(stored, policy);
}

#[tokio::test]
async fn admin_over_tls_with_the_clients_tls_settings() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["cerbos.test".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("cerbos-admin-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    let pdp = admin_pdp_builder()
        .tls(dir.join("server.pem"), dir.join("server.key"), None)
        .start()
        .expect("the PDP starts with TLS and the Admin API");
    assert!(pdp.grpc_endpoint().starts_with("https://"));

    let client = Client::builder(pdp.grpc_endpoint())
        .tls(
            cerbos_client::TlsConfig::new()
                .ca_certificate(ca.pem())
                .domain_name("cerbos.test"),
        )
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let admin = admin(&client);
    admin
        .add_or_update_policies(yaml_policies(DOCUMENT_POLICIES))
        .await
        .expect("the policies are added over TLS");
    assert_eq!(
        admin.list_policies(&PolicyFilter::new()).await.unwrap(),
        [DERIVED_ROLES_ID, RESOURCE_POLICY_ID]
    );
    settles(&client, "edit", Effect::Allow).await;

    // A client that does not trust the PDP's CA gets no admin answer.
    let untrusting = Client::builder(pdp.grpc_endpoint())
        .tls(cerbos_client::TlsConfig::new().domain_name("cerbos.test"))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = self::admin(&untrusting).list_schemas().await.unwrap_err();
    assert!(
        matches!(&err, AdminError::Client(e) if e.is_unavailable()),
        "{err:?}"
    );
    drop(pdp);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exported constants and variables (the `google.protobuf.Value` and map
/// fields of the policy messages) and rule outputs, from YAML, as the PDP
/// evaluates them.
const CONSTANTS_POLICIES: &str = r#"
apiVersion: api.cerbos.dev/v1
exportConstants:
  name: limits
  definitions:
    max_pages: 100
    levels: ["gold", "platinum"]
    flags: {strict: true, label: null}
---
apiVersion: api.cerbos.dev/v1
exportVariables:
  name: common
  definitions:
    is_big: request.resource.attr.pages > constants.max_pages
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: book
  version: default
  constants:
    import: [limits]
    local:
      half: 0.5
  variables:
    import: [common]
    local:
      premium: request.principal.attr.level in constants.levels
  rules:
    - name: read_big_books
      actions: ["read"]
      effect: EFFECT_ALLOW
      roles: ["reader"]
      condition:
        match:
          all:
            of:
              - expr: variables.is_big
              - expr: variables.premium
              - expr: constants.flags.strict && constants.half < 1.0
      output:
        when:
          ruleActivated: '"big book for " + request.principal.id'
"#;

#[tokio::test]
async fn constants_variables_and_outputs_from_yaml() {
    let policies = yaml_policies(CONSTANTS_POLICIES);
    assert_eq!(policies.len(), 3);
    // JSON and back keeps every value (numbers, lists, maps, null).
    for policy in &policies {
        let json = policy_to_json(policy).unwrap();
        assert_eq!(&policy_from_json(&json.to_string()).unwrap(), policy);
    }
    let json = policy_to_json(&policies[0]).unwrap();
    assert_eq!(
        json["exportConstants"]["definitions"],
        serde_json::json!({"max_pages": 100.0, "levels": ["gold", "platinum"],
                           "flags": {"strict": true, "label": null}})
    );

    let pdp = admin_pdp();
    let client = client(&pdp);
    let admin = admin(&client);
    admin.add_or_update_policies(policies).await.unwrap();
    let check = |pages: i32, level: &str| {
        CheckResources::new(Principal::new("carol", ["reader"]).with_attr("level", level)).resource(
            Resource::new("book", "b1").with_attr("pages", pages),
            ["read"],
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = client.check_resources(check(500, "gold")).await.unwrap();
        if response.results()[0].is_allowed("read") {
            break response;
        }
        assert!(tokio::time::Instant::now() < deadline, "never allowed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        response.results()[0]
            .output("resource.book.vdefault#read_big_books")
            .and_then(|v| v.to_json()),
        Some(serde_json::json!("big book for carol"))
    );
    // Each condition matters: a small book, or a level not in the list.
    for (pages, level) in [(50, "gold"), (500, "silver")] {
        let response = client.check_resources(check(pages, level)).await.unwrap();
        assert!(!response.results()[0].is_allowed("read"), "{pages} {level}");
    }
    let mut ids = admin.list_policies(&PolicyFilter::new()).await.unwrap();
    ids.sort();
    assert_eq!(
        ids,
        [
            "export_constants.limits",
            "export_variables.common",
            "resource.book.vdefault"
        ]
    );
}
