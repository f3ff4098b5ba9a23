//! cerbos-sql oracle: for random principals, the rows a plan-filtered
//! SQLite query returns are exactly the rows `CheckResources` allows, for
//! the contact policies and for a policy set that uses every supported
//! operator (`policies/ticket.yaml`), including a joined attribute, NULLs,
//! case-sensitive string functions and hostile strings. The adversarial
//! cases (mistyped constants, NaN, NUL bytes, nulls under `!`) are in
//! `sql_soundness.rs`.

mod common;

use std::collections::BTreeSet;

use cerbos_sql::{Column, Dialect, Join, PlanToSql};
use cerbos_tower::{AttrValue, CheckResources, Client, PlanResources, Principal, Resource};
use common::contacts::Rng;
use rusqlite::Connection;
use sea_query::{Alias, Query, SqliteQueryBuilder};

/// Runs `query` on `db` and returns the ids it selects.
fn ids(db: &Connection, query: &sea_query::SelectStatement) -> BTreeSet<String> {
    let (sql, values) = query.build(SqliteQueryBuilder);
    let params = contacts_shared::sqlite_params(values).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut statement = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            row.get::<_, String>(0)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The ids `CheckResources` allows `action` on, among `resources`.
async fn allowed(
    client: &Client,
    principal: &Principal,
    resources: &[Resource],
    action: &str,
) -> BTreeSet<String> {
    let mut request = CheckResources::new(principal.clone());
    for resource in resources {
        request.push(resource.clone(), [action]);
    }
    let response = client.check_resources(request).await.expect("check");
    response
        .results()
        .iter()
        .filter(|r| r.is_allowed(action))
        .map(|r| r.id().to_owned())
        .collect()
}

/// Compares plan-filtered rows with checked rows for every principal and
/// action; returns the number of cases and how many plans were
/// conditional.
/// One oracle setup: the PDP, the table and its mapping, and the rows as
/// resources.
struct Oracle<'a> {
    client: &'a Client,
    db: &'a Connection,
    to_sql: &'a PlanToSql,
    base: &'a sea_query::SelectStatement,
    kind: &'a str,
    resources: &'a [Resource],
}

async fn compare(oracle: Oracle<'_>, principals: &[Principal], actions: &[&str]) -> (usize, usize) {
    let Oracle {
        client,
        db,
        to_sql,
        base,
        kind,
        resources,
    } = oracle;
    let (mut cases, mut conditional) = (0, 0);
    for principal in principals {
        for action in actions {
            let plan = client
                .plan_resources(PlanResources::new(principal.clone(), kind).action(*action))
                .await
                .expect("plan");
            let filter = to_sql
                .filter(&plan.filter)
                .unwrap_or_else(|e| panic!("{action}: {e} in {:?}", plan.filter));
            conditional += usize::from(matches!(
                plan.filter,
                cerbos_tower::PlanFilter::Conditional(_)
            ));
            let from_sql = if filter.may_match() {
                let mut query = base.clone();
                filter.apply(&mut query);
                ids(db, &query)
            } else {
                BTreeSet::new()
            };
            let checked = allowed(client, principal, resources, action).await;
            assert_eq!(
                from_sql,
                checked,
                "{kind} {action} for {principal:?}: plan {}",
                match &plan.filter {
                    cerbos_tower::PlanFilter::Conditional(c) => c.to_string(),
                    other => format!("{other:?}"),
                }
            );
            cases += 1;
        }
    }
    (cases, conditional)
}

const TEAMS: [&str; 4] = ["a", "b", "c", "a'; DROP TABLE ticket; --"];
const DEPARTMENTS: [&str; 4] = ["Sales", "Marketing", "IT", "x' OR '1'='1"];
const TITLES: [&str; 12] = [
    "Bug in login",
    "bug in login",
    "BUG!",
    "Feature x%_ request",
    "xa_b",
    "x%%",
    "Refactor!",
    "Plain",
    "Bugfix",
    "ab_c%",
    "Hello x%_!",
    "'; DELETE FROM ticket; --",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_plans_select_exactly_the_allowed_rows() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE person (id TEXT PRIMARY KEY, department TEXT NOT NULL);
         CREATE TABLE ticket (id TEXT PRIMARY KEY, owner TEXT NOT NULL, team TEXT NOT NULL,
           priority INTEGER NOT NULL, score REAL NOT NULL, status TEXT NOT NULL,
           title TEXT NOT NULL, archived INTEGER NOT NULL, reviewer TEXT);",
    )
    .unwrap();
    // u5 owns tickets but has no person row: the join finds nothing.
    let departments: Vec<(String, String)> = (1..=4)
        .map(|i| {
            (
                format!("u{i}"),
                DEPARTMENTS[rng.below(4) as usize].to_owned(),
            )
        })
        .collect();
    for (id, department) in &departments {
        db.execute("INSERT INTO person VALUES (?1, ?2)", (id, department))
            .unwrap();
    }
    let statuses = ["new", "open", "closed"];
    let mut resources = Vec::new();
    for n in 0..300 {
        let id = format!("t{n}");
        let owner = format!("u{}", 1 + rng.below(5));
        let team = TEAMS[rng.below(4) as usize];
        let priority = 1 + rng.below(5) as i64;
        let score = rng.below(1000) as f64 / 1000.0;
        let status = statuses[rng.below(3) as usize];
        let title = TITLES[rng.below(TITLES.len() as u64) as usize];
        let archived = rng.below(2) == 0;
        let reviewer = (rng.below(3) > 0).then(|| format!("u{}", 1 + rng.below(5)));
        db.execute(
            "INSERT INTO ticket VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                id, owner, team, priority, score, status, title, archived, reviewer
            ],
        )
        .unwrap();
        let owner_department = departments
            .iter()
            .find(|(u, _)| *u == owner)
            .map(|(_, d)| d.clone());
        resources.push(
            Resource::new("ticket", id)
                .with_attr("owner", owner.as_str())
                .with_attr("owner_department", owner_department)
                .with_attr("team", team)
                .with_attr("priority", AttrValue::try_from(priority).unwrap())
                .with_attr("score", score)
                .with_attr("status", status)
                .with_attr("title", title)
                .with_attr("archived", archived)
                .with_attr("reviewer", reviewer),
        );
    }
    let principals: Vec<Principal> = (0..24)
        .map(|i| {
            let id = format!("u{}", 1 + rng.below(5));
            let role = if i % 8 == 7 { "admin" } else { "user" };
            let teams: Vec<&str> = TEAMS
                .iter()
                .copied()
                .filter(|_| rng.below(2) == 0)
                .collect();
            Principal::new(id, [role])
                .with_attr("teams", teams)
                .with_attr("department", DEPARTMENTS[rng.below(4) as usize])
                .with_attr("home_team", TEAMS[rng.below(4) as usize])
        })
        .collect();

    let t = Alias::new("ticket");
    let mut to_sql = PlanToSql::new(Dialect::Sqlite);
    // NULL reviewers and departments are sent as explicit nulls (the
    // default NullAs).
    for (name, declared) in [
        ("owner", Column::string as fn(_) -> Column),
        ("team", Column::string),
        ("priority", Column::integer),
        ("score", Column::double),
        ("status", Column::string),
        ("title", Column::string),
        ("archived", Column::bool),
        ("reviewer", Column::string),
    ] {
        to_sql = to_sql.column(
            format!("request.resource.attr.{name}"),
            declared((t.clone(), Alias::new(name))),
        );
    }
    to_sql = to_sql.joined_column(
        "request.resource.attr.owner_department",
        Column::string((Alias::new("person"), Alias::new("department"))),
        Join::new(
            Alias::new("person"),
            (t.clone(), Alias::new("owner")),
            (Alias::new("person"), Alias::new("id")),
        ),
    );
    let mut base = Query::select();
    base.column((t.clone(), Alias::new("id"))).from(t.clone());

    let actions = [
        "view", "edit", "escalate", "close", "search", "review", "assign", "tag",
    ];
    let client = common::client();
    let (cases, conditional) = compare(
        Oracle {
            client: &client,
            db: &db,
            to_sql: &to_sql,
            base: &base,
            kind: "ticket",
            resources: &resources,
        },
        &principals,
        &actions,
    )
    .await;
    eprintln!(
        "ticket oracle: {cases} cases ({conditional} conditional plans) over {} rows, 0 mismatches",
        resources.len()
    );
    assert_eq!(cases, principals.len() * actions.len());
    assert!(
        conditional > cases / 2,
        "most plans are conditional ({conditional})"
    );
    // The hostile strings are still there: nothing was executed as SQL.
    let count: i64 = db
        .query_row("SELECT count(*) FROM ticket", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_plans_select_exactly_the_allowed_rows() {
    use common::contacts::{USERS, contacts};
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE contact (id TEXT PRIMARY KEY, owner_id TEXT NOT NULL,
           is_active INTEGER NOT NULL, marketing_opt_in INTEGER NOT NULL);",
    )
    .unwrap();
    let rows = contacts(300, 99);
    let mut resources = Vec::new();
    for (id, c) in rows.iter() {
        db.execute(
            "INSERT INTO contact VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, c.owner_id, c.is_active, c.marketing_opt_in],
        )
        .unwrap();
        resources.push(
            Resource::new("contact", id.as_str())
                .with_attr("owner_id", c.owner_id.as_str())
                .with_attr("is_active", c.is_active)
                .with_attr("marketing_opt_in", c.marketing_opt_in),
        );
    }
    let mut rng = Rng(77);
    let mut principals: Vec<Principal> = USERS
        .iter()
        .map(|u| Principal::new(u.id, [u.role]).with_attr("department", u.department))
        .collect();
    for _ in 0..12 {
        let id = (1 + rng.below(6)).to_string();
        principals.push(
            Principal::new(id, ["user"])
                .with_attr("department", DEPARTMENTS[rng.below(4) as usize]),
        );
    }
    let c = Alias::new("contact");
    let mut to_sql = PlanToSql::new(Dialect::Sqlite);
    for (name, declared) in [
        ("owner_id", Column::string as fn(_) -> Column),
        ("is_active", Column::bool),
        ("marketing_opt_in", Column::bool),
    ] {
        to_sql = to_sql.column(
            format!("request.resource.attr.{name}"),
            declared((c.clone(), Alias::new(name))),
        );
    }
    let mut base = Query::select();
    base.column((c.clone(), Alias::new("id"))).from(c.clone());
    let client = common::contact_client();
    let actions = ["read", "update", "delete", "create"];
    let (cases, conditional) = compare(
        Oracle {
            client: &client,
            db: &db,
            to_sql: &to_sql,
            base: &base,
            kind: "contact",
            resources: &resources,
        },
        &principals,
        &actions,
    )
    .await;
    eprintln!(
        "contact oracle: {cases} cases ({conditional} conditional plans) over {} rows, 0 mismatches",
        resources.len()
    );
    assert_eq!(cases, principals.len() * actions.len());
}
