//! The recipes of `cerbos-sql`'s README for the drivers users already
//! have, on a real PostgreSQL with the contact policies on the real PDP:
//! sqlx (the values bound with `sea-query-binder`) and SeaORM (the filter
//! applied to an entity's `Select`). Each must return exactly the rows
//! `CheckResources` allows, for principals that see some, all and none.

mod common;

use std::collections::BTreeSet;

use cerbos_sql::sea_query::{Alias, PostgresQueryBuilder, Query};
use cerbos_sql::{Column, Dialect, PlanToSql};
use cerbos_tower::{CheckResources, PlanResources, Principal, Resource};
use sea_orm::{EntityTrait, QueryTrait};
use sea_query_binder::SqlxBinder;

/// A contact row, as SeaORM maps it (its derives generate public items).
#[allow(unreachable_pub)]
mod contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub owner_id: String,
        pub is_active: bool,
        pub marketing_opt_in: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The contact columns as the contact policies read them.
fn to_sql() -> PlanToSql {
    let column = |name: &str| (Alias::new("contact"), Alias::new(name));
    PlanToSql::new(Dialect::Postgres)
        .column(
            "request.resource.attr.owner_id",
            Column::string(column("owner_id")).not_null(),
        )
        .column(
            "request.resource.attr.is_active",
            Column::bool(column("is_active")).not_null(),
        )
        .column(
            "request.resource.attr.marketing_opt_in",
            Column::bool(column("marketing_opt_in")).not_null(),
        )
}

/// `(id, owner, active, opted in)`.
const ROWS: &[(&str, &str, bool, bool)] = &[
    ("c1", "harry", true, true),
    ("c2", "harry", false, false),
    ("c3", "maggie", true, false),
    ("c4", "maggie", true, true),
    ("c5", "geri", false, true),
    ("c6", "geri", true, true),
];

fn principals() -> Vec<Principal> {
    let user = |id: &str, department: &str| {
        Principal::new(id, ["user"]).with_attr("department", department)
    };
    vec![
        user("harry", "Sales"),
        user("geri", "Marketing"),
        user("maggie", "Engineering"),
        Principal::new("nobody", ["guest"]),
        Principal::new("ada", ["admin"]),
    ]
}

/// The rows the PDP allows `principal` to read, one batched check.
async fn oracle(client: &cerbos_tower::Client, principal: &Principal) -> BTreeSet<String> {
    let mut check = CheckResources::new(principal.clone());
    for (id, owner, active, opted_in) in ROWS {
        check = check.resource(
            Resource::new("contact", *id)
                .with_attr("owner_id", *owner)
                .with_attr("is_active", *active)
                .with_attr("marketing_opt_in", *opted_in),
            ["read"],
        );
    }
    let checked = client
        .check_resources(check)
        .await
        .expect("the PDP answers");
    common::oracle::allowed(&checked, "read")
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlx_and_sea_orm_list_exactly_the_allowed_rows() {
    let pg = tokio::task::spawn_blocking(cerbos_testkit::Postgres::start)
        .await
        .unwrap()
        .expect("PostgreSQL starts (cerbos-testkit installs it from npm)");
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("sqlx connects");
    sqlx::query(
        "CREATE TABLE contact (id TEXT PRIMARY KEY, owner_id TEXT NOT NULL,
           is_active BOOLEAN NOT NULL, marketing_opt_in BOOLEAN NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("creates the table");
    for (id, owner, active, opted_in) in ROWS {
        sqlx::query("INSERT INTO contact VALUES ($1, $2, $3, $4)")
            .bind(*id)
            .bind(*owner)
            .bind(*active)
            .bind(*opted_in)
            .execute(&pool)
            .await
            .expect("inserts a row");
    }
    let orm = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    let client = common::contact_client();
    let to_sql = to_sql();
    let mut seen = BTreeSet::new();
    for principal in principals() {
        let allowed = oracle(&client, &principal).await;
        seen.insert(allowed.len());
        let plan = client
            .plan_resources(PlanResources::new(principal.clone(), "contact").action("read"))
            .await
            .expect("the PDP plans");
        let filter = to_sql
            .filter(&plan.filter)
            .expect("the contact plans translate");

        // sqlx: build with sea-query, bind with sea-query-binder.
        let by_sqlx: BTreeSet<String> = if filter.may_match() {
            let mut query = Query::select();
            query
                .column((Alias::new("contact"), Alias::new("id")))
                .from(Alias::new("contact"));
            filter.clone().apply(&mut query);
            let (sql, values) = query.build_sqlx(PostgresQueryBuilder);
            sqlx::query_as_with::<_, (String,), _>(&sql, values)
                .fetch_all(&pool)
                .await
                .expect("sqlx runs the filtered query")
                .into_iter()
                .map(|(id,)| id)
                .collect()
        } else {
            BTreeSet::new()
        };

        // SeaORM: the filter applied to the entity's query.
        let mut select = contact::Entity::find();
        filter.apply(QueryTrait::query(&mut select));
        let by_orm: BTreeSet<String> = select
            .all(&orm)
            .await
            .expect("SeaORM runs the filtered query")
            .into_iter()
            .map(|row| row.id)
            .collect();

        assert_eq!(by_sqlx, allowed, "sqlx rows for {}", principal.id());
        assert_eq!(by_orm, allowed, "SeaORM rows for {}", principal.id());
    }
    // Not vacuous: some principals see nothing, some everything, some a part.
    assert!(seen.contains(&0) && seen.contains(&ROWS.len()), "{seen:?}");
    assert!(seen.iter().any(|n| *n > 0 && *n < ROWS.len()), "{seen:?}");
}
