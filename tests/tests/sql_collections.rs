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

use std::collections::{BTreeMap, BTreeSet};

use cerbos_sql::{Column, Dialect, ElementType, NullAs, PlanToSql, Relation};
use cerbos_tower::{AttrValue, CheckResources, PlanFilter, PlanResources, Principal, Resource};
use sea_query::{Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder};
use serde_json::{Value, json};

/// The actions of `policies/collections.yaml`, one per condition.
fn actions() -> Vec<String> {
    let policy = std::fs::read_to_string(common::policy_dir().join("collections.yaml")).unwrap();
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- actions: [\""))
        .map(|l| l.trim_end_matches("\"]").to_owned())
        .collect()
}

/// The conditions that must be refused (an error naming the shape).
const REFUSED: &[&str] = &[
    // `map`: the items become other values.
    "map_in",
    // Comparing a list with a list.
    "tags_eq_list",
    // `except`.
    "except_size",
    // A list operation inside a lambda.
    "nested",
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

fn resource(row: &Row) -> Resource {
    let x = row.x.map_or(AttrValue::Null, AttrValue::from);
    let list = |v: &Option<Value>| v.clone().map_or(AttrValue::Null, AttrValue::from);
    let mut resource = Resource::new("collection", row.id.clone())
        // NullAs::ExplicitNull: NULL is sent as null.
        .with_attr("tags", list(&row.tags))
        .with_attr("nums", list(&row.nums))
        .with_attr("x", x)
        .with_attr(
            "members",
            AttrValue::from(Value::from(
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
        AttrValue::from(Value::from(
            row.scores
                .iter()
                .map(|s| s.map_or(Value::Null, |s| Value::from(s as f64)))
                .collect::<Vec<_>>(),
        )),
    );
    // NullAs::Omitted: NULL is not sent.
    if let Some(labels) = &row.labels {
        resource = resource.with_attr("labels", AttrValue::from(labels.clone()));
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
                .with_attr("tags", AttrValue::from(tags[i].clone()))
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

#[derive(Default)]
struct Tally {
    cases: usize,
    allowed: usize,
    over: usize,
    under: usize,
    refused: usize,
    example: String,
}

/// A database the oracle runs on.
trait Db {
    fn dialect(&self) -> Dialect;
    async fn ids(&self, query: &sea_query::SelectStatement) -> Result<BTreeSet<String>, String>;
}

struct Sqlite(rusqlite::Connection);

impl Db for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn ids(&self, query: &sea_query::SelectStatement) -> Result<BTreeSet<String>, String> {
        let (sql, values) = query.build(SqliteQueryBuilder);
        let params = contacts_shared::sqlite_params(values).map_err(|e| format!("{sql}: {e}"))?;
        let mut statement = self.0.prepare(&sql).map_err(|e| format!("{sql}: {e}"))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(0)
            })
            .map_err(|e| format!("{sql}: {e}"))?;
        rows.map(|r| r.map_err(|e| format!("{sql}: {e}"))).collect()
    }
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

struct Pg(tokio_postgres::Client);

impl Db for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn ids(&self, query: &sea_query::SelectStatement) -> Result<BTreeSet<String>, String> {
        use tokio_postgres::types::{ToSql, Type};
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
                other => return Err(format!("{sql}: unexpected bound value {other:?}")),
            };
            types.push(ty);
            params.push(param);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let error = |e: tokio_postgres::Error| {
            let message = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned());
            format!("{sql}: {message}")
        };
        let statement = self.0.prepare_typed(&sql, &types).await.map_err(error)?;
        let rows = self.0.query(&statement, &refs).await.map_err(error)?;
        Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
    }
}

async fn postgres(rows: &[Row]) -> (Pg, cerbos_testkit::Postgres) {
    use tokio_postgres::types::Type;
    let pg = tokio::task::spawn_blocking(cerbos_testkit::Postgres::start)
        .await
        .unwrap()
        .expect("PostgreSQL starts (cerbos-testkit installs it from npm)");
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connects to PostgreSQL");
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE item (id TEXT PRIMARY KEY, tags JSONB, labels JSONB, nums JSONB, x TEXT COLLATE nocase, y TEXT,
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
async fn run(db: &impl Db, rows: &[Row]) -> BTreeMap<String, Tally> {
    let actions = actions();
    let principals = principals();
    let to_sql = to_sql(db.dialect());
    let resources: Vec<Resource> = rows.iter().map(resource).collect();
    let mut base = Query::select();
    base.column((Alias::new("item"), Alias::new("id")))
        .from(Alias::new("item"));
    let client = common::client();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for principal in &principals {
        let mut check = CheckResources::new(principal.clone());
        for resource in &resources {
            check.push(resource.clone(), actions.iter().map(String::as_str));
        }
        let checked = client.check_resources(check).await.expect("check");
        for action in &actions {
            let tally = tallies.entry(action.clone()).or_default();
            tally.cases += 1;
            let allowed: BTreeSet<String> = checked
                .results()
                .iter()
                .filter(|r| r.is_allowed(action))
                .map(|r| r.id().to_owned())
                .collect();
            tally.allowed += allowed.len();
            let plan = client
                .plan_resources(
                    PlanResources::new(principal.clone(), "collection").action(action.as_str()),
                )
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
                db.ids(&query)
                    .await
                    .unwrap_or_else(|e| panic!("{action}: {e}"))
            } else {
                BTreeSet::new()
            };
            let over: Vec<_> = from_sql.difference(&allowed).collect();
            let under: Vec<_> = allowed.difference(&from_sql).collect();
            tally.over += over.len();
            tally.under += under.len();
            tally.example = shown.clone();
            if !over.is_empty() || !under.is_empty() {
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
                    "mismatch {action} for {}: plan {shown}\n  over-granted:\n    {}\n  under-granted:\n    {}",
                    principal.id(),
                    show(&over),
                    show(&under)
                );
            }
        }
    }
    tallies
}

fn report(name: &str, tallies: &BTreeMap<String, Tally>, rows: usize) {
    let (mut cases, mut over, mut under, mut allowed, mut refused) = (0, 0, 0, 0, 0);
    eprintln!(
        "{name}: per condition: cases, PDP-allowed rows, over-granted, under-granted, refused"
    );
    for (action, t) in tallies {
        eprintln!(
            "  {action:24} {:2} cases {:4} allowed {:3} over {:3} under {:2} refused  {}",
            t.cases, t.allowed, t.over, t.under, t.refused, t.example
        );
        cases += t.cases;
        over += t.over;
        under += t.under;
        allowed += t.allowed;
        refused += t.refused;
    }
    eprintln!(
        "{name}: {cases} cases over {rows} rows ({refused} refused), {allowed} allowed: {over} over-granted, {under} under-granted"
    );
    for (action, t) in tallies {
        assert_eq!(
            t.over, 0,
            "{name} {action}: rows the PDP denies were returned"
        );
        assert_eq!(
            t.under, 0,
            "{name} {action}: rows the PDP allows were missed"
        );
        if REFUSED.contains(&action.as_str()) {
            assert_eq!(t.refused, t.cases, "{name} {action} must be refused");
        } else {
            assert_eq!(t.refused, 0, "{name} {action} was refused: {}", t.example);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_plans_select_exactly_the_allowed_rows_in_sqlite() {
    let rows = rows();
    let db = sqlite(&rows);
    let tallies = run(&db, &rows).await;
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
    let tallies = run(&db, &rows).await;
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
    let principal = principals().remove(0);
    let mut check = CheckResources::new(principal.clone());
    let plain_forms = [
        // SQLite's json_each reads `true` as 1.
        (
            "num_in_tags",
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 1)",
        ),
        // json_each(NULL) is empty: CEL's error becomes true.
        (
            "not_tag_in",
            "NOT EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 'a')",
        ),
        // The member names' NOCASE collation.
        (
            "members_in",
            "EXISTS (SELECT 1 FROM member WHERE member.item_id = item.id AND name = 'a')",
        ),
        // LIKE ignores case, and a number item is no error to it.
        (
            "not_all_starts",
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE NOT value LIKE 'a%')",
        ),
    ];
    for row in &rows {
        check.push(resource(row), plain_forms.iter().map(|(a, _)| *a));
    }
    let checked = common::client()
        .check_resources(check)
        .await
        .expect("check");
    for (action, plain) in plain_forms {
        let allowed: BTreeSet<String> = checked
            .results()
            .iter()
            .filter(|r| r.is_allowed(action))
            .map(|r| r.id().to_owned())
            .collect();
        let mut statement =
            db.0.prepare(&format!("SELECT id FROM item WHERE {plain}"))
                .unwrap();
        let from_sql: BTreeSet<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let over = from_sql.difference(&allowed).count();
        eprintln!("  plain form of {action:16} {over:3} over-granted: {plain}");
        assert!(over > 0, "{action}: the plain form over-grants");
    }
}
