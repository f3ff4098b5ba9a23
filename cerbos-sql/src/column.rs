//! Declared columns: which column a plan variable reads, the CEL type of its
//! values and how the application sends a NULL column to the PDP.

use std::sync::Arc;

use sea_query::{ColumnRef, DynIden, IntoColumnRef, IntoIden};

/// The type of a column's values, as the PDP sees them when the application
/// sends the row as a resource. A comparison is translated only when the
/// constant has this type; otherwise it is decided as CEL decides it (a
/// string is never equal to a number, and ordering them is an evaluation
/// error), never left to the database's coercion (SQLite and MySQL would
/// find `'2' = 2` true).
///
/// Attribute numbers are doubles in CEL: [`Integer`](ColumnType::Integer)
/// and [`Double`](ColumnType::Double) columns compare numerically with any
/// number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// Text, sent as a CEL string. Comparisons are byte-exact and
    /// case-sensitive in every dialect, whatever the column's collation.
    String,
    /// An integer, sent as a CEL number.
    Integer,
    /// A floating-point number, sent as a CEL number.
    Double,
    /// A boolean (SQLite and MySQL store 0 and 1), sent as a CEL bool.
    Bool,
    /// A date and time (PostgreSQL `timestamptz`). The PDP sees the RFC
    /// 3339 string the application sends: `timestamp(R.attr.x)` compared
    /// with a timestamp is translated for PostgreSQL (microseconds are
    /// its resolution; a constant finer than that is refused), and so are
    /// `== null` / `!= null`; every other comparison is refused. SQLite
    /// has no timestamp type: see [`ColumnType::UnixMicros`].
    Timestamp,
    /// An instant stored as an integer count of microseconds since the
    /// Unix epoch (for SQLite, which has no timestamp type), read by
    /// `timestamp(R.attr.x)`: the application sends it as an RFC 3339
    /// string.
    UnixMicros,
    /// A list or a map (JSON). Only `== null` / `!= null` are translated.
    Json,
    /// A list whose items have the declared [`ElementType`]: a JSON array
    /// column ([`Column::list`]) or the rows of a related table
    /// ([`Column::related_list`]). Membership (`"x" in list`, `x in
    /// list`), `hasIntersection` with constants, `size` compared with a
    /// number, and `exists` / `all` / `exists_one` / `size(filter(…))`
    /// with a lambda are translated; comparing the list itself only with
    /// `null` (JSON columns).
    List(ElementType),
}

/// The CEL type of a list's items, as the application sends them. The
/// comparisons in a lambda are typed by it; items of another JSON type
/// in a JSON column are still decided as CEL decides them (or unknown,
/// never granted, when SQL cannot tell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElementType {
    /// Strings (byte-exact, case-sensitive comparisons).
    String,
    /// Numbers (CEL doubles).
    Number,
    /// Booleans.
    Bool,
    /// Objects with declared fields: the rows of a
    /// [`Relation::objects`] (see [`Column::related_objects`]).
    Object,
}

/// A to-many relation that holds a list attribute: the list is the
/// `element` column of the rows of `table` whose `foreign_key` column
/// equals the filtered row's `key`, with duplicates, in any order (CEL's
/// list functions ignore order). An empty relation is the empty list;
/// NULL elements are explicit nulls. See [`Column::related_list`].
#[derive(Clone, Debug)]
pub struct Relation {
    pub(crate) table: DynIden,
    pub(crate) foreign_key: DynIden,
    pub(crate) key: ColumnRef,
    /// The element column of a list of scalars; `None` for a list of
    /// objects (see [`Relation::objects`]).
    pub(crate) element: Option<DynIden>,
    /// The fields of a list of objects: a name and its column of `table`
    /// (or a nested relation).
    pub(crate) fields: Vec<(String, Column)>,
}

impl Relation {
    /// The rows of `table` whose column `foreign_key` equals `key`; their
    /// column `element` is the list. `key` is a column of the filtered
    /// row and must name its table (`(table, column)`): a bare name would
    /// be read from `table` inside the subquery, and is refused.
    pub fn new(
        table: impl IntoIden,
        foreign_key: impl IntoIden,
        key: impl IntoColumnRef,
        element: impl IntoIden,
    ) -> Self {
        Relation {
            table: table.into_iden(),
            foreign_key: foreign_key.into_iden(),
            key: key.into_column_ref(),
            element: Some(element.into_iden()),
            fields: Vec::new(),
        }
    }

    /// A list of objects held by a to-many relation: each row of `table`
    /// whose `foreign_key` column equals `key` is one object, whose
    /// fields are declared with [`field`](Relation::field). Lambdas read
    /// them (`t.name` in `R.attr.tags.exists(t, t.name == "x")`). `key` is
    /// a column of the filtered row (`(table, column)`) or, for a relation
    /// nested in another one's field, a bare column name of the outer
    /// relation's table.
    ///
    /// ```
    /// use cerbos_sql::{Column, NullAs, Relation};
    /// use sea_query::Alias;
    ///
    /// let tags = Relation::objects(Alias::new("tag"), Alias::new("document_id"), (Alias::new("document"), Alias::new("id")))
    ///     .field("id", Column::string(Alias::new("tag_id")))
    ///     .field("name", Column::string(Alias::new("name")).null_as(NullAs::Omitted));
    /// let column = Column::related_objects(tags);
    /// ```
    pub fn objects(
        table: impl IntoIden,
        foreign_key: impl IntoIden,
        key: impl IntoColumnRef,
    ) -> Self {
        Relation {
            table: table.into_iden(),
            foreign_key: foreign_key.into_iden(),
            key: key.into_column_ref(),
            element: None,
            fields: Vec::new(),
        }
    }

    /// Declares the field `name` of the objects as `column`, a column of
    /// the relation's table named without its table (it is read under
    /// an alias), with its type and [`NullAs`] (a missing field is
    /// [`NullAs::Omitted`]); or a nested [`Column::related_objects`] /
    /// [`Column::related_list`] whose key is a bare column of this table.
    pub fn field(mut self, name: impl Into<String>, column: Column) -> Self {
        self.fields.push((name.into(), column));
        self
    }
}

/// What a column holds inside a lambda: the declared role of the
/// translator's own variables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Role {
    /// A column of the row.
    #[default]
    Row,
    /// The lambda's item, of the column's type.
    Element,
    /// The lambda's item when it is a JSON array or object: never equal
    /// to a scalar, an error for every other operator.
    Opaque,
}

/// How the application sends the attribute of a row whose column is NULL.
/// In a plan the two look alike, but CEL does not treat them alike: an
/// explicit `null` is a value (`null != "a"` is true), a missing attribute
/// is an evaluation error (the rule does not match, even under `!`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NullAs {
    /// The attribute is sent as `null` (the default). `ne`, `not in` and
    /// `!(x == "a")` keep the NULL rows, as CEL does.
    #[default]
    ExplicitNull,
    /// The attribute is left out of the resource. Every condition on it
    /// is false for NULL rows, under `!` too; comparing it with `null` is
    /// refused.
    Omitted,
}

/// A column a plan variable is mapped to, with its declared
/// [`ColumnType`] and [`NullAs`] convention. See
/// [`PlanToSql::column`](crate::PlanToSql::column).
///
/// ```
/// use cerbos_sql::{Column, NullAs};
/// use sea_query::Alias;
///
/// let owner = Column::string((Alias::new("contact"), Alias::new("owner_id")));
/// let reviewer = Column::string(Alias::new("reviewer")).null_as(NullAs::Omitted);
/// # let _ = (owner, reviewer);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Column {
    pub(crate) column: ColumnRef,
    pub(crate) ty: Option<ColumnType>,
    pub(crate) null_as: NullAs,
    pub(crate) relation: Option<Arc<Relation>>,
    pub(crate) role: Role,
    /// Declared never NULL: its [`NullAs`] then never matters.
    pub(crate) not_null: bool,
}

impl Column {
    /// `column`, holding values of type `ty`, NULL sent as an explicit
    /// null.
    pub fn new(column: impl IntoColumnRef, ty: ColumnType) -> Self {
        Column {
            column: column.into_column_ref(),
            ty: Some(ty),
            null_as: NullAs::default(),
            relation: None,
            role: Role::Row,
            not_null: false,
        }
    }

    /// A [`ColumnType::String`] column.
    pub fn string(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::String)
    }

    /// A [`ColumnType::Integer`] column.
    pub fn integer(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::Integer)
    }

    /// A [`ColumnType::Double`] column.
    pub fn double(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::Double)
    }

    /// A [`ColumnType::Bool`] column.
    pub fn bool(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::Bool)
    }

    /// A [`ColumnType::Timestamp`] column.
    pub fn timestamp(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::Timestamp)
    }

    /// An instant stored as integer microseconds since the Unix epoch,
    /// which `timestamp(R.attr.x)` reads (the application sends it as an
    /// RFC 3339 string); see [`ColumnType::UnixMicros`].
    pub fn unix_micros(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::UnixMicros)
    }

    /// A [`ColumnType::Json`] column.
    pub fn json(column: impl IntoColumnRef) -> Self {
        Column::new(column, ColumnType::Json)
    }

    /// A list attribute stored as a JSON array in `column`: JSON text in
    /// SQLite (read with `json_each`), `jsonb` in PostgreSQL (a `json`
    /// or text column is cast to `jsonb`); refused for MySQL. The column
    /// holds exactly the JSON the application sends as the attribute. A
    /// NULL column (and a value that is not a JSON array) makes every list
    /// operation an evaluation error: never granted, also under `!`.
    pub fn list(column: impl IntoColumnRef, element: ElementType) -> Self {
        Column::new(column, ColumnType::List(element))
    }

    /// A JSON list of strings ([`Column::list`]).
    pub fn string_list(column: impl IntoColumnRef) -> Self {
        Column::list(column, ElementType::String)
    }

    /// A JSON list of numbers ([`Column::list`]).
    pub fn number_list(column: impl IntoColumnRef) -> Self {
        Column::list(column, ElementType::Number)
    }

    /// A JSON list of booleans ([`Column::list`]).
    pub fn bool_list(column: impl IntoColumnRef) -> Self {
        Column::list(column, ElementType::Bool)
    }

    /// A list attribute held by a to-many relation: the `element`
    /// column of the related rows (an `EXISTS`-style subquery, no join).
    /// The application sends the list of those values (`[]` when there
    /// is none); the element column holds values of type `element` (NULL
    /// as an explicit null item).
    pub fn related_list(element: ElementType, relation: Relation) -> Self {
        Column {
            column: relation.key.clone(),
            ty: Some(ColumnType::List(element)),
            null_as: NullAs::default(),
            relation: Some(Arc::new(relation)),
            role: Role::Row,
            not_null: false,
        }
    }

    /// A list of objects held by a to-many relation
    /// ([`Relation::objects`]): `exists`, `all`, `exists_one`,
    /// `size(filter(..))`, `size`, and `hasIntersection(list.map(t,
    /// t.field), [constants])`, with lambdas that read the declared
    /// fields.
    pub fn related_objects(relation: Relation) -> Self {
        Column::related_list(ElementType::Object, relation)
    }

    /// A column without a declared type: each comparison takes the type of
    /// its constant, and the database's coercion decides mixed types
    /// (`'2' = 2` is true in SQLite and MySQL, false in CEL). Sound only if
    /// every value of the column has the CEL type of every constant a
    /// policy compares it with. This is what a bare column reference
    /// passed to [`PlanToSql::column`](crate::PlanToSql::column) means,
    /// kept for compatibility; declare a type instead.
    pub fn unchecked(column: impl IntoColumnRef) -> Self {
        Column {
            column: column.into_column_ref(),
            ty: None,
            null_as: NullAs::default(),
            relation: None,
            role: Role::Row,
            not_null: false,
        }
    }

    /// How the application sends the attribute when the column is NULL
    /// (default: [`NullAs::ExplicitNull`]).
    pub fn null_as(mut self, null_as: NullAs) -> Self {
        self.null_as = null_as;
        self
    }

    /// Declares the column `NOT NULL`: its [`NullAs`] convention then
    /// never matters, so comparing it with a column of either convention
    /// is translated (two nullable columns of different conventions are
    /// refused).
    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }

    /// The declared type (`None` for [`Column::unchecked`]).
    pub fn column_type(&self) -> Option<ColumnType> {
        self.ty
    }
}

/// What [`PlanToSql::column`](crate::PlanToSql::column) takes: a
/// [`Column`], or a bare column reference (an [`unchecked`](Column::unchecked)
/// column).
pub trait IntoColumn {
    /// The column.
    fn into_column(self) -> Column;
}

impl IntoColumn for Column {
    fn into_column(self) -> Column {
        self
    }
}

impl<T: IntoColumnRef> IntoColumn for T {
    fn into_column(self) -> Column {
        Column::unchecked(self)
    }
}
