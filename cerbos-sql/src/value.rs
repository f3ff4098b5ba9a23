//! Values computed in SQL: arithmetic, the ternary `if`, string
//! concatenation, `timestamp()`, `size()` of a string, casts to string,
//! and comparisons between any two of them; the string functions with a
//! column on either side; Cerbos's hierarchy functions.
//!
//! A value is three-valued like a condition: SQL NULL is a CEL evaluation
//! error (a missing attribute, no matching overload), which is never
//! granted, also under `!`. Where the SQL would answer differently from
//! CEL for some input (an integer cast, a regex, a list value), the shape
//! is refused.
//!
//! Numbers are CEL doubles, as every number of a request attribute is
//! (`google.protobuf.Value` has no integers), and a constant in a plan
//! does not say whether the policy wrote `1` or `1.0`: arithmetic reads
//! it as the double the attribute it meets is. Division follows IEEE 754
//! as CEL does (`x / 0.0` is an infinity or NaN, never an SQL error), and
//! NaN compares as CEL compares it (equal to nothing, ordered with
//! nothing); SQLite has no NaN (it turns one into NULL), so a number
//! computed there carries a condition that says where it is NaN.

use super::*;

const UNTRUSTED_LITERAL: &str = "a whole-number constant in arithmetic: the plan shows `1` for both \
     `1` and `1.0`, and CEL has no mixed arithmetic (`R.attr.x + 1` fails in the PDP); declare \
     PlanToSql::trust_arithmetic_literals if the policies write `1.0` next to attributes";

/// The CEL type of a value computed in SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    /// A CEL double (every number of an attribute).
    Number,
    /// A CEL int: `int(x)` of an integer column.
    Int,
    String,
    Bool,
    /// Microseconds since the Unix epoch (PostgreSQL `timestamptz`, or
    /// an integer column declared with [`Column::unix_micros`]).
    Timestamp,
}

/// An operand of a comparison, translated.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// A constant of the plan.
    Const(AttrValue),
    /// A timestamp constant, in nanoseconds since the Unix epoch.
    Instant(i128),
    /// A value computed in SQL; NULL is a CEL evaluation error.
    Sql(SimpleExpr, Ty),
    /// A number computed in SQLite, which has no NaN: the value (NULL
    /// where it is NaN or an error) and a condition true where it is NaN.
    MaybeNan(SimpleExpr, SimpleExpr),
}

impl Val {
    fn ty(&self) -> Option<Ty> {
        match self {
            Val::Const(AttrValue::Number(_)) => Some(Ty::Number),
            Val::Const(AttrValue::String(_)) => Some(Ty::String),
            Val::Const(AttrValue::Bool(_)) => Some(Ty::Bool),
            Val::Const(_) => None,
            Val::Instant(_) => Some(Ty::Timestamp),
            Val::Sql(_, ty) => Some(*ty),
            Val::MaybeNan(..) => Some(Ty::Number),
        }
    }
}

fn constant(b: bool) -> SimpleExpr {
    Expr::cust(if b { TRUE } else { FALSE })
}

/// `then` where every one of `exprs` is not NULL, NULL (unknown) where one
/// is.
fn unless_null(exprs: &[&SimpleExpr], then: SimpleExpr) -> SimpleExpr {
    let mut case = None::<sea_query::CaseStatement>;
    for e in exprs {
        let cond = (*e).clone().is_null();
        case = Some(match case.take() {
            None => Expr::case(cond, Expr::cust(UNKNOWN)),
            Some(c) => c.case(cond, Expr::cust(UNKNOWN)),
        });
    }
    match case {
        None => then,
        Some(c) => c.finally(then).into(),
    }
}

/// Whether `a op b` holds, as CEL says (a NaN is equal to nothing and
/// ordered with nothing).
fn holds<T: PartialOrd + ?Sized>(operator: &str, a: &T, b: &T) -> bool {
    match operator {
        "eq" => a == b,
        "ne" => a != b,
        "lt" => a < b,
        "le" => a <= b,
        "gt" => a > b,
        _ => a >= b,
    }
}

impl PlanToSql {
    fn unsupported(operator: &str, detail: impl Into<String>) -> Error {
        Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail: detail.into(),
        }
    }

    /// `operand` as a value.
    pub(crate) fn val(&self, operand: &Operand, used: &mut Vec<usize>) -> Result<Val, Error> {
        match operand {
            Operand::Value(v) => Ok(Val::Const(v.clone())),
            Operand::Variable(name) => {
                let column = self.column_of(name, used)?;
                let bad = |what: String| Self::unsupported("value", format!("{name} is {what}"));
                if column.relation.is_some() || column.role == Role::Opaque {
                    return Err(bad("a list or object, not a scalar".into()));
                }
                let ty = match column.ty {
                    None => {
                        return Err(bad(
                            "an unchecked column: declare its type to compute with it".into(),
                        ));
                    }
                    Some(ColumnType::String) => Ty::String,
                    Some(ColumnType::Integer | ColumnType::Double) => Ty::Number,
                    Some(ColumnType::Bool) => Ty::Bool,
                    Some(ty) => {
                        return Err(bad(format!(
                            "a {ty:?} column (a timestamp is read with timestamp())"
                        )));
                    }
                };
                let expr = if ty == Ty::Number {
                    self.side(column, Some(Kind::Number))
                } else {
                    Expr::col(column.column.clone()).into()
                };
                Ok(Val::Sql(expr, ty))
            }
            Operand::Expression(e) => self.computed(e, used),
        }
    }

    fn computed(&self, e: &Expression, used: &mut Vec<usize>) -> Result<Val, Error> {
        let operator = e.operator.as_str();
        let bad = |detail: &str| Self::unsupported(operator, detail);
        match (operator, e.operands.as_slice()) {
            ("add" | "sub" | "mult" | "div", [a, b]) => {
                let divisor_is_column = matches!(b, Operand::Variable(_));
                let (a, b) = (self.val(a, used)?, self.val(b, used)?);
                self.arithmetic(operator, a, b, divisor_is_column)
            }
            ("if", [c, a, b]) => {
                let c = SimpleExpr::from(self.condition(c, used)?);
                let (a, b) = (self.val(a, used)?, self.val(b, used)?);
                let ty = match (a.ty(), b.ty()) {
                    (Some(x), Some(y)) if x == y => x,
                    _ => return Err(bad("the branches are not of one scalar type")),
                };
                let nan = match (self.nan_of(&a), self.nan_of(&b)) {
                    (None, None) => None,
                    (x, y) => {
                        let (x, y) = (x.unwrap_or(constant(false)), y.unwrap_or(constant(false)));
                        let case: SimpleExpr =
                            Expr::case(c.clone(), x).case(c.clone().not(), y).into();
                        Some(case)
                    }
                };
                let (a, b) = (self.sql(&a, operator)?, self.sql(&b, operator)?);
                // An error in the condition is an error: no ELSE.
                let case = Expr::case(c.clone(), a).case(c.not(), b);
                let case: SimpleExpr = case.into();
                Ok(match nan {
                    Some(nan) => Val::MaybeNan(case, nan),
                    None => Val::Sql(case, ty),
                })
            }
            // int() of an integer column: the double CEL holds is an
            // integer, truncation changes nothing; beyond 2^63 an error.
            ("int", [Operand::Variable(name)]) => {
                let column = self.column_of(name, used)?;
                if column.ty != Some(ColumnType::Integer) || column.role != Role::Row {
                    return Err(bad(&format!(
                        "int() of {name}: only of a declared integer column (SQL casts round \
                         or read prefixes where CEL truncates or fails)"
                    )));
                }
                let (real, int) = match self.dialect {
                    Dialect::Postgres => ("float8", "bigint"),
                    Dialect::Sqlite => ("REAL", "INTEGER"),
                    Dialect::MySql => return Err(bad("for MySQL")),
                };
                let col = Expr::col(column.column.clone());
                let expr = self.cust(
                    &format!(
                        "(CASE WHEN abs(CAST(? AS {real})) >= 9223372036854775808.0 THEN NULL \
                         ELSE CAST(CAST(? AS {real}) AS {int}) END)"
                    ),
                    [col.clone().into(), col.into()],
                );
                Ok(Val::Sql(expr, Ty::Int))
            }
            // int % constant: truncated, as CEL and SQL both are.
            ("mod", [a, Operand::Value(AttrValue::Number(d))]) => {
                let a = self.val(a, used)?;
                if a.ty() != Some(Ty::Int) {
                    return Err(bad(
                        "`%` of a value that is not an int() (CEL has no double modulo)",
                    ));
                }
                if d.fract() != 0.0 || d.abs() >= 9.0e15 || *d == -1.0 {
                    return Err(bad(&format!(
                        "`%` by {d}: only by an integer other than -1"
                    )));
                }
                if !self.trust_literals {
                    return Err(bad(UNTRUSTED_LITERAL));
                }
                let a = self.sql(&a, operator)?;
                if *d == 0.0 {
                    // Modulo by zero is an error.
                    return Ok(Val::Sql(Expr::cust(UNKNOWN), Ty::Int));
                }
                Ok(Val::Sql(
                    self.cust("(? % ?)", [a, Expr::val(*d as i64).into()]),
                    Ty::Int,
                ))
            }
            ("timestamp", [Operand::Value(AttrValue::String(s))]) => parse_timestamp(s)
                .map(Val::Instant)
                .ok_or_else(|| bad(&format!("{s:?} is not an RFC 3339 timestamp"))),
            ("timestamp", [Operand::Variable(name)]) => {
                let column = self.column_of(name, used)?;
                match (column.ty, self.dialect) {
                    (Some(ColumnType::UnixMicros), _)
                    | (Some(ColumnType::Timestamp), Dialect::Postgres) => Ok(Val::Sql(
                        Expr::col(column.column.clone()).into(),
                        Ty::Timestamp,
                    )),
                    (Some(ColumnType::Timestamp), _) => Err(bad(&format!(
                        "{name}: only PostgreSQL's timestamptz is compared exactly; store \
                         microseconds since the epoch and declare Column::unix_micros"
                    ))),
                    _ => Err(bad(&format!(
                        "{name} is not a declared timestamp column (parsing a string as a \
                         timestamp in SQL is not exact)"
                    ))),
                }
            }
            ("size", [Operand::Variable(name)]) if !self.is_list(name) => {
                let column = self.column_of(name, used)?;
                if column.ty != Some(ColumnType::String) || column.role == Role::Opaque {
                    return Err(bad(&format!("{name} is not a declared string column")));
                }
                let col = Expr::col(column.column.clone());
                // The number of code points.
                let expr = match self.dialect {
                    Dialect::Postgres => self.cust1("char_length(?)", col),
                    // length() stops at the first NUL: unknown there.
                    Dialect::Sqlite => self.cust(
                        "CASE WHEN instr(CAST(? AS BLOB), X'00') > 0 THEN NULL ELSE length(?) END",
                        [col.clone().into(), col.into()],
                    ),
                    Dialect::MySql => return Err(bad("for MySQL")),
                };
                Ok(Val::Sql(expr, Ty::Number))
            }
            ("size", [list]) => Ok(Val::Sql(self.size(list, used)?, Ty::Number)),
            _ => Err(Error::UnsupportedOperator {
                operator: operator.to_owned(),
                detail: format!(" in a value ({})", Operand::Expression(e.clone())),
            }),
        }
    }

    /// A value as SQL.
    fn sql(&self, v: &Val, operator: &str) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Self::unsupported(operator, detail);
        match v {
            Val::Sql(e, _) | Val::MaybeNan(e, _) => Ok(e.clone()),
            Val::Instant(nanos) => Ok(self.instant(nanos.div_euclid(1000))),
            Val::Const(AttrValue::Number(f)) if f.is_nan() => Ok(match self.dialect {
                Dialect::Postgres => Expr::cust("CAST('NaN' AS float8)"),
                // No NaN: unknown.
                _ => Expr::cust(UNKNOWN),
            }),
            Val::Const(AttrValue::Number(f)) if f.is_infinite() => {
                Ok(Expr::cust(match (self.dialect, f.is_sign_positive()) {
                    (Dialect::Postgres, true) => "CAST('Infinity' AS float8)",
                    (Dialect::Postgres, false) => "CAST('-Infinity' AS float8)",
                    (Dialect::Sqlite, true) => "9e999",
                    (Dialect::Sqlite, false) => "-9e999",
                    (Dialect::MySql, _) => return Err(bad(format!("MySQL has no {f}"))),
                }))
            }
            // A double, so that SQL divides and rounds as CEL does.
            Val::Const(AttrValue::Number(f)) => Ok(match self.dialect {
                Dialect::Postgres => self.cust1("CAST(? AS float8)", Expr::val(*f)),
                Dialect::Sqlite => self.cust1("CAST(? AS REAL)", Expr::val(*f)),
                Dialect::MySql => self.cust1("CAST(? AS DOUBLE)", Expr::val(*f)),
            }),
            Val::Const(c @ (AttrValue::String(_) | AttrValue::Bool(_))) => {
                self.bound(c).map_err(bad)
            }
            Val::Const(c) => Err(bad(format!("{c} in a computed value"))),
        }
    }

    fn instant(&self, micros: i128) -> SimpleExpr {
        let micros = i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX });
        match self.dialect {
            // Exact: microseconds are timestamptz's resolution.
            Dialect::Postgres => self.cust1(
                "(TIMESTAMPTZ 'epoch' + CAST(? AS bigint) * INTERVAL '1 microsecond')",
                Expr::val(micros),
            ),
            _ => Expr::val(micros).into(),
        }
    }

    fn arithmetic(
        &self,
        operator: &str,
        a: Val,
        b: Val,
        divisor_is_column: bool,
    ) -> Result<Val, Error> {
        let bad = |detail: &str| Self::unsupported(operator, detail);
        match (a.ty(), b.ty()) {
            (Some(Ty::Number), Some(Ty::Number)) => {
                // `1` or `1.0` in the policy? Only a declaration says.
                let whole = |v: &Val| matches!(v, Val::Const(AttrValue::Number(f)) if f.is_finite() && f.fract() == 0.0);
                if !self.trust_literals && (whole(&a) || whole(&b)) {
                    return Err(bad(UNTRUSTED_LITERAL));
                }
            }
            (Some(Ty::String), Some(Ty::String)) if operator == "add" => {
                if let (Val::Const(AttrValue::String(x)), Val::Const(AttrValue::String(y))) =
                    (&a, &b)
                {
                    return Ok(Val::Const(AttrValue::String(format!("{x}{y}"))));
                }
                if self.dialect == Dialect::MySql {
                    return Err(bad("string concatenation for MySQL"));
                }
                let (x, y) = (self.sql(&a, operator)?, self.sql(&b, operator)?);
                return Ok(Val::Sql(self.cust("(? || ?)", [x, y]), Ty::String));
            }
            _ => {
                return Err(bad(
                    "only numbers (or, for add, two strings) of declared types; a \
                     timestamp or duration is not supported",
                ));
            }
        }
        if let (Val::Const(AttrValue::Number(x)), Val::Const(AttrValue::Number(y))) = (&a, &b) {
            let (x, y) = (*x, *y);
            return Ok(Val::Const(AttrValue::Number(match operator {
                "add" => x + y,
                "sub" => x - y,
                "mult" => x * y,
                _ => x / y,
            })));
        }
        if self.dialect == Dialect::MySql {
            return Err(bad("for MySQL (division by zero is NULL there)"));
        }
        let divisor_sign = match &b {
            Val::Const(AttrValue::Number(y)) => Some(*y),
            _ => None,
        };
        let (x, y) = (self.sql(&a, operator)?, self.sql(&b, operator)?);
        // SQLite has no NaN (it is NULL there): where the result is NaN.
        let nan = (self.dialect == Dialect::Sqlite).then(|| {
            let inputs = [self.nan_of(&a), self.nan_of(&b)].into_iter().flatten();
            let template = match operator {
                "add" => "((? = 9e999 AND ? = -9e999) OR (? = -9e999 AND ? = 9e999))",
                "sub" => "((? = 9e999 AND ? = 9e999) OR (? = -9e999 AND ? = -9e999))",
                "mult" => "((? = 0 AND abs(?) = 9e999) OR (abs(?) = 9e999 AND ? = 0))",
                _ => "((? = 0 AND ? = 0) OR (abs(?) = 9e999 AND abs(?) = 9e999))",
            };
            let own = self.cust(template, [x.clone(), y.clone(), x.clone(), y.clone()]);
            inputs.fold(own, |acc, f| acc.or(f))
        });
        let expr = match operator {
            "add" => self.cust("(? + ?)", [x, y]),
            "sub" => self.cust("(? - ?)", [x, y]),
            "mult" => self.cust("(? * ?)", [x, y]),
            _ => {
                // IEEE 754 where SQL fails (PostgreSQL) or answers NULL
                // (SQLite): x / ±0 is ±infinity by the signs, NaN for 0 / 0.
                let (inf, neg_inf, nan) = match self.dialect {
                    Dialect::Postgres => (
                        "CAST('Infinity' AS float8)",
                        "CAST('-Infinity' AS float8)",
                        "CAST('NaN' AS float8)",
                    ),
                    _ => ("9e999", "-9e999", "NULL"),
                };
                // The divisor's sign of zero: known for a constant; in
                // PostgreSQL in the text of the value ("-0"); a SQLite
                // column stores no -0.0 (it keeps 0.0, and the
                // application sends what it reads), and a computed one
                // shows none: unknown there.
                let (negative_zero, sign_from_sql) = match (divisor_sign, self.dialect) {
                    (Some(z), _) => (if z.is_sign_negative() { TRUE } else { FALSE }, false),
                    (None, Dialect::Postgres) => ("CAST(? AS TEXT) LIKE '-%'", true),
                    (None, _) if divisor_is_column => (FALSE, false),
                    (None, _) => ("NULL", false),
                };
                // PostgreSQL orders 'NaN' above every number: NaN first.
                let nan_first = match self.dialect {
                    Dialect::Postgres => {
                        "WHEN ? = CAST('NaN' AS float8) THEN CAST('NaN' AS float8) "
                    }
                    _ => "",
                };
                let template = format!(
                    "(CASE WHEN ? = 0 THEN CASE WHEN ? IS NULL THEN NULL {nan_first}\
                     WHEN ? > 0 THEN CASE WHEN {negative_zero} THEN {neg_inf} WHEN NOT {negative_zero} THEN {inf} END \
                     WHEN ? < 0 THEN CASE WHEN {negative_zero} THEN {inf} WHEN NOT {negative_zero} THEN {neg_inf} END \
                     ELSE {nan} END ELSE ? / ? END)"
                );
                let mut ordered = vec![y.clone(), x.clone()];
                if self.dialect == Dialect::Postgres {
                    ordered.push(x.clone());
                }
                ordered.push(x.clone());
                if sign_from_sql {
                    ordered.extend([y.clone(), y.clone()]);
                }
                ordered.push(x.clone());
                if sign_from_sql {
                    ordered.extend([y.clone(), y.clone()]);
                }
                ordered.push(x);
                ordered.push(y);
                self.cust(&template, ordered)
            }
        };
        Ok(match nan {
            Some(nan) => Val::MaybeNan(expr, nan),
            None => Val::Sql(expr, Ty::Number),
        })
    }

    /// Where `v` is NaN, for SQLite: `None` if it never is.
    fn nan_of(&self, v: &Val) -> Option<SimpleExpr> {
        match v {
            Val::Const(AttrValue::Number(f)) if f.is_nan() => Some(constant(true)),
            Val::MaybeNan(_, nan) => Some(nan.clone()),
            _ => None,
        }
    }

    /// `left op right` for values (not both a column and a constant: the
    /// caller handles those with the column's null convention).
    pub(crate) fn value_comparison(
        &self,
        operator: &str,
        left: &Operand,
        right: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        // string(x) == "c": compare x with the value whose CEL string is
        // "c" (SQL renders numbers and booleans otherwise).
        for (cast, other) in [(left, right), (right, left)] {
            if let Operand::Expression(Expression {
                operator: f,
                operands,
            }) = cast
                && f == "string"
                && let ([x], Operand::Value(AttrValue::String(s))) = (operands.as_slice(), other)
                && matches!(operator, "eq" | "ne")
            {
                return self.string_cast_equality(operator, x, s, used);
            }
        }
        let (a, b) = (self.val(left, used)?, self.val(right, used)?);
        self.compare_values(operator, a, b)
    }

    fn compare_values(&self, operator: &str, a: Val, b: Val) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Self::unsupported(operator, detail);
        let equality = matches!(operator, "eq" | "ne");
        // An int compares with a double by value (CEL compares numbers
        // across types).
        let numeric = |t: Option<Ty>| {
            if t == Some(Ty::Int) {
                Some(Ty::Number)
            } else {
                t
            }
        };
        let ty = match (numeric(a.ty()), numeric(b.ty())) {
            (Some(x), Some(y)) if x == y => x,
            (Some(_), Some(_)) if equality => {
                // CEL never equates values of different types.
                // Unknown where a side is an error (for a SQLite number,
                // NULL that is not a NaN).
                let sides: Vec<SimpleExpr> = [&a, &b]
                    .into_iter()
                    .filter_map(|v| match v {
                        Val::Sql(e, _) => Some(e.clone()),
                        Val::MaybeNan(e, nan) => Some(
                            Expr::case(nan.clone(), Expr::val(0))
                                .finally(e.clone())
                                .into(),
                        ),
                        _ => None,
                    })
                    .collect();
                return Ok(unless_null(
                    &sides.iter().collect::<Vec<_>>(),
                    constant(operator == "ne"),
                ));
            }
            _ => return Err(bad(format!("comparing {a:?} with {b:?}"))),
        };
        if ty == Ty::Bool && !equality {
            return Err(bad("ordering booleans".into()));
        }
        // Two constants: decided here.
        match (&a, &b) {
            (Val::Const(AttrValue::Number(x)), Val::Const(AttrValue::Number(y))) => {
                return Ok(constant(holds(operator, x, y)));
            }
            (Val::Const(AttrValue::String(x)), Val::Const(AttrValue::String(y))) => {
                return Ok(constant(holds(operator, x.as_bytes(), y.as_bytes())));
            }
            (Val::Const(AttrValue::Bool(x)), Val::Const(AttrValue::Bool(y))) => {
                return Ok(constant(holds(operator, x, y)));
            }
            (Val::Instant(x), Val::Instant(y)) => return Ok(constant(holds(operator, x, y))),
            _ => {}
        }
        // A column against an instant between two microseconds (SQL's
        // resolution): `<` is `<=` the microsecond below, `>` is `>` it,
        // and nothing is equal.
        for (column, instant, op) in [(&a, &b, operator), (&b, &a, mirror(operator))] {
            if let (Val::Sql(e, Ty::Timestamp), Val::Instant(nanos)) = (column, instant)
                && nanos.rem_euclid(1000) != 0
            {
                let below = Val::Instant(nanos - nanos.rem_euclid(1000));
                return match op {
                    "eq" | "ne" => Ok(unless_null(&[e], constant(op == "ne"))),
                    "lt" | "le" => self.compare_values("le", column.clone(), below),
                    _ => self.compare_values("gt", column.clone(), below),
                };
            }
        }
        // SQLite: a side that may be NaN (NULL there) compares as NaN
        // does, and stays unknown where the other side is an error.
        if self.dialect == Dialect::Sqlite
            && (matches!(a, Val::MaybeNan(..)) || matches!(b, Val::MaybeNan(..)))
        {
            let (fa, fb) = (
                self.nan_of(&a).unwrap_or(constant(false)),
                self.nan_of(&b).unwrap_or(constant(false)),
            );
            let (x, y) = (self.sql(&a, operator)?, self.sql(&b, operator)?);
            let error = |v: SimpleExpr, nan: SimpleExpr| {
                self.cust("(? IS NULL AND (?) IS NOT TRUE)", [v, nan])
            };
            let nan_answer = constant(operator == "ne");
            return Ok(Expr::case(
                fa.clone(),
                Expr::case(error(y.clone(), fb.clone()), Expr::cust(UNKNOWN))
                    .finally(nan_answer.clone()),
            )
            .case(
                fb,
                Expr::case(error(x.clone(), fa), Expr::cust(UNKNOWN)).finally(nan_answer),
            )
            .finally(x.binary(bin_oper(operator), y))
            .into());
        }
        // NaN against a computed number: decided, unless unknown.
        for (nan, other) in [(&a, &b), (&b, &a)] {
            if let (Val::Const(AttrValue::Number(f)), Val::Sql(e, _)) = (nan, other)
                && f.is_nan()
            {
                return Ok(unless_null(&[e], constant(operator == "ne")));
            }
        }
        let (x, y) = (self.sql(&a, operator)?, self.sql(&b, operator)?);
        let (x, y) = if ty == Ty::String {
            (self.collated(x), self.collated(y))
        } else {
            (x, y)
        };
        let compared = x.clone().binary(bin_oper(operator), y.clone());
        if ty == Ty::Number && self.dialect == Dialect::Postgres {
            // PostgreSQL finds 'NaN' = 'NaN' and orders it above every
            // number; CEL does neither.
            let is_nan = |e: SimpleExpr| e.eq(Expr::cust("CAST('NaN' AS float8)"));
            return Ok(Expr::case(
                is_nan(x.clone()).or(is_nan(y.clone())),
                unless_null(&[&x, &y], constant(operator == "ne")),
            )
            .finally(compared)
            .into());
        }
        Ok(compared)
    }

    /// A string expression compared byte by byte.
    fn collated(&self, e: SimpleExpr) -> SimpleExpr {
        match self.dialect {
            Dialect::Sqlite => self.cust1("(? COLLATE BINARY)", e),
            Dialect::Postgres => self.cust1(r#"(? COLLATE "C")"#, e),
            Dialect::MySql => self.cust1("CAST(? AS BINARY)", e),
        }
    }

    /// `string(x) == s`: x equals the one value whose CEL string is `s`
    /// (for a bool or a double; a string is itself).
    fn string_cast_equality(
        &self,
        operator: &str,
        x: &Operand,
        s: &str,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let v = self.val(x, used)?;
        let target = match v.ty() {
            Some(Ty::String) => Some(AttrValue::String(s.to_owned())),
            Some(Ty::Bool) => match s {
                "true" => Some(AttrValue::Bool(true)),
                "false" => Some(AttrValue::Bool(false)),
                _ => None,
            },
            Some(Ty::Number) => match s.parse::<f64>() {
                Ok(f) if f.is_finite() => match cel_double_string(f) {
                    Some(text) if text == s => Some(AttrValue::Number(f)),
                    Some(_) => None,
                    None => {
                        return Err(Self::unsupported(
                            "string",
                            format!(
                                "string() of a double compared with {s:?}: written with an exponent"
                            ),
                        ));
                    }
                },
                Ok(_) => {
                    return Err(Self::unsupported(
                        "string",
                        format!("string() of a double compared with {s:?}"),
                    ));
                }
                Err(_) => None,
            },
            _ => {
                return Err(Self::unsupported(
                    "string",
                    format!("string() of {x}: only a string, bool or double column"),
                ));
            }
        };
        let Some(target) = target else {
            // No value has that string.
            let e = self.sql(&v, "string")?;
            return Ok(unless_null(&[&e], constant(operator == "ne")));
        };
        if let AttrValue::Number(f) = target
            && f == 0.0
        {
            // "0" and "-0" are different strings of equal numbers.
            let e = self.sql(&v, "string")?;
            let negative = self.cust1("CAST(? AS TEXT) LIKE '-%'", e.clone());
            let want = if f.is_sign_negative() {
                negative
            } else {
                negative.not()
            };
            let eq = e.eq(Expr::val(0)).and(want);
            return Ok(if operator == "eq" { eq } else { eq.not() });
        }
        self.compare_values(operator, v, Val::Const(target))
    }

    /// `receiver.fn(needle)` when either is not a constant, or the
    /// receiver is.
    pub(crate) fn general_string_function(
        &self,
        operator: &str,
        receiver: &Operand,
        needle: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let (h, n) = (self.val(receiver, used)?, self.val(needle, used)?);
        if h.ty() != Some(Ty::String) || n.ty() != Some(Ty::String) {
            return Err(Self::unsupported(operator, "not two strings"));
        }
        if let (Val::Const(AttrValue::String(h)), Val::Const(AttrValue::String(n))) = (&h, &n) {
            return Ok(constant(match operator {
                "startsWith" => h.starts_with(n.as_str()),
                "endsWith" => h.ends_with(n.as_str()),
                _ => h.contains(n.as_str()),
            }));
        }
        let (h, n) = (self.sql(&h, operator)?, self.sql(&n, operator)?);
        let present = match self.dialect {
            Dialect::Sqlite => {
                // On the UTF-8 bytes: exact past a NUL and case-sensitive.
                let template = match operator {
                    "startsWith" => {
                        "CASE WHEN length(CAST(? AS BLOB)) = 0 THEN 1 = 1 \
                         WHEN CAST(? AS BLOB) = X'' THEN 1 = 0 \
                         ELSE substr(CAST(? AS BLOB), 1, length(CAST(? AS BLOB))) = CAST(? AS BLOB) END"
                    }
                    "endsWith" => {
                        "CASE WHEN length(CAST(? AS BLOB)) = 0 THEN 1 = 1 \
                         WHEN CAST(? AS BLOB) = X'' THEN 1 = 0 \
                         WHEN length(CAST(? AS BLOB)) > length(CAST(? AS BLOB)) THEN 1 = 0 \
                         ELSE substr(CAST(? AS BLOB), -length(CAST(? AS BLOB))) = CAST(? AS BLOB) END"
                    }
                    _ => "instr(CAST(? AS BLOB), CAST(? AS BLOB)) > 0",
                };
                let exprs = match operator {
                    "startsWith" => vec![n.clone(), h.clone(), h.clone(), n.clone(), n.clone()],
                    "endsWith" => vec![
                        n.clone(),
                        h.clone(),
                        n.clone(),
                        h.clone(),
                        h.clone(),
                        n.clone(),
                        n.clone(),
                    ],
                    _ => vec![h.clone(), n.clone()],
                };
                self.cust(template, exprs)
            }
            Dialect::Postgres => match operator {
                "startsWith" => {
                    self.cust(r#"starts_with(? COLLATE "C", ?)"#, [h.clone(), n.clone()])
                }
                "endsWith" => self.cust(
                    r#"(right(?, char_length(?)) COLLATE "C" = ?)"#,
                    [h.clone(), n.clone(), n.clone()],
                ),
                _ => self.cust(r#"(strpos(? COLLATE "C", ?) > 0)"#, [h.clone(), n.clone()]),
            },
            Dialect::MySql => {
                return Err(Error::UnsupportedOperator {
                    operator: operator.to_owned(),
                    detail: " for MySQL: not verified to be exact and case-sensitive there".into(),
                });
            }
        };
        // A NULL on either side is an error (no CASE above may hide it).
        Ok(unless_null(&[&h, &n], present))
    }

    /// `ancestorOf`, `descendentOf` and `overlaps` between two
    /// `hierarchy(..)`s, one of them a constant.
    pub(crate) fn hierarchy(
        &self,
        operator: &str,
        left: &Operand,
        right: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Self::unsupported(operator, detail);
        if let Some(answer) = self.list_hierarchy(operator, left, right, used)? {
            return Ok(answer);
        }
        let side = |o: &Operand| -> Result<(Operand, String), Error> {
            let Operand::Expression(Expression {
                operator: h,
                operands,
            }) = o
            else {
                return Err(bad(format!("{o} is not a hierarchy")));
            };
            if h != "hierarchy" {
                return Err(bad(format!("{o} is not a hierarchy")));
            }
            match operands.as_slice() {
                [x] => Ok((x.clone(), ".".to_owned())),
                [x, Operand::Value(AttrValue::String(d))] if !d.is_empty() => {
                    Ok((x.clone(), d.clone()))
                }
                _ => Err(bad(format!(
                    "{o}: only hierarchy(string) and hierarchy(string, \"delimiter\")"
                ))),
            }
        };
        let ((a, da), (b, db)) = (side(left)?, side(right)?);
        if da != db {
            return Err(bad("hierarchies with different delimiters".into()));
        }
        // `a` is a strict prefix of `b`, by segments.
        let ancestor = |a: &Operand,
                        b: &Operand,
                        used: &mut Vec<usize>|
         -> Result<SimpleExpr, Error> {
            match (a, b) {
                (Operand::Value(AttrValue::String(x)), Operand::Value(AttrValue::String(y))) => {
                    let (x, y): (Vec<&str>, Vec<&str>) =
                        (x.split(&da).collect(), y.split(&da).collect());
                    Ok(constant(x.len() < y.len() && y.starts_with(&x)))
                }
                // column below the constant: it starts with "k.".
                (Operand::Value(AttrValue::String(k)), column) => self.general_string_function(
                    "startsWith",
                    column,
                    &Operand::Value(AttrValue::String(format!("{k}{da}"))),
                    used,
                ),
                // column above the constant: it is one of its strict prefixes.
                (column, Operand::Value(AttrValue::String(k))) => {
                    let segments: Vec<&str> = k.split(&da).collect();
                    let prefixes: Vec<AttrValue> = (1..segments.len())
                        .map(|i| AttrValue::String(segments[..i].join(&da)))
                        .collect();
                    self.one_of(column, &prefixes, used)
                }
                _ => Err(bad("two hierarchies of columns".into())),
            }
        };
        match operator {
            "ancestorOf" => ancestor(&a, &b, used),
            "descendentOf" => ancestor(&b, &a, used),
            // Either is an ancestor of the other, or they are equal.
            _ => {
                let one = ancestor(&a, &b, used)?;
                let other = ancestor(&b, &a, used)?;
                let equal = match (&a, &b) {
                    (Operand::Value(k), column) | (column, Operand::Value(k)) => {
                        self.one_of(column, std::slice::from_ref(k), used)?
                    }
                    _ => return Err(bad("two hierarchies of columns".into())),
                };
                Ok(one.or(other).or(equal))
            }
        }
    }

    /// A hierarchy of a list (`hierarchy(["projects", R.id])`: its
    /// segments are the items) against a constant one: segment by segment.
    /// `None` when neither side is a list.
    fn list_hierarchy(
        &self,
        operator: &str,
        left: &Operand,
        right: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<Option<SimpleExpr>, Error> {
        let bad = |detail: String| Self::unsupported(operator, detail);
        let hierarchy_operands = |o: &Operand| match o {
            Operand::Expression(Expression { operator, operands }) if operator == "hierarchy" => {
                Some(operands.clone())
            }
            _ => None,
        };
        let list_items = |o: &Operand| -> Option<Vec<Operand>> {
            match hierarchy_operands(o)?.as_slice() {
                [Operand::Expression(Expression { operator, operands })] if operator == "list" => {
                    Some(operands.clone())
                }
                [Operand::Value(AttrValue::List(items))] => {
                    Some(items.iter().cloned().map(Operand::Value).collect())
                }
                _ => None,
            }
        };
        let constant_segments = |o: &Operand| -> Option<Vec<String>> {
            match hierarchy_operands(o)?.as_slice() {
                [Operand::Value(AttrValue::String(k))] => {
                    Some(k.split('.').map(str::to_owned).collect())
                }
                [
                    Operand::Value(AttrValue::String(k)),
                    Operand::Value(AttrValue::String(d)),
                ] if !d.is_empty() => Some(k.split(d.as_str()).map(str::to_owned).collect()),
                _ => None,
            }
        };
        let (list, other, list_first) = match (list_items(left), list_items(right)) {
            (Some(l), None) => (l, right, true),
            (None, Some(l)) => (l, left, false),
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(bad("two hierarchies of lists".into())),
        };
        let Some(segments) = constant_segments(other) else {
            return Err(bad(format!(
                "a hierarchy of a list against {other}: only against a constant"
            )));
        };
        // Each item: a constant string or a string column.
        let mut items = Vec::new();
        let mut columns = Vec::new();
        for item in &list {
            match self.val(item, used)? {
                Val::Const(AttrValue::String(s)) => items.push(Err(s)),
                Val::Sql(e, Ty::String) => {
                    columns.push(e.clone());
                    items.push(Ok(e));
                }
                _ => return Err(bad(format!("{item} is not a string segment"))),
            }
        }
        // The first `n` segments agree.
        let agree = |n: usize| -> SimpleExpr {
            let mut all = Cond::all();
            for (item, segment) in items.iter().zip(&segments).take(n) {
                all = all.add(match item {
                    Err(s) => constant(s == segment),
                    Ok(e) => self.collated(e.clone()).eq(Expr::val(segment.as_str())),
                });
            }
            all.into()
        };
        let (n, m) = (items.len(), segments.len());
        // (list is a strict prefix, the constant is a strict prefix, equal)
        let list_above = if n < m { agree(n) } else { constant(false) };
        let list_below = if m < n { agree(m) } else { constant(false) };
        let equal = if n == m { agree(n) } else { constant(false) };
        let (a_above_b, b_above_a) = if list_first {
            (list_above, list_below)
        } else {
            (list_below, list_above)
        };
        let answer = match operator {
            "ancestorOf" => a_above_b,
            "descendentOf" => b_above_a,
            _ => a_above_b.or(b_above_a).or(equal),
        };
        // A NULL item fails the whole hierarchy: unknown.
        Ok(Some(unless_null(
            &columns.iter().collect::<Vec<_>>(),
            answer,
        )))
    }

    /// `column` equals one of the strings, byte by byte (NULL unknown).
    fn one_of(
        &self,
        column: &Operand,
        values: &[AttrValue],
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let v = self.val(column, used)?;
        if v.ty() != Some(Ty::String) {
            return Err(Self::unsupported(
                "hierarchy",
                format!("{column} is not a string column"),
            ));
        }
        let e = self.sql(&v, "hierarchy")?;
        if values.is_empty() {
            return Ok(unless_null(&[&e], constant(false)));
        }
        let mut bound = Vec::new();
        for value in values {
            bound.push(
                self.bound(value)
                    .map_err(|d| Self::unsupported("hierarchy", d))?,
            );
        }
        Ok(self.collated(e).is_in(bound))
    }
}

/// CEL's string of a finite double, when it has no exponent: shortest
/// round-tripping digits, `%g` style. `None` for a magnitude written
/// with an exponent (below 1e-4, or from 1e6 on), which is not compared.
pub(crate) fn cel_double_string(f: f64) -> Option<String> {
    if f == 0.0 {
        return Some(if f.is_sign_negative() { "-0" } else { "0" }.into());
    }
    let sci = format!("{f:e}");
    let exp: i32 = sci.split_once('e')?.1.parse().ok()?;
    if !(-4..6).contains(&exp) {
        return None;
    }
    // Rust's `{}` prints the shortest round-tripping digits without an
    // exponent, as `%g` does in that range.
    Some(format!("{f}"))
}

/// An RFC 3339 timestamp as nanoseconds since the Unix epoch (CEL's
/// resolution); `None` if it is malformed.
pub(crate) fn parse_timestamp(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0i128;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn double_strings_follow_cel() {
        assert_eq!(cel_double_string(-0.6).as_deref(), Some("-0.6"));
        assert_eq!(cel_double_string(5.3).as_deref(), Some("5.3"));
        assert_eq!(cel_double_string(123456.5).as_deref(), Some("123456.5"));
        assert_eq!(cel_double_string(0.0001).as_deref(), Some("0.0001"));
        assert_eq!(cel_double_string(-0.0).as_deref(), Some("-0"));
        assert_eq!(cel_double_string(16.0).as_deref(), Some("16"));
        // Written with an exponent: not compared.
        assert_eq!(cel_double_string(1e6), None);
        assert_eq!(cel_double_string(0.00001), None);
    }

    #[test]
    fn timestamps_parse_exactly() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2024-06-01T02:00:00+02:00"),
            parse_timestamp("2024-06-01T00:00:00Z")
        );
        assert_eq!(
            parse_timestamp("2020-03-15T10:30:00.123456Z").map(|n| n % 1_000_000_000),
            Some(123_456_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-23T02:44:45.837794167Z").map(|n| n % 1_000_000_000),
            Some(837_794_167)
        );
        assert_eq!(parse_timestamp("2020-03-15T10:30:00.1234567891Z"), None);
        assert_eq!(parse_timestamp("2021-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2024-06-01 00:00:00Z"), None);
    }
}
