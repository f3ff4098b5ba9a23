//! Rendering for each dialect, and the errors that keep unsound plans out.

use cerbos_client::{Expression, Operand, PlanFilter};
use sea_query::{Alias, MysqlQueryBuilder, PostgresQueryBuilder, Query, SqliteQueryBuilder};

use super::*;

fn var(name: &str) -> Operand {
    Operand::Variable(format!("request.resource.attr.{name}"))
}

fn val(v: serde_json::Value) -> Operand {
    let v = cerbos_client::AttrValue::from(v);
    Operand::Value(v)
}

fn op(operator: &str, operands: Vec<Operand>) -> Operand {
    Operand::Expression(Expression {
        operator: operator.into(),
        operands,
    })
}

fn to_sql(dialect: Dialect) -> PlanToSql {
    let t = Alias::new("t");
    let mut to_sql = PlanToSql::new(dialect);
    for name in ["a", "b", "title", "flag"] {
        to_sql = to_sql.column(
            format!("request.resource.attr.{name}"),
            (t.clone(), Alias::new(name)),
        );
    }
    to_sql.joined_column(
        "request.resource.attr.dept",
        (Alias::new("u"), Alias::new("dept")),
        Join::new(
            Alias::new("u"),
            (t, Alias::new("owner")),
            (Alias::new("u"), Alias::new("id")),
        ),
    )
}

/// The SQL and bound values for `condition`.
fn render(dialect: Dialect, condition: Operand) -> (String, Vec<sea_query::Value>) {
    let filter = to_sql(dialect)
        .filter(&PlanFilter::Conditional(condition))
        .unwrap();
    let mut query = Query::select();
    query.column(Alias::new("id")).from(Alias::new("t"));
    filter.apply(&mut query);
    let (sql, values) = match dialect {
        Dialect::Sqlite => query.build(SqliteQueryBuilder),
        Dialect::Postgres => query.build(PostgresQueryBuilder),
        Dialect::MySql => query.build(MysqlQueryBuilder),
    };
    (sql, values.0)
}

fn where_of(dialect: Dialect, condition: Operand) -> String {
    let sql = render(dialect, condition).0;
    sql.split_once(" WHERE ")
        .map(|(_, w)| w.to_owned())
        .unwrap_or(sql)
}

#[test]
fn comparisons_are_mirrored_when_the_value_comes_first() {
    let w = |o: &str| where_of(Dialect::Sqlite, op(o, vec![val(1.into()), var("a")]));
    assert_eq!(w("lt"), r#""t"."a" > ?"#);
    assert_eq!(w("le"), r#""t"."a" >= ?"#);
    assert_eq!(w("gt"), r#""t"."a" < ?"#);
    assert_eq!(w("ge"), r#""t"."a" <= ?"#);
    assert_eq!(w("eq"), r#""t"."a" = ?"#);
    assert_eq!(w("ne"), r#""t"."a" <> ?"#);
    let cols = where_of(Dialect::Sqlite, op("lt", vec![var("a"), var("b")]));
    assert_eq!(cols, r#""t"."a" < "t"."b""#);
}

#[test]
fn nulls_logic_and_membership() {
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("ne", vec![var("a"), val(serde_json::Value::Null)])
        ),
        r#""t"."a" IS NOT NULL"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("eq", vec![var("a"), val(serde_json::Value::Null)])
        ),
        r#""t"."a" IS NULL"#
    );
    let tree = op(
        "or",
        vec![
            op("not", vec![op("eq", vec![var("a"), val("x".into())])]),
            op(
                "and",
                vec![
                    var("flag"),
                    op("in", vec![var("b"), val(serde_json::json!([1, 2.5, "z"]))]),
                ],
            ),
        ],
    );
    assert_eq!(
        where_of(Dialect::Postgres, tree),
        r#"(NOT "t"."a" = $1) OR ("t"."flag" = $2 AND "t"."b" IN ($3, $4, $5))"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("in", vec![var("a"), val(serde_json::json!([]))])
        ),
        "1 = 0"
    );
}

#[test]
fn joins_are_added_only_when_used() {
    let (sql, _) = render(
        Dialect::Sqlite,
        op("eq", vec![var("dept"), val("Sales".into())]),
    );
    assert_eq!(
        sql,
        r#"SELECT "id" FROM "t" LEFT JOIN "u" ON "t"."owner" = "u"."id" WHERE "u"."dept" = ?"#
    );
    let (sql, _) = render(Dialect::Sqlite, op("eq", vec![var("a"), val("x".into())]));
    assert!(!sql.contains("JOIN"), "{sql}");
}

#[test]
fn string_functions_are_case_sensitive_and_escaped() {
    let needle = || val(r"50%_\off".into());
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("startsWith", vec![var("title"), needle()])
        ),
        r#"instr("t"."title", ?) = ?"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("contains", vec![var("title"), needle()])
        ),
        r#"instr("t"."title", ?) > ?"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("endsWith", vec![var("title"), needle()])
        ),
        r#"substr("t"."title", ?) = ?"#
    );
    let (sql, values) = render(
        Dialect::Postgres,
        op("endsWith", vec![var("title"), needle()]),
    );
    assert!(
        sql.ends_with(r#""t"."title" LIKE $1 ESCAPE E'\\'"#),
        "{sql}"
    );
    assert_eq!(values, vec![sea_query::Value::from(r"%50\%\_\\off")]);
    let err = to_sql(Dialect::MySql)
        .filter(&PlanFilter::Conditional(op(
            "startsWith",
            vec![var("title"), needle()],
        )))
        .unwrap_err();
    assert!(err.to_string().contains("MySQL"), "{err}");
    // Every string starts with "".
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("startsWith", vec![var("title"), val("".into())])
        ),
        r#""t"."title" IS NOT NULL"#
    );
}

#[test]
fn hostile_values_are_bound_never_inlined() {
    let hostile = "x'; DROP TABLE t; --";
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let (sql, values) = render(dialect, op("eq", vec![var("a"), val(hostile.into())]));
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(values, vec![sea_query::Value::from(hostile)]);
    }
}

#[test]
fn unsound_plans_are_errors_that_name_the_problem() {
    let fails = |condition: Operand, needle: &str| {
        let err = to_sql(Dialect::Sqlite)
            .filter(&PlanFilter::Conditional(condition))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    };
    fails(
        op("eq", vec![var("nope"), val(1.into())]),
        "request.resource.attr.nope",
    );
    fails(op("exists", vec![var("a")]), "\"exists\"");
    fails(op("lambda", vec![]), "\"lambda\"");
    fails(op("add", vec![var("a"), var("b")]), "\"add\"");
    fails(op("in", vec![val("x".into()), var("a")]), "membership");
    fails(
        op("eq", vec![var("a"), val(serde_json::json!({"k": 1}))]),
        "not a scalar",
    );
    fails(
        op("eq", vec![var("a"), val(serde_json::json!([1]))]),
        "not a scalar",
    );
    fails(
        op("lt", vec![var("a"), val(serde_json::Value::Null)]),
        "null",
    );
    fails(op("eq", vec![val(1.into()), val(1.into())]), "not a column");
    fails(op("not", vec![]), "one operand");
    fails(op("and", vec![]), "no operands");
    fails(val(3.into()), "not a condition");
    fails(op("startsWith", vec![var("title"), var("a")]), "constant");
}

#[test]
fn always_allowed_and_denied() {
    let to_sql = to_sql(Dialect::Sqlite);
    assert!(matches!(
        to_sql.filter(&PlanFilter::AlwaysAllowed),
        Ok(Filter::All)
    ));
    let nothing = to_sql.filter(&PlanFilter::AlwaysDenied).unwrap();
    assert!(!nothing.may_match());
    let mut query = Query::select();
    query.column(Alias::new("id")).from(Alias::new("t"));
    nothing.apply(&mut query);
    assert!(query.to_string(SqliteQueryBuilder).ends_with("WHERE 1 = 0"));
}

#[test]
fn translators_and_filters_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PlanToSql>();
    send_sync::<Filter>();
    send_sync::<Error>();
}
