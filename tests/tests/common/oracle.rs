//! The SQL soundness oracle shared by `sql_soundness.rs` (SQLite),
//! `sql_postgres.rs` (PostgreSQL) and `sql_collections.rs` (lists, both):
//! for every principal and action, the rows the plan-filtered query
//! returns must be exactly the rows `CheckResources` allows. Also the
//! hostile rows and principals of `policies/soundness.yaml`, which the
//! SQLite and PostgreSQL runs share.

use std::collections::{BTreeMap, BTreeSet};

use cerbos_sql::{Column, Dialect, NullAs, PlanToSql};
use cerbos_testkit::Postgres;
use cerbos_tower::{
    AttrValue, CheckResources, CheckResourcesResponse, PlanFilter, PlanResources, Principal,
    Resource,
};
use sea_query::{Alias, PostgresQueryBuilder, SelectStatement, SqliteQueryBuilder};
use tokio_postgres::types::{ToSql, Type};

/// One action per adversarial condition of `policies/soundness.yaml`.
pub const ACTIONS: &[&str] = &[
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

/// The conditions of `policies/soundness.yaml` whose plans must be refused
/// (an error naming the shape).
pub const REFUSED: &[&str] = &[
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

/// The hostile rows with finite scores (all SQLite can store).
pub const ROWS: usize = 154;
/// The scores of the rows after the first [`ROWS`] (PostgreSQL stores
/// them; SQLite turns NaN into NULL).
const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

/// One hostile row of the `item` table of `policies/soundness.yaml`.
pub struct HostileRow {
    pub id: String,
    pub owner: Option<&'static str>,
    pub code: &'static str,
    pub active: bool,
    pub x: Option<&'static str>,
    pub name: &'static str,
    pub score: f64,
    pub n: Option<i64>,
    pub y: Option<&'static str>,
}

/// The first `count` hostile rows: the first [`ROWS`] with finite scores,
/// the rest with NaN and ±Infinity.
pub fn hostile_rows(count: usize) -> Vec<HostileRow> {
    (0..count)
        .map(|i| HostileRow {
            id: format!("r{i}"),
            owner: OWNERS[i % OWNERS.len()],
            code: CODES[i % CODES.len()],
            active: i % 3 == 0,
            x: XS[(i / 2) % XS.len()],
            name: NAMES[i % NAMES.len()],
            score: if i < ROWS {
                SCORES[(i / 3) % SCORES.len()]
            } else {
                NON_FINITE[(i - ROWS) % NON_FINITE.len()]
            },
            n: NS[(i / 5) % NS.len()],
            y: YS[(i / 7) % YS.len()],
        })
        .collect()
}

impl HostileRow {
    /// The row as the PDP sees it.
    pub fn resource(&self) -> Resource {
        let text = |v: Option<&str>| v.map_or(AttrValue::Null, AttrValue::from);
        let mut resource = Resource::new("soundness", self.id.clone())
            // NullAs::ExplicitNull: NULL is sent as null.
            .with_attr("owner_id", text(self.owner))
            .with_attr("x", text(self.x))
            .with_attr("code", self.code)
            .with_attr("active", self.active)
            .with_attr("name", self.name)
            .with_attr("score", self.score);
        // NullAs::Omitted: NULL is not sent.
        if let Some(n) = self.n {
            resource = resource.with_attr("n", AttrValue::try_from(n).unwrap());
        }
        if let Some(y) = self.y {
            resource = resource.with_attr("y", y);
        }
        resource
    }
}

/// The principals of the soundness oracle: principal data can carry
/// non-finite numbers and mistyped ids.
pub fn hostile_principals() -> Vec<Principal> {
    let limits = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5];
    let nums: [AttrValue; 3] = [2.0.into(), "2".into(), 5.0.into()];
    (0..4)
        .map(|i| {
            Principal::new(format!("p{i}"), ["user"])
                .with_attr("limit", limits[i])
                .with_attr("num", nums[i % nums.len()].clone())
        })
        .collect()
}

/// The mapping of the soundness `item` table: declared types, or (for the
/// control run) unchecked columns with the same null conventions.
pub fn soundness_to_sql(dialect: Dialect, typed: bool) -> PlanToSql {
    let column = |name: &str, declared: fn(Alias) -> Column| {
        if typed {
            declared(Alias::new(name))
        } else {
            Column::unchecked(Alias::new(name))
        }
    };
    let attr = |name: &str| format!("request.resource.attr.{name}");
    PlanToSql::new(dialect)
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

/// The actions of a policy file of `policies/` written one per rule
/// (`- actions: ["name"]`), in order.
pub fn policy_actions(file: &str) -> Vec<String> {
    let policy = std::fs::read_to_string(super::policy_dir().join(file)).unwrap();
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- actions: [\""))
        .map(|l| l.trim_end_matches("\"]").to_owned())
        .collect()
}

/// `SELECT table.id FROM table`: the base query of an oracle.
pub fn ids_from(table: &str) -> SelectStatement {
    let mut base = sea_query::Query::select();
    base.column((Alias::new(table), Alias::new("id")))
        .from(Alias::new(table));
    base
}

/// A database the oracle runs on.
pub trait Db {
    /// The ids `query` selects, or the database's error.
    async fn ids(&self, query: &SelectStatement) -> Result<BTreeSet<String>, String>;
    /// The ids of `SELECT id FROM item WHERE {condition}` (a hand-written
    /// form of a condition, for the controls).
    async fn ids_where(&self, condition: &str) -> BTreeSet<String>;
    /// `SELECT count(*) FROM item`.
    async fn count_items(&self) -> usize;
}

/// An SQLite database.
pub struct Sqlite(pub rusqlite::Connection);

impl Db for Sqlite {
    async fn ids(&self, query: &SelectStatement) -> Result<BTreeSet<String>, String> {
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

    async fn ids_where(&self, condition: &str) -> BTreeSet<String> {
        let mut statement = self
            .0
            .prepare(&format!("SELECT id FROM item WHERE {condition}"))
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    async fn count_items(&self) -> usize {
        let count: i64 = self
            .0
            .query_row("SELECT count(*) FROM item", [], |r| r.get(0))
            .unwrap();
        count as usize
    }
}

/// A PostgreSQL database. Values are bound with the types of sea-query's
/// values (`int8` for an integer, `float8` for a double, ...), as sqlx and
/// sea-query's binders do.
pub struct Pg(pub tokio_postgres::Client);

impl Db for Pg {
    async fn ids(&self, query: &SelectStatement) -> Result<BTreeSet<String>, String> {
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

    async fn ids_where(&self, condition: &str) -> BTreeSet<String> {
        self.0
            .query(&format!("SELECT id FROM item WHERE {condition}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{condition}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    async fn count_items(&self) -> usize {
        let count: i64 = self
            .0
            .query_one("SELECT count(*) FROM item", &[])
            .await
            .unwrap()
            .get(0);
        count as usize
    }
}

/// Starts a PostgreSQL (`cerbos_testkit::Postgres`), connects to it and
/// creates the case-insensitive collation `nocase` (nondeterministic ICU):
/// an equality left to a column's collation would ignore case.
pub async fn postgres() -> (Pg, Postgres) {
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
    db.batch_execute(
        "CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);",
    )
    .await
    .expect("creates the collation");
    (Pg(db), pg)
}

/// Per action: principals × actions compared, rows the PDP allowed, rows
/// over- and under-granted, plans refused, queries the database rejected,
/// known mismatches.
#[derive(Default)]
pub struct Tally {
    pub cases: usize,
    pub allowed: usize,
    pub over: usize,
    pub under: usize,
    pub refused: usize,
    pub failed: usize,
    pub known: usize,
    pub example: String,
}

/// What the oracle reports as it goes.
pub enum Event<'a> {
    /// The database rejected the query (with `Oracle::errors_deny`).
    Failed {
        action: &'a str,
        principal: &'a Principal,
        error: &'a str,
    },
    /// The plan-filtered rows are not the allowed rows.
    Mismatch(Mismatch<'a>),
}

/// Plan-filtered rows that are not the allowed rows.
pub struct Mismatch<'a> {
    pub action: &'a str,
    pub principal: &'a Principal,
    /// The plan's filter, as shown.
    pub shown: &'a str,
    /// The filtered query.
    pub query: &'a SelectStatement,
    /// The rows the PDP denies.
    pub over: &'a [&'a String],
    /// The rows the PDP allows that the query missed.
    pub under: &'a [&'a String],
}

impl Mismatch<'_> {
    /// `mismatch ACTION for PRINCIPAL: plan FILTER`.
    pub fn headline(&self) -> String {
        format!(
            "mismatch {} for {}: plan {}",
            self.action,
            self.principal.id(),
            self.shown
        )
    }
}

/// One comparison of plan-filtered rows with checked rows.
pub struct Oracle<'a> {
    /// The resource kind the plans are asked for.
    pub kind: &'a str,
    pub actions: &'a [&'a str],
    pub principals: &'a [Principal],
    pub resources: &'a [Resource],
    pub to_sql: PlanToSql,
    /// The query the filters are applied to (selecting the ids).
    pub base: SelectStatement,
    /// A query the database rejects denies (counted as failed, its allowed
    /// rows as under-granted); otherwise it fails the test.
    pub errors_deny: bool,
    /// Known mismatches, `(action, principal)`: counted apart.
    pub known_mismatches: &'a [(&'a str, &'a str)],
}

impl<'a> Oracle<'a> {
    /// The oracle of `policies/soundness.yaml` (every action of
    /// [`ACTIONS`]) on the `item` table, with declared column types or
    /// (`typed` false) unchecked columns; a query error fails the test.
    pub fn soundness(
        dialect: Dialect,
        typed: bool,
        principals: &'a [Principal],
        resources: &'a [Resource],
    ) -> Self {
        let mut base = sea_query::Query::select();
        base.column(Alias::new("id")).from(Alias::new("item"));
        Oracle {
            kind: "soundness",
            actions: ACTIONS,
            principals,
            resources,
            to_sql: soundness_to_sql(dialect, typed),
            base,
            errors_deny: false,
            known_mismatches: &[],
        }
    }

    /// Compares the plan-filtered rows with the checked rows for every
    /// principal and action.
    pub async fn run(
        &self,
        db: &impl Db,
        mut event: impl FnMut(Event<'_>),
    ) -> BTreeMap<String, Tally> {
        let client = super::client();
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        for principal in self.principals {
            let checked = check_all(principal, self.resources, self.actions).await;
            for &action in self.actions {
                let tally = tallies.entry(action.to_owned()).or_default();
                tally.cases += 1;
                let allowed = allowed(&checked, action);
                tally.allowed += allowed.len();
                let plan = client
                    .plan_resources(PlanResources::new(principal.clone(), self.kind).action(action))
                    .await
                    .expect("plan");
                let shown = match &plan.filter {
                    PlanFilter::Conditional(c) => c.to_string(),
                    other => format!("{other:?}"),
                };
                let filter = match self.to_sql.filter(&plan.filter) {
                    Ok(filter) => filter,
                    Err(e) => {
                        tally.refused += 1;
                        tally.example = format!("refused: {e}");
                        continue;
                    }
                };
                let mut query = self.base.clone();
                let may_match = filter.may_match();
                filter.apply(&mut query);
                let from_sql = if may_match {
                    match db.ids(&query).await {
                        Ok(ids) => ids,
                        Err(e) if self.errors_deny => {
                            // An error denies: count what it loses.
                            tally.failed += 1;
                            tally.under += allowed.len();
                            tally.example = format!("failed: {e}");
                            event(Event::Failed {
                                action,
                                principal,
                                error: &e,
                            });
                            continue;
                        }
                        Err(e) => panic!("{action}: {e}"),
                    }
                } else {
                    BTreeSet::new()
                };
                let over: Vec<_> = from_sql.difference(&allowed).collect();
                let under: Vec<_> = allowed.difference(&from_sql).collect();
                if self.known_mismatches.contains(&(action, principal.id())) {
                    tally.known += 1;
                } else {
                    tally.over += over.len();
                    tally.under += under.len();
                }
                tally.example = shown.clone();
                if !over.is_empty() || !under.is_empty() {
                    event(Event::Mismatch(Mismatch {
                        action,
                        principal,
                        shown: &shown,
                        query: &query,
                        over: &over,
                        under: &under,
                    }));
                }
            }
        }
        tallies
    }
}

/// Asks the PDP about every action on every resource for `principal`.
pub async fn check_all(
    principal: &Principal,
    resources: &[Resource],
    actions: &[&str],
) -> CheckResourcesResponse {
    let mut check = CheckResources::new(principal.clone());
    for resource in resources {
        check.push(resource.clone(), actions.iter().copied());
    }
    super::client().check_resources(check).await.expect("check")
}

/// The ids of the resources the PDP allows `action` on.
pub fn allowed(checked: &CheckResourcesResponse, action: &str) -> BTreeSet<String> {
    checked
        .results()
        .iter()
        .filter(|r| r.is_allowed(action))
        .map(|r| r.id().to_owned())
        .collect()
}

/// The controls' hand-written forms of conditions, `(action, condition,
/// over-grants)`, on the rows of `db`: each must over-grant (select rows
/// the PDP denies `principal`) or, if not `over-grants`, miss rows the PDP
/// allows. `what` names them; `widths` pads the action and the condition
/// in the printed line.
pub async fn assert_forms_fall_into_traps(
    db: &impl Db,
    principal: &Principal,
    resources: &[Resource],
    what: &str,
    widths: (usize, usize),
    forms: &[(&str, &str, bool)],
) {
    let actions: Vec<&str> = forms.iter().map(|(action, _, _)| *action).collect();
    let checked = check_all(principal, resources, &actions).await;
    let (action_width, plain_width) = widths;
    for &(action, plain, over_grants) in forms {
        let allowed = allowed(&checked, action);
        let from_sql = db.ids_where(plain).await;
        let over = from_sql.difference(&allowed).count();
        let under = allowed.difference(&from_sql).count();
        eprintln!(
            "  {what} of {action:action_width$} {plain:plain_width$} {over:3} over {under:3} under"
        );
        if over_grants {
            assert!(over > 0, "{action}: the {what} over-grants");
        } else {
            assert!(under > 0, "{action}: the {what} misses rows");
        }
    }
}

/// The sums of the tallies.
#[derive(Default)]
pub struct Totals {
    pub cases: usize,
    pub allowed: usize,
    pub over: usize,
    pub under: usize,
    pub refused: usize,
}

/// Prints the tally of every condition (`prefix` before the header;
/// with `failed_in`, the queries that database rejected) and returns the
/// sums.
pub fn report(prefix: &str, tallies: &BTreeMap<String, Tally>, failed_in: Option<&str>) -> Totals {
    let failed_header = failed_in.map_or(String::new(), |db| format!(", failed in {db}"));
    eprintln!(
        "{prefix}per condition: cases, PDP-allowed rows, over-granted, under-granted, refused{failed_header}"
    );
    let mut totals = Totals::default();
    for (action, t) in tallies {
        let failed = if failed_in.is_some() {
            format!(" {:2} failed", t.failed)
        } else {
            String::new()
        };
        eprintln!(
            "  {action:24} {:2} cases {:4} allowed {:3} over {:3} under {:2} refused{failed}  {}",
            t.cases, t.allowed, t.over, t.under, t.refused, t.example
        );
        totals.cases += t.cases;
        totals.over += t.over;
        totals.under += t.under;
        totals.allowed += t.allowed;
        totals.refused += t.refused;
    }
    totals
}

/// Asserts that no condition over- or under-grants, and that exactly the
/// conditions `refused` are refused (for every case). `prefix` starts each
/// message.
pub fn assert_sound(prefix: &str, tallies: &BTreeMap<String, Tally>, refused: &[&str]) {
    for (action, t) in tallies {
        assert_eq!(
            t.over, 0,
            "{prefix}{action}: rows the PDP denies were returned"
        );
        assert_eq!(
            t.under, 0,
            "{prefix}{action}: rows the PDP allows were missed"
        );
        if refused.contains(&action.as_str()) {
            assert_eq!(t.refused, t.cases, "{prefix}{action} must be refused");
        } else {
            assert_eq!(t.refused, 0, "{prefix}{action} was refused: {}", t.example);
        }
    }
}
