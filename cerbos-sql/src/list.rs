//! List attributes: membership, `hasIntersection`, `size` and the
//! collection macros (`exists`, `all`, `exists_one`, `filter` under
//! `size`) over a JSON array column or a to-many relation.
//!
//! Every operation is a fold over the list's items, computed in a
//! subquery over a derived table of the items (alias `cerbos_e`): one row
//! per item (duplicates kept), with its value in the column of its CEL
//! kind (`s` string, `n` number, `b` bool, NULL elsewhere) and its kind in
//! `t` (`s`, `n`, `b`, `z` for null, `o` for a nested array or object).
//! The lambda's body is translated once per kind, with the item as a
//! column of that kind (a JSON null is an explicit null), so an item of
//! another type than the declared one is decided as CEL decides it: never
//! equal to a constant of another type, an evaluation error under an
//! order comparison or a string function. Per item the body is 1, 0 or
//! NULL (CEL's evaluation error), and the fold follows CEL:
//!
//! - `exists`: true if some item is true, else an error if some item is
//!   one, else false (so `[]` is false);
//! - `all`: false if some item is false, else an error if some item is
//!   one, else true (so `[]` is true);
//! - `exists_one` and `filter`: an error if any item is one (no short
//!   cut), else the count of true items (`exists_one`: exactly one).
//!
//! The fold is NULL (an error, never granted, also under `!`) when a JSON
//! column is NULL or holds something else than an array.

use super::*;
use crate::column::{ElementType, Role};

/// The derived table of the items.
const ITEMS: &str = "cerbos_e";
/// The derived table of the per-item results.
const FOLDED: &str = "cerbos_f";
/// The related table of a to-many relation whose rows a lambda reads.
const RELATED: &str = "cerbos_r";
/// The related table of a relation read as items (`size`, a list of
/// scalars): never the alias of the row a lambda is reading.
const ITEM_ROWS: &str = "cerbos_s";

/// How the per-item results are folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    Exists,
    All,
    ExistsOne,
    /// `size(filter(...))`: the count of true items.
    Count,
    /// `hasIntersection(list.map(...), ...)`: true if some item is, but an
    /// error if any item is one.
    Strict,
}

impl PlanToSql {
    /// The alias `base` at this lambda depth.
    fn alias(&self, base: &str) -> String {
        if self.depth == 0 {
            base.to_owned()
        } else {
            format!("{base}{}", self.depth)
        }
    }
}

/// The per-item results (`"x"`: 1, 0, or NULL for an error) folded as
/// CEL folds them.
fn aggregate(fold: Fold) -> &'static str {
    match fold {
        Fold::Exists => {
            "CASE WHEN MAX(\"x\") = 1 THEN 1 WHEN COUNT(*) > COUNT(\"x\") THEN NULL ELSE 0 END"
        }
        Fold::All => {
            "CASE WHEN MIN(\"x\") = 0 THEN 0 WHEN COUNT(*) > COUNT(\"x\") THEN NULL ELSE 1 END"
        }
        Fold::ExistsOne => {
            "CASE WHEN COUNT(*) > COUNT(\"x\") THEN NULL WHEN SUM(\"x\") = 1 THEN 1 ELSE 0 END"
        }
        Fold::Count => {
            "CASE WHEN COUNT(*) > COUNT(\"x\") THEN NULL ELSE COALESCE(SUM(\"x\"), 0) END"
        }
        // `map` then a test of the mapped list: an error for any item is
        // an error of the whole list.
        Fold::Strict => {
            "CASE WHEN COUNT(*) > COUNT(\"x\") THEN NULL WHEN MAX(\"x\") = 1 THEN 1 ELSE 0 END"
        }
    }
}

/// Reads `column` (a field of a relation's row, named without its table)
/// from the row aliased `row`; a nested relation's key likewise.
fn rebase(column: &mut Column, row: &Alias) {
    let bare = |c: &ColumnRef| match c {
        ColumnRef::Column(name) => Some(name.clone()),
        ColumnRef::TableColumn(_, name) | ColumnRef::SchemaTableColumn(_, _, name) => {
            Some(name.clone())
        }
        _ => None,
    };
    match &mut column.relation {
        Some(relation) => {
            if let Some(name) = bare(&relation.key) {
                Arc::make_mut(relation).key = (row.clone(), name).into_column_ref();
            }
            column.column = Arc::make_mut(relation).key.clone();
        }
        None => {
            if let Some(name) = bare(&column.column) {
                column.column = (row.clone(), name).into_column_ref();
            }
        }
    }
}

/// A custom SQL text with `?` for each of `exprs`, in order.
#[derive(Default)]
struct Sql {
    text: String,
    exprs: Vec<SimpleExpr>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn expr(&mut self, expr: impl Into<SimpleExpr>) -> &mut Self {
        self.text.push('?');
        self.exprs.push(expr.into());
        self
    }

    fn col(&mut self, column: &ColumnRef) -> &mut Self {
        self.expr(Expr::col(column.clone()))
    }
}

/// `"name"`, quoted for SQLite and PostgreSQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn kind_letter(kind: Kind) -> &'static str {
    match kind {
        Kind::String => "s",
        Kind::Number => "n",
        Kind::Bool => "b",
    }
}

/// The kind of a list's scalar items (objects have none).
fn element_kind(element: ElementType) -> Kind {
    match element {
        ElementType::String => Kind::String,
        ElementType::Number => Kind::Number,
        ElementType::Bool | ElementType::Object => Kind::Bool,
    }
}

fn column_type_of(kind: Kind) -> ColumnType {
    match kind {
        Kind::String => ColumnType::String,
        Kind::Number => ColumnType::Double,
        Kind::Bool => ColumnType::Bool,
    }
}

impl PlanToSql {
    /// The list column `operand` names, for `operator`.
    pub(crate) fn list_column(
        &self,
        operator: &str,
        operand: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<(Column, ElementType), Error> {
        let bad = |detail: String| Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail,
        };
        let Operand::Variable(name) = operand else {
            return Err(bad(format!(
                "{operand} is not a list column (only a mapped list attribute is supported)"
            )));
        };
        if self.dialect == Dialect::MySql {
            return Err(Error::UnsupportedOperator {
                operator: operator.to_owned(),
                detail: " for MySQL: list attributes are supported for SQLite and PostgreSQL"
                    .into(),
            });
        }
        let column = self.column_of(name, used)?;
        if let Some(relation) = &column.relation
            && !matches!(
                relation.key,
                ColumnRef::TableColumn(..) | ColumnRef::SchemaTableColumn(..)
            )
        {
            return Err(bad(format!(
                "{name}: the key of its relation does not name its table"
            )));
        }
        match column.ty {
            Some(ColumnType::List(element)) => Ok((column.clone(), element)),
            other => Err(bad(format!(
                "{name} is {}, not a list column (declare it with Column::list or \
                 Column::related_list)",
                other.map_or_else(|| "unchecked".to_owned(), |ty| format!("a {ty:?} column"))
            ))),
        }
    }

    /// `list.fold(var, body)`, three-valued: NULL where CEL has an error.
    pub(crate) fn fold(
        &self,
        fold: Fold,
        list: &Operand,
        lambda: &Operand,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let operator = match fold {
            Fold::Exists => "exists",
            Fold::All => "all",
            Fold::ExistsOne => "exists_one",
            Fold::Count => "filter",
            Fold::Strict => "map",
        };
        let bad = |detail: &str| Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail: detail.to_owned(),
        };
        let (column, element) = self.list_column(operator, list, used)?;
        let Operand::Expression(Expression {
            operator: lambda_op,
            operands,
        }) = lambda
        else {
            return Err(bad("the second operand is not a lambda"));
        };
        let [body, Operand::Variable(var)] = operands.as_slice() else {
            return Err(bad("the lambda is not `lambda(body, variable)`"));
        };
        if lambda_op != "lambda" {
            return Err(bad("the second operand is not a lambda"));
        }
        if element == ElementType::Object {
            return self.object_fold(fold, &column, body, var, used);
        }
        let declared = element_kind(element);
        // The item's kinds that can occur: a relation's column holds the
        // declared type (or NULL); a JSON array anything.
        let kinds: &[Kind] = if column.relation.is_some() {
            &[]
        } else {
            &[Kind::String, Kind::Number, Kind::Bool]
        };
        let item = |kind: Kind| Column {
            column: (Alias::new(self.alias(ITEMS)), Alias::new(kind_letter(kind)))
                .into_column_ref(),
            ty: Some(column_type_of(kind)),
            null_as: NullAs::ExplicitNull,
            relation: None,
            role: Role::Element,
            not_null: false,
        };
        // The body for an item of the declared kind must translate.
        let mut branches = vec![(
            kind_letter(declared),
            Some(self.body(body, var, item(declared), used)?),
        )];
        for &kind in kinds {
            if kind != declared {
                // An item of another type: what fails to translate is an
                // evaluation error for it (CEL: no such overload).
                branches.push((
                    kind_letter(kind),
                    self.body(body, var, item(kind), used).ok(),
                ));
            }
        }
        // A null item: the declared kind's column, NULL.
        branches.push(("z", self.body(body, var, item(declared), used).ok()));
        if column.relation.is_none() {
            let opaque = Column {
                // `t` is never NULL: constants decide.
                column: (Alias::new(self.alias(ITEMS)), Alias::new("t")).into_column_ref(),
                ty: Some(ColumnType::Json),
                null_as: NullAs::ExplicitNull,
                relation: None,
                role: Role::Opaque,
                not_null: false,
            };
            branches.push(("o", self.body(body, var, opaque, used).ok()));
        }
        // Per item: 1 true, 0 false, NULL an error.
        let mut sql = Sql::default();
        sql.push("CASE WHEN ");
        self.is_array(&mut sql, &column);
        sql.push(" THEN (SELECT ");
        sql.push(aggregate(fold));
        sql.push(" FROM (SELECT CASE ");
        sql.push(&quoted(&self.alias(ITEMS)));
        sql.push(".\"t\"");
        for (letter, branch) in branches {
            sql.push(" WHEN '").push(letter).push("' THEN ");
            match branch {
                Some(cond) => {
                    // A typed boolean in PostgreSQL (a bare NULL is text).
                    sql.push("CASE CAST((")
                        .expr(cond)
                        .push(") AS boolean) WHEN TRUE THEN 1 WHEN FALSE THEN 0 END");
                }
                None => {
                    sql.push("NULL");
                }
            }
        }
        sql.push(" END AS \"x\" FROM ");
        self.items(&mut sql, &column, declared);
        sql.push(") AS ")
            .push(&quoted(&self.alias(FOLDED)))
            .push(") END");
        sql.text.insert(0, '(');
        sql.push(")");
        let folded = self.cust(&sql.text, sql.exprs);
        Ok(match fold {
            Fold::Count => folded,
            _ => folded.eq(1),
        })
    }

    /// `fold` over a list of objects (a [`Relation::objects`]): the body
    /// reads the declared fields of each related row.
    fn object_fold(
        &self,
        fold: Fold,
        column: &Column,
        body: &Operand,
        var: &str,
        used: &mut Vec<usize>,
    ) -> Result<SimpleExpr, Error> {
        let Some(relation) = &column.relation else {
            return Err(Error::UnsupportedOperands {
                operator: "fold".into(),
                detail: "a list of objects is held by a relation".into(),
            });
        };
        let mut inner = self.clone();
        inner.in_lambda = true;
        inner.depth += 1;
        let row = Alias::new(inner.alias(RELATED));
        let fields = Arc::make_mut(&mut inner.columns);
        for (name, field) in relation.fields.iter().rev() {
            let mut field = field.clone();
            rebase(&mut field, &row);
            // First, so that they shadow mapped variables of the same name.
            fields.insert(
                0,
                Mapped {
                    variable: format!("{var}.{name}"),
                    column: field,
                    join: Vec::new(),
                },
            );
        }
        let cond = inner.condition(body, used)?;
        let mut sql = Sql::default();
        sql.push("(SELECT ")
            .push(aggregate(fold))
            .push(" FROM (SELECT ");
        sql.push("CASE CAST((")
            .expr(cond)
            .push(") AS boolean) WHEN TRUE THEN 1 WHEN FALSE THEN 0 END AS \"x\" FROM ")
            .push(&quoted(&relation.table.to_string()))
            .push(" AS ")
            .push(&quoted(&inner.alias(RELATED)))
            .push(" WHERE ")
            .col(&(row.clone(), relation.foreign_key.clone()).into_column_ref())
            .push(" = ")
            .col(&relation.key)
            .push(") AS ")
            .push(&quoted(&inner.alias(FOLDED)))
            .push(")");
        let folded = self.cust(&sql.text, sql.exprs);
        Ok(match fold {
            Fold::Count => folded,
            _ => folded.eq(1),
        })
    }

    /// The lambda's body with `var` read as `item`.
    fn body(
        &self,
        body: &Operand,
        var: &str,
        item: Column,
        used: &mut Vec<usize>,
    ) -> Result<Condition, Error> {
        let mut inner = self.clone();
        inner.in_lambda = true;
        inner.depth += 1;
        // First, so that it shadows a mapped variable of the same name.
        Arc::make_mut(&mut inner.columns).insert(
            0,
            Mapped {
                variable: var.to_owned(),
                column: item,
                join: Vec::new(),
            },
        );
        inner.condition(body, used)
    }

    /// The condition under which the list is a list (not NULL, and an
    /// array for a JSON column).
    fn is_array(&self, sql: &mut Sql, column: &Column) {
        if column.relation.is_some() {
            sql.push("1 = 1");
            return;
        }
        match self.dialect {
            Dialect::Postgres => sql
                .push("jsonb_typeof(CAST(")
                .col(&column.column)
                .push(" AS jsonb)) = 'array'"),
            _ => sql
                .push("json_type(")
                .col(&column.column)
                .push(") = 'array'"),
        };
    }

    /// The derived table of the items, `AS cerbos_e`.
    fn items(&self, sql: &mut Sql, column: &Column, declared: Kind) {
        let postgres = self.dialect == Dialect::Postgres;
        match &column.relation {
            Some(relation) => {
                let typed_null = |kind: Kind| match (postgres, kind) {
                    (false, _) => "NULL",
                    (true, Kind::String) => "NULL::text",
                    (true, Kind::Number) => "NULL::float8",
                    (true, Kind::Bool) => "NULL::boolean",
                };
                // The related table under its own alias: never confused
                // with a table of the filtered query.
                let related = Alias::new(self.alias(ITEM_ROWS));
                let foreign_key = (related.clone(), relation.foreign_key.clone()).into_column_ref();
                sql.push("(SELECT ");
                match relation.element.clone() {
                    // A list of objects: one opaque item per row.
                    None => {
                        for kind in [Kind::String, Kind::Number, Kind::Bool] {
                            sql.push(typed_null(kind))
                                .push(" AS \"")
                                .push(kind_letter(kind))
                                .push("\", ");
                        }
                        sql.push("'o' AS \"t\"");
                    }
                    Some(element) => {
                        let element = (related, element).into_column_ref();
                        for kind in [Kind::String, Kind::Number, Kind::Bool] {
                            if kind != declared {
                                sql.push(typed_null(kind));
                            } else if kind == Kind::Number {
                                // A double, as CEL reads a number (2^53 + 1
                                // is 2^53 there).
                                sql.push("CAST(").col(&element).push(if postgres {
                                    " AS float8)"
                                } else {
                                    " AS REAL)"
                                });
                            } else {
                                sql.col(&element);
                            }
                            sql.push(" AS \"").push(kind_letter(kind)).push("\", ");
                        }
                        sql.push("CASE WHEN ")
                            .col(&element)
                            .push(" IS NULL THEN 'z' ELSE '")
                            .push(kind_letter(declared))
                            .push("' END AS \"t\"");
                    }
                }
                sql.push(" FROM ")
                    .push(&quoted(&relation.table.to_string()))
                    .push(" AS ")
                    .push(&quoted(&self.alias(ITEM_ROWS)))
                    .push(" WHERE ")
                    .col(&foreign_key)
                    .push(" = ")
                    .col(&relation.key)
                    .push(")");
            }
            None if postgres => {
                sql.push(
                    "(SELECT CASE WHEN jsonb_typeof(\"j\") = 'string' THEN \"j\" #>> '{}' END AS \"s\", \
                     CASE WHEN jsonb_typeof(\"j\") = 'number' THEN CAST(\"j\" #>> '{}' AS float8) END AS \"n\", \
                     CASE WHEN jsonb_typeof(\"j\") = 'boolean' THEN CAST(\"j\" #>> '{}' AS boolean) END AS \"b\", \
                     CASE jsonb_typeof(\"j\") WHEN 'string' THEN 's' WHEN 'number' THEN 'n' \
                     WHEN 'boolean' THEN 'b' WHEN 'null' THEN 'z' ELSE 'o' END AS \"t\" \
                     FROM jsonb_array_elements(CAST(",
                )
                .col(&column.column)
                .push(" AS jsonb)) AS \"cerbos_a\"(\"j\"))");
            }
            None => {
                sql.push(
                    "(SELECT CASE WHEN \"type\" = 'text' THEN \"value\" END AS \"s\", \
                     CASE WHEN \"type\" IN ('integer', 'real') THEN CAST(\"value\" AS REAL) END AS \"n\", \
                     CASE \"type\" WHEN 'true' THEN 1 WHEN 'false' THEN 0 END AS \"b\", \
                     CASE \"type\" WHEN 'text' THEN 's' WHEN 'integer' THEN 'n' WHEN 'real' THEN 'n' \
                     WHEN 'true' THEN 'b' WHEN 'false' THEN 'b' WHEN 'null' THEN 'z' ELSE 'o' END AS \"t\" \
                     FROM json_each(",
                )
                .col(&column.column)
                .push("))");
            }
        }
        sql.push(" AS ").push(&quoted(&self.alias(ITEMS)));
    }

    /// `size(list)`: the number of items, NULL when the list is NULL or
    /// not an array.
    pub(crate) fn size(&self, list: &Operand, used: &mut Vec<usize>) -> Result<SimpleExpr, Error> {
        if let Operand::Expression(Expression { operator, operands }) = list {
            return match (operator.as_str(), operands.as_slice()) {
                ("filter", [list, lambda]) => self.fold(Fold::Count, list, lambda, used),
                _ => Err(Error::UnsupportedOperands {
                    operator: "size".into(),
                    detail: format!(
                        "size of {list}: only size(list) and size(list.filter(...)) are supported"
                    ),
                }),
            };
        }
        let (column, element) = self.list_column("size", list, used)?;
        let mut sql = Sql::default();
        match (&column.relation, self.dialect) {
            (Some(_), _) => {
                sql.push("(SELECT COUNT(*) FROM ");
                self.items(&mut sql, &column, element_kind(element));
                sql.push(")");
            }
            (None, Dialect::Postgres) => {
                sql.push("CASE WHEN ");
                self.is_array(&mut sql, &column);
                sql.push(" THEN jsonb_array_length(CAST(")
                    .col(&column.column)
                    .push(" AS jsonb)) END");
            }
            (None, _) => {
                sql.push("CASE WHEN ");
                self.is_array(&mut sql, &column);
                sql.push(" THEN json_array_length(")
                    .col(&column.column)
                    .push(") END");
            }
        }
        sql.text.insert(0, '(');
        sql.push(")");
        Ok(self.cust(&sql.text, sql.exprs))
    }

    /// `size(...) op value` (mirrored before): CEL compares the int with
    /// any number; another type is never equal and not ordered.
    pub(crate) fn size_comparison(
        &self,
        operator: &str,
        size: SimpleExpr,
        value: &Operand,
    ) -> Result<SimpleExpr, Error> {
        let bad = |detail: String| Error::UnsupportedOperands {
            operator: operator.to_owned(),
            detail,
        };
        let Operand::Value(value) = value else {
            return Err(bad(format!(
                "comparing a size with {value}: only constants are supported"
            )));
        };
        // A constant result, unknown where the size is.
        let constant = |result: Option<bool>| {
            let then = match result {
                Some(true) => TRUE,
                Some(false) => FALSE,
                None => return Expr::cust(UNKNOWN),
            };
            let case: SimpleExpr = Expr::case(size.clone().is_null(), Expr::cust(UNKNOWN))
                .finally(Expr::cust(then))
                .into();
            case
        };
        let equality = matches!(operator, "eq" | "ne");
        Ok(match value {
            AttrValue::Number(f) if f.is_nan() => constant(Some(operator == "ne")),
            AttrValue::Number(_) => {
                let bound = self.bound(value).map_err(bad)?;
                size.binary(bin_oper(operator), bound)
            }
            AttrValue::List(_) | AttrValue::Map(_) => {
                return Err(bad(format!("comparing a size with {value}")));
            }
            // null, a string, a bool: never equal; ordering is an error.
            _ if equality => constant(Some(operator == "ne")),
            _ => constant(None),
        })
    }
}
