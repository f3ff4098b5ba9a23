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

use std::collections::BTreeMap;

use cerbos_sql::Dialect;
use cerbos_tower::{Principal, Resource};
use common::oracle::{self, ACTIONS, Db, Event, HostileRow, Oracle, REFUSED, ROWS, Sqlite, Tally};

/// The hostile rows (in SQLite and as resources) and the principals.
struct Fixture {
    db: Sqlite,
    resources: Vec<Resource>,
    principals: Vec<Principal>,
}

fn fixture() -> Fixture {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    // NOCASE columns: an equality left to the column's collation would
    // ignore case.
    db.execute_batch(
        "CREATE TABLE item (id TEXT PRIMARY KEY, owner_id TEXT, code TEXT NOT NULL,
           active INTEGER NOT NULL, x TEXT COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,
           score REAL NOT NULL, n INTEGER, y TEXT);",
    )
    .unwrap();
    let rows = oracle::hostile_rows(ROWS);
    for row in &rows {
        db.execute(
            "INSERT INTO item VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                row.id, row.owner, row.code, row.active, row.x, row.name, row.score, row.n, row.y
            ],
        )
        .unwrap();
    }
    Fixture {
        db: Sqlite(db),
        resources: rows.iter().map(HostileRow::resource).collect(),
        principals: oracle::hostile_principals(),
    }
}

/// Compares the plan-filtered rows with the checked rows for every
/// principal and action.
async fn run(fixture: &Fixture, typed: bool, show_rows: bool) -> BTreeMap<String, Tally> {
    let Fixture {
        db,
        resources,
        principals,
    } = fixture;
    let oracle = Oracle::soundness(Dialect::Sqlite, typed, principals, resources);
    let tallies = oracle
        .run(db, |event| {
            if let Event::Mismatch(m) = event
                && show_rows
            {
                eprintln!(
                    "{}: over-granted {:?}, under-granted {:?}",
                    m.headline(),
                    m.over,
                    m.under
                );
            }
        })
        .await;
    let totals = oracle::report("", &tallies, None);
    eprintln!(
        "{} cases over {} rows: {} over-granted, {} under-granted",
        totals.cases,
        resources.len(),
        totals.over,
        totals.under
    );
    assert_eq!(totals.cases, ACTIONS.len() * principals.len());
    assert_eq!(
        db.count_items().await,
        ROWS,
        "the hostile strings were never run as SQL"
    );
    tallies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_plans_select_exactly_the_allowed_rows() {
    let fixture = fixture();
    eprintln!("soundness oracle, declared columns:");
    let tallies = run(&fixture, true, true).await;
    oracle::assert_sound("", &tallies, REFUSED);
}

/// The control: without declared types, the database's coercion decides
/// (SQLite's affinity, a NOCASE collation), and the oracle above sees the
/// over-grants. Proves the adversarial cases have teeth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_columns_fall_into_the_traps_the_oracle_catches() {
    let fixture = fixture();
    eprintln!("soundness oracle, unchecked columns (control):");
    let tallies = run(&fixture, false, false).await;
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
    let old_forms = [
        ("name_ends_x", "substr(name, -1) = 'x'", true),
        ("name_eq_abx", "name = 'Abx'", true),
        ("x_eq_upper_a", "x = 'A'", true),
        ("x_ne_a", "x <> 'a'", false),
        ("x_not_eq_a", "NOT x = 'a'", false),
        ("x_not_in_ab", "NOT x IN ('a', 'b')", false),
    ];
    let Fixture {
        db,
        resources,
        principals,
    } = &fixture;
    oracle::assert_forms_fall_into_traps(
        db,
        &principals[0],
        resources,
        "old form",
        (16, 24),
        &old_forms,
    )
    .await;
}
