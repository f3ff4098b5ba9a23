//! Rendering for each dialect, and the errors that keep unsound plans out.

use cerbos_client::{Expression, Operand, PlanFilter};
use sea_query::{Alias, MysqlQueryBuilder, PostgresQueryBuilder, Query, SqliteQueryBuilder};

use super::*;
use cerbos_client::AttrValue;

fn var(name: &str) -> Operand {
    Operand::Variable(format!("request.resource.attr.{name}"))
}

fn val(v: serde_json::Value) -> Operand {
    let v = cerbos_client::AttrValue::try_from(v).expect("an exact test constant");
    Operand::Value(v)
}

fn op(operator: &str, operands: Vec<Operand>) -> Operand {
    Operand::Expression(Expression {
        operator: operator.into(),
        operands,
    })
}

fn to_sql(dialect: Dialect) -> PlanToSql {
    let t = || Alias::new("t");
    let col = |name: &str| (t(), Alias::new(name));
    let attr = |name: &str| format!("request.resource.attr.{name}");
    PlanToSql::new(dialect)
        .column(attr("a"), Column::string(col("a")))
        .column(attr("title"), Column::string(col("title")))
        .column(attr("b"), Column::integer(col("b")))
        .column(attr("c"), Column::integer(col("c")))
        .column(attr("d"), Column::double(col("d")))
        .column(attr("flag"), Column::bool(col("flag")))
        .column(attr("ts"), Column::timestamp(col("ts")))
        .column(attr("tags"), Column::json(col("tags")))
        // Omitted when NULL: every leaf is plain SQL (unknown on NULL).
        .column(
            attr("n"),
            Column::integer(col("n")).null_as(NullAs::Omitted),
        )
        .column(attr("o"), Column::string(col("o")).null_as(NullAs::Omitted))
        // A bare column reference: unchecked.
        .column(attr("u"), col("u"))
        .joined_column(
            attr("dept"),
            Column::string((Alias::new("u"), Alias::new("dept"))).null_as(NullAs::Omitted),
            Join::new(
                Alias::new("u"),
                (t(), Alias::new("owner")),
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

fn nan() -> Operand {
    Operand::Value(f64::NAN.into())
}

fn null() -> Operand {
    val(serde_json::Value::Null)
}

fn refused(dialect: Dialect, condition: Operand) -> String {
    to_sql(dialect)
        .filter(&PlanFilter::Conditional(condition))
        .unwrap_err()
        .to_string()
}

#[test]
fn comparisons_are_mirrored_when_the_value_comes_first() {
    let w = |o: &str| where_of(Dialect::Sqlite, op(o, vec![val(1.into()), var("n")]));
    assert_eq!(w("lt"), r#""t"."n" > ?"#);
    assert_eq!(w("le"), r#""t"."n" >= ?"#);
    assert_eq!(w("gt"), r#""t"."n" < ?"#);
    assert_eq!(w("ge"), r#""t"."n" <= ?"#);
    assert_eq!(w("eq"), r#""t"."n" = ?"#);
    assert_eq!(w("ne"), r#""t"."n" <> ?"#);
    let cols = where_of(Dialect::Sqlite, op("lt", vec![var("b"), var("n")]));
    // Integer columns compare as doubles, as CEL reads them.
    assert_eq!(cols, r#"(CAST("t"."b" AS REAL)) < (CAST("t"."n" AS REAL))"#);
}

#[test]
fn a_constant_of_another_type_is_decided_as_cel_decides_it() {
    let w = |condition| where_of(Dialect::Sqlite, condition);
    // A string column never equals a number: no row, whatever SQLite's
    // affinity would say about '2' = 2; `!=` keeps every row, NULL ones too
    // (`null != 2` is true in CEL).
    assert_eq!(w(op("eq", vec![var("a"), val(2.into())])), "1 = 0");
    assert_eq!(w(op("ne", vec![var("a"), val(2.into())])), "1 = 1");
    // Ordering a string and a number is an evaluation error: unknown, also
    // under `not`.
    assert_eq!(w(op("lt", vec![var("a"), val(5.into())])), "NULL");
    assert_eq!(
        w(op("not", vec![op("lt", vec![var("a"), val(5.into())])])),
        "NOT (NULL)"
    );
    // A bool is not an int, a number column is not a string.
    assert_eq!(w(op("eq", vec![var("flag"), val(1.into())])), "1 = 0");
    assert_eq!(w(op("eq", vec![var("b"), val("2".into())])), "1 = 0");
    assert_eq!(
        w(op("in", vec![var("a"), val(serde_json::json!([2, 5]))])),
        "1 = 0"
    );
    assert_eq!(
        w(op("in", vec![var("a"), val(serde_json::json!([2, "5"]))])),
        r#""t"."a" IS NOT NULL AND ("t"."a" COLLATE BINARY) IN (?)"#
    );
    // A missing attribute is an error, not a non-match: unknown on NULL.
    assert_eq!(
        w(op("ne", vec![var("o"), val(2.into())])),
        r#"(CASE WHEN ("t"."o" IS NULL) THEN NULL ELSE 1 = 1 END)"#
    );
    // Integer and double columns compare numerically with any number.
    let (sql, values) = render(Dialect::Sqlite, op("lt", vec![var("b"), val(2.5.into())]));
    assert!(sql.ends_with(r#""t"."b" < ?"#), "{sql}");
    assert_eq!(values, vec![sea_query::Value::from(2.5)]);
}

#[test]
fn explicit_nulls_keep_the_rows_cel_keeps() {
    let w = |condition| where_of(Dialect::Sqlite, condition);
    // `null != "x"` is true, `null == "x"` false, also under `not`.
    assert_eq!(
        w(op("ne", vec![var("a"), val("x".into())])),
        r#""t"."a" IS NULL OR ("t"."a" COLLATE BINARY) <> ?"#
    );
    assert_eq!(
        w(op("not", vec![op("eq", vec![var("a"), val("x".into())])])),
        r#"NOT ("t"."a" IS NOT NULL AND ("t"."a" COLLATE BINARY) = ?)"#
    );
    assert_eq!(
        w(op(
            "not",
            vec![op("in", vec![var("b"), val(serde_json::json!([1, 2]))])]
        )),
        r#"NOT ("t"."b" IS NOT NULL AND "t"."b" IN (?, ?))"#
    );
    assert_eq!(
        w(op("in", vec![var("b"), val(serde_json::json!([1, null]))])),
        r#""t"."b" IS NULL OR "t"."b" IN (?)"#
    );
    // `null < 1` is an evaluation error: plain SQL (unknown on NULL).
    assert_eq!(w(op("lt", vec![var("b"), val(1.into())])), r#""t"."b" < ?"#);
    assert_eq!(w(op("eq", vec![var("b"), null()])), r#""t"."b" IS NULL"#);
    assert_eq!(
        w(op("ne", vec![var("b"), null()])),
        r#""t"."b" IS NOT NULL"#
    );
    // Omitted: comparing with null means something else in CEL.
    let err = refused(Dialect::Sqlite, op("eq", vec![var("o"), null()]));
    assert!(err.contains("NullAs::Omitted"), "{err}");
    // `x != null` is exact: true where present, an error where missing.
    assert_eq!(
        w(op("ne", vec![null(), var("n")])),
        r#"(CASE WHEN ("t"."n" IS NULL) THEN NULL ELSE 1 = 1 END)"#
    );
}

#[test]
fn non_finite_numbers_stay_numbers() {
    let w = |condition| where_of(Dialect::Sqlite, condition);
    // NaN equals nothing, orders with nothing.
    assert_eq!(w(op("eq", vec![var("d"), nan()])), "1 = 0");
    assert_eq!(w(op("ne", vec![var("d"), nan()])), "1 = 1");
    assert_eq!(
        w(op("lt", vec![nan(), var("d")])),
        r#"(CASE WHEN ("t"."d" IS NULL) THEN NULL ELSE 1 = 0 END)"#
    );
    assert_eq!(
        w(op(
            "in",
            vec![
                var("n"),
                Operand::Value(AttrValue::List(vec![f64::NAN.into()]))
            ]
        )),
        r#"(CASE WHEN ("t"."n" IS NULL) THEN NULL ELSE 1 = 0 END)"#
    );
    // Infinity is bound as a double.
    let (sql, values) = render(
        Dialect::Sqlite,
        op("lt", vec![var("n"), Operand::Value(f64::INFINITY.into())]),
    );
    assert!(sql.ends_with(r#""t"."n" < ?"#), "{sql}");
    assert_eq!(values, vec![sea_query::Value::from(f64::INFINITY)]);
    let err = refused(
        Dialect::MySql,
        op(
            "lt",
            vec![var("n"), Operand::Value(f64::NEG_INFINITY.into())],
        ),
    );
    assert!(err.contains("MySQL"), "{err}");
    // PostgreSQL orders 'NaN' above every number; CEL does not.
    assert_eq!(
        where_of(Dialect::Postgres, op("gt", vec![var("d"), val(1.into())])),
        r#""t"."d" > $1 AND "t"."d" <> ('NaN'::float8)"#
    );
}

#[test]
fn postgres_nan_doubles_match_no_equality_or_order() {
    let w = |o: &str| where_of(Dialect::Postgres, op(o, vec![var("d"), var("b")]));
    // Explicit nulls: null == null, as in CEL.
    assert_eq!(
        w("eq"),
        r#"(CASE WHEN ("t"."d" IS NULL AND "t"."b" IS NULL) THEN 1 = 1 WHEN ("t"."d" IS NULL OR "t"."b" IS NULL) THEN 1 = 0 ELSE "t"."d" = (CAST("t"."b" AS float8)) AND "t"."d" <> ('NaN'::float8) END)"#
    );
    assert_eq!(
        w("lt"),
        r#""t"."d" < (CAST("t"."b" AS float8)) AND "t"."d" <> ('NaN'::float8)"#
    );
    // `NaN != x` is true in CEL, and PostgreSQL's NaN <> x can only be
    // false for another NaN: fewer rows, never more.
    assert_eq!(
        w("ne"),
        r#"(CASE WHEN ("t"."d" IS NULL AND "t"."b" IS NULL) THEN 1 = 0 WHEN ("t"."d" IS NULL OR "t"."b" IS NULL) THEN 1 = 1 ELSE "t"."d" <> (CAST("t"."b" AS float8)) END)"#
    );
    assert_eq!(
        where_of(Dialect::Sqlite, op("eq", vec![var("d"), var("b")])),
        r#"(CASE WHEN ("t"."d" IS NULL AND "t"."b" IS NULL) THEN 1 = 1 WHEN ("t"."d" IS NULL OR "t"."b" IS NULL) THEN 1 = 0 ELSE "t"."d" = (CAST("t"."b" AS REAL)) END)"#
    );
    // Integers beyond 2^53 are doubles in CEL: SQLite reads the column
    // as one for such a constant (PostgreSQL compares int8 and float8
    // as doubles).
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("eq", vec![var("b"), val(9_007_199_254_740_992_i64.into())])
        ),
        r#""t"."b" IS NOT NULL AND (CAST("t"."b" AS REAL)) = ?"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("eq", vec![var("b"), val(9_007_199_254_740_990_i64.into())])
        ),
        r#""t"."b" IS NOT NULL AND "t"."b" = ?"#
    );
}

#[test]
fn strings_compare_bytes_in_every_dialect() {
    let eq = || op("eq", vec![var("o"), val("Bob".into())]);
    assert_eq!(
        where_of(Dialect::Sqlite, eq()),
        r#"("t"."o" COLLATE BINARY) = ?"#
    );
    assert_eq!(
        where_of(Dialect::Postgres, eq()),
        r#"("t"."o" COLLATE "C") = $1"#
    );
    assert_eq!(
        where_of(Dialect::MySql, eq()),
        "(CAST(`t`.`o` AS BINARY)) = (CAST(? AS BINARY))"
    );
}

#[test]
fn logic_and_joins() {
    let tree = op(
        "or",
        vec![
            op("not", vec![op("eq", vec![var("o"), val("x".into())])]),
            op(
                "and",
                vec![
                    var("flag"),
                    op("in", vec![var("n"), val(serde_json::json!([1, 2.5]))]),
                ],
            ),
        ],
    );
    assert_eq!(
        where_of(Dialect::Postgres, tree),
        r#"(NOT ("t"."o" COLLATE "C") = $1) OR ("t"."flag" = $2 AND "t"."n" IN ($3, $4))"#
    );
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("in", vec![var("n"), val(serde_json::json!([]))])
        ),
        r#"(CASE WHEN ("t"."n" IS NULL) THEN NULL ELSE 1 = 0 END)"#
    );
    let (sql, _) = render(
        Dialect::Sqlite,
        op("eq", vec![var("dept"), val("Sales".into())]),
    );
    assert_eq!(
        sql,
        // Unknown where the joined row is missing, also under `!`.
        r#"SELECT "id" FROM "t" LEFT JOIN "u" ON "t"."owner" = "u"."id" WHERE (CASE WHEN ("u"."id" IS NOT NULL) THEN ("u"."dept" COLLATE BINARY) = ? ELSE NULL END)"#
    );
    let (sql, _) = render(Dialect::Sqlite, op("eq", vec![var("o"), val("x".into())]));
    assert!(!sql.contains("JOIN"), "{sql}");
}

#[test]
fn string_functions_are_exact_and_case_sensitive() {
    let needle = || val("50%_\\off\u{0}é".into());
    let w = |o: &str| where_of(Dialect::Sqlite, op(o, vec![var("title"), needle()]));
    assert_eq!(
        w("startsWith"),
        r#"CASE WHEN CAST("t"."title" AS BLOB) = X'' THEN 1 = 0 ELSE substr(CAST("t"."title" AS BLOB), 1, ?) = CAST(? AS BLOB) END"#
    );
    assert_eq!(
        w("endsWith"),
        r#"CASE WHEN CAST("t"."title" AS BLOB) = X'' THEN 1 = 0 ELSE substr(CAST("t"."title" AS BLOB), ?) = CAST(? AS BLOB) END"#
    );
    assert_eq!(
        w("contains"),
        r#"instr(CAST("t"."title" AS BLOB), CAST(? AS BLOB)) > 0"#
    );
    // Lengths in bytes for SQLite.
    let (_, values) = render(
        Dialect::Sqlite,
        op("endsWith", vec![var("title"), needle()]),
    );
    assert_eq!(values[0], sea_query::Value::from(-11i64));
    let (sql, values) = render(
        Dialect::Postgres,
        op("endsWith", vec![var("title"), needle()]),
    );
    assert!(
        sql.ends_with(r#"right("t"."title", $1) COLLATE "C" = $2"#),
        "{sql}"
    );
    // Lengths in characters for PostgreSQL.
    assert_eq!(values[0], sea_query::Value::from(10i32));
    assert_eq!(
        where_of(
            Dialect::Postgres,
            op("startsWith", vec![var("title"), needle()])
        ),
        r#"starts_with("t"."title" COLLATE "C", $1)"#
    );
    assert_eq!(
        where_of(
            Dialect::Postgres,
            op("contains", vec![var("title"), needle()])
        ),
        r#"strpos("t"."title" COLLATE "C", $1) > 0"#
    );
    let err = refused(
        Dialect::MySql,
        op("startsWith", vec![var("title"), needle()]),
    );
    assert!(err.contains("MySQL"), "{err}");
    // Every string starts with ""; null.startsWith("") is an error.
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("startsWith", vec![var("title"), val("".into())])
        ),
        r#"(CASE WHEN ("t"."title" IS NULL) THEN NULL ELSE 1 = 1 END)"#
    );
    let err = refused(
        Dialect::Sqlite,
        op("endsWith", vec![var("b"), val("x".into())]),
    );
    assert!(err.contains("not a string"), "{err}");
}

#[test]
fn unchecked_columns_take_the_constants_type() {
    let w = |condition| where_of(Dialect::Sqlite, condition);
    assert_eq!(
        w(op("eq", vec![var("u"), val(2.into())])),
        r#""t"."u" IS NOT NULL AND "t"."u" = ?"#
    );
    assert_eq!(
        w(op("eq", vec![var("u"), val("2".into())])),
        r#""t"."u" IS NOT NULL AND ("t"."u" COLLATE BINARY) = ?"#
    );
    assert_eq!(
        w(op("in", vec![var("u"), val(serde_json::json!([1, "z"]))])),
        r#""t"."u" IS NOT NULL AND "t"."u" IN (?, ?)"#
    );
    assert_eq!(w(var("u")), r#""t"."u" = ?"#);
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
        let err = refused(Dialect::Sqlite, condition);
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
        op("in", vec![var("a"), val(serde_json::json!([[1]]))]),
        "not a scalar",
    );
    fails(op("lt", vec![var("a"), null()]), "null");
    // Two constants are decided here.
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op("eq", vec![val(1.into()), val(1.into())])
        ),
        "1 = 1"
    );
    fails(op("not", vec![]), "one operand");
    fails(op("and", vec![]), "no operands");
    fails(val(3.into()), "not a condition");
    fails(var("a"), "not a condition");
    fails(op("startsWith", vec![var("title"), var("u")]), "unchecked");
    // SQL compares timestamps and JSON unlike CEL (strings, lists).
    fails(op("lt", vec![var("ts"), val("2024".into())]), "Timestamp");
    fails(op("eq", vec![var("tags"), val("x".into())]), "Json");
    fails(
        op("in", vec![var("ts"), val(serde_json::json!(["x"]))]),
        "Timestamp",
    );
    // A string column never equals a number column (null equals null).
    assert_eq!(
        where_of(Dialect::Sqlite, op("eq", vec![var("a"), var("b")])),
        r#"(CASE WHEN ("t"."a" IS NULL AND "t"."b" IS NULL) THEN 1 = 1 WHEN ("t"."a" IS NULL OR "t"."b" IS NULL) THEN 1 = 0 ELSE 1 = 0 END)"#
    );
    fails(op("eq", vec![var("a"), var("u")]), "one comparable type");
    // but their null checks are fine
    assert_eq!(
        where_of(Dialect::Sqlite, op("ne", vec![var("ts"), null()])),
        r#""t"."ts" IS NOT NULL"#
    );
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

fn list_sql(dialect: Dialect) -> PlanToSql {
    let t = || Alias::new("t");
    let col = |name: &str| (t(), Alias::new(name));
    let attr = |name: &str| format!("request.resource.attr.{name}");
    PlanToSql::new(dialect)
        .column(attr("a"), Column::string(col("a")))
        .column(attr("tags"), Column::string_list(col("tags")))
        .column(attr("nums"), Column::number_list(col("nums")))
        .column(
            attr("members"),
            Column::related_list(
                ElementType::String,
                Relation::new(
                    Alias::new("member"),
                    Alias::new("item_id"),
                    col("id"),
                    Alias::new("name"),
                ),
            ),
        )
}

fn list_where(dialect: Dialect, condition: Operand) -> (String, Vec<sea_query::Value>) {
    let filter = list_sql(dialect)
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
    let sql = sql
        .strip_prefix(r#"SELECT "id" FROM "t" WHERE "#)
        .unwrap_or(&sql)
        .to_owned();
    (sql, values.0)
}

fn list_refused(condition: Operand) -> String {
    list_sql(Dialect::Sqlite)
        .filter(&PlanFilter::Conditional(condition))
        .unwrap_err()
        .to_string()
}

fn lambda_of(body: Operand) -> Operand {
    op("lambda", vec![body, Operand::Variable("t".into())])
}

fn item() -> Operand {
    Operand::Variable("t".into())
}

#[test]
fn list_membership_reads_typed_items() {
    let (sql, values) = list_where(
        Dialect::Sqlite,
        op("in", vec![val("a".into()), var("tags")]),
    );
    // NULL and non-arrays are unknown; items are typed by their JSON type.
    assert!(
        sql.starts_with(
            r#"((CASE WHEN json_type("t"."tags") = 'array' THEN (SELECT CASE WHEN MAX("x") = 1"#
        ),
        "{sql}"
    );
    assert!(
        sql.contains(r#"FROM json_each("t"."tags")) AS "cerbos_e""#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"("cerbos_e"."s" COLLATE BINARY) = ?"#),
        "{sql}"
    );
    // Numbers as CEL reads them: doubles (2^53 + 1 is 2^53).
    assert!(
        sql.contains(r#"WHEN "type" IN ('integer', 'real') THEN CAST("value" AS REAL) END"#),
        "{sql}"
    );
    assert!(!sql.contains("'a'"), "bound, never inlined: {sql}");
    assert!(values.contains(&"a".into()), "{values:?}");

    let (sql, _) = list_where(
        Dialect::Postgres,
        op("in", vec![val("a".into()), var("tags")]),
    );
    assert!(
        sql.starts_with(r#"((CASE WHEN jsonb_typeof(CAST("t"."tags" AS jsonb)) = 'array'"#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"FROM jsonb_array_elements(CAST("t"."tags" AS jsonb)) AS "cerbos_a"("j")"#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"("cerbos_e"."s" COLLATE "C") = $1"#),
        "{sql}"
    );

    // hasIntersection either way round, and a column in a list.
    for condition in [
        op(
            "hasIntersection",
            vec![var("tags"), val(serde_json::json!(["a", "b"]))],
        ),
        op(
            "hasIntersection",
            vec![val(serde_json::json!(["a", "b"])), var("tags")],
        ),
        op("in", vec![var("a"), var("tags")]),
    ] {
        let (sql, _) = list_where(Dialect::Sqlite, condition);
        assert!(sql.contains("json_each"), "{sql}");
    }
}

#[test]
fn an_omitted_attribute_in_a_list_is_an_error_even_for_an_empty_list() {
    let to_sql = list_sql(Dialect::Sqlite).column(
        "request.resource.attr.o",
        Column::string((Alias::new("t"), Alias::new("o"))).null_as(NullAs::Omitted),
    );
    let filter = to_sql
        .filter(&PlanFilter::Conditional(op(
            "in",
            vec![var("o"), var("tags")],
        )))
        .unwrap();
    let mut query = Query::select();
    query.column(Alias::new("id")).from(Alias::new("t"));
    filter.apply(&mut query);
    let sql = query.to_string(SqliteQueryBuilder);
    assert!(
        sql.contains(r#"WHERE (CASE WHEN ("t"."o" IS NULL) THEN NULL ELSE ((CASE WHEN json_type"#),
        "{sql}"
    );
}

#[test]
fn list_sizes_compare_as_cel_ints() {
    let size = || op("size", vec![var("tags")]);
    assert_eq!(
        list_where(Dialect::Sqlite, op("gt", vec![size(), val(1.into())])).0,
        r#"((CASE WHEN json_type("t"."tags") = 'array' THEN json_array_length("t"."tags") END)) > ?"#
    );
    // Mirrored.
    assert_eq!(
        list_where(Dialect::Postgres, op("lt", vec![val(1.into()), size()])).0,
        r#"((CASE WHEN jsonb_typeof(CAST("t"."tags" AS jsonb)) = 'array' THEN jsonb_array_length(CAST("t"."tags" AS jsonb)) END)) > $1"#
    );
    // A string is never equal to a size, and not ordered with it.
    assert_eq!(
        list_where(Dialect::Sqlite, op("ne", vec![size(), val("1".into())])).0,
        r#"(CASE WHEN (((CASE WHEN json_type("t"."tags") = 'array' THEN json_array_length("t"."tags") END)) IS NULL) THEN NULL ELSE 1 = 1 END)"#
    );
    assert_eq!(
        list_where(Dialect::Sqlite, op("lt", vec![size(), val("1".into())])).0,
        "NULL"
    );
    // A relation counts its rows.
    assert!(
        list_where(
            Dialect::Sqlite,
            op("ge", vec![op("size", vec![var("members")]), val(2.into())])
        )
        .0
        .contains(r#"FROM "member" AS "cerbos_s" WHERE "cerbos_s"."item_id" = "t"."id""#)
    );
}

#[test]
fn collection_macros_fold_as_cel() {
    let starts = || lambda_of(op("startsWith", vec![item(), val("a".into())]));
    let (exists, _) = list_where(Dialect::Sqlite, op("exists", vec![var("tags"), starts()]));
    assert!(
        exists.contains(
            r#"CASE WHEN MAX("x") = 1 THEN 1 WHEN COUNT(*) > COUNT("x") THEN NULL ELSE 0 END"#
        ),
        "{exists}"
    );
    // An item of another JSON type is an error for startsWith; a nested
    // array or object too.
    assert!(
        exists.contains("WHEN 'n' THEN NULL WHEN 'b' THEN NULL"),
        "{exists}"
    );
    assert!(exists.contains("WHEN 'o' THEN NULL END"), "{exists}");
    let (all, _) = list_where(Dialect::Sqlite, op("all", vec![var("tags"), starts()]));
    assert!(all.contains(r#"WHEN MIN("x") = 0 THEN 0"#), "{all}");
    let (one, _) = list_where(
        Dialect::Sqlite,
        op("exists_one", vec![var("tags"), starts()]),
    );
    assert!(
        one.contains(
            r#"CASE WHEN COUNT(*) > COUNT("x") THEN NULL WHEN SUM("x") = 1 THEN 1 ELSE 0 END"#
        ),
        "{one}"
    );
    let (filter, _) = list_where(
        Dialect::Postgres,
        op(
            "ge",
            vec![
                op("size", vec![op("filter", vec![var("tags"), starts()])]),
                val(2.into()),
            ],
        ),
    );
    assert!(filter.contains("COALESCE(SUM(\"x\"), 0)"), "{filter}");
    // `t == "a"` on a number item is false, not an error.
    let (eq, _) = list_where(
        Dialect::Sqlite,
        op(
            "exists",
            vec![
                var("tags"),
                lambda_of(op("eq", vec![item(), val("a".into())])),
            ],
        ),
    );
    assert!(
        eq.contains("WHEN 'n' THEN CASE CAST((1 = 0) AS boolean)"),
        "{eq}"
    );
    // A relation: a correlated subquery, no join; PostgreSQL types the
    // unused item columns.
    let (members, _) = list_where(
        Dialect::Postgres,
        op("exists", vec![var("members"), starts()]),
    );
    assert!(
        members.contains(
            r#"(SELECT "cerbos_s"."name" AS "s", NULL::float8 AS "n", NULL::boolean AS "b", CASE WHEN "cerbos_s"."name" IS NULL THEN 'z' ELSE 's' END AS "t" FROM "member" AS "cerbos_s" WHERE "cerbos_s"."item_id" = "t"."id") AS "cerbos_e""#
        ),
        "{members}"
    );
    assert!(!members.contains("JOIN"), "{members}");
}

#[test]
fn unsupported_list_shapes_are_refused_by_name() {
    let fails = |condition: Operand, needle: &str| {
        let err = list_refused(condition);
        assert!(err.contains(needle), "{err}");
    };
    let eq_a = || lambda_of(op("eq", vec![item(), val("a".into())]));
    fails(
        op(
            "in",
            vec![
                val("A".into()),
                op(
                    "map",
                    vec![var("tags"), lambda_of(op("upperAscii", vec![item()]))],
                ),
            ],
        ),
        "\"map\"",
    );
    fails(
        op(
            "eq",
            vec![
                op(
                    "size",
                    vec![op(
                        "except",
                        vec![var("tags"), val(serde_json::json!(["a"]))],
                    )],
                ),
                val(0.into()),
            ],
        ),
        "except",
    );
    fails(
        op("eq", vec![var("tags"), val(serde_json::json!(["a"]))]),
        "not a scalar",
    );
    fails(op("eq", vec![var("members"), null()]), "relation");
    fails(op("exists", vec![var("a"), eq_a()]), "not a list column");
    fails(
        op("exists", vec![var("tags"), val(1.into())]),
        "not a lambda",
    );
    fails(
        op("exists", vec![var("nope"), eq_a()]),
        "request.resource.attr.nope",
    );
    fails(
        op(
            "exists",
            vec![
                var("tags"),
                lambda_of(op("add", vec![item(), val(1.into())])),
            ],
        ),
        "\"add\"",
    );
    fails(
        op("hasIntersection", vec![var("tags"), var("nums")]),
        "hasIntersection",
    );
    fails(
        op("eq", vec![op("size", vec![var("tags")]), var("a")]),
        "only constants",
    );
    fails(op("size", vec![var("a")]), "\"size\"");
    // A relation key without its table would be read from the related
    // table inside the subquery.
    let bare = PlanToSql::new(Dialect::Sqlite).column(
        "request.resource.attr.members",
        Column::related_list(
            ElementType::String,
            Relation::new(
                Alias::new("member"),
                Alias::new("item_id"),
                Alias::new("id"),
                Alias::new("name"),
            ),
        ),
    );
    let err = bare
        .filter(&PlanFilter::Conditional(op(
            "in",
            vec![val("a".into()), var("members")],
        )))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not name its table"), "{err}");
    let mysql = PlanToSql::new(Dialect::MySql).column(
        "request.resource.attr.tags",
        Column::string_list(Alias::new("tags")),
    );
    let err = mysql
        .filter(&PlanFilter::Conditional(op(
            "in",
            vec![val("a".into()), var("tags")],
        )))
        .unwrap_err()
        .to_string();
    assert!(err.contains("MySQL"), "{err}");
}

#[test]
fn computed_values_render_per_dialect() {
    let add = || op("add", vec![var("d"), val(0.5.into())]);
    let gt = |dialect| where_of(dialect, op("gt", vec![add(), val(2.into())]));
    // SQLite: no NaN, so a flag says where the result is NaN.
    let sqlite = gt(Dialect::Sqlite);
    assert!(sqlite.contains("9e999"), "{sqlite}");
    assert!(
        sqlite.contains(r#"("t"."d" + CAST(? AS REAL))"#),
        "{sqlite}"
    );
    // `d + 1`: was it `1` (a CEL error) or `1.0`? Only a declaration says.
    let whole = op(
        "gt",
        vec![op("add", vec![var("d"), val(1.into())]), val(2.into())],
    );
    assert!(refused(Dialect::Sqlite, whole.clone()).contains("trust_arithmetic_literals"));
    let trusting = to_sql(Dialect::Sqlite).trust_arithmetic_literals();
    assert!(trusting.filter(&PlanFilter::Conditional(whole)).is_ok());
    // PostgreSQL guards its own 'NaN'.
    let postgres = gt(Dialect::Postgres);
    assert!(postgres.contains("CAST('NaN' AS float8)"), "{postgres}");
    // MySQL: division by zero is NULL there, and no NaN: refused.
    let err = refused(Dialect::MySql, op("gt", vec![add(), val(2.into())]));
    assert!(err.contains("MySQL"), "{err}");
    // Two constants fold; NaN compares as CEL does.
    let nan = op("div", vec![val(0.0.into()), val(0.0.into())]);
    let folded = |condition| {
        let filter = to_sql(Dialect::Sqlite)
            .trust_arithmetic_literals()
            .filter(&PlanFilter::Conditional(condition))
            .unwrap();
        let mut query = Query::select();
        query.column(Alias::new("id")).from(Alias::new("t"));
        filter.apply(&mut query);
        query.to_string(SqliteQueryBuilder)
    };
    assert!(folded(op("ne", vec![nan.clone(), val(1.into())])).ends_with("WHERE 1 = 1"));
    assert!(folded(op("eq", vec![nan, val(1.into())])).ends_with("WHERE 1 = 0"));
    // A SQLite number compared with a string: never equal, but unknown
    // where the number is an error (`n` omitted), not where it is NaN.
    let mismatch = op(
        "ne",
        vec![op("div", vec![var("d"), var("n")]), val("x".into())],
    );
    let w = where_of(Dialect::Sqlite, mismatch);
    assert!(w.contains("THEN NULL") && w.contains("IS NULL"), "{w}");
    // `if` as a condition: an error in the condition is unknown (no ELSE).
    let ternary = op(
        "if",
        vec![
            var("flag"),
            op("eq", vec![var("a"), val("x".into())]),
            var("flag"),
        ],
    );
    let w = where_of(Dialect::Sqlite, ternary);
    assert!(w.starts_with("(CASE WHEN") && !w.contains("ELSE"), "{w}");
    // Concatenation needs declared strings; MySQL refuses it.
    let concat = op(
        "eq",
        vec![op("add", vec![var("a"), var("title")]), val("xy".into())],
    );
    assert!(where_of(Dialect::Postgres, concat.clone()).contains("||"));
    assert!(refused(Dialect::MySql, concat).contains("MySQL"));
    let unchecked = op(
        "eq",
        vec![op("add", vec![var("u"), var("a")]), val("xy".into())],
    );
    assert!(refused(Dialect::Sqlite, unchecked).contains("unchecked"));
    // timestamp() of a timestamptz column: PostgreSQL only.
    let ts = op(
        "lt",
        vec![
            op("timestamp", vec![var("ts")]),
            op(
                "timestamp",
                vec![val("2024-06-01T00:00:00.0000005Z".into())],
            ),
        ],
    );
    // Between two microseconds: `<` is `<=` the one below.
    assert!(where_of(Dialect::Postgres, ts.clone()).contains("<="));
    assert!(refused(Dialect::Sqlite, ts).contains("unix_micros"));
    // Casts SQL does not do as CEL does are refused by name.
    for cast in ["int", "double"] {
        let e = op("gt", vec![op(cast, vec![var("a")]), val(1.into())]);
        assert!(refused(Dialect::Sqlite, e).contains(cast));
    }
    // string() of a bool is the bool, never SQL's rendering of it.
    assert_eq!(
        where_of(
            Dialect::Sqlite,
            op(
                "eq",
                vec![op("string", vec![var("flag")]), val("true".into())]
            )
        ),
        r#""t"."flag" = ?"#
    );
}

#[test]
fn hierarchies_compare_bytes_with_constants() {
    let hierarchy = |x: Operand| op("hierarchy", vec![x]);
    let constant = || hierarchy(val("a.b.c".into()));
    // The column is one of "a", "a.b".
    let (sql, values) = render(
        Dialect::Sqlite,
        op("ancestorOf", vec![hierarchy(var("a")), constant()]),
    );
    assert!(sql.contains("IN (?, ?)"), "{sql}");
    assert_eq!(
        values,
        vec![sea_query::Value::from("a"), sea_query::Value::from("a.b")]
    );
    // Below "a.b.c": starts with "a.b.c." (no LIKE).
    let (sql, values) = render(
        Dialect::Postgres,
        op("descendentOf", vec![hierarchy(var("a")), constant()]),
    );
    assert!(
        sql.contains("starts_with") && !sql.contains("LIKE"),
        "{sql}"
    );
    assert!(values.contains(&sea_query::Value::from("a.b.c.")));
    // Two columns: refused.
    let err = refused(
        Dialect::Sqlite,
        op(
            "overlaps",
            vec![hierarchy(var("a")), hierarchy(var("title"))],
        ),
    );
    assert!(err.contains("two hierarchies of columns"), "{err}");
}

#[test]
fn attrs_maps_each_attribute_to_its_typed_column_of_the_table() {
    let by_attrs = PlanToSql::new(Dialect::Sqlite).attrs(
        "doc",
        [
            ("owner_id", ColumnType::String),
            ("public", ColumnType::Bool),
        ],
    );
    let by_hand = PlanToSql::new(Dialect::Sqlite)
        .column(
            "request.resource.attr.owner_id",
            Column::string((Alias::new("doc"), Alias::new("owner_id"))),
        )
        .column(
            "request.resource.attr.public",
            Column::bool((Alias::new("doc"), Alias::new("public"))),
        );
    let condition = op(
        "and",
        vec![
            op("eq", vec![var("owner_id"), val(serde_json::json!("2"))]),
            op("eq", vec![var("public"), val(serde_json::json!(true))]),
        ],
    );
    let sql = |to_sql: &PlanToSql| {
        let plan = PlanFilter::Conditional(condition.clone());
        let mut query = Query::select();
        query.column(Alias::new("id")).from(Alias::new("doc"));
        to_sql.filter(&plan).unwrap().apply(&mut query);
        query.to_string(SqliteQueryBuilder)
    };
    assert_eq!(sql(&by_attrs), sql(&by_hand));
    assert!(
        sql(&by_attrs).contains(r#"("doc"."owner_id" COLLATE BINARY) = '2'"#),
        "{}",
        sql(&by_attrs)
    );
    // A typed column refuses what its type cannot mean: a string column
    // against a number is never a silent cast.
    let wrong = op("eq", vec![var("owner_id"), val(serde_json::json!(2))]);
    let filter = by_attrs.filter(&PlanFilter::Conditional(wrong)).unwrap();
    let mut query = Query::select();
    query.column(Alias::new("id")).from(Alias::new("doc"));
    filter.apply(&mut query);
    assert!(!query.to_string(SqliteQueryBuilder).contains("= 2"));
}
