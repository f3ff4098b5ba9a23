//! Measures `cerbos-sql` on the public query-plan-adapters conformance
//! corpus, on SQLite and on PostgreSQL, against the real PDP.
//!
//! The corpus is not part of this project; get it and pass its
//! `conformance` directory:
//!
//! ```text
//! git clone https://github.com/cerbos/query-plan-adapters
//! cargo run -p cerbos-integration-tests --example conformance -- \
//!     query-plan-adapters/conformance [--json report.json] [--compare earlier.json]
//! ```
//!
//! What it does (the corpus's `README.md` explains the recipe):
//!
//! 1. starts the real PDP (`cerbos-testkit`) on a temporary policy
//!    directory holding a verbatim copy of `policies/adversarial.yaml`, and a
//!    real PostgreSQL (`cerbos_testkit::Postgres`);
//! 2. creates the schema of the corpus's Go pgx harness (resource, tag,
//!    category, sub-category, label, parent and inner tables) in an
//!    in-memory SQLite and in PostgreSQL, and seeds it from `seeds.json` and
//!    `derived-fields.json`;
//! 3. for every action of `actions.json` (`conformance`,
//!    `expectedUnsupported`, `nullRepresentationOmitted`, `knownDivergences`):
//!    the oracle is one batched `CheckResources` over every seed, with the
//!    attributes the pgx harness sends for the row; the plan is one
//!    `PlanResources`, translated by the [`mapper`] and run as a `SELECT` of
//!    the ids, then classified per database as exact, refused (translation
//!    error), over-grant (ids the PDP denies), under-grant (ids the PDP allows
//!    missing) or db-error (the database rejected the SQL);
//! 4. prints a table, the totals and the refusals by reason; with
//!    `--json <path>` writes the same report as JSON, and with
//!    `--compare <earlier.json>` prints the outcomes that changed since an
//!    earlier report.
//!
//! The exit code is 1 if any action over-grants (other than the known
//! `p-has` planner divergence) or if an action that must be refused
//! (`expectedUnsupported`, `nullRepresentationOmitted`) was answered, 2 if
//! the harness itself could not run.
//!
//! Everything that depends on what `cerbos-sql` can express is in
//! [`mapper`]; the rest is generic.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::ExitCode,
};

use cerbos_sql::{Column, Dialect, ElementType, Join, NullAs, PlanToSql, Relation};
use cerbos_testkit::Pdp;
use cerbos_tower::{
    AttrValue, CheckResources, Client, PlanFilter, PlanResources, Principal, Resource,
};
use common::oracle::{Db, Sqlite};
use sea_query::Alias;
use serde_json::{Map, Value as Json, json};

const RESOURCE: &str = "adversarial_resource";
const TAG: &str = "adversarial_tag";
const PARENT: &str = "adversarial_parent";
const INNER: &str = "adversarial_inner";
const CATEGORY: &str = "adversarial_category";
const SUB_CATEGORY: &str = "adversarial_sub_category";
const LABEL: &str = "adversarial_label";

/// The corpus attributes mapped to the pgx-like schema, as far as the
/// current `cerbos-sql` API can express them. Extend it here when
/// `cerbos-sql` gains features; an attribute left unmapped makes every plan
/// that uses it refused with `UnmappedVariable`.
fn mapper(dialect: Dialect) -> PlanToSql {
    let attr = |name: &str| format!("request.resource.attr.{name}");
    let resource = |column: &str| (Alias::new(RESOURCE), Alias::new(column));
    let parent = |column: &str| (Alias::new(PARENT), Alias::new(column));
    // The resource's one parent row (`resource_id` is UNIQUE). A resource
    // without a parent sends no `parent` attribute, and the LEFT JOIN reads
    // NULL columns there: every parent column is declared `Omitted`.
    let parent_join = || Join::new(Alias::new(PARENT), resource("id"), parent("resource_id"));
    let parent_column = |name: &str, column: Column| {
        (
            attr(&format!("parent.{name}")),
            column.null_as(NullAs::Omitted),
        )
    };
    let parent_columns = [
        parent_column("aBool", Column::bool(parent("a_bool"))),
        parent_column("aString", Column::string(parent("a_string"))),
        parent_column("aNumber", Column::integer(parent("a_number"))),
        parent_column(
            "aOptionalString",
            Column::string(parent("a_optional_string")),
        ),
    ];
    // The corpus policy writes `1.0` next to attributes and `2` next to
    // `int()`: declared, since a plan shows `1` for both `1` and `1.0`.
    let mut to_sql = PlanToSql::new(dialect)
        .trust_arithmetic_literals()
        // The primary key, which the plan names `request.resource.id`.
        .column(
            "request.resource.id",
            Column::string(resource("id")).not_null(),
        )
        .column(attr("aBool"), Column::bool(resource("a_bool")).not_null())
        .column(
            attr("aString"),
            Column::string(resource("a_string")).not_null(),
        )
        .column(
            attr("aNumber"),
            Column::integer(resource("a_number")).not_null(),
        )
        .column(
            attr("aDouble"),
            Column::double(resource("a_double")).null_as(NullAs::Omitted),
        )
        .column(
            attr("aOptionalString"),
            Column::string(resource("a_optional_string")).null_as(NullAs::Omitted),
        )
        // An ISO date string column: `timestamp(createdBy)` is refused.
        .column(
            attr("createdBy"),
            Column::string(resource("created_by")).not_null(),
        )
        // `owner` and `coOwner` alias `a_optional_string` and `scope` under
        // the other convention: the oracle sends an explicit null for them.
        .column(attr("owner"), Column::string(resource("a_optional_string")))
        .column(attr("coOwner"), Column::string(resource("scope")))
        .column(
            attr("scope"),
            Column::string(resource("scope")).null_as(NullAs::Omitted),
        )
        // Not a nested column: the pgx harness maps `obj.inner` to the row's
        // own `a_string` (and the oracle sends `obj.inner` = `aString`).
        .column(
            attr("obj.inner"),
            Column::string(resource("a_string")).not_null(),
        )
        // The tag names with NULL names as explicit null items.
        .column(
            attr("tagNames"),
            Column::related_list(
                ElementType::String,
                Relation::new(
                    Alias::new(TAG),
                    Alias::new("resource_id"),
                    resource("id"),
                    Alias::new("name"),
                ),
            ),
        );
    for (variable, column) in parent_columns {
        to_sql = to_sql.joined_column(variable, column, parent_join());
    }
    // `parent.inner`: the inner row of the parent row, a second to-one hop.
    let inner = |column: &str| (Alias::new(INNER), Alias::new(column));
    let inner_join =
        || Join::new(Alias::new(INNER), parent("id"), inner("parent_id")).after(parent_join());
    for (name, column) in [
        ("aBool", Column::bool(inner("a_bool"))),
        ("aString", Column::string(inner("a_string"))),
        ("aNumber", Column::integer(inner("a_number"))),
        (
            "aOptionalString",
            Column::string(inner("a_optional_string")),
        ),
    ] {
        to_sql = to_sql.joined_column(
            attr(&format!("parent.inner.{name}")),
            column.null_as(NullAs::Omitted),
            inner_join(),
        );
    }
    // Fields of related rows, named without their table. A NULL name is
    // left out of the object the oracle sends: `Omitted`.
    let field = |column: &str| Column::string(Alias::new(column)).null_as(NullAs::Omitted);
    let tags = Relation::objects(Alias::new(TAG), Alias::new("resource_id"), resource("id"))
        .field("id", field("tag_id"))
        .field("name", field("name"));
    let labels = || {
        Relation::objects(
            Alias::new(LABEL),
            Alias::new("sub_category_id"),
            Alias::new("id"),
        )
        .field("name", field("name"))
    };
    let categories = Relation::objects(
        Alias::new(CATEGORY),
        Alias::new("resource_id"),
        resource("id"),
    )
    .field("name", field("name"))
    .field(
        "subCategories",
        Column::related_objects(
            Relation::objects(
                Alias::new(SUB_CATEGORY),
                Alias::new("category_id"),
                Alias::new("id"),
            )
            .field("name", field("name"))
            .field("labels", Column::related_objects(labels())),
        ),
    );
    // `mainCategory`: the resource's one category row, joined (a missing
    // one is a missing attribute), then its sub-categories (without
    // labels: the oracle sends none there).
    let category = |column: &str| (Alias::new(CATEGORY), Alias::new(column));
    let category_join = || {
        Join::new(
            Alias::new(CATEGORY),
            resource("id"),
            category("resource_id"),
        )
    };
    to_sql = to_sql
        .column(attr("tags"), Column::related_objects(tags))
        .column(attr("categories"), Column::related_objects(categories))
        .joined_column(
            attr("mainCategory.subCategories"),
            Column::related_objects(
                Relation::objects(
                    Alias::new(SUB_CATEGORY),
                    Alias::new("category_id"),
                    category("id"),
                )
                .field("name", field("name")),
            ),
            category_join(),
        )
        .joined_column(
            attr("mainCategory.subNames"),
            Column::related_list(
                ElementType::String,
                Relation::new(
                    Alias::new(SUB_CATEGORY),
                    Alias::new("category_id"),
                    category("id"),
                    Alias::new("name"),
                ),
            ),
            category_join(),
        );
    // `createdAt`: timestamptz in PostgreSQL; microseconds since the epoch
    // in SQLite, which has no timestamp type.
    let created_at = match dialect {
        Dialect::Postgres => Column::timestamp(resource("created_at")),
        _ => Column::unix_micros(resource("created_at")),
    };
    to_sql = to_sql.column(attr("createdAt"), created_at.null_as(NullAs::Omitted));
    to_sql
}

/// The schema of the pgx harness. `{timestamp}` is `timestamptz` in
/// PostgreSQL and `text` in SQLite (ISO-8601 strings, as the corpus writes
/// them: SQLite has no timestamp type); `{serial}` the tag key.
const SCHEMA: &str = "
CREATE TABLE adversarial_resource (
    id                 text PRIMARY KEY,
    a_bool             boolean          NOT NULL,
    a_string           text             NOT NULL,
    a_number           bigint           NOT NULL,
    a_double           double precision,
    a_optional_string  text,
    created_by         text             NOT NULL,
    scope              text,
    created_at         {timestamp}
);
CREATE TABLE adversarial_tag (
    pk           {serial},
    tag_id       text NOT NULL,
    name         text,
    resource_id  text NOT NULL REFERENCES adversarial_resource(id)
);
CREATE TABLE adversarial_category (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    resource_id  text NOT NULL REFERENCES adversarial_resource(id)
);
CREATE TABLE adversarial_sub_category (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    category_id  text NOT NULL REFERENCES adversarial_category(id)
);
CREATE TABLE adversarial_label (
    id               text PRIMARY KEY,
    name             text,
    sub_category_id  text NOT NULL REFERENCES adversarial_sub_category(id)
);
CREATE TABLE adversarial_parent (
    id                 text    PRIMARY KEY,
    a_bool             boolean NOT NULL,
    a_string           text    NOT NULL,
    a_number           bigint  NOT NULL,
    a_optional_string  text,
    resource_id        text    NOT NULL UNIQUE REFERENCES adversarial_resource(id)
);
CREATE TABLE adversarial_inner (
    id                 text    PRIMARY KEY,
    a_bool             boolean NOT NULL,
    a_string           text    NOT NULL,
    a_number           bigint  NOT NULL,
    a_optional_string  text,
    parent_id          text    NOT NULL UNIQUE REFERENCES adversarial_parent(id)
);
";

/// The actions whose oracle the corpus says is empty by construction
/// (its README: "The degeneracy guard", "The absent to-one parent"; the
/// comments of `policies/adversarial.yaml`): no degeneracy warning for
/// them.
const EMPTY_BY_CONSTRUCTION: &[&str] = &[
    "in-empty",
    "null-eq-missing",
    "w1-size-zero-chain",
    "w1-not-size-chain",
    "w1-size-frac-chain",
    // Every seed's aString raises in int() / double().
    "cast-int-string",
    "cast-double-string",
    // A list in boolean position: check() cannot evaluate it.
    "filter-as-condition",
    "filter-as-conjunct",
    "map-as-condition",
    // IEEE probes: 3 * 0.1 != 0.3, -0.6 + 0.7 != 0.1; NaN orders with nothing.
    "p-double-frac",
    "arith-add-eq-frac",
    "nan-ord-le",
    // No string has 2^32 characters.
    "size-huge-gt",
];

/// The actions whose oracle the policy comments say allows every seed.
const TOTAL_BY_CONSTRUCTION: &[&str] = &[
    // Every seed has an aString shorter than 2^32 characters.
    "size-huge-lt",
];

// -- the corpus -----------------------------------------------------------

type Result<T, E = String> = std::result::Result<T, E>;

struct Tag {
    id: String,
    name: Option<String>,
}

/// One seed with its derived fields.
struct Seed {
    id: String,
    a_bool: bool,
    a_string: String,
    a_number: i64,
    a_optional_string: Option<String>,
    tags: Vec<Tag>,
    sub_category_names: Vec<String>,
    parent_seed_id: Option<String>,
    created_by: String,
    a_double: Option<f64>,
    created_at: Option<String>,
    scope: Option<String>,
    labels: Vec<Option<String>>,
}

/// The action groups of `actions.json` the harness runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Conformance,
    ExpectedUnsupported,
    NullOmitted,
    KnownDivergence,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::Conformance => "conformance",
            Group::ExpectedUnsupported => "expectedUnsupported",
            Group::NullOmitted => "nullRepresentationOmitted",
            Group::KnownDivergence => "knownDivergences",
        }
    }

    fn must_refuse(self) -> bool {
        matches!(self, Group::ExpectedUnsupported | Group::NullOmitted)
    }
}

struct Corpus {
    kind: String,
    principal: Principal,
    seeds: Vec<Seed>,
    actions: Vec<(String, Group)>,
    policy: PathBuf,
    cerbos_version: String,
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn get<'a>(value: &'a Json, key: &str, what: &str) -> Result<&'a Json> {
    value.get(key).ok_or_else(|| format!("{what}: no `{key}`"))
}

fn string(value: &Json, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: not a string: {value}"))
}

fn optional_string(value: &Json, what: &str) -> Result<Option<String>> {
    if value.is_null() {
        Ok(None)
    } else {
        string(value, what).map(Some)
    }
}

fn array<'a>(value: &'a Json, what: &str) -> Result<&'a Vec<Json>> {
    value
        .as_array()
        .ok_or_else(|| format!("{what}: not an array: {value}"))
}

/// Asserts that `object` has exactly the keys `expected` (plus `optional`):
/// a key the harness does not consume would be dropped from the rows and
/// the oracle alike (README: "Seed, principal and derived-field coverage").
fn assert_keys(object: &Json, expected: &[&str], optional: &[&str], what: &str) -> Result<()> {
    let map = object
        .as_object()
        .ok_or_else(|| format!("{what}: not an object"))?;
    let got: BTreeSet<&str> = map.keys().map(String::as_str).collect();
    let unexpected: Vec<_> = got
        .iter()
        .filter(|k| !expected.contains(k) && !optional.contains(k))
        .collect();
    let missing: Vec<_> = expected.iter().filter(|k| !got.contains(*k)).collect();
    if unexpected.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: unexpected keys {unexpected:?}, missing keys {missing:?}: update the harness"
        ))
    }
}

const SEED_KEYS: &[&str] = &[
    "id",
    "aBool",
    "aString",
    "aNumber",
    "aOptionalString",
    "tags",
    "subCategoryNames",
    "parentSeedId",
];
const DERIVED_FIELDS: &[&str] = &["createdBy", "aDouble", "createdAt", "scope", "labels"];

impl Corpus {
    fn load(dir: &Path) -> Result<Corpus> {
        let seeds_json = read_json(&dir.join("seeds.json"))?;
        let derived_json = read_json(&dir.join("derived-fields.json"))?;
        let actions_json = read_json(&dir.join("actions.json"))?;

        let fields: Vec<String> = array(
            get(&derived_json, "fields", "derived-fields.json")?,
            "fields",
        )?
        .iter()
        .map(|f| string(f, "fields"))
        .collect::<Result<_>>()?;
        if fields != DERIVED_FIELDS {
            return Err(format!(
                "derived-fields.json: fields {fields:?}, the harness consumes {DERIVED_FIELDS:?}"
            ));
        }
        let derived = get(&derived_json, "derived", "derived-fields.json")?;

        let p = get(&seeds_json, "principal", "seeds.json")?;
        assert_keys(p, &["id", "roles", "attr"], &[], "principal")?;
        let roles: Vec<String> = array(get(p, "roles", "principal")?, "roles")?
            .iter()
            .map(|r| string(r, "roles"))
            .collect::<Result<_>>()?;
        let mut principal =
            Principal::new(string(get(p, "id", "principal")?, "principal id")?, roles);
        // Passed through verbatim, every attribute.
        let attrs = get(p, "attr", "principal")?
            .as_object()
            .ok_or("principal attr: not an object")?;
        for (key, value) in attrs {
            let value = AttrValue::try_from(value.clone())
                .map_err(|e| format!("principal attr {key}: {e}"))?;
            principal = principal.with_attr(key.clone(), value);
        }

        let mut seeds = Vec::new();
        for s in array(get(&seeds_json, "seeds", "seeds.json")?, "seeds")? {
            let id = string(get(s, "id", "seed")?, "seed id")?;
            let what = format!("seed {id}");
            assert_keys(s, SEED_KEYS, &["note"], &what)?;
            let d = get(derived, &id, "derived-fields.json")?;
            assert_keys(d, DERIVED_FIELDS, &[], &format!("derived fields of {id}"))?;
            let mut tags = Vec::new();
            for t in array(get(s, "tags", &what)?, &what)? {
                assert_keys(t, &["id", "name"], &[], &format!("a tag of {id}"))?;
                tags.push(Tag {
                    id: string(get(t, "id", &what)?, &what)?,
                    name: optional_string(get(t, "name", &what)?, &what)?,
                });
            }
            seeds.push(Seed {
                a_bool: get(s, "aBool", &what)?
                    .as_bool()
                    .ok_or_else(|| format!("{what}: aBool"))?,
                a_string: string(get(s, "aString", &what)?, &what)?,
                a_number: get(s, "aNumber", &what)?
                    .as_i64()
                    .ok_or_else(|| format!("{what}: aNumber"))?,
                a_optional_string: optional_string(get(s, "aOptionalString", &what)?, &what)?,
                tags,
                sub_category_names: array(get(s, "subCategoryNames", &what)?, &what)?
                    .iter()
                    .map(|n| string(n, &what))
                    .collect::<Result<_>>()?,
                parent_seed_id: optional_string(get(s, "parentSeedId", &what)?, &what)?,
                created_by: string(get(d, "createdBy", &what)?, &what)?,
                a_double: match get(d, "aDouble", &what)? {
                    Json::Null => None,
                    n => Some(n.as_f64().ok_or_else(|| format!("{what}: aDouble"))?),
                },
                created_at: optional_string(get(d, "createdAt", &what)?, &what)?,
                scope: optional_string(get(d, "scope", &what)?, &what)?,
                labels: array(get(d, "labels", &what)?, &what)?
                    .iter()
                    .map(|l| optional_string(l, &what))
                    .collect::<Result<_>>()?,
                id,
            });
        }
        for seed in &seeds {
            if let Some(parent) = &seed.parent_seed_id
                && !seeds.iter().any(|s| &s.id == parent)
            {
                return Err(format!(
                    "seed {}: parentSeedId {parent} names no seed",
                    seed.id
                ));
            }
        }

        let names = |key: &str, with_action_key: bool| -> Result<Vec<String>> {
            array(get(&actions_json, key, "actions.json")?, key)?
                .iter()
                .map(|a| {
                    if with_action_key {
                        string(get(a, "action", key)?, key)
                    } else {
                        string(a, key)
                    }
                })
                .collect()
        };
        let mut actions = Vec::new();
        for (key, object, group) in [
            ("conformance", false, Group::Conformance),
            ("expectedUnsupported", true, Group::ExpectedUnsupported),
            ("nullRepresentationOmitted", true, Group::NullOmitted),
            ("knownDivergences", true, Group::KnownDivergence),
        ] {
            actions.extend(names(key, object)?.into_iter().map(|a| (a, group)));
        }

        let version = std::fs::read_to_string(dir.join("CERBOS_VERSION")).unwrap_or_default();
        Ok(Corpus {
            kind: string(
                get(&seeds_json, "resourceKind", "seeds.json")?,
                "resourceKind",
            )?,
            principal,
            seeds,
            actions,
            policy: dir.join("policies").join("adversarial.yaml"),
            cerbos_version: version.trim().to_owned(),
        })
    }

    /// Per resource, the `aString` of its parent and of its parent's
    /// parent (`parent.inner`), as the seeded chain must hold them.
    fn chain(&self) -> Chain {
        self.seeds
            .iter()
            .map(|seed| {
                let parent = self.parent_of(seed);
                let inner = parent.and_then(|p| self.parent_of(p));
                (
                    seed.id.clone(),
                    (
                        parent.map(|p| p.a_string.clone()),
                        inner.map(|i| i.a_string.clone()),
                    ),
                )
            })
            .collect()
    }

    fn seed(&self, id: &str) -> Option<&Seed> {
        self.seeds.iter().find(|s| s.id == id)
    }

    fn parent_of(&self, seed: &Seed) -> Option<&Seed> {
        seed.parent_seed_id.as_deref().and_then(|id| self.seed(id))
    }

    /// The row as the PDP sees it, as the pgx harness's `checkResource`
    /// builds it: a NULL column is a missing attribute, except `owner`,
    /// `coOwner` and the items of `tagNames` (explicit nulls).
    fn resource(&self, seed: &Seed) -> Resource {
        let mut attr = Map::new();
        let mut put = |key: &str, value: Json| {
            attr.insert(key.to_owned(), value);
        };
        let tags: Vec<Json> = seed
            .tags
            .iter()
            .map(|t| match &t.name {
                Some(name) => json!({"id": t.id, "name": name}),
                None => json!({"id": t.id}),
            })
            .collect();
        let tag_names: Vec<Json> = seed.tags.iter().map(|t| json!(t.name)).collect();
        let labels: Vec<Json> = seed
            .labels
            .iter()
            .map(|l| match l {
                Some(name) => json!({"name": name}),
                None => json!({}),
            })
            .collect();
        let categories: Vec<Json> = seed
            .sub_category_names
            .iter()
            .map(|name| {
                json!({
                    "name": "business",
                    "subCategories": [{"name": name, "labels": labels}],
                })
            })
            .collect();
        put("aBool", json!(seed.a_bool));
        put("aString", json!(seed.a_string));
        put("aNumber", json!(seed.a_number));
        put("createdBy", json!(seed.created_by));
        put("obj", json!({"inner": seed.a_string}));
        put("tags", Json::Array(tags));
        put("tagNames", Json::Array(tag_names));
        put("categories", Json::Array(categories));
        put("owner", json!(seed.a_optional_string));
        put("coOwner", json!(seed.scope));
        if let Some(s) = &seed.a_optional_string {
            put("aOptionalString", json!(s));
        }
        if let Some(d) = seed.a_double {
            put("aDouble", json!(d));
        }
        if let Some(s) = &seed.scope {
            put("scope", json!(s));
        }
        if let Some(t) = &seed.created_at {
            put("createdAt", json!(t));
        }
        if !seed.sub_category_names.is_empty() {
            put(
                "mainCategory",
                json!({
                    "name": "business",
                    "subCategories": seed.sub_category_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                    "subNames": seed.sub_category_names,
                }),
            );
        }
        if let Some(parent) = self.parent_of(seed) {
            let mut p = relation_attr(parent);
            if let Some(inner) = self.parent_of(parent) {
                p.insert("inner".to_owned(), Json::Object(relation_attr(inner)));
            }
            put("parent", Json::Object(p));
        }
        let mut resource = Resource::new(self.kind.clone(), seed.id.clone());
        for (key, value) in attr {
            // The seeds' attributes are built here from strings, bools and
            // small numbers: always exact.
            let value = AttrValue::try_from(value).expect("an exact seed attribute");
            resource = resource.with_attr(key, value);
        }
        resource
    }
}

/// One level of the to-one chain as attributes (NULL omitted).
fn relation_attr(seed: &Seed) -> Map<String, Json> {
    let mut attr = Map::new();
    attr.insert("aBool".into(), json!(seed.a_bool));
    attr.insert("aString".into(), json!(seed.a_string));
    attr.insert("aNumber".into(), json!(seed.a_number));
    if let Some(s) = &seed.a_optional_string {
        attr.insert("aOptionalString".into(), json!(s));
    }
    attr
}

/// The to-one chain per resource id: the parent's and the inner row's
/// `aString`.
type Chain = BTreeMap<String, (Option<String>, Option<String>)>;

/// The seeded chain, read back through real joins.
const CHAIN: &str = "SELECT r.id, p.a_string, i.a_string FROM adversarial_resource r \
    LEFT JOIN adversarial_parent p ON p.resource_id = r.id \
    LEFT JOIN adversarial_inner i ON i.parent_id = p.id";

// -- seeding --------------------------------------------------------------

/// A value to insert.
enum Val {
    Text(Option<String>),
    Int(i64),
    Real(Option<f64>),
    Bool(bool),
    /// An RFC 3339 timestamp: `timestamptz` in PostgreSQL, text in SQLite.
    Timestamp(Option<String>),
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_owned()))
}

/// The rows of every table, as the pgx harness seeds them: one parent
/// (and inner) row per resource, copied from the named seeds; one category
/// and sub-category per sub-category name, with the seed's labels.
fn rows(corpus: &Corpus) -> Vec<(&'static str, Vec<&'static str>, Vec<Val>)> {
    let scalars = ["a_bool", "a_string", "a_number", "a_optional_string"];
    let with = |extra: [&'static str; 2]| -> Vec<&'static str> {
        scalars.iter().copied().chain(extra).collect()
    };
    let scalar_values = |s: &Seed| {
        vec![
            Val::Bool(s.a_bool),
            text(&s.a_string),
            Val::Int(s.a_number),
            Val::Text(s.a_optional_string.clone()),
        ]
    };
    let mut rows = Vec::new();
    for seed in &corpus.seeds {
        rows.push((
            RESOURCE,
            vec![
                "id",
                "a_bool",
                "a_string",
                "a_number",
                "a_double",
                "a_optional_string",
                "created_by",
                "scope",
                "created_at",
            ],
            vec![
                text(&seed.id),
                Val::Bool(seed.a_bool),
                text(&seed.a_string),
                Val::Int(seed.a_number),
                Val::Real(seed.a_double),
                Val::Text(seed.a_optional_string.clone()),
                text(&seed.created_by),
                Val::Text(seed.scope.clone()),
                Val::Timestamp(seed.created_at.clone()),
            ],
        ));
        let parent_id = format!("{}-parent", seed.id);
        if let Some(parent) = corpus.parent_of(seed) {
            let mut values = scalar_values(parent);
            values.extend([text(&parent_id), text(&seed.id)]);
            rows.push((PARENT, with(["id", "resource_id"]), values));
            if let Some(inner) = corpus.parent_of(parent) {
                let mut values = scalar_values(inner);
                values.extend([text(&format!("{}-parent-inner", seed.id)), text(&parent_id)]);
                rows.push(("adversarial_inner", with(["id", "parent_id"]), values));
            }
        }
        for tag in &seed.tags {
            rows.push((
                TAG,
                vec!["tag_id", "name", "resource_id"],
                vec![text(&tag.id), Val::Text(tag.name.clone()), text(&seed.id)],
            ));
        }
        for (i, name) in seed.sub_category_names.iter().enumerate() {
            let category = format!("{}-cat{i}", seed.id);
            let sub = format!("{}-sub{i}", seed.id);
            rows.push((
                "adversarial_category",
                vec!["id", "name", "resource_id"],
                vec![text(&category), text("business"), text(&seed.id)],
            ));
            rows.push((
                "adversarial_sub_category",
                vec!["id", "name", "category_id"],
                vec![text(&sub), text(name), text(&category)],
            ));
            for (j, label) in seed.labels.iter().enumerate() {
                rows.push((
                    "adversarial_label",
                    vec!["id", "name", "sub_category_id"],
                    vec![
                        text(&format!("{sub}-label{j}")),
                        Val::Text(label.clone()),
                        text(&sub),
                    ],
                ));
            }
        }
    }
    rows
}

fn seed_sqlite(db: &rusqlite::Connection, corpus: &Corpus) -> Result<()> {
    use rusqlite::types::Value as V;
    let schema = SCHEMA
        .replace("{timestamp}", "integer")
        .replace("{serial}", "INTEGER PRIMARY KEY");
    db.execute_batch(&schema)
        .map_err(|e| format!("SQLite schema: {e}"))?;
    for (table, columns, values) in rows(corpus) {
        let marks = vec!["?"; columns.len()].join(", ");
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        );
        let params: Vec<V> = values
            .into_iter()
            .map(|v| match v {
                Val::Text(s) => s.map_or(V::Null, V::Text),
                // Microseconds since the epoch: whole seconds from SQLite's
                // own parser, the fraction from the text.
                Val::Timestamp(s) => s.map_or(V::Null, |s| {
                    let (whole, fraction) = match s.split_once('.') {
                        Some((w, f)) => (format!("{w}Z"), f.trim_end_matches('Z').to_owned()),
                        None => (s.clone(), String::new()),
                    };
                    let seconds: i64 = db
                        .query_row("SELECT unixepoch(?1)", [&whole], |r| r.get(0))
                        .expect("SQLite parses the corpus's RFC 3339 timestamps");
                    let micros: i64 = format!("{fraction:0<6}").parse().unwrap_or(0);
                    V::Integer(seconds * 1_000_000 + micros)
                }),
                Val::Int(i) => V::Integer(i),
                Val::Real(f) => f.map_or(V::Null, V::Real),
                Val::Bool(b) => V::Integer(i64::from(b)),
            })
            .collect();
        db.execute(&sql, rusqlite::params_from_iter(params))
            .map_err(|e| format!("SQLite {sql}: {e}"))?;
    }
    Ok(())
}

async fn seed_postgres(db: &tokio_postgres::Client, corpus: &Corpus) -> Result<()> {
    use tokio_postgres::types::ToSql;
    let schema = SCHEMA
        .replace("{timestamp}", "timestamptz")
        .replace("{serial}", "bigserial PRIMARY KEY");
    db.batch_execute(&schema)
        .await
        .map_err(|e| format!("PostgreSQL schema: {e}"))?;
    for (table, columns, values) in rows(corpus) {
        let mut marks = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            let n = i + 1;
            marks.push(match v {
                Val::Timestamp(_) => format!("${n}::text::timestamptz"),
                _ => format!("${n}"),
            });
            params.push(match v {
                Val::Text(s) | Val::Timestamp(s) => Box::new(s),
                Val::Int(i) => Box::new(i),
                Val::Real(f) => Box::new(f),
                Val::Bool(b) => Box::new(b),
            });
        }
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            marks.join(", ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        db.execute(&sql, &refs)
            .await
            .map_err(|e| format!("PostgreSQL {sql}: {e}"))?;
    }
    Ok(())
}

// -- measuring ------------------------------------------------------------

/// What one database answered for one action.
enum Outcome {
    Exact,
    Refused(String),
    Mismatch {
        over: Vec<String>,
        under: Vec<String>,
    },
    DbError(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Exact => "exact",
            Outcome::Refused(_) => "refused",
            Outcome::Mismatch { over, .. } if !over.is_empty() => "over-grant",
            Outcome::Mismatch { .. } => "under-grant",
            Outcome::DbError(_) => "db-error",
        }
    }

    fn over_grants(&self) -> bool {
        matches!(self, Outcome::Mismatch { over, .. } if !over.is_empty())
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Exact => String::new(),
            Outcome::Refused(e) | Outcome::DbError(e) => e.clone(),
            Outcome::Mismatch { over, under } => {
                let mut parts = Vec::new();
                if !over.is_empty() {
                    parts.push(format!("over-granted {}", over.join(" ")));
                }
                if !under.is_empty() {
                    parts.push(format!("missing {}", under.join(" ")));
                }
                parts.join("; ")
            }
        }
    }

    fn to_json(&self) -> Json {
        let mut value = json!({"outcome": self.label()});
        match self {
            Outcome::Exact => {}
            Outcome::Refused(e) => value["error"] = json!(e),
            Outcome::DbError(e) => value["db_error"] = json!(e),
            Outcome::Mismatch { over, under } => {
                value["over"] = json!(over);
                value["under"] = json!(under);
            }
        }
        value
    }
}

/// The ids `filter` selects from the resource table in `db`.
async fn measure(
    db: &impl Db,
    to_sql: &PlanToSql,
    plan: &PlanFilter,
    oracle: &BTreeSet<String>,
) -> Outcome {
    let filter = match to_sql.filter(plan) {
        Ok(filter) => filter,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let mut query = sea_query::Query::select();
    query
        .column((Alias::new(RESOURCE), Alias::new("id")))
        .from(Alias::new(RESOURCE));
    let ids = if filter.may_match() {
        filter.apply(&mut query);
        match db.ids(&query).await {
            Ok(ids) => ids,
            Err(e) => return Outcome::DbError(e),
        }
    } else {
        BTreeSet::new()
    };
    let over: Vec<String> = ids.difference(oracle).cloned().collect();
    let under: Vec<String> = oracle.difference(&ids).cloned().collect();
    if over.is_empty() && under.is_empty() {
        Outcome::Exact
    } else {
        Outcome::Mismatch { over, under }
    }
}

/// One action measured on both databases.
struct Measured {
    action: String,
    group: Group,
    oracle: BTreeSet<String>,
    plan: String,
    always_allowed: bool,
    sqlite: Outcome,
    postgres: Outcome,
}

impl Measured {
    fn outcome(&self, postgres: bool) -> &Outcome {
        if postgres {
            &self.postgres
        } else {
            &self.sqlite
        }
    }
}

fn plan_text(plan: &PlanFilter) -> String {
    match plan {
        PlanFilter::AlwaysAllowed => "ALWAYS_ALLOWED".into(),
        PlanFilter::AlwaysDenied => "ALWAYS_DENIED".into(),
        PlanFilter::Conditional(c) => c.to_string(),
    }
}

struct Args {
    corpus: PathBuf,
    json: Option<PathBuf>,
    compare: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut corpus = None;
    let mut json = None;
    let mut compare = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--json" {
            json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?));
        } else if arg == "--compare" {
            compare = Some(PathBuf::from(args.next().ok_or("--compare needs a path")?));
        } else if corpus.is_none() && !arg.starts_with("--") {
            corpus = Some(PathBuf::from(arg));
        } else {
            return Err(format!("unexpected argument {arg}"));
        }
    }
    Ok(Args {
        corpus: corpus.ok_or(
            "usage: conformance <query-plan-adapters/conformance dir> [--json <path>] [--compare <earlier.json>]",
        )?,
        json,
        compare,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the measurement; `Ok(false)` when an over-grant or an answered
/// required refusal fails the run.
async fn run() -> Result<bool> {
    let args = args()?;
    let corpus = Corpus::load(&args.corpus)?;

    // The corpus policy, verbatim, in a policy directory of its own.
    let policies =
        TempDir(std::env::temp_dir().join(format!("cerbos-conformance-{}", std::process::id())));
    std::fs::create_dir_all(&policies.0).map_err(|e| e.to_string())?;
    std::fs::copy(&corpus.policy, policies.0.join("adversarial.yaml"))
        .map_err(|e| format!("{}: {e}", corpus.policy.display()))?;
    let policy_dir = policies.0.clone();
    let pdp = tokio::task::spawn_blocking(move || Pdp::start(policy_dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("starting the PDP: {e}"))?;
    let client: Client = common::live_client(pdp.grpc_endpoint())
        .build()
        .map_err(|e| format!("client: {e}"))?;
    eprintln!(
        "PDP {} (corpus pinned to {}), {} seeds, {} actions",
        cerbos_testkit::CERBOS_VERSION,
        corpus.cerbos_version,
        corpus.seeds.len(),
        corpus.actions.len()
    );

    let sqlite = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    seed_sqlite(&sqlite, &corpus)?;
    let (pg, _postgres) = common::oracle::postgres().await;
    seed_postgres(&pg.0, &corpus).await?;
    // Both hops read back through real joins, as the corpus asks: a seeder
    // that attached the chain to the wrong rows would go unnoticed.
    let chain = |rows: Vec<(String, Option<String>, Option<String>)>| -> Chain {
        rows.into_iter().map(|(id, p, i)| (id, (p, i))).collect()
    };
    let sqlite_chain = sqlite
        .prepare(CHAIN)
        .and_then(|mut q| {
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| format!("SQLite {CHAIN}: {e}"))?;
    let pg_chain =
        pg.0.query(CHAIN, &[])
            .await
            .map_err(|e| format!("PostgreSQL {CHAIN}: {e}"))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    for (db, got) in [
        ("SQLite", chain(sqlite_chain)),
        ("PostgreSQL", chain(pg_chain)),
    ] {
        if got != corpus.chain() {
            return Err(format!("{db}: the seeded to-one chain is not the corpus's"));
        }
    }
    let sqlite = Sqlite(sqlite);
    let (sqlite_sql, postgres_sql) = (mapper(Dialect::Sqlite), mapper(Dialect::Postgres));

    let resources: Vec<Resource> = corpus.seeds.iter().map(|s| corpus.resource(s)).collect();
    let mut measured = Vec::new();
    for (action, group) in &corpus.actions {
        let mut check = CheckResources::new(corpus.principal.clone());
        for resource in &resources {
            check.push(resource.clone(), [action.as_str()]);
        }
        let checked = client
            .check_resources(check)
            .await
            .map_err(|e| format!("CheckResources for {action}: {e}"))?;
        let oracle: BTreeSet<String> = checked
            .results()
            .iter()
            .filter(|r| r.is_allowed(action))
            .map(|r| r.id().to_owned())
            .collect();
        let plan = client
            .plan_resources(
                PlanResources::new(corpus.principal.clone(), corpus.kind.clone()).action(action),
            )
            .await
            .map_err(|e| format!("PlanResources for {action}: {e}"))?;
        measured.push(Measured {
            action: action.clone(),
            group: *group,
            plan: plan_text(&plan.filter),
            always_allowed: matches!(plan.filter, PlanFilter::AlwaysAllowed),
            sqlite: measure(&sqlite, &sqlite_sql, &plan.filter, &oracle).await,
            postgres: measure(&pg, &postgres_sql, &plan.filter, &oracle).await,
            oracle,
        });
    }

    let ok = report(&corpus, &measured, args.json.as_deref())?;
    if let Some(earlier) = &args.compare {
        compare(&read_json(earlier)?, &measured);
    }
    drop(pdp);
    Ok(ok)
}

/// Prints the table and the totals, writes the JSON report; `false` when
/// the run fails.
fn report(corpus: &Corpus, measured: &[Measured], json_path: Option<&Path>) -> Result<bool> {
    let seeds = corpus.seeds.len();
    let width = measured.iter().map(|m| m.action.len()).max().unwrap_or(6);
    println!(
        "{:width$} | {:11} | {:11} | group",
        "action", "sqlite", "postgres"
    );
    println!("{:-<width$}-+-{:-<11}-+-{:-<11}-+-{:-<12}", "", "", "", "");
    for m in measured {
        println!(
            "{:width$} | {:11} | {:11} | {}",
            m.action,
            m.sqlite.label(),
            m.postgres.label(),
            m.group.name()
        );
    }

    println!("\ndetails (not exact):");
    for m in measured {
        for (db, outcome) in [("sqlite", &m.sqlite), ("postgres", &m.postgres)] {
            if !matches!(outcome, Outcome::Exact) {
                println!(
                    "  {} [{db}] {}: {}",
                    m.action,
                    outcome.label(),
                    outcome.detail()
                );
            }
        }
    }

    let mut ok = true;
    let mut totals = BTreeMap::new();
    let conformance: Vec<&Measured> = measured
        .iter()
        .filter(|m| m.group == Group::Conformance)
        .collect();
    println!("\ntotals ({} conformance actions):", conformance.len());
    for (db, postgres) in [("sqlite", false), ("postgres", true)] {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &conformance {
            *counts.entry(m.outcome(postgres).label()).or_default() += 1;
        }
        let count = |label: &str| counts.get(label).copied().unwrap_or(0);
        println!(
            "  {db:8}: exact {}/{}, refused {}, over-grant {}, under-grant {}, db-error {}",
            count("exact"),
            conformance.len(),
            count("refused"),
            count("over-grant"),
            count("under-grant"),
            count("db-error")
        );
        let over: Vec<&str> = measured
            .iter()
            .filter(|m| m.group != Group::KnownDivergence && m.outcome(postgres).over_grants())
            .map(|m| m.action.as_str())
            .collect();
        println!(
            "            over-grants (must be 0): {} {over:?}",
            over.len()
        );
        let mut answered = Vec::new();
        for group in [Group::ExpectedUnsupported, Group::NullOmitted] {
            let members: Vec<&Measured> = measured.iter().filter(|m| m.group == group).collect();
            let group_answered: Vec<&str> = members
                .iter()
                .filter(|m| !matches!(m.outcome(postgres), Outcome::Refused(_)))
                .map(|m| m.action.as_str())
                .collect();
            println!(
                "            {} refused (must be all): {}/{}{}",
                group.name(),
                members.len() - group_answered.len(),
                members.len(),
                if group_answered.is_empty() {
                    String::new()
                } else {
                    format!(", ANSWERED: {group_answered:?}")
                }
            );
            answered.extend(group_answered);
        }
        let must_refuse = measured.iter().filter(|m| m.group.must_refuse()).count();
        ok &= over.is_empty() && answered.is_empty();
        totals.insert(
            db,
            json!({
                "exact": count("exact"),
                "conformance": conformance.len(),
                "refused": count("refused"),
                "over_grant": count("over-grant"),
                "under_grant": count("under-grant"),
                "db_error": count("db-error"),
                "over_grant_actions": over,
                "required_refusals": must_refuse,
                "required_refusals_answered": answered,
            }),
        );
    }

    // Why conformance actions are refused, most frequent first (the error
    // up to its first `:`, which names the variable or the operator).
    let mut reasons: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &conformance {
        for outcome in [&m.sqlite, &m.postgres] {
            if let Outcome::Refused(e) = outcome {
                let reason = e.split(':').next().unwrap_or(e).to_owned();
                let actions = reasons.entry(reason).or_default();
                if actions.last() != Some(&m.action.as_str()) {
                    actions.push(&m.action);
                }
            }
        }
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by_key(|(_, actions)| std::cmp::Reverse(actions.len()));
    println!("  refusals by reason (conformance actions, either database):");
    for (reason, actions) in &reasons {
        println!("    {:3} {reason}", actions.len());
    }

    // The known divergence: the planner folds p-has to ALWAYS_ALLOWED.
    let mut divergences = Vec::new();
    for m in measured
        .iter()
        .filter(|m| m.group == Group::KnownDivergence)
    {
        let pinned = m.always_allowed && !m.oracle.is_empty() && m.oracle.len() < seeds;
        println!(
            "  known divergence {}: plan {}, oracle allows {}/{seeds} ({}){}",
            m.action,
            m.plan,
            m.oracle.len(),
            m.oracle.iter().cloned().collect::<Vec<_>>().join(" "),
            if pinned {
                ": still diverges as documented"
            } else {
                ": NO LONGER as documented, re-triage it"
            }
        );
        divergences.push(json!({"action": m.action, "plan": m.plan, "still_diverges": pinned}));
    }

    // The degeneracy guard: an empty or total oracle compares nothing.
    let mut warnings = Vec::new();
    for m in measured {
        let empty_by_construction = EMPTY_BY_CONSTRUCTION.contains(&m.action.as_str());
        let degenerate = if m.oracle.is_empty() && !empty_by_construction {
            Some("empty")
        } else if m.oracle.len() == seeds && !TOTAL_BY_CONSTRUCTION.contains(&m.action.as_str()) {
            Some("total")
        } else {
            None
        };
        if let Some(what) = degenerate {
            println!(
                "  WARNING degenerate oracle: {} allows {} ({what})",
                m.action,
                m.oracle.len()
            );
            warnings.push(json!({"action": m.action, "oracle": what}));
        }
    }
    if warnings.is_empty() {
        println!("  degeneracy guard: no unexpected empty or total oracle");
    }
    println!("  result: {}", if ok { "PASS" } else { "FAIL" });

    if let Some(path) = json_path {
        let report = json!({
            "corpus": corpus.policy.parent().and_then(Path::parent).map(|p| p.display().to_string()),
            "corpus_cerbos_version": corpus.cerbos_version,
            "pdp_cerbos_version": cerbos_testkit::CERBOS_VERSION,
            "seeds": seeds,
            "pass": ok,
            "totals": totals,
            "known_divergences": divergences,
            "degeneracy_warnings": warnings,
            "actions": measured.iter().map(|m| json!({
                "action": m.action,
                "group": m.group.name(),
                "plan": m.plan,
                "oracle": m.oracle,
                "sqlite": m.sqlite.to_json(),
                "postgres": m.postgres.to_json(),
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("  JSON report: {}", path.display());
    }
    Ok(ok)
}

/// Prints the outcomes that changed since an earlier `--json` report.
fn compare(earlier: &Json, measured: &[Measured]) {
    let mut before: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for action in earlier["actions"].as_array().into_iter().flatten() {
        let name = action["action"].as_str().unwrap_or_default();
        for db in ["sqlite", "postgres"] {
            if let Some(outcome) = action[db]["outcome"].as_str() {
                before.insert((name, db), outcome);
            }
        }
    }
    println!("\nchanged since the earlier report:");
    let mut changed = 0;
    for m in measured {
        for (db, outcome) in [("sqlite", &m.sqlite), ("postgres", &m.postgres)] {
            let was = before
                .get(&(m.action.as_str(), db))
                .copied()
                .unwrap_or("absent");
            if was != outcome.label() {
                changed += 1;
                println!("  {} [{db}] {was} -> {}", m.action, outcome.label());
            }
        }
    }
    println!("  {changed} outcomes changed");
}
