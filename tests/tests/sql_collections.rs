//! cerbos-sql list attributes against the real PDP (issue 11, section 2),
//! on SQLite and on PostgreSQL: membership (`"a" in R.attr.tags`,
//! `R.attr.x in R.attr.tags`), `hasIntersection`, `size`, and the
//! collection macros (`exists`, `all`, `exists_one`, `size(filter(…))`)
//! over JSON list columns (JSON text in SQLite, `jsonb` in PostgreSQL) and
//! over a to-many relation (a `member` table), each also under `!`
//! (`policies/collections.yaml`). For every principal and action, the
//! rows the plan-filtered query returns must be exactly the rows
//! `CheckResources` allows; the shapes without a translation must be
//! refused.
//!
//! The rows are hostile: empty lists, NULL list columns (sent as `null`
//! for `tags`, left out for `labels`), duplicates, items of other JSON
//! types (numbers, `true`, `null`, nested arrays and objects in a string
//! list; strings and bools in a number list), case and Unicode
//! look-alikes, `%` and a NUL byte (SQLite only: PostgreSQL's `jsonb`
//! holds none), NULL members of the relation.

mod common;

use std::collections::BTreeMap;

use cerbos_sql::{Column, Dialect, ElementType, NullAs, PlanToSql, Relation};
use cerbos_tower::{AttrValue, Principal, Resource};
use common::oracle::{self, Db, Event, Oracle, Pg, Sqlite, Tally};
use sea_query::{Alias, Query};
use serde_json::{Value, json};

/// The conditions that must be refused (an error naming the shape).
const REFUSED: &[&str] = &[
    // `map`: the items become other values.
    "map_in",
    // Comparing a list with a list.
    "tags_eq_list",
    // `except`.
    "except_size",
    // A relation is never null: only list operations apply.
    "members_eq_null",
];

fn tag_lists() -> Vec<Option<Value>> {
    vec![
        Some(json!([])),
        Some(json!(["a"])),
        Some(json!(["a", "a"])),
        Some(json!(["x", "a"])),
        Some(json!(["A"])),
        Some(json!(["ab", "b"])),
        Some(json!(["a", 1])),
        Some(json!(["b", 1])),
        Some(json!([1])),
        Some(json!([1.0, "ab", "ac"])),
        Some(json!([null])),
        Some(json!(["a", null])),
        Some(json!(["b", null])),
        Some(json!([["a"]])),
        Some(json!([{"a": 1}, "b"])),
        Some(json!([true])),
        Some(json!(["", "a%"])),
        Some(json!(["é", "e\u{301}"])),
        Some(json!(["ab\u{0}"])),
        Some(json!([2, 2.0, "2"])),
        Some(json!(["xa", "xb", "ab"])),
        Some(json!(["x"])),
        Some(json!(["ac", "ab", "a"])),
        Some(json!(["b", "c", false])),
        None,
    ]
}

fn num_lists() -> Vec<Option<Value>> {
    vec![
        Some(json!([])),
        Some(json!([1])),
        Some(json!([2, 2.0])),
        Some(json!([3.5])),
        Some(json!(["2"])),
        Some(json!([null])),
        Some(json!([true, 2])),
        Some(json!([1e308])),
        Some(json!([-0.0, 0])),
        Some(json!([5, "x"])),
        Some(json!([-1, 2])),
        Some(json!([9_007_199_254_740_993_i64])),
        None,
    ]
}

fn member_lists() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![],
        vec![Some("a")],
        vec![Some("a"), Some("a")],
        vec![Some("b"), None],
        vec![Some("A"), Some("ab")],
        vec![Some("x")],
        vec![None],
        vec![Some("ab"), Some("ac"), Some("b")],
    ]
}

fn score_lists() -> Vec<Vec<Option<i64>>> {
    vec![
        vec![],
        vec![Some(1)],
        vec![Some(9_007_199_254_740_993)],
        vec![Some(2), None],
        vec![Some(2), Some(2)],
        vec![None],
        vec![Some(5), Some(-1)],
    ]
}

/// Integers beyond 2^53: CEL reads them as doubles.
const BIGS: [i64; 4] = [
    9_007_199_254_740_993,
    9_007_199_254_740_992,
    9_007_199_254_740_995,
    5,
];

const XS: [Option<&str>; 5] = [Some("a"), Some("A"), Some(""), None, Some("b")];
const YS: [Option<&str>; 4] = [Some("a"), None, Some("b"), Some("é")];
const ROWS: usize = 120;

/// One hostile row: id, tags, labels, nums, x, y, members.
struct Row {
    id: String,
    tags: Option<Value>,
    labels: Option<Value>,
    nums: Option<Value>,
    x: Option<&'static str>,
    y: Option<&'static str>,
    members: Vec<Option<&'static str>>,
    scores: Vec<Option<i64>>,
    big: i64,
    big2: i64,
}

fn rows() -> Vec<Row> {
    let (tags, nums, members) = (tag_lists(), num_lists(), member_lists());
    let scores = score_lists();
    (0..ROWS)
        .map(|i| Row {
            id: format!("r{i}"),
            tags: tags[i % tags.len()].clone(),
            labels: tags[(i / 3 + 7) % tags.len()].clone(),
            nums: nums[i % nums.len()].clone(),
            x: XS[(i / 2) % XS.len()],
            y: YS[(i / 4) % YS.len()],
            members: members[(i / 5) % members.len()].clone(),
            scores: scores[(i / 3) % scores.len()].clone(),
            big: BIGS[i % BIGS.len()],
            big2: BIGS[(i / 4) % BIGS.len()],
        })
        .collect()
}

/// `value` with its numbers as the PDP reads them, doubles: an integer
/// beyond 2^53 (which the client refuses to round) is rounded here, on
/// purpose, to send what the database column holds as CEL sees it.
fn as_doubles(value: &Value) -> AttrValue {
    match value {
        Value::Number(n) => AttrValue::Number(n.as_f64().expect("a JSON number")),
        Value::Array(items) => AttrValue::List(items.iter().map(as_doubles).collect()),
        Value::Object(map) => AttrValue::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), as_doubles(v)))
                .collect(),
        ),
        other => common::json_attr(other.clone()),
    }
}

fn resource(row: &Row) -> Resource {
    let x = row.x.map_or(AttrValue::Null, AttrValue::from);
    let list = |v: &Option<Value>| v.as_ref().map_or(AttrValue::Null, as_doubles);
    let mut resource = Resource::new("collection", row.id.clone())
        // NullAs::ExplicitNull: NULL is sent as null.
        .with_attr("tags", list(&row.tags))
        .with_attr("nums", list(&row.nums))
        .with_attr("x", x)
        .with_attr(
            "members",
            common::json_attr(Value::from(
                row.members
                    .iter()
                    .map(|m| m.map_or(Value::Null, Value::from))
                    .collect::<Vec<_>>(),
            )),
        );
    // Numbers as the PDP reads them: doubles.
    resource = resource
        .with_attr("big", row.big as f64)
        .with_attr("big2", row.big2 as f64);
    resource = resource.with_attr(
        "scores",
        common::json_attr(Value::from(
            row.scores
                .iter()
                .map(|s| s.map_or(Value::Null, |s| Value::from(s as f64)))
                .collect::<Vec<_>>(),
        )),
    );
    // NullAs::Omitted: NULL is not sent.
    if let Some(labels) = &row.labels {
        resource = resource.with_attr("labels", common::json_attr(labels.clone()));
    }
    if let Some(y) = row.y {
        resource = resource.with_attr("y", y);
    }
    resource
}

fn principals() -> Vec<Principal> {
    let tags = [
        json!(["a", "z"]),
        json!([]),
        json!(["x", 1]),
        json!([null, "b"]),
    ];
    let tag = ["a", "x", "A", ""];
    let limits: [AttrValue; 4] = [2.0.into(), f64::NAN.into(), "2".into(), 1.5.into()];
    (0..4)
        .map(|i| {
            Principal::new(format!("p{i}"), ["user"])
                .with_attr("tag", tag[i])
                .with_attr("tags", common::json_attr(tags[i].clone()))
                .with_attr("limit", limits[i].clone())
        })
        .collect()
}

/// The mapping: the list columns and the `member` relation.
fn to_sql(dialect: Dialect) -> PlanToSql {
    let item = || Alias::new("item");
    let member = || Alias::new("member");
    let attr = |name: &str| format!("request.resource.attr.{name}");
    PlanToSql::new(dialect)
        .column(
            attr("tags"),
            Column::string_list((item(), Alias::new("tags"))),
        )
        .column(
            attr("labels"),
            Column::string_list((item(), Alias::new("labels"))).null_as(NullAs::Omitted),
        )
        .column(
            attr("nums"),
            Column::number_list((item(), Alias::new("nums"))),
        )
        .column(attr("x"), Column::string((item(), Alias::new("x"))))
        .column(attr("big"), Column::integer((item(), Alias::new("big"))))
        .column(attr("big2"), Column::integer((item(), Alias::new("big2"))))
        .column(
            attr("y"),
            Column::string((item(), Alias::new("y"))).null_as(NullAs::Omitted),
        )
        .column(
            attr("scores"),
            Column::related_list(
                ElementType::Number,
                Relation::new(
                    Alias::new("score"),
                    Alias::new("item_id"),
                    (item(), Alias::new("id")),
                    Alias::new("value"),
                ),
            ),
        )
        .column(
            attr("members"),
            Column::related_list(
                ElementType::String,
                Relation::new(
                    member(),
                    Alias::new("item_id"),
                    (item(), Alias::new("id")),
                    Alias::new("name"),
                ),
            ),
        )
}

fn sqlite(rows: &[Row]) -> Sqlite {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE item (id TEXT PRIMARY KEY, tags TEXT, labels TEXT, nums TEXT, x TEXT COLLATE NOCASE, y TEXT,
           big INTEGER NOT NULL, big2 INTEGER NOT NULL);
         CREATE TABLE member (item_id TEXT NOT NULL, name TEXT COLLATE NOCASE);
         CREATE TABLE score (item_id TEXT NOT NULL, value INTEGER);",
    )
    .unwrap();
    for row in rows {
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        db.execute(
            "INSERT INTO item VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                row.id,
                json(&row.tags),
                json(&row.labels),
                json(&row.nums),
                row.x,
                row.y,
                row.big,
                row.big2
            ],
        )
        .unwrap();
        for name in &row.members {
            db.execute(
                "INSERT INTO member VALUES (?1, ?2)",
                rusqlite::params![row.id, name],
            )
            .unwrap();
        }
        for score in &row.scores {
            db.execute(
                "INSERT INTO score VALUES (?1, ?2)",
                rusqlite::params![row.id, score],
            )
            .unwrap();
        }
    }
    Sqlite(db)
}

async fn postgres(rows: &[Row]) -> (Pg, cerbos_testkit::Postgres) {
    use tokio_postgres::types::Type;
    let (Pg(db), pg) = oracle::postgres().await;
    db.batch_execute(
        "CREATE TABLE item (id TEXT PRIMARY KEY, tags JSONB, labels JSONB, nums JSONB, x TEXT COLLATE nocase, y TEXT,
           big BIGINT NOT NULL, big2 BIGINT NOT NULL);
         CREATE TABLE member (item_id TEXT NOT NULL, name TEXT COLLATE nocase);
         CREATE TABLE score (item_id TEXT NOT NULL, value BIGINT);",
    )
    .await
    .expect("creates the tables");
    let insert = db
        .prepare_typed(
            "INSERT INTO item VALUES ($1, $2::jsonb, $3::jsonb, $4::jsonb, $5, $6, $7, $8)",
            &[
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
            ],
        )
        .await
        .unwrap();
    let insert_member = db
        .prepare_typed(
            "INSERT INTO member VALUES ($1, $2)",
            &[Type::TEXT, Type::TEXT],
        )
        .await
        .unwrap();
    for row in rows {
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        db.execute(
            &insert,
            &[
                &row.id,
                &json(&row.tags),
                &json(&row.labels),
                &json(&row.nums),
                &row.x,
                &row.y,
                &row.big,
                &row.big2,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting {}: {e}", row.id));
        for name in &row.members {
            db.execute(&insert_member, &[&row.id, name]).await.unwrap();
        }
        for score in &row.scores {
            db.execute("INSERT INTO score VALUES ($1, $2)", &[&row.id, score])
                .await
                .unwrap();
        }
    }
    (Pg(db), pg)
}

/// Compares the plan-filtered rows with the checked rows for every
/// principal and action.
async fn run(db: &impl Db, dialect: Dialect, rows: &[Row]) -> BTreeMap<String, Tally> {
    let actions = oracle::policy_actions("collections.yaml");
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let resources: Vec<Resource> = rows.iter().map(resource).collect();
    let mut base = Query::select();
    base.column((Alias::new("item"), Alias::new("id")))
        .from(Alias::new("item"));
    let oracle = Oracle {
        kind: "collection",
        actions: &actions,
        principals: &principals(),
        resources: &resources,
        to_sql: to_sql(dialect),
        base,
        errors_deny: false,
        known_mismatches: &[],
    };
    oracle
        .run(db, |event| {
            if let Event::Mismatch(m) = event {
                let show = |ids: &[&String]| {
                    ids.iter()
                        .map(|id| {
                            let row = rows.iter().find(|r| &&r.id == id).unwrap();
                            format!(
                                "{id}: tags {:?} labels {:?} nums {:?} x {:?} y {:?} members {:?} scores {:?}",
                                row.tags, row.labels, row.nums, row.x, row.y, row.members, row.scores
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n    ")
                };
                eprintln!(
                    "{}\n  over-granted:\n    {}\n  under-granted:\n    {}",
                    m.headline(),
                    show(m.over),
                    show(m.under)
                );
            }
        })
        .await
}

fn report(name: &str, tallies: &BTreeMap<String, Tally>, rows: usize) {
    let totals = oracle::report(&format!("{name}: "), tallies, None);
    eprintln!(
        "{name}: {} cases over {rows} rows ({} refused), {} allowed: {} over-granted, {} under-granted",
        totals.cases, totals.refused, totals.allowed, totals.over, totals.under
    );
    oracle::assert_sound(&format!("{name} "), tallies, REFUSED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_plans_select_exactly_the_allowed_rows_in_sqlite() {
    let rows = rows();
    let db = sqlite(&rows);
    let tallies = run(&db, Dialect::Sqlite, &rows).await;
    report("SQLite", &tallies, rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_plans_select_exactly_the_allowed_rows_in_postgres() {
    // PostgreSQL's jsonb holds no NUL: those rows are left out.
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| {
            ![&r.tags, &r.labels, &r.nums].iter().any(|v| {
                v.as_ref()
                    .is_some_and(|v| v.to_string().contains("\\u0000"))
            })
        })
        .collect();
    let (db, pg) = postgres(&rows).await;
    let tallies = run(&db, Dialect::Postgres, &rows).await;
    report("PostgreSQL", &tallies, rows.len());
    drop(pg);
}

/// The control: the traps have teeth. Plain translations of some of
/// these conditions (items compared without their JSON type, `NOT
/// EXISTS` over a NULL list, the column's case-insensitive collation)
/// return rows the PDP denies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_list_translations_over_grant_in_sqlite() {
    let rows = rows();
    let db = sqlite(&rows);
    // Each over-grants.
    let plain_forms = [
        // SQLite's json_each reads `true` as 1.
        (
            "num_in_tags",
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 1)",
            true,
        ),
        // json_each(NULL) is empty: CEL's error becomes true.
        (
            "not_tag_in",
            "NOT EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 'a')",
            true,
        ),
        // The member names' NOCASE collation.
        (
            "members_in",
            "EXISTS (SELECT 1 FROM member WHERE member.item_id = item.id AND name = 'a')",
            true,
        ),
        // LIKE ignores case, and a number item is no error to it.
        (
            "not_all_starts",
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE NOT value LIKE 'a%')",
            true,
        ),
    ];
    let resources: Vec<Resource> = rows.iter().map(resource).collect();
    oracle::assert_forms_fall_into_traps(
        &db,
        &principals()[0],
        &resources,
        "plain form",
        (16, 0),
        &plain_forms,
    )
    .await;
}
