//! cerbos-sql soundness against the real PDP (issue 11): adversarial
//! conditions (`policies/soundness.yaml`) on hostile rows in SQLite. For
//! every principal and action, the rows the plan-filtered query returns
//! must be exactly the rows `CheckResources` allows: no over-grant (a row
//! the PDP denies) and no under-grant. The shapes without a sound
//! translation must be refused.
//!
//! The traps: SQLite's type affinity (`'2' = 2`), NOCASE collations, NUL
//! bytes in strings, NaN and infinities (folded `0.0/0.0`, principal
//! data), explicit nulls under `!` and `!=`, omitted attributes (an
//! evaluation error in CEL, even under `!`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cerbos_sql::{Column, Dialect, NullAs, PlanToSql};
use cerbos_tower::{AttrValue, CheckResources, PlanFilter, PlanResources, Principal, Resource};
use rusqlite::Connection;
use sea_query::{Alias, Query, SqliteQueryBuilder};

/// One action per adversarial condition of `policies/soundness.yaml`.
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

/// Runs `query` on `db` and returns the ids it selects.
fn ids(db: &Connection, query: &sea_query::SelectStatement) -> BTreeSet<String> {
    let (sql, values) = query.build(SqliteQueryBuilder);
    let params = contacts_shared::sqlite_params(values).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut statement = db.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            row.get::<_, String>(0)
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .map(Result::unwrap)
        .collect()
}

/// Per action: principals × actions compared, rows the PDP allowed, rows
/// over- and under-granted, plans refused.
#[derive(Default)]
struct Tally {
    cases: usize,
    allowed: usize,
    over: usize,
    under: usize,
    refused: usize,
    example: String,
}

/// The hostile rows (in SQLite and as resources) and the principals.
struct Fixture {
    db: Connection,
    resources: Vec<Resource>,
    principals: Vec<Principal>,
}

const ROWS: usize = 154;

fn fixture() -> Fixture {
    let db = Connection::open_in_memory().unwrap();
    // NOCASE columns: an equality left to the column's collation would
    // ignore case.
    db.execute_batch(
        "CREATE TABLE item (id TEXT PRIMARY KEY, owner_id TEXT, code TEXT NOT NULL,
           active INTEGER NOT NULL, x TEXT COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,
           score REAL NOT NULL, n INTEGER, y TEXT);",
    )
    .unwrap();
    let mut resources = Vec::new();
    for i in 0..ROWS {
        let id = format!("r{i}");
        let owner = OWNERS[i % OWNERS.len()];
        let code = CODES[i % CODES.len()];
        let active = i % 3 == 0;
        let x = XS[(i / 2) % XS.len()];
        let name = NAMES[i % NAMES.len()];
        let score = SCORES[(i / 3) % SCORES.len()];
        let n = NS[(i / 5) % NS.len()];
        let y = YS[(i / 7) % YS.len()];
        db.execute(
            "INSERT INTO item VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![id, owner, code, active, x, name, score, n, y],
        )
        .unwrap();
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
        resources,
        principals,
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
    PlanToSql::new(Dialect::Sqlite)
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
            let from_sql = if filter.may_match() {
                let mut query = base.clone();
                filter.apply(&mut query);
                ids(db, &query)
            } else {
                BTreeSet::new()
            };
            let over: Vec<_> = from_sql.difference(&allowed).collect();
            let under: Vec<_> = allowed.difference(&from_sql).collect();
            tally.over += over.len();
            tally.under += under.len();
            tally.example = shown.clone();
            if show_rows && (!over.is_empty() || !under.is_empty()) {
                eprintln!(
                    "mismatch {action} for {}: plan {shown}: over-granted {over:?}, under-granted {under:?}",
                    principal.id()
                );
            }
        }
    }
    let (mut cases, mut over, mut under) = (0, 0, 0);
    eprintln!("per condition: cases, PDP-allowed rows, over-granted, under-granted, refused");
    for (action, t) in &tallies {
        eprintln!(
            "  {action:24} {:2} cases {:4} allowed {:3} over {:3} under {:2} refused  {}",
            t.cases, t.allowed, t.over, t.under, t.refused, t.example
        );
        cases += t.cases;
        over += t.over;
        under += t.under;
    }
    eprintln!(
        "{cases} cases over {} rows: {over} over-granted, {under} under-granted",
        resources.len()
    );
    assert_eq!(cases, ACTIONS.len() * principals.len());
    let count: i64 = db
        .query_row("SELECT count(*) FROM item", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        count as usize, ROWS,
        "the hostile strings were never run as SQL"
    );
    tallies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_plans_select_exactly_the_allowed_rows() {
    let fixture = fixture();
    eprintln!("soundness oracle, declared columns:");
    let tallies = run(&fixture, &to_sql(true), true).await;
    for (action, t) in &tallies {
        assert_eq!(t.over, 0, "{action}: rows the PDP denies were returned");
        assert_eq!(t.under, 0, "{action}: rows the PDP allows were missed");
        if REFUSED.contains(action) {
            assert_eq!(t.refused, t.cases, "{action} must be refused");
        } else {
            assert_eq!(t.refused, 0, "{action} was refused: {}", t.example);
        }
    }
}

/// The control: without declared types, the database's coercion decides
/// (SQLite's affinity, a NOCASE collation), and the oracle above sees the
/// over-grants. Proves the adversarial cases have teeth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_columns_fall_into_the_traps_the_oracle_catches() {
    let fixture = fixture();
    eprintln!("soundness oracle, unchecked columns (control):");
    let tallies = run(&fixture, &to_sql(false), false).await;
    for action in [
        "owner_eq_num",
        "owner_in_nums",
        "owner_eq_principal_num",
        "active_eq_one",
        "x_in_nums",
        "score_eq_str",
    ] {
        assert!(
            tallies[action].over > 0,
            "{action}: expected over-grants from SQLite's coercion"
        );
    }
    // The forms cerbos-sql rendered before issue 11, on the same rows: the
    // oracle sees their over-grants (NUL and NOCASE traps) and missed rows
    // (explicit nulls under `!=` and `!`).
    let principal = &fixture.principals[0];
    let mut check = CheckResources::new(principal.clone());
    for resource in &fixture.resources {
        check.push(resource.clone(), ACTIONS.iter().copied());
    }
    let checked = common::client()
        .check_resources(check)
        .await
        .expect("check");
    let old_forms = [
        ("name_ends_x", "substr(name, -1) = 'x'", true),
        ("name_eq_abx", "name = 'Abx'", true),
        ("x_eq_upper_a", "x = 'A'", true),
        ("x_ne_a", "x <> 'a'", false),
        ("x_not_eq_a", "NOT x = 'a'", false),
        ("x_not_in_ab", "NOT x IN ('a', 'b')", false),
    ];
    for (action, old, over_grants) in old_forms {
        let allowed: BTreeSet<String> = checked
            .results()
            .iter()
            .filter(|r| r.is_allowed(action))
            .map(|r| r.id().to_owned())
            .collect();
        let mut statement = fixture
            .db
            .prepare(&format!("SELECT id FROM item WHERE {old}"))
            .unwrap();
        let from_sql: BTreeSet<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let over = from_sql.difference(&allowed).count();
        let under = allowed.difference(&from_sql).count();
        eprintln!("  old form of {action:16} {old:24} {over:3} over {under:3} under");
        if over_grants {
            assert!(over > 0, "{action}: the old form over-grants");
        } else {
            assert!(under > 0, "{action}: the old form misses rows");
        }
    }
}
