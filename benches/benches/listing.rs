//! Listing 10,000 contacts the principal may read: one `PlanResources` call
//! turned into a SQL condition by `cerbos-sql` (one filtered SELECT), against
//! reading every row and checking all of them with `CheckResources` (the
//! client splits the 10,000 resources into calls of 50, sent concurrently).
//!
//! `cargo bench -p cerbos-benches --bench listing`. The data is an in-memory
//! SQLite copy of the contact directory (`examples/contacts.sql`) with 10,000
//! contacts; the policies are the contact directory's
//! (`examples/policies`) on the real PDP. Both methods return the same rows,
//! which is asserted before measuring.

#![allow(missing_docs)]

use std::{path::PathBuf, time::Duration};

use cerbos_testkit::Pdp;
use cerbos_tower::{CheckResources, Client, PlanResources, Principal};
use contacts_shared::{Contact, Db};
use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::Connection;

const ROWS: i64 = 10_000;

/// A pseudo-random but fixed value for row `i` (splitmix64).
fn mix(i: i64) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The contact directory's schema and users, with the tutorial's five
/// contacts replaced by `ROWS` contacts: owners spread over users 1–4,
/// companies over 1–4, about 2/3 active and 1/2 opted in to marketing.
fn database() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    conn.execute_batch(include_str!("../../examples/contacts.sql"))
        .expect("schema");
    conn.execute("DELETE FROM contact", []).expect("empty");
    conn.execute_batch("BEGIN").expect("begin");
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO contact (id, first_name, last_name, owner_id, company_id, is_active, marketing_opt_in)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .expect("insert statement");
        for id in 1..=ROWS {
            let r = mix(id);
            insert
                .execute(rusqlite::params![
                    id,
                    format!("First{id}"),
                    format!("Last{id}"),
                    ((r % 4) + 1).to_string(),
                    (((r >> 8) % 4) + 1).to_string(),
                    !(r >> 16).is_multiple_of(3),
                    (r >> 24).is_multiple_of(2),
                ])
                .expect("insert");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
    conn
}

/// Geri, of Marketing: reads her own contacts and the active ones that
/// opted in to marketing (about half of the rows).
fn principal() -> Principal {
    Principal::new("4", ["user"]).with_attr("department", "Marketing")
}

/// (a) One `PlanResources` call, one filtered SELECT (the contact
/// examples' own listing).
async fn list_by_plan(client: &Client, db: &Db) -> Vec<Contact> {
    let plan = client
        .plan_resources(PlanResources::new(principal(), "contact").action("read"))
        .await
        .expect("plan");
    db.list(&plan.filter).expect("rows")
}

/// (b) Every row, all checked with one `check_resources` (chunked by the
/// client into calls of 50, sent concurrently).
async fn list_by_check(client: &Client, db: &Db) -> Vec<Contact> {
    let rows = db.all().expect("rows");
    let mut request = CheckResources::new(principal());
    for row in &rows {
        request = request.resource(row.resource(), ["read"]);
    }
    let response = client.check_resources(request).await.expect("check");
    // The results are in request order.
    rows.into_iter()
        .zip(response.results())
        .filter(|(_, result)| result.is_allowed("read"))
        .map(|(row, _)| row)
        .collect()
}

fn listing(c: &mut Criterion) {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pdp = Pdp::start(&policies).expect("PDP");
    let client = rt
        .block_on(
            Client::builder(pdp.grpc_endpoint())
                // 200 concurrent calls on 2 cores: more than the default 2 s
                // per call may be needed.
                .timeout(Duration::from_secs(60))
                .connect(),
        )
        .expect("client connects");
    let db = Db::over(database());

    let by_plan = rt.block_on(list_by_plan(&client, &db));
    let by_check = rt.block_on(list_by_check(&client, &db));
    let ids = |rows: &[Contact]| rows.iter().map(|row| row.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&by_plan),
        ids(&by_check),
        "the plan filter and CheckResources must allow the same rows"
    );
    assert!(
        !by_plan.is_empty() && by_plan.len() < ROWS as usize,
        "a meaningful filter: {} of {ROWS} rows allowed",
        by_plan.len()
    );
    eprintln!("listing: {} of {ROWS} contacts allowed", by_plan.len());

    let mut group = c.benchmark_group("listing_10k");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("plan_filter", |b| {
        b.iter(|| rt.block_on(list_by_plan(&client, &db)));
    });
    group.bench_function("check_resources", |b| {
        b.iter(|| rt.block_on(list_by_check(&client, &db)));
    });
    group.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
