//! cerbos-sql soundness on a real PostgreSQL (issue 11): the adversarial
//! conditions of `policies/soundness.yaml` (the same actions, rows and
//! principals as `sql_soundness.rs`, which runs them on SQLite) on hostile
//! rows in PostgreSQL 18, started by `cerbos_testkit::Postgres`. For every
//! principal and action, the rows the plan-filtered query returns must be
//! exactly the rows `CheckResources` allows; the shapes without a sound
//! translation must be refused.
//!
//! PostgreSQL's own traps: a case-insensitive (nondeterministic ICU)
//! collation on `x` and `name`, strict types (a TEXT column never equals a
//! number), `'NaN'` doubles that PostgreSQL equates and orders above every
//! number (rows with NaN and ±Infinity scores, which SQLite cannot store).
//! PostgreSQL TEXT holds no NUL: the rows whose name has one are left out
//! (of the table and of the checks), and a needle with a NUL fails the
//! query, which the application must treat as a denial (asserted below to
//! lose no allowed row).
//!
//! Values are bound with the types of sea-query's values (`int8` for an
//! integer, `float8` for a double, ...), as sqlx and sea-query's binders
//! do.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cerbos_sql::{Column, Dialect, NullAs, PlanToSql};
use cerbos_testkit::Postgres;
use cerbos_tower::{AttrValue, CheckResources, PlanFilter, PlanResources, Principal, Resource};
use sea_query::{Alias, PostgresQueryBuilder, Query};
use tokio_postgres::types::{ToSql, Type};

/// One action per adversarial condition of `policies/soundness.yaml`
/// (the list of `sql_soundness.rs`).
const ACTIONS: &[&str] = &[
    "owner_eq_num",
    "owner_in_nums",
    "owner_ne_num",
    "owner_not_ne_num",
    "owner_eq_principal_num",
    "owner_lt_str",
    "code_lt_num",
    "code_not_lt_num",
    "code_lt_or_x",
    "active_eq_one",
    "active_ne_one",
    "active_lt_true",
    "x_in_nums",
    "x_ne_a",
    "x_not_eq_a",
    "x_not_in_ab",
    "x_in_a_null",
    "x_ne_null",
    "x_eq_null",
    "x_not_ne_num",
    "x_eq_upper_a",
    "name_ends_x",
    "name_starts_ab",
    "name_starts_upper_ab",
    "name_contains_pct",
    "name_contains_nul",
    "name_ends_acute",
    "name_not_contains_b",
    "name_eq_abx",
    "name_lt_b",
    "score_eq_nan",
    "score_ne_nan",
    "score_not_lt_nan",
    "score_lt_inf",
    "score_not_gt_neg_inf",
    "score_lt_principal",
    "score_eq_principal",
    "score_in_nan",
    "score_eq_int",
    "score_eq_str",
    "n_gt_two",
    "n_not_gt_two",
    "n_ne_three",
    "n_eq_str",
    "n_not_eq_str",
    "n_eq_null",
    "y_ne_a",
    "y_not_eq_a",
    "y_not_in_a",
    "y_ends_a",
];

/// The conditions whose plans must be refused (an error naming the shape).
const REFUSED: &[&str] = &[
    // `R.attr.n == null` with NULL rows omitted: a missing attribute is an
    // evaluation error in CEL, not null.
    "n_eq_null",
];

/// The conditions whose query PostgreSQL rejects: a NUL byte in a bound
/// text value ("invalid byte sequence for encoding UTF8: 0x00"). An error
/// denies; no stored row can hold a NUL, so no allowed row is lost.
const FAILS_IN_POSTGRES: &[&str] = &["name_contains_nul"];

/// Known mismatches on PostgreSQL (cerbos-sql bugs): `(action, principal)`.
/// Empty: any mismatch fails the test.
const KNOWN_MISMATCHES: &[(&str, &str)] = &[];

const OWNERS: [Option<&str>; 7] = [
    Some("2"),
    Some("02"),
    Some("2.0"),
    Some("5"),
    Some("10"),
    Some("abc"),
    None,
];
const CODES: [&str; 5] = ["3", "7", "abc", "10", "4.5"];
const XS: [Option<&str>; 7] = [
    Some("a"),
    Some("A"),
    Some("b"),
    Some("2"),
    Some("5"),
    Some(""),
    None,
];
const NAMES: [&str; 22] = [
    "x\0ab",
    "abx",
    "ab\0x",
    "\0x",
    "x\0",
    "x",
    "X",
    "ab",
    "AB",
    "Abx",
    "abx ",
    "a%_b",
    "a\\%_",
    "ab%",
    "é",
    "aé",
    "e\u{301}",
    "É",
    "",
    "b",
    "ABX",
    "'; DROP TABLE item; --",
];
const SCORES: [f64; 8] = [0.0, 0.5, 1.0, -1.0e308, 1.0e308, 2.5, -0.0, 1.0e-300];
const NS: [Option<i64>; 6] = [Some(1), Some(2), Some(3), Some(4), None, Some(-7)];
const YS: [Option<&str>; 4] = [Some("a"), Some("b"), Some("ba"), None];

/// The rows of `sql_soundness.rs`.
const ROWS: usize = 154;
/// Extra rows with non-finite scores (PostgreSQL stores them; SQLite
/// turns NaN into NULL).
const NON_FINITE_ROWS: usize = 22;
const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

/// Per action: principals × actions compared, rows the PDP allowed, rows
/// over- and under-granted, plans refused, queries PostgreSQL rejected.
#[derive(Default)]
struct Tally {
    cases: usize,
    allowed: usize,
    over: usize,
    under: usize,
    refused: usize,
    failed: usize,
    known: usize,
    example: String,
}

/// The hostile rows (in PostgreSQL and as resources) and the principals.
struct Fixture {
    db: tokio_postgres::Client,
    pg: Postgres,
    resources: Vec<Resource>,
    principals: Vec<Principal>,
    left_out: usize,
}

async fn fixture() -> Fixture {
    let started = std::time::Instant::now();
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()
        .expect("PostgreSQL starts (cerbos-testkit installs it from npm)");
    eprintln!(
        "PostgreSQL at {} in {:?} (initdb {:?})",
        pg.url(),
        started.elapsed(),
        pg.initdb_time()
    );
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connects to PostgreSQL");
    // Ends when the client is dropped or the server stops.
    tokio::spawn(connection);
    // A case-insensitive collation on `x` and `name`: an equality left to
    // the column's collation would ignore case.
    db.batch_execute(
        "CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE item (id TEXT PRIMARY KEY, owner_id TEXT, code TEXT NOT NULL,
           active BOOLEAN NOT NULL, x TEXT COLLATE nocase, name TEXT NOT NULL COLLATE nocase,
           score DOUBLE PRECISION NOT NULL, n BIGINT, y TEXT);",
    )
    .await
    .expect("creates the table");
    let insert = db
        .prepare_typed(
            "INSERT INTO item VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::BOOL,
                Type::TEXT,
                Type::TEXT,
                Type::FLOAT8,
                Type::INT8,
                Type::TEXT,
            ],
        )
        .await
        .unwrap();
    let mut resources = Vec::new();
    let mut left_out = 0;
    for i in 0..ROWS + NON_FINITE_ROWS {
        let id = format!("r{i}");
        let owner = OWNERS[i % OWNERS.len()];
        let code = CODES[i % CODES.len()];
        let active = i % 3 == 0;
        let x = XS[(i / 2) % XS.len()];
        let name = NAMES[i % NAMES.len()];
        let score = if i < ROWS {
            SCORES[(i / 3) % SCORES.len()]
        } else {
            NON_FINITE[(i - ROWS) % NON_FINITE.len()]
        };
        let n = NS[(i / 5) % NS.len()];
        let y = YS[(i / 7) % YS.len()];
        if name.contains('\0') {
            // PostgreSQL TEXT holds no NUL.
            left_out += 1;
            continue;
        }
        db.execute(
            &insert,
            &[&id, &owner, &code, &active, &x, &name, &score, &n, &y],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting {id}: {e}"));
        let text = |v: Option<&str>| v.map_or(AttrValue::Null, AttrValue::from);
        let mut resource = Resource::new("soundness", id)
            // NullAs::ExplicitNull: NULL is sent as null.
            .with_attr("owner_id", text(owner))
            .with_attr("x", text(x))
            .with_attr("code", code)
            .with_attr("active", active)
            .with_attr("name", name)
            .with_attr("score", score);
        // NullAs::Omitted: NULL is not sent.
        if let Some(n) = n {
            resource = resource.with_attr("n", AttrValue::try_from(n).unwrap());
        }
        if let Some(y) = y {
            resource = resource.with_attr("y", y);
        }
        resources.push(resource);
    }
    // Principal data can carry non-finite numbers and mistyped ids.
    let limits = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5];
    let nums: [AttrValue; 3] = [2.0.into(), "2".into(), 5.0.into()];
    let principals = (0..4)
        .map(|i| {
            Principal::new(format!("p{i}"), ["user"])
                .with_attr("limit", limits[i])
                .with_attr("num", nums[i % nums.len()].clone())
        })
        .collect();
    Fixture {
        db,
        pg,
        resources,
        principals,
        left_out,
    }
}

/// The mapping of the `item` table: declared types, or (for the control
/// run) unchecked columns with the same null conventions.
fn to_sql(typed: bool) -> PlanToSql {
    let column = |name: &str, declared: fn(Alias) -> Column| {
        if typed {
            declared(Alias::new(name))
        } else {
            Column::unchecked(Alias::new(name))
        }
    };
    let attr = |name: &str| format!("request.resource.attr.{name}");
    PlanToSql::new(Dialect::Postgres)
        .column(attr("owner_id"), column("owner_id", Column::string))
        .column(attr("code"), column("code", Column::string))
        .column(attr("active"), column("active", Column::bool))
        .column(attr("x"), column("x", Column::string))
        .column(attr("name"), column("name", Column::string))
        .column(attr("score"), column("score", Column::double))
        .column(
            attr("n"),
            column("n", Column::integer).null_as(NullAs::Omitted),
        )
        .column(
            attr("y"),
            column("y", Column::string).null_as(NullAs::Omitted),
        )
}

/// Runs `query` and returns the ids it selects, binding each value with
/// its own type.
async fn ids(
    db: &tokio_postgres::Client,
    query: &sea_query::SelectStatement,
) -> Result<BTreeSet<String>, String> {
    let (sql, values) = query.build(PostgresQueryBuilder);
    let mut types = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for value in values.0 {
        let (ty, param): (Type, Box<dyn ToSql + Sync + Send>) = match value {
            sea_query::Value::Bool(Some(b)) => (Type::BOOL, Box::new(b)),
            sea_query::Value::Int(Some(i)) => (Type::INT4, Box::new(i)),
            sea_query::Value::BigInt(Some(i)) => (Type::INT8, Box::new(i)),
            sea_query::Value::Double(Some(f)) => (Type::FLOAT8, Box::new(f)),
            sea_query::Value::String(Some(s)) => (Type::TEXT, Box::new(*s)),
            other => panic!("{sql}: unexpected bound value {other:?}"),
        };
        types.push(ty);
        params.push(param);
    }
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let statement = db
        .prepare_typed(&sql, &types)
        .await
        .map_err(|e| format!("{sql}: {}", db_error(&e)))?;
    let rows = db
        .query(&statement, &refs)
        .await
        .map_err(|e| format!("{sql}: {}", db_error(&e)))?;
    Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
}

fn db_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

/// Compares the plan-filtered rows with the checked rows for every
/// principal and action.
async fn run(
    fixture: &Fixture,
    to_sql: &PlanToSql,
    show_rows: bool,
) -> BTreeMap<&'static str, Tally> {
    let Fixture {
        db,
        resources,
        principals,
        ..
    } = fixture;
    let mut base = Query::select();
    base.column(Alias::new("id")).from(Alias::new("item"));
    let client = common::client();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for principal in principals {
        let mut check = CheckResources::new(principal.clone());
        for resource in resources {
            check.push(resource.clone(), ACTIONS.iter().copied());
        }
        let checked = client.check_resources(check).await.expect("check");
        for action in ACTIONS {
            let tally = tallies.entry(action).or_default();
            tally.cases += 1;
            let allowed: BTreeSet<String> = checked
                .results()
                .iter()
                .filter(|r| r.is_allowed(action))
                .map(|r| r.id().to_owned())
                .collect();
            tally.allowed += allowed.len();
            let plan = client
                .plan_resources(PlanResources::new(principal.clone(), "soundness").action(*action))
                .await
                .expect("plan");
            let shown = match &plan.filter {
                PlanFilter::Conditional(c) => c.to_string(),
                other => format!("{other:?}"),
            };
            let filter = match to_sql.filter(&plan.filter) {
                Ok(filter) => filter,
                Err(e) => {
                    tally.refused += 1;
                    tally.example = format!("refused: {e}");
                    continue;
                }
            };
            let mut query = base.clone();
            let may_match = filter.may_match();
            filter.apply(&mut query);
            let from_sql = if may_match {
                match ids(db, &query).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        // An error denies: count what it loses.
                        tally.failed += 1;
                        tally.under += allowed.len();
                        tally.example = format!("failed: {e}");
                        if show_rows {
                            eprintln!("query failed {action} for {}: {e}", principal.id());
                        }
                        continue;
                    }
                }
            } else {
                BTreeSet::new()
            };
            let over: Vec<_> = from_sql.difference(&allowed).collect();
            let under: Vec<_> = allowed.difference(&from_sql).collect();
            if KNOWN_MISMATCHES.contains(&(*action, principal.id())) {
                tally.known += 1;
            } else {
                tally.over += over.len();
                tally.under += under.len();
            }
            tally.example = shown.clone();
            if show_rows && (!over.is_empty() || !under.is_empty()) {
                let (sql, values) = query.build(PostgresQueryBuilder);
                eprintln!(
                    "mismatch {action} for {}: plan {shown}\n  SQL {sql}\n  values {values:?}\n  over-granted {over:?}, under-granted {under:?}",
                    principal.id()
                );
            }
        }
    }
    let (mut cases, mut over, mut under, mut allowed) = (0, 0, 0, 0);
    eprintln!(
        "per condition: cases, PDP-allowed rows, over-granted, under-granted, refused, failed in PostgreSQL"
    );
    for (action, t) in &tallies {
        eprintln!(
            "  {action:24} {:2} cases {:4} allowed {:3} over {:3} under {:2} refused {:2} failed  {}",
            t.cases, t.allowed, t.over, t.under, t.refused, t.failed, t.example
        );
        cases += t.cases;
        over += t.over;
        under += t.under;
        allowed += t.allowed;
    }
    eprintln!(
        "{cases} cases over {} rows ({} rows with a NUL left out), {allowed} allowed: {over} over-granted, {under} under-granted",
        resources.len(),
        fixture.left_out
    );
    assert_eq!(cases, ACTIONS.len() * principals.len());
    let count: i64 = db
        .query_one("SELECT count(*) FROM item", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count as usize,
        resources.len(),
        "the hostile strings were never run as SQL"
    );
    tallies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_plans_select_exactly_the_allowed_rows_in_postgres() {
    let fixture = fixture().await;
    eprintln!("PostgreSQL soundness oracle, declared columns:");
    let tallies = run(&fixture, &to_sql(true), true).await;
    for (action, t) in &tallies {
        assert_eq!(t.over, 0, "{action}: rows the PDP denies were returned");
        assert_eq!(t.under, 0, "{action}: rows the PDP allows were missed");
        if REFUSED.contains(action) {
            assert_eq!(t.refused, t.cases, "{action} must be refused");
        } else {
            assert_eq!(t.refused, 0, "{action} was refused: {}", t.example);
        }
        if FAILS_IN_POSTGRES.contains(action) {
            assert_eq!(t.failed, t.cases, "{action} should fail in PostgreSQL");
            assert_eq!(t.allowed, 0, "{action}: no stored row holds a NUL");
        } else {
            assert_eq!(t.failed, 0, "{action} failed: {}", t.example);
        }
    }
    let known: usize = tallies.values().map(|t| t.known).sum();
    assert_eq!(known, KNOWN_MISMATCHES.len(), "a known mismatch is gone");
    assert!(
        fixture.pg.logs().contains("ready to accept connections"),
        "{}",
        fixture.pg.logs()
    );
}

/// The control: the traps have teeth. Without declared types, PostgreSQL
/// rejects the mistyped comparisons (a denial that loses allowed rows) and
/// orders its `'NaN'` above every number; and the plain forms of the
/// comparisons, left to the column's case-insensitive collation and to
/// PostgreSQL's NaN, select other rows than the PDP allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_columns_and_plain_forms_fall_into_the_traps_the_oracle_catches() {
    let fixture = fixture().await;
    eprintln!("PostgreSQL soundness oracle, unchecked columns (control):");
    let tallies = run(&fixture, &to_sql(false), false).await;
    for action in ["owner_eq_num", "owner_ne_num", "x_in_nums", "n_eq_str"] {
        assert_eq!(
            tallies[action].failed, tallies[action].cases,
            "{action}: PostgreSQL rejects the mistyped comparison: {}",
            tallies[action].example
        );
    }
    assert!(
        tallies["owner_ne_num"].under > 0,
        "the rejected query loses allowed rows"
    );
    assert!(
        tallies["score_not_gt_neg_inf"].under > 0,
        "PostgreSQL finds 'NaN' > '-Infinity'"
    );
    let principal = &fixture.principals[0];
    let mut check = CheckResources::new(principal.clone());
    for resource in &fixture.resources {
        check.push(resource.clone(), ACTIONS.iter().copied());
    }
    let checked = common::client()
        .check_resources(check)
        .await
        .expect("check");
    let plain_forms = [
        ("x_eq_upper_a", "x = 'A'", true),
        ("name_eq_abx", "name = 'Abx'", true),
        ("name_lt_b", "name < 'b'", false),
        ("score_not_gt_neg_inf", "NOT score > '-Infinity'", false),
    ];
    for (action, plain, over_grants) in plain_forms {
        let allowed: BTreeSet<String> = checked
            .results()
            .iter()
            .filter(|r| r.is_allowed(action))
            .map(|r| r.id().to_owned())
            .collect();
        let from_sql: BTreeSet<String> = fixture
            .db
            .query(&format!("SELECT id FROM item WHERE {plain}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{plain}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect();
        let over = from_sql.difference(&allowed).count();
        let under = allowed.difference(&from_sql).count();
        eprintln!("  plain form of {action:20} {plain:26} {over:3} over {under:3} under");
        if over_grants {
            assert!(over > 0, "{action}: the plain form over-grants");
        } else {
            assert!(under > 0, "{action}: the plain form misses rows");
        }
    }
}
