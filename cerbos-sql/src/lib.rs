#![doc = include_str!("../README.md")]

use std::sync::Arc;

use cerbos_client::{AttrValue, Expression, Operand, PlanFilter};
use sea_query::{
    Alias, BinOper, ColumnRef, Cond, Condition, DynIden, Expr, Func, IntoColumnRef, IntoIden,
    JoinType, LikeExpr, SelectStatement, SimpleExpr, Value,
};

/// The SQL dialect the filter is for. String functions differ: a plain
/// `LIKE` ignores case in SQLite and in MySQL's usual collations, so it
/// would let `startsWith("Bug")` match `"bug"` and grant more than the
/// policy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite: case-sensitive `instr`/`substr` for the string functions.
    Sqlite,
    /// PostgreSQL: `LIKE` (case-sensitive) with escaped patterns.
    Postgres,
    /// MySQL: the string functions are refused (their case-sensitivity
    /// depends on the column's collation); everything else is supported.
    MySql,
}

/// A plan that cannot be turned into SQL without risking more rows than the
/// policy allows. The message names what is unsupported.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan uses a variable that is not mapped to a column.
    #[error("the plan uses {0}, which is not mapped to a column")]
    UnmappedVariable(String),
    /// The plan uses an operator without a sound SQL translation.
    #[error("the plan operator {operator:?} is not supported{detail}")]
    UnsupportedOperator {
        /// The operator.
        operator: String,
        /// Why, when there is more to say.
        detail: String,
    },
    /// An operand has a shape or a value type the operator cannot take.
    #[error("unsupported operands for {operator:?}: {detail}")]
    UnsupportedOperands {
        /// The operator.
        operator: String,
        /// What is wrong.
        detail: String,
    },
}

/// A join the filter needs: `LEFT JOIN table ON on` (left, so that a missing
/// related row never drops rows the rest of the condition allows, and a
/// condition on its columns is never true).
#[derive(Clone, Debug)]
pub struct Join {
    table: DynIden,
    on: (ColumnRef, ColumnRef),
}

impl Join {
    /// `LEFT JOIN table ON left = right`.
    pub fn new(table: impl IntoIden, left: impl IntoColumnRef, right: impl IntoColumnRef) -> Self {
        Join {
            table: table.into_iden(),
            on: (left.into_column_ref(), right.into_column_ref()),
        }
    }
}

#[derive(Clone, Debug)]
struct Mapped {
    variable: String,
    column: ColumnRef,
    join: Option<usize>,
}

/// Maps plan variables (`request.resource.attr.owner_id`) to columns,
/// possibly on joined tables, and turns plans into filters.
///
/// ```
/// use cerbos_sql::{Dialect, Filter, PlanToSql};
/// use cerbos_client::{AttrValue, Expression, Operand, PlanFilter};
/// use sea_query::{Alias, Query, SqliteQueryBuilder};
///
/// let to_sql = PlanToSql::new(Dialect::Sqlite)
///     .column("request.resource.attr.owner_id", (Alias::new("contact"), Alias::new("owner_id")));
/// // What the PDP answers for "contacts owned by user 2".
/// let plan = PlanFilter::Conditional(Operand::Expression(Expression {
///     operator: "eq".into(),
///     operands: vec![
///         Operand::Variable("request.resource.attr.owner_id".into()),
///         Operand::Value("2".into()),
///     ],
/// }));
/// let mut query = Query::select();
/// query.column(Alias::new("id")).from(Alias::new("contact"));
/// let filter = to_sql.filter(&plan).unwrap();
/// assert!(filter.may_match());
/// filter.apply(&mut query);
/// let (sql, values) = query.build(SqliteQueryBuilder);
/// assert_eq!(sql, r#"SELECT "id" FROM "contact" WHERE "contact"."owner_id" = ?"#);
/// assert_eq!(values.0.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct PlanToSql {
    dialect: Dialect,
    columns: Arc<Vec<Mapped>>,
    joins: Arc<Vec<Join>>,
}

/// The filter for a plan: what to add to a query.
#[derive(Clone, Debug)]
pub enum Filter {
    /// Every row is allowed: no condition.
    All,
    /// No row is allowed: the query need not run (applied, it matches
    /// nothing).
    Nothing,
    /// The rows for which the condition holds, with the joins it needs.
    Condition {
        /// The condition.
        condition: Condition,
        /// The joins its columns need.
        joins: Vec<Join>,
    },
}

impl Filter {
    /// `false` for [`Filter::Nothing`]: the query need not run.
    pub fn may_match(&self) -> bool {
        !matches!(self, Filter::Nothing)
    }

    /// Adds the condition (and joins) to `query`.
    pub fn apply(self, query: &mut SelectStatement) {
        match self {
            Filter::All => {}
            Filter::Nothing => {
                query.cond_where(Expr::cust("1 = 0"));
            }
            Filter::Condition { condition, joins } => {
                for join in joins {
                    query.join(
                        JoinType::LeftJoin,
                        join.table,
                        Expr::col(join.on.0).equals(join.on.1),
                    );
                }
                query.cond_where(condition);
            }
        }
    }
}

impl PlanToSql {
    /// A translator for `dialect` with no variables mapped yet.
    pub fn new(dialect: Dialect) -> Self {
        PlanToSql {
            dialect,
            columns: Arc::default(),
            joins: Arc::default(),
        }
    }

    /// Maps `variable` (as the plan names it, `request.resource.attr.x`)
    /// to `column`.
    pub fn column(mut self, variable: impl Into<String>, column: impl IntoColumnRef) -> Self {
        Arc::make_mut(&mut self.columns).push(Mapped {
            variable: variable.into(),
            column: column.into_column_ref(),
            join: None,
        });
        self
    }

    /// Maps `variable` to `column` of a table reached through `join`; the
    /// join is added to the query only when the plan uses the variable.
    pub fn joined_column(
        mut self,
        variable: impl Into<String>,
        column: impl IntoColumnRef,
        join: Join,
    ) -> Self {
        let joins = Arc::make_mut(&mut self.joins);
        let index = match joins
            .iter()
            .position(|j| j.table.to_string() == join.table.to_string())
        {
            Some(index) => index,
            None => {
                joins.push(join);
                joins.len() - 1
            }
        };
        Arc::make_mut(&mut self.columns).push(Mapped {
            variable: variable.into(),
            column: column.into_column_ref(),
            join: Some(index),
        });
        self
    }

    /// The filter for `plan`, or an error naming what cannot be translated
    /// soundly (then deny: never run the query without the filter).
    pub fn filter(&self, plan: &PlanFilter) -> Result<Filter, Error> {
        match plan {
            PlanFilter::AlwaysAllowed => Ok(Filter::All),
            PlanFilter::AlwaysDenied => Ok(Filter::Nothing),
            PlanFilter::Conditional(operand) => {
                let mut used = Vec::new();
                let condition = self.condition(operand, &mut used)?;
                used.sort_unstable();
                used.dedup();
                Ok(Filter::Condition {
                    condition,
                    joins: used.into_iter().map(|i| self.joins[i].clone()).collect(),
                })
            }
        }
    }

    fn column_of(&self, variable: &str, used: &mut Vec<usize>) -> Result<ColumnRef, Error> {
        let mapped = self
            .columns
            .iter()
            .find(|m| m.variable == variable)
            .ok_or_else(|| Error::UnmappedVariable(variable.to_owned()))?;
        used.extend(mapped.join);
        Ok(mapped.column.clone())
    }

    fn condition(&self, operand: &Operand, used: &mut Vec<usize>) -> Result<Condition, Error> {
        match operand {
            // A bare boolean attribute: `R.attr.active`.
            Operand::Variable(name) => {
                Ok(Cond::all().add(Expr::col(self.column_of(name, used)?).eq(true)))
            }
            Operand::Value(AttrValue::Bool(true)) => Ok(Cond::all()),
            Operand::Value(AttrValue::Bool(false)) => Ok(Cond::all().add(Expr::cust("1 = 0"))),
            Operand::Value(other) => Err(Error::UnsupportedOperands {
                operator: "condition".into(),
                detail: format!("the constant {other} is not a condition"),
            }),
            Operand::Expression(e) => self.expression(e, used),
        }
    }

    fn expression(&self, e: &Expression, used: &mut Vec<usize>) -> Result<Condition, Error> {
        let operator = e.operator.as_str();
        let bad = |detail: &str| Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail: detail.to_owned(),
        };
        match operator {
            "and" | "or" => {
                if e.operands.is_empty() {
                    return Err(bad("no operands"));
                }
                let mut cond = if operator == "and" {
                    Cond::all()
                } else {
                    Cond::any()
                };
                for operand in &e.operands {
                    cond = cond.add(self.condition(operand, used)?);
                }
                Ok(cond)
            }
            "not" => match e.operands.as_slice() {
                [operand] => Ok(self.condition(operand, used)?.not()),
                _ => Err(bad("`not` takes one operand")),
            },
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                let [left, right] = e.operands.as_slice() else {
                    return Err(bad("a comparison takes two operands"));
                };
                self.comparison(operator, left, right, used)
                    .map(|x| Cond::all().add(x))
            }
            "in" => {
                let [
                    Operand::Variable(name),
                    Operand::Value(AttrValue::List(items)),
                ] = e.operands.as_slice()
                else {
                    return Err(bad(
                        "only `in(column, [constants])` is supported (membership of a column in a list)",
                    ));
                };
                let column = self.column_of(name, used)?;
                if items.is_empty() {
                    return Ok(Cond::all().add(Expr::cust("1 = 0")));
                }
                let values = items
                    .iter()
                    .map(|v| scalar(v).ok_or_else(|| bad(&format!("{v} is not a scalar"))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Cond::all().add(Expr::col(column).is_in(values)))
            }
            "startsWith" | "endsWith" | "contains" => {
                let [
                    Operand::Variable(name),
                    Operand::Value(AttrValue::String(needle)),
                ] = e.operands.as_slice()
                else {
                    return Err(bad("only `column.fn(\"constant\")` is supported"));
                };
                let column = self.column_of(name, used)?;
                self.string_function(operator, column, needle)
                    .map(|x| Cond::all().add(x))
            }
            _ => Err(Error::UnsupportedOperator {
                operator: operator.to_owned(),
                detail: String::new(),
            }),
        }
    }

    fn comparison(
        &self,
        operator: &str,
        left: &Operand,
        right: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail,
        };
        // The plan keeps the policy's operand order: `1 < x` arrives as
        // `lt(1, x)` and is mirrored into `x > 1`.
        let (column, other, operator) = match (left, right) {
            (Operand::Variable(name), other) => (self.column_of(name, used)?, other, operator),
            (other @ Operand::Value(_), Operand::Variable(name)) => {
                (self.column_of(name, used)?, other, mirror(operator))
            }
            _ => {
                return Err(bad(format!(
                    "{left} and {right} are not a column and a value"
                )));
            }
        };
        let op = match operator {
            "eq" => BinOper::Equal,
            "ne" => BinOper::NotEqual,
            "lt" => BinOper::SmallerThan,
            "le" => BinOper::SmallerThanOrEqual,
            "gt" => BinOper::GreaterThan,
            _ => BinOper::GreaterThanOrEqual,
        };
        match other {
            Operand::Variable(name) => {
                let right = self.column_of(name, used)?;
                Ok(Expr::col(column).binary(op, Expr::col(right)))
            }
            Operand::Value(AttrValue::Null) => match operator {
                "eq" => Ok(Expr::col(column).is_null()),
                "ne" => Ok(Expr::col(column).is_not_null()),
                _ => Err(bad("an order comparison with null".into())),
            },
            Operand::Value(value) => {
                let value = scalar(value).ok_or_else(|| bad(format!("{value} is not a scalar")))?;
                Ok(Expr::col(column).binary(op, value))
            }
            Operand::Expression(inner) => Err(bad(format!(
                "comparing a column with the expression {}",
                Operand::Expression(inner.clone())
            ))),
        }
    }

    fn string_function(
        &self,
        operator: &str,
        column: ColumnRef,
        needle: &str,
    ) -> Result<SimpleExpr, Error> {
        if needle.is_empty() {
            // Every string starts with, ends with and contains "".
            return Ok(Expr::col(column).is_not_null());
        }
        let chars = needle.chars().count() as i64;
        match self.dialect {
            Dialect::Sqlite => {
                // instr and substr compare exactly (LIKE would ignore case).
                let instr = Func::cust(Alias::new("instr"))
                    .arg(Expr::col(column.clone()))
                    .arg(needle);
                Ok(match operator {
                    "startsWith" => Expr::expr(instr).eq(1),
                    "contains" => Expr::expr(instr).gt(0),
                    _ => Expr::expr(
                        Func::cust(Alias::new("substr"))
                            .arg(Expr::col(column))
                            .arg(-chars),
                    )
                    .eq(needle),
                })
            }
            Dialect::Postgres => {
                let escaped = escape_like(needle);
                let pattern = match operator {
                    "startsWith" => format!("{escaped}%"),
                    "endsWith" => format!("%{escaped}"),
                    _ => format!("%{escaped}%"),
                };
                Ok(Expr::col(column).like(LikeExpr::new(pattern).escape('\\')))
            }
            Dialect::MySql => Err(Error::UnsupportedOperator {
                operator: operator.to_owned(),
                detail: " for MySQL: LIKE's case-sensitivity depends on the column's collation"
                    .into(),
            }),
        }
    }
}

fn mirror(operator: &str) -> &str {
    match operator {
        "lt" => "gt",
        "le" => "ge",
        "gt" => "lt",
        "ge" => "le",
        same => same,
    }
}

/// A JSON scalar as a bound SQL value: integral numbers as integers.
/// A constant as a bound SQL value. Non-finite numbers have no SQL literal
/// with CEL's meaning (NaN equals nothing): refused.
fn scalar(value: &AttrValue) -> Option<Value> {
    match value {
        AttrValue::Bool(b) => Some((*b).into()),
        AttrValue::String(s) => Some(s.as_str().into()),
        AttrValue::Number(f) if !f.is_finite() => None,
        AttrValue::Number(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some((*f as i64).into()),
        AttrValue::Number(f) => Some((*f).into()),
        _ => None,
    }
}

/// Escapes `%`, `_` and the escape character `\` for `LIKE … ESCAPE '\'`.
fn escape_like(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len());
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
