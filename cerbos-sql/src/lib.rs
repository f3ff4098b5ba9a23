#![doc = include_str!("../README.md")]

use std::sync::Arc;

mod column;
mod list;
mod value;

use cerbos_client::{AttrValue, Expression, Operand, PlanFilter};
use column::Role;
pub use column::{Column, ColumnType, ElementType, IntoColumn, NullAs, Relation};
use list::Fold;
/// The sea-query this crate builds with: use it (rather than a separate
/// dependency on a possibly different version) to build the query a
/// [`Filter`] applies to, and its `sea_query_binder`-compatible values.
pub use sea_query;
use sea_query::{
    Alias, BinOper, ColumnRef, Cond, Condition, DynIden, Expr, ExprTrait, IntoColumnRef, IntoIden,
    JoinType, SelectStatement, SimpleExpr,
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

/// A join the filter needs: `LEFT JOIN table ON left = right`, a to-one
/// relation (at most one joined row per filtered row, as the caller
/// declares: a to-many table joined here would repeat rows). Left, so
/// that a missing related row never drops rows; a condition on the
/// columns of a missing row is unknown (an error in CEL, where the
/// application sends no such attribute), also under `!`, whatever the
/// columns' [`NullAs`]. A join through another one is declared with
/// [`Join::after`].
#[derive(Clone, Debug)]
pub struct Join {
    table: DynIden,
    on: (ColumnRef, ColumnRef),
    /// The joins this one reads from, in order.
    after: Vec<Join>,
}

impl Join {
    /// `LEFT JOIN table ON left = right`; one of `left` and `right` is a
    /// column of `table` (`(table, column)`): the joined row exists where
    /// it is not NULL.
    pub fn new(table: impl IntoIden, left: impl IntoColumnRef, right: impl IntoColumnRef) -> Self {
        Join {
            table: table.into_iden(),
            on: (left.into_column_ref(), right.into_column_ref()),
            after: Vec::new(),
        }
    }

    /// This join reads a column of `earlier`'s table (a chain of to-one
    /// relations, `R.attr.parent.inner.x`): `earlier` is joined first, and
    /// a missing link anywhere in the chain makes conditions on it
    /// unknown.
    pub fn after(mut self, earlier: Join) -> Self {
        let mut chain = earlier.after.clone();
        chain.push(Join {
            after: Vec::new(),
            ..earlier
        });
        chain.extend(self.after);
        self.after = chain;
        self
    }

    /// The column of the joined table in the `ON` condition: not NULL
    /// where the joined row exists.
    fn presence(&self) -> ColumnRef {
        let table = self.table.to_string();
        let of_table = |c: &ColumnRef| match c {
            ColumnRef::TableColumn(t, _) | ColumnRef::SchemaTableColumn(_, t, _) => {
                t.to_string() == table
            }
            _ => false,
        };
        if of_table(&self.on.0) {
            self.on.0.clone()
        } else {
            self.on.1.clone()
        }
    }
}

#[derive(Clone, Debug)]
struct Mapped {
    variable: String,
    column: Column,
    /// The joins the column needs, in order.
    join: Vec<usize>,
}

/// Maps plan variables (`request.resource.attr.owner_id`) to declared
/// [`Column`]s, possibly on joined tables, and turns plans into filters.
///
/// ```
/// use cerbos_sql::{Column, Dialect, Filter, NullAs, PlanToSql};
/// use cerbos_client::{AttrValue, Expression, Operand, PlanFilter};
/// use sea_query::{Alias, Query, SqliteQueryBuilder};
///
/// let contact = || Alias::new("contact");
/// let to_sql = PlanToSql::new(Dialect::Sqlite)
///     // NOT NULL columns: the NullAs convention does not matter.
///     .column("request.resource.attr.owner_id", Column::string((contact(), Alias::new("owner_id"))))
///     .column("request.resource.attr.is_active", Column::bool((contact(), Alias::new("is_active"))))
///     // A nullable column the application leaves out of the resource when NULL.
///     .column(
///         "request.resource.attr.manager",
///         Column::string((contact(), Alias::new("manager"))).null_as(NullAs::Omitted),
///     );
/// let eq = |attr: &str, value: AttrValue| PlanFilter::Conditional(Operand::Expression(Expression {
///     operator: "eq".into(),
///     operands: vec![Operand::Variable(format!("request.resource.attr.{attr}")), Operand::Value(value)],
/// }));
/// let sql = |plan: &PlanFilter| {
///     let mut query = Query::select();
///     query.column(Alias::new("id")).from(contact());
///     to_sql.filter(plan).unwrap().apply(&mut query);
///     query.to_string(SqliteQueryBuilder)
/// };
/// // What the PDP answers for "contacts managed by user 2": byte-exact,
/// // whatever the column's collation.
/// assert_eq!(
///     sql(&eq("manager", "2".into())),
///     r#"SELECT "id" FROM "contact" WHERE ("contact"."manager" COLLATE BINARY) = '2'"#
/// );
/// // `owner_id == 2` with a number: CEL never equates a string and a
/// // number, so no row matches (SQLite alone would match '2').
/// assert_eq!(
///     sql(&eq("owner_id", 2.0.into())),
///     r#"SELECT "id" FROM "contact" WHERE 1 = 0"#
/// );
/// // Comparing with null means something else when NULL is omitted: refused.
/// assert!(to_sql.filter(&eq("manager", AttrValue::Null)).is_err());
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct PlanToSql {
    dialect: Dialect,
    columns: Arc<Vec<Mapped>>,
    joins: Arc<Vec<Join>>,
    /// Translating a lambda's body.
    in_lambda: bool,
    /// The policies write arithmetic literals of the operand's type.
    trust_literals: bool,
    /// How many lambdas the translation is inside: the aliases of a
    /// nested subquery carry it, so that they never shadow an outer one.
    depth: usize,
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
            in_lambda: false,
            trust_literals: false,
            depth: 0,
        }
    }

    /// Declares that the policies write each number literal in arithmetic
    /// with the type of the value it meets: `R.attr.x + 1.0` next to an
    /// attribute (a double, as every attribute number is), `int(R.attr.n)
    /// % 2` next to an `int()`.
    ///
    /// A plan shows `1` for both `1` and `1.0`, and CEL has no mixed
    /// arithmetic: `R.attr.x + 1 > 2` fails in the PDP for every resource,
    /// while the same plan computed in SQL would return rows. So without
    /// this declaration, arithmetic with a whole-number constant is
    /// refused (a fractional constant such as `0.5` can only be a double,
    /// and is translated either way).
    pub fn trust_arithmetic_literals(mut self) -> Self {
        self.trust_literals = true;
        self
    }

    /// Maps `variable` (as the plan names it, `request.resource.attr.x`)
    /// to `column`: a [`Column`] with its declared type
    /// (`Column::string((table, name))`), or a bare column reference, which
    /// is an [`unchecked`](Column::unchecked) column.
    pub fn column(mut self, variable: impl Into<String>, column: impl IntoColumn) -> Self {
        Arc::make_mut(&mut self.columns).push(Mapped {
            variable: variable.into(),
            column: column.into_column(),
            join: Vec::new(),
        });
        self
    }

    /// Maps the resource attributes `attrs`, `(name, type)`, to the
    /// columns of the same names in `table`: `request.resource.attr.name`
    /// to `Column::new((table, name), type)`. For the common case of a
    /// table whose rows are sent as the resources' attributes; map other
    /// variables, or declare [`not_null`](Column::not_null) or a
    /// [`NullAs`], with [`column`](Self::column).
    ///
    /// ```
    /// use cerbos_sql::{ColumnType::{Bool, String}, Dialect, PlanToSql};
    /// let attrs = [("owner_id", String), ("public", Bool)];
    /// let to_sql = PlanToSql::new(Dialect::Postgres).attrs("document", attrs);
    /// ```
    pub fn attrs<'a>(
        self,
        table: &str,
        attrs: impl IntoIterator<Item = (&'a str, ColumnType)>,
    ) -> Self {
        attrs.into_iter().fold(self, |to_sql, (name, ty)| {
            let column = (Alias::new(table), Alias::new(name));
            to_sql.column(
                format!("request.resource.attr.{name}"),
                Column::new(column, ty),
            )
        })
    }

    /// Maps `variable` to `column` of a table reached through `join`; the
    /// join is added to the query only when the plan uses the variable.
    pub fn joined_column(
        mut self,
        variable: impl Into<String>,
        column: impl IntoColumn,
        join: Join,
    ) -> Self {
        let joins = Arc::make_mut(&mut self.joins);
        let mut indices = Vec::new();
        let chain = join.after.iter().cloned().chain([Join {
            after: Vec::new(),
            ..join
        }]);
        for join in chain {
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
            indices.push(index);
        }
        Arc::make_mut(&mut self.columns).push(Mapped {
            variable: variable.into(),
            column: column.into_column(),
            join: indices,
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

    /// Whether `variable` is mapped to a list column.
    fn is_list(&self, variable: &str) -> bool {
        self.columns
            .iter()
            .find(|m| m.variable == variable)
            .is_some_and(|m| matches!(m.column.ty, Some(ColumnType::List(_))))
    }

    fn column_of(&self, variable: &str, used: &mut Vec<usize>) -> Result<&Column, Error> {
        let mapped = self
            .columns
            .iter()
            .find(|m| m.variable == variable)
            .ok_or_else(|| Error::UnmappedVariable(variable.to_owned()))?;
        used.extend(mapped.join.iter().copied());
        Ok(&mapped.column)
    }

    fn condition(&self, operand: &Operand, used: &mut Vec<usize>) -> Result<Condition, Error> {
        match operand {
            // A bare boolean attribute: `R.attr.active`.
            Operand::Variable(name) => {
                let column = self.column_of(name, used)?;
                match column.ty {
                    None | Some(ColumnType::Bool) => Ok(Cond::all().add(
                        // NULL (and a missing attribute) is an error in CEL:
                        // unknown in SQL, also under `not`.
                        Expr::col(column.column.clone()).eq(true),
                    )),
                    Some(ty) => Err(Error::UnsupportedOperands {
                        operator: "condition".into(),
                        detail: format!("{name} is a {ty:?} column, not a condition"),
                    }),
                }
            }
            Operand::Value(AttrValue::Bool(true)) => Ok(Cond::all()),
            Operand::Value(AttrValue::Bool(false)) => Ok(Cond::all().add(Expr::cust(FALSE))),
            Operand::Value(other) => Err(Error::UnsupportedOperands {
                operator: "condition".into(),
                detail: format!("the constant {other} is not a condition"),
            }),
            Operand::Expression(e) => self.expression(e, used),
        }
    }

    fn expression(&self, e: &Expression, used: &mut Vec<usize>) -> Result<Condition, Error> {
        if matches!(e.operator.as_str(), "and" | "or" | "not" | "if") {
            return self.operation(e, used);
        }
        // A leaf: unknown where a to-one row it reads is missing (CEL
        // has no such attribute), also under `!` and in a list operation.
        let before = used.len();
        let cond = self.operation(e, used)?;
        let mut joins = used[before..].to_vec();
        joins.sort_unstable();
        joins.dedup();
        let Some(present) = joins
            .iter()
            .map(|&i| Expr::col(self.joins[i].presence()).is_not_null())
            .reduce(|a, b| a.and(b))
        else {
            return Ok(cond);
        };
        let guarded: SimpleExpr = Expr::case(present, SimpleExpr::from(cond))
            .finally(Expr::cust(UNKNOWN))
            .into();
        Ok(Cond::all().add(guarded))
    }

    fn operation(&self, e: &Expression, used: &mut Vec<usize>) -> Result<Condition, Error> {
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
            // Every leaf is exact in three values (true, false, and NULL
            // where CEL has an evaluation error), so SQL's NOT is CEL's `!`.
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
            // `x in list`: some item equals x (CEL's heterogeneous
            // equality: an item of another type never does).
            "in" if matches!(
                e.operands.as_slice(),
                [_, Operand::Variable(list)] if self.is_list(list)
            ) =>
            {
                let [item, list] = e.operands.as_slice() else {
                    return Err(bad("`in` needs two operands"));
                };
                if !matches!(item, Operand::Value(_) | Operand::Variable(_)) {
                    return Err(bad(
                        "only `constant in list` and `column in list` are supported",
                    ));
                }
                let folded = self.fold(
                    Fold::Exists,
                    list,
                    &lambda(op2("eq", item_var(), item.clone())),
                    used,
                )?;
                // Unlike the lambda's body, `x` is evaluated even for an
                // empty list: a missing attribute is an error there.
                let folded = match item {
                    Operand::Variable(name) => {
                        let column = self.column_of(name, used)?;
                        if column.null_as == NullAs::Omitted {
                            Expr::case(
                                Expr::col(column.column.clone()).is_null(),
                                Expr::cust(UNKNOWN),
                            )
                            .finally(folded)
                            .into()
                        } else {
                            folded
                        }
                    }
                    _ => folded,
                };
                Ok(Cond::all().add(folded))
            }
            // hasIntersection(list, [constants]), either way round: some
            // item is in the constants.
            "hasIntersection" => {
                // hasIntersection(list.map(v, body), [constants]).
                if let [
                    Operand::Expression(map),
                    items @ Operand::Value(AttrValue::List(_)),
                ]
                | [
                    items @ Operand::Value(AttrValue::List(_)),
                    Operand::Expression(map),
                ] = e.operands.as_slice()
                    && map.operator == "map"
                    && let [list, Operand::Expression(l)] = map.operands.as_slice()
                    && l.operator == "lambda"
                    && let [body, var @ Operand::Variable(_)] = l.operands.as_slice()
                {
                    let lambda = Operand::Expression(Expression {
                        operator: "lambda".into(),
                        operands: vec![op2("in", body.clone(), items.clone()), var.clone()],
                    });
                    return self
                        .fold(Fold::Strict, list, &lambda, used)
                        .map(|x| Cond::all().add(x));
                }
                let (list, items) = match e.operands.as_slice() {
                    [
                        list @ Operand::Variable(_),
                        items @ Operand::Value(AttrValue::List(_)),
                    ]
                    | [
                        items @ Operand::Value(AttrValue::List(_)),
                        list @ Operand::Variable(_),
                    ] => (list, items),
                    _ => {
                        return Err(bad(
                            "only hasIntersection(list column, [constants]) is supported",
                        ));
                    }
                };
                self.fold(
                    Fold::Exists,
                    list,
                    &lambda(op2("in", item_var(), items.clone())),
                    used,
                )
                .map(|x| Cond::all().add(x))
            }
            "exists" | "all" | "exists_one" => {
                let [list, lambda] = e.operands.as_slice() else {
                    return Err(bad("takes a list and a lambda"));
                };
                // Over a list of constants (a principal's attribute): the
                // body for each item, joined by OR (exists) or AND (all),
                // which fold errors as CEL does.
                if let (Operand::Value(AttrValue::List(items)), Operand::Expression(l)) =
                    (list, lambda)
                    && l.operator == "lambda"
                    && let [body, Operand::Variable(var)] = l.operands.as_slice()
                    && operator != "exists_one"
                {
                    let mut cond = if operator == "exists" {
                        Cond::any()
                    } else {
                        Cond::all()
                    };
                    if items.is_empty() {
                        return Ok(Cond::all().add(Expr::cust(if operator == "exists" {
                            FALSE
                        } else {
                            TRUE
                        })));
                    }
                    for item in items {
                        cond = cond.add(self.condition(&substitute(body, var, item), used)?);
                    }
                    return Ok(cond);
                }
                let fold = match operator {
                    "exists" => Fold::Exists,
                    "all" => Fold::All,
                    _ => Fold::ExistsOne,
                };
                self.fold(fold, list, lambda, used)
                    .map(|x| Cond::all().add(x))
            }
            "in" => {
                if let [_, Operand::Expression(list)] = e.operands.as_slice() {
                    return Err(Error::UnsupportedOperator {
                        operator: list.operator.clone(),
                        detail: format!(
                            " as the list of `in` ({}): only a list column or constants",
                            Operand::Expression(list.clone())
                        ),
                    });
                }
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
                self.membership(name, column, items)
                    .map(|x| Cond::all().add(x))
            }
            // `c ? a : b` with conditions: an error in `c` is an error.
            "if" => {
                let [c, a, b] = e.operands.as_slice() else {
                    return Err(bad("`if` takes three operands"));
                };
                let c = SimpleExpr::from(self.condition(c, used)?);
                let (a, b) = (self.condition(a, used)?, self.condition(b, used)?);
                let case =
                    Expr::case(c.clone(), SimpleExpr::from(a)).case(c.not(), SimpleExpr::from(b));
                let case: SimpleExpr = case.into();
                Ok(Cond::all().add(case))
            }
            "ancestorOf" | "descendentOf" | "overlaps" => {
                let [a, b] = e.operands.as_slice() else {
                    return Err(bad("takes two hierarchies"));
                };
                self.hierarchy(operator, a, b, used)
                    .map(|x| Cond::all().add(x))
            }
            "startsWith" | "endsWith" | "contains" => {
                let [
                    Operand::Variable(name),
                    Operand::Value(AttrValue::String(needle)),
                ] = e.operands.as_slice()
                else {
                    let [receiver, needle] = e.operands.as_slice() else {
                        return Err(bad("takes a receiver and a needle"));
                    };
                    return self
                        .general_string_function(operator, receiver, needle, used)
                        .map(|x| Cond::all().add(x));
                };
                let column = self.column_of(name, used)?;
                if !matches!(column.ty, None | Some(ColumnType::String)) {
                    return Err(bad(&format!(
                        "{name} is a {:?} column, not a string",
                        column.ty.unwrap_or(ColumnType::String)
                    )));
                }
                let present = self.string_function(operator, &column.column, needle)?;
                // `null.startsWith("x")` is an evaluation error in CEL.
                Ok(Cond::all().add(leaf(&column.column, present, OnNull::Error)))
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
        // size() of a list (a string's size is a computed value).
        let is_size = |o: &Operand| {
            matches!(o, Operand::Expression(e) if e.operator == "size"
                && !matches!(e.operands.as_slice(), [Operand::Variable(v)] if !self.is_list(v)))
        };
        if let Some((Operand::Expression(size), other, operator)) = match (left, right) {
            (l, r) if is_size(l) => Some((l, r, operator)),
            (l, r) if is_size(r) => Some((r, l, mirror(operator))),
            _ => None,
        } {
            let [list] = size.operands.as_slice() else {
                return Err(bad("size takes one operand".into()));
            };
            let size = self.size(list, used)?;
            return self.size_comparison(operator, size, other);
        }
        let (name, other, operator) = match (left, right) {
            (Operand::Variable(name), other @ (Operand::Value(_) | Operand::Variable(_))) => {
                (name, other, operator)
            }
            (other @ Operand::Value(_), Operand::Variable(name)) => (name, other, mirror(operator)),
            // Computed values (arithmetic, `if`, casts, timestamps...).
            _ => return self.value_comparison(operator, left, right, used),
        };
        let column = self.column_of(name, used)?;
        if column.relation.is_some() {
            return Err(bad(format!(
                "{name} is a list held by a relation: only list operations apply to it"
            )));
        }
        if column.role == Role::Opaque {
            // A JSON array or object item: never equal to a scalar, and
            // not ordered.
            return match other {
                // A row column of a scalar type: never equal (an error
                // when an omitted attribute is missing).
                Operand::Variable(other_name) => {
                    let row = self.column_of(other_name, used)?;
                    if row.ty.and_then(kind_of).is_none() {
                        return Err(bad(format!("comparing a JSON item with {other}")));
                    }
                    let on_null = match (row.null_as, operator) {
                        (NullAs::Omitted, _) | (_, "lt" | "le" | "gt" | "ge") => OnNull::Error,
                        (NullAs::ExplicitNull, "eq") => OnNull::False,
                        (NullAs::ExplicitNull, _) => OnNull::True,
                    };
                    Ok(match operator {
                        "eq" | "ne" => leaf(&row.column, Present::Const(operator == "ne"), on_null),
                        _ => Expr::cust(UNKNOWN),
                    })
                }
                Operand::Value(AttrValue::List(_) | AttrValue::Map(_)) | Operand::Expression(_) => {
                    Err(bad(format!("comparing a JSON item with {other}")))
                }
                _ if operator == "eq" => Ok(Expr::cust(FALSE)),
                _ if operator == "ne" => Ok(Expr::cust(TRUE)),
                _ => Ok(Expr::cust(UNKNOWN)),
            };
        }
        let op = bin_oper(operator);
        let equality = matches!(operator, "eq" | "ne");
        let col = &column.column;
        match other {
            Operand::Variable(other_name) => {
                let right = self.column_of(other_name, used)?;
                if equality
                    && column.role == Role::Row
                    && right.role == Role::Row
                    && column.null_as != right.null_as
                    && !column.not_null
                    && !right.not_null
                {
                    // A NULL is a null value on one side and a missing
                    // attribute on the other: refused, as every adapter
                    // of the conformance corpus refuses it.
                    return Err(bad(format!(
                        "{name} and {other_name} are compared under mixed null conventions \
                         (declare both NullAs::ExplicitNull or both NullAs::Omitted)"
                    )));
                }
                if equality
                    && (column.role == Role::Element
                        || right.role == Role::Element
                        || ((column.null_as == NullAs::ExplicitNull
                            || right.null_as == NullAs::ExplicitNull)
                            && column.ty.and_then(kind_of).is_some()
                            && right.ty.and_then(kind_of).is_some()))
                {
                    return self.item_equality(operator, column, right).ok_or_else(|| {
                        bad(format!(
                            "{name} and {other_name} are not columns of comparable types"
                        ))
                    });
                }
                let kind = match (column.ty, right.ty) {
                    (None, None) => None,
                    (Some(a), Some(b)) if kind_of(a).is_some() && kind_of(a) == kind_of(b) => {
                        kind_of(a)
                    }
                    _ => {
                        return Err(bad(format!(
                            "{name} and {other_name} are not columns of one comparable type"
                        )));
                    }
                };
                // NULL on either side is unknown: never more rows than
                // CEL (fewer when both are explicit nulls and `==`).
                let mut expr = self.side(column, kind).binary(op, self.side(right, kind));
                if self.dialect == Dialect::Postgres && operator != "ne" {
                    // PostgreSQL finds 'NaN' = 'NaN' and orders it above
                    // every number; CEL does neither.
                    for c in [column, right] {
                        if c.ty == Some(ColumnType::Double) {
                            expr = expr.and(not_nan(&c.column));
                        }
                    }
                }
                Ok(expr)
            }
            Operand::Value(AttrValue::Null) => {
                if !equality {
                    return Err(bad("an order comparison with null".into()));
                }
                if column.null_as == NullAs::Omitted {
                    if operator == "ne" {
                        // Present: never null; missing: an error.
                        return Ok(leaf(col, Present::Const(true), OnNull::Error));
                    }
                    return Err(bad(format!(
                        "comparing {name} with null: its NULL rows are sent without the \
                         attribute (NullAs::Omitted), and CEL does not treat a missing \
                         attribute as null (no row has a null value: write the condition \
                         without it, or declare NullAs::ExplicitNull)"
                    )));
                }
                Ok(if operator == "eq" {
                    Expr::col(col.clone()).is_null()
                } else {
                    Expr::col(col.clone()).is_not_null()
                })
            }
            Operand::Value(value @ (AttrValue::List(_) | AttrValue::Map(_))) => {
                Err(bad(format!("{value} is not a scalar")))
            }
            Operand::Value(value) => {
                let column_kind = match column.ty {
                    None => None,
                    Some(ty) => Some(kind_of(ty).ok_or_else(|| {
                        bad(format!(
                            "{name} is a {ty:?} column: SQL does not compare it as CEL does"
                        ))
                    })?),
                };
                // CEL: `null == c` is false, `null != c` true, `null < c` an
                // error; a missing attribute is an error everywhere.
                let on_null = match (column.null_as, operator) {
                    (NullAs::Omitted, _) => OnNull::Error,
                    (NullAs::ExplicitNull, "eq") => OnNull::False,
                    (NullAs::ExplicitNull, "ne") => OnNull::True,
                    (NullAs::ExplicitNull, _) => OnNull::Error,
                };
                let value_kind = scalar_kind(value);
                let present = if column_kind.is_some_and(|k| k != value_kind) {
                    // A string never equals a number (nor a bool an int),
                    // and ordering them is an evaluation error.
                    match operator {
                        "eq" => Present::Const(false),
                        "ne" => Present::Const(true),
                        _ => return Ok(Expr::cust(UNKNOWN)),
                    }
                } else if matches!(value, AttrValue::Number(f) if f.is_nan()) {
                    // NaN equals nothing and orders with nothing.
                    Present::Const(operator == "ne")
                } else {
                    let bound = self.bound(value).map_err(bad)?;
                    let lhs = if self.rounds(column, std::slice::from_ref(value)) {
                        self.as_double(col)
                    } else {
                        self.lhs(col, Some(value_kind))
                    };
                    let mut expr = lhs.binary(op, bound);
                    if self.dialect == Dialect::Postgres
                        && column.ty == Some(ColumnType::Double)
                        && !equality
                    {
                        // PostgreSQL orders 'NaN' above every number; CEL
                        // orders it with none.
                        expr = expr.and(not_nan(col));
                    }
                    Present::Expr(expr)
                };
                Ok(leaf(col, present, on_null))
            }
            Operand::Expression(inner) => Err(bad(format!(
                "comparing a column with the expression {}",
                Operand::Expression(inner.clone())
            ))),
        }
    }

    /// `item == column` (or `!=`) in a lambda, exact in three values: a
    /// null (an explicit null item or row column) equals only null, a
    /// value of another type is never equal, an omitted attribute is an
    /// error. `None` when a side has no comparable declared type.
    fn item_equality(&self, operator: &str, a: &Column, b: &Column) -> Option<SimpleExpr> {
        let (ka, kb) = (kind_of(a.ty?)?, kind_of(b.ty?)?);
        let ne = operator == "ne";
        let konst = |v: bool| Expr::cust(if v { TRUE } else { FALSE });
        let both_present = if ka == kb {
            let mut expr = self.side(a, Some(ka)).binary(
                if ne {
                    BinOper::NotEqual
                } else {
                    BinOper::Equal
                },
                self.side(b, Some(ka)),
            );
            if self.dialect == Dialect::Postgres && !ne {
                for c in [a, b] {
                    if c.ty == Some(ColumnType::Double) {
                        expr = expr.and(not_nan(&c.column));
                    }
                }
            }
            expr
        } else {
            konst(ne)
        };
        let null = |c: &Column| Expr::col(c.column.clone()).is_null();
        let mut case = None::<sea_query::CaseStatement>;
        let mut when = |cond: SimpleExpr, then: SimpleExpr| {
            case = Some(match case.take() {
                None => Expr::case(cond, then),
                Some(c) => c.case(cond, then),
            });
        };
        for c in [a, b] {
            if c.null_as == NullAs::Omitted {
                when(null(c), Expr::cust(UNKNOWN));
            }
        }
        // Both explicit nulls are equal; one alone is not.
        when(null(a).and(null(b)), konst(!ne));
        when(null(a).or(null(b)), konst(ne));
        Some(case?.finally(both_present).into())
    }

    /// `in(column, [constants])`: equality with any item, as CEL's `in`.
    fn membership(
        &self,
        name: &str,
        column: &Column,
        items: &[AttrValue],
    ) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Error::UnsupportedOperands {
            operator: "in".into(),
            detail,
        };
        if column.role == Role::Opaque {
            // A JSON array or object item is none of the scalars.
            if let Some(item) = items
                .iter()
                .find(|i| matches!(i, AttrValue::List(_) | AttrValue::Map(_)))
            {
                return Err(bad(format!("{item} is not a scalar")));
            }
            return Ok(Expr::cust(FALSE));
        }
        let column_kind = match column.ty {
            None => None,
            Some(ty) => Some(kind_of(ty).ok_or_else(|| {
                bad(format!(
                    "{name} is a {ty:?} column: SQL does not compare it as CEL does"
                ))
            })?),
        };
        let mut has_null = false;
        let mut values = Vec::new();
        let mut kinds = Vec::new();
        for item in items {
            match item {
                AttrValue::Null => has_null = true,
                AttrValue::List(_) | AttrValue::Map(_) => {
                    return Err(bad(format!("{item} is not a scalar")));
                }
                // NaN equals nothing.
                AttrValue::Number(f) if f.is_nan() => {}
                // Another type never equals the column's values.
                _ if column_kind.is_some_and(|k| k != scalar_kind(item)) => {}
                _ => {
                    kinds.push(scalar_kind(item));
                    values.push(self.bound(item).map_err(bad)?);
                }
            }
        }
        let on_null = match column.null_as {
            NullAs::Omitted => OnNull::Error,
            NullAs::ExplicitNull if has_null => OnNull::True,
            NullAs::ExplicitNull => OnNull::False,
        };
        kinds.dedup();
        let kind = match (column_kind, kinds.as_slice()) {
            (Some(kind), _) => Some(kind),
            (None, [kind]) => Some(*kind),
            // An unchecked column compared with mixed constants.
            (None, _) => None,
        };
        let present = if values.is_empty() {
            Present::Const(false)
        } else {
            let lhs = if self.rounds(column, items) {
                self.as_double(&column.column)
            } else {
                self.lhs(&column.column, kind)
            };
            Present::Expr(lhs.is_in(values))
        };
        Ok(leaf(&column.column, present, on_null))
    }

    /// The column as the left side of a comparison with values of `kind`:
    /// strings compare byte by byte whatever the column's collation.
    fn lhs(&self, column: &ColumnRef, kind: Option<Kind>) -> SimpleExpr {
        let col = Expr::col(column.clone());
        if kind != Some(Kind::String) {
            return col.into();
        }
        match self.dialect {
            Dialect::Sqlite => self.cust1("? COLLATE BINARY", col),
            Dialect::Postgres => self.cust1(r#"? COLLATE "C""#, col),
            Dialect::MySql => self.cust1("CAST(? AS BINARY)", col),
        }
    }

    /// A column compared with another column: an integer column as a
    /// double, as CEL reads a number (2^53 + 1 is 2^53 there).
    fn side(&self, column: &Column, kind: Option<Kind>) -> SimpleExpr {
        if column.ty == Some(ColumnType::Integer) {
            self.as_double(&column.column)
        } else {
            self.lhs(&column.column, kind)
        }
    }

    fn as_double(&self, column: &ColumnRef) -> SimpleExpr {
        let template = match self.dialect {
            Dialect::Sqlite => "CAST(? AS REAL)",
            Dialect::Postgres => "CAST(? AS float8)",
            Dialect::MySql => "CAST(? AS DOUBLE)",
        };
        self.cust1(template, Expr::col(column.clone()))
    }

    /// Whether comparing the integer `column` with `values` must read it
    /// as a double: SQLite compares an integer with a double exactly, and
    /// CEL rounds the integer to a double first, which differs only
    /// beyond 2^53 (PostgreSQL and MySQL compare as doubles).
    fn rounds(&self, column: &Column, values: &[AttrValue]) -> bool {
        self.dialect == Dialect::Sqlite
            && column.ty == Some(ColumnType::Integer)
            && values
                .iter()
                .any(|v| matches!(v, AttrValue::Number(f) if f.is_finite() && f.abs() >= 9_007_199_254_740_992.0))
    }

    /// A custom expression; `?` stands for the next of `exprs` (numbered
    /// for PostgreSQL).
    fn cust(&self, template: &str, exprs: impl IntoIterator<Item = SimpleExpr>) -> SimpleExpr {
        let template = if self.dialect == Dialect::Postgres {
            let mut numbered = String::with_capacity(template.len() + 4);
            for (i, part) in template.split('?').enumerate() {
                if i > 0 {
                    numbered.push_str(&format!("${i}"));
                }
                numbered.push_str(part);
            }
            numbered
        } else {
            template.to_owned()
        };
        Expr::cust_with_exprs(template, exprs)
    }

    fn cust1(&self, template: &str, expr: impl Into<SimpleExpr>) -> SimpleExpr {
        self.cust(template, [expr.into()])
    }

    /// A constant as a bound value (strings as bytes for MySQL).
    fn bound(&self, value: &AttrValue) -> Result<SimpleExpr, String> {
        Ok(match value {
            AttrValue::Bool(b) => Expr::val(*b).into(),
            AttrValue::String(s) if self.dialect == Dialect::MySql => {
                self.cust1("CAST(? AS BINARY)", s.as_str())
            }
            AttrValue::String(s) => Expr::val(s.as_str()).into(),
            AttrValue::Number(f) if f.is_infinite() && self.dialect == Dialect::MySql => {
                return Err(format!("MySQL has no {f}"));
            }
            AttrValue::Number(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Expr::val(*f as i64).into()
            }
            AttrValue::Number(f) => Expr::val(*f).into(),
            other => return Err(format!("{other} is not a scalar")),
        })
    }

    /// The string function on a non-NULL column: exact for every byte
    /// string, and case-sensitive.
    fn string_function(
        &self,
        operator: &str,
        column: &ColumnRef,
        needle: &str,
    ) -> Result<Present, Error> {
        if needle.is_empty() {
            // Every string starts with, ends with and contains "".
            return Ok(Present::Const(true));
        }
        let col = || SimpleExpr::from(Expr::col(column.clone()));
        let needle_value = || SimpleExpr::from(Expr::val(needle));
        match self.dialect {
            Dialect::Sqlite => {
                // On the UTF-8 bytes (SQLite's text functions stop at NUL,
                // LIKE ignores case); a byte match of UTF-8 is a character
                // match.
                let bytes = needle.len() as i64;
                Ok(Present::Expr(match operator {
                    // substr() of an empty BLOB is NULL, not empty: ""
                    // starts and ends with no non-empty needle (a NULL
                    // column stays NULL).
                    "startsWith" => self.cust(
                        "CASE WHEN CAST(? AS BLOB) = X'' THEN 1 = 0 \
                         ELSE substr(CAST(? AS BLOB), 1, ?) = CAST(? AS BLOB) END",
                        [col(), col(), Expr::val(bytes).into(), needle_value()],
                    ),
                    "endsWith" => self.cust(
                        "CASE WHEN CAST(? AS BLOB) = X'' THEN 1 = 0 \
                         ELSE substr(CAST(? AS BLOB), ?) = CAST(? AS BLOB) END",
                        [col(), col(), Expr::val(-bytes).into(), needle_value()],
                    ),
                    _ => self.cust(
                        "instr(CAST(? AS BLOB), CAST(? AS BLOB)) > 0",
                        [col(), needle_value()],
                    ),
                }))
            }
            Dialect::Postgres => {
                // PostgreSQL text holds no NUL (a needle with one fails
                // the query); "C" compares bytes.
                // right(text, integer): an int8 parameter has no overload.
                let chars = i32::try_from(needle.chars().count()).map_err(|_| {
                    Error::UnsupportedOperands {
                        operator: operator.to_owned(),
                        detail: "a needle longer than 2^31 characters".into(),
                    }
                })?;
                Ok(Present::Expr(match operator {
                    "startsWith" => {
                        self.cust(r#"starts_with(? COLLATE "C", ?)"#, [col(), needle_value()])
                    }
                    "endsWith" => self.cust(
                        r#"right(?, ?) COLLATE "C" = ?"#,
                        [col(), Expr::val(chars).into(), needle_value()],
                    ),
                    _ => self.cust(r#"strpos(? COLLATE "C", ?) > 0"#, [col(), needle_value()]),
                }))
            }
            Dialect::MySql => Err(Error::UnsupportedOperator {
                operator: operator.to_owned(),
                detail: " for MySQL: not verified to be exact and case-sensitive there".into(),
            }),
        }
    }
}

/// The variable of the lambdas built for `in` and `hasIntersection`.
const ITEM_VAR: &str = "cerbos.item";

fn item_var() -> Operand {
    Operand::Variable(ITEM_VAR.to_owned())
}

/// `operand` with the variable `var` replaced by `value`.
fn substitute(operand: &Operand, var: &str, value: &AttrValue) -> Operand {
    match operand {
        Operand::Variable(v) if v == var => Operand::Value(value.clone()),
        Operand::Expression(e) => {
            // A nested lambda that binds `var` again shadows it.
            if e.operator == "lambda"
                && matches!(e.operands.last(), Some(Operand::Variable(v)) if v == var)
            {
                return operand.clone();
            }
            Operand::Expression(Expression {
                operator: e.operator.clone(),
                operands: e
                    .operands
                    .iter()
                    .map(|o| substitute(o, var, value))
                    .collect(),
            })
        }
        other => other.clone(),
    }
}

fn op2(operator: &str, left: Operand, right: Operand) -> Operand {
    Operand::Expression(Expression {
        operator: operator.to_owned(),
        operands: vec![left, right],
    })
}

fn lambda(body: Operand) -> Operand {
    Operand::Expression(Expression {
        operator: "lambda".to_owned(),
        operands: vec![body, item_var()],
    })
}

const FALSE: &str = "1 = 0";
const TRUE: &str = "1 = 1";
/// An evaluation error for every row: unknown, also under NOT.
const UNKNOWN: &str = "NULL";

/// The CEL kinds SQL can compare exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Bool,
}

fn kind_of(ty: ColumnType) -> Option<Kind> {
    match ty {
        ColumnType::String => Some(Kind::String),
        ColumnType::Integer | ColumnType::Double => Some(Kind::Number),
        ColumnType::Bool => Some(Kind::Bool),
        ColumnType::Timestamp | ColumnType::UnixMicros | ColumnType::Json | ColumnType::List(_) => {
            None
        }
    }
}

/// The kind of a scalar (lists, maps and null are handled before).
fn scalar_kind(value: &AttrValue) -> Kind {
    match value {
        AttrValue::String(_) => Kind::String,
        AttrValue::Bool(_) => Kind::Bool,
        _ => Kind::Number,
    }
}

/// What CEL says for a row whose column is NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnNull {
    True,
    False,
    /// An evaluation error: the rule does not match, even under `!`.
    Error,
}

/// A condition on the rows whose column is not NULL.
enum Present {
    /// Two-valued on those rows, NULL when the column is NULL.
    Expr(SimpleExpr),
    /// The same for every such row.
    Const(bool),
}

/// The condition for every row: `present` where the column is not NULL,
/// `on_null` (with an error as SQL's unknown) where it is.
fn leaf(column: &ColumnRef, present: Present, on_null: OnNull) -> SimpleExpr {
    let col = || Expr::col(column.clone());
    match (present, on_null) {
        (Present::Expr(e), OnNull::Error) => e,
        (Present::Expr(e), OnNull::False) => col().is_not_null().and(e),
        (Present::Expr(e), OnNull::True) => col().is_null().or(e),
        (Present::Const(b), OnNull::Error) => Expr::case(col().is_null(), Expr::cust(UNKNOWN))
            .finally(Expr::cust(if b { TRUE } else { FALSE }))
            .into(),
        (Present::Const(true), OnNull::False) => col().is_not_null(),
        (Present::Const(false), OnNull::True) => col().is_null(),
        (Present::Const(true), OnNull::True) => Expr::cust(TRUE),
        (Present::Const(false), OnNull::False) => Expr::cust(FALSE),
    }
}

/// False for a PostgreSQL `'NaN'` double (NULL for NULL).
fn not_nan(column: &ColumnRef) -> SimpleExpr {
    Expr::col(column.clone()).ne(Expr::cust("'NaN'::float8"))
}

/// The SQL operator of a comparison.
fn bin_oper(operator: &str) -> BinOper {
    match operator {
        "eq" => BinOper::Equal,
        "ne" => BinOper::NotEqual,
        "lt" => BinOper::SmallerThan,
        "le" => BinOper::SmallerThanOrEqual,
        "gt" => BinOper::GreaterThan,
        _ => BinOper::GreaterThanOrEqual,
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

#[cfg(test)]
mod tests;
