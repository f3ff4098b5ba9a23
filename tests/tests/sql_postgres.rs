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
//! do (`common::oracle::Pg`).

mod common;

use std::collections::BTreeMap;

use cerbos_sql::Dialect;
use cerbos_testkit::Postgres;
use cerbos_tower::{Principal, Resource};
use common::oracle::{self, ACTIONS, Db, Event, HostileRow, Oracle, Pg, REFUSED, ROWS, Tally};
use sea_query::PostgresQueryBuilder;
use tokio_postgres::types::Type;

/// The conditions whose query PostgreSQL rejects: a NUL byte in a bound
/// text value ("invalid byte sequence for encoding UTF8: 0x00"). An error
/// denies; no stored row can hold a NUL, so no allowed row is lost.
const FAILS_IN_POSTGRES: &[&str] = &["name_contains_nul"];

/// Known mismatches on PostgreSQL (cerbos-sql bugs): `(action, principal)`.
/// Empty: any mismatch fails the test.
const KNOWN_MISMATCHES: &[(&str, &str)] = &[];

/// Extra rows with non-finite scores (PostgreSQL stores them; SQLite
/// turns NaN into NULL), after the rows of `sql_soundness.rs`.
const NON_FINITE_ROWS: usize = 22;

/// The hostile rows (in PostgreSQL and as resources) and the principals.
struct Fixture {
    db: Pg,
    pg: Postgres,
    resources: Vec<Resource>,
    principals: Vec<Principal>,
    left_out: usize,
}

async fn fixture() -> Fixture {
    let (db, pg) = oracle::postgres().await;
    // The case-insensitive collation on `x` and `name`: an equality left to
    // the column's collation would ignore case.
    db.0.batch_execute(
        "CREATE TABLE item (id TEXT PRIMARY KEY, owner_id TEXT, code TEXT NOT NULL,
           active BOOLEAN NOT NULL, x TEXT COLLATE nocase, name TEXT NOT NULL COLLATE nocase,
           score DOUBLE PRECISION NOT NULL, n BIGINT, y TEXT);",
    )
    .await
    .expect("creates the table");
    let insert =
        db.0.prepare_typed(
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
    for row in oracle::hostile_rows(ROWS + NON_FINITE_ROWS) {
        let HostileRow {
            id,
            owner,
            code,
            active,
            x,
            name,
            score,
            n,
            y,
        } = &row;
        if name.contains('\0') {
            // PostgreSQL TEXT holds no NUL.
            left_out += 1;
            continue;
        }
        db.0.execute(&insert, &[id, owner, code, active, x, name, score, n, y])
            .await
            .unwrap_or_else(|e| panic!("inserting {id}: {e}"));
        resources.push(row.resource());
    }
    Fixture {
        db,
        pg,
        resources,
        principals: oracle::hostile_principals(),
        left_out,
    }
}

/// Compares the plan-filtered rows with the checked rows for every
/// principal and action.
async fn run(fixture: &Fixture, typed: bool, show_rows: bool) -> BTreeMap<String, Tally> {
    let Fixture {
        db,
        resources,
        principals,
        ..
    } = fixture;
    let oracle = Oracle {
        errors_deny: true,
        known_mismatches: KNOWN_MISMATCHES,
        ..Oracle::soundness(Dialect::Postgres, typed, principals, resources)
    };
    let tallies = oracle
        .run(db, |event| match event {
            _ if !show_rows => {}
            Event::Failed {
                action,
                principal,
                error,
            } => eprintln!("query failed {action} for {}: {error}", principal.id()),
            Event::Mismatch(m) => {
                let (sql, values) = m.query.build(PostgresQueryBuilder);
                eprintln!(
                    "{}\n  SQL {sql}\n  values {values:?}\n  over-granted {:?}, under-granted {:?}",
                    m.headline(),
                    m.over,
                    m.under
                );
            }
        })
        .await;
    let totals = oracle::report("", &tallies, Some("PostgreSQL"));
    eprintln!(
        "{} cases over {} rows ({} rows with a NUL left out), {} allowed: {} over-granted, {} under-granted",
        totals.cases,
        resources.len(),
        fixture.left_out,
        totals.allowed,
        totals.over,
        totals.under
    );
    assert_eq!(totals.cases, ACTIONS.len() * principals.len());
    assert_eq!(
        db.count_items().await,
        resources.len(),
        "the hostile strings were never run as SQL"
    );
    tallies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_plans_select_exactly_the_allowed_rows_in_postgres() {
    let fixture = fixture().await;
    eprintln!("PostgreSQL soundness oracle, declared columns:");
    let tallies = run(&fixture, true, true).await;
    oracle::assert_sound("", &tallies, REFUSED);
    for (action, t) in &tallies {
        if FAILS_IN_POSTGRES.contains(&action.as_str()) {
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
    let tallies = run(&fixture, false, false).await;
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
    let plain_forms = [
        ("x_eq_upper_a", "x = 'A'", true),
        ("name_eq_abx", "name = 'Abx'", true),
        ("name_lt_b", "name < 'b'", false),
        ("score_not_gt_neg_inf", "NOT score > '-Infinity'", false),
    ];
    oracle::assert_forms_fall_into_traps(
        &fixture.db,
        &fixture.principals[0],
        &fixture.resources,
        "plain form",
        (20, 26),
        &plain_forms,
    )
    .await;
}
