//! Streaming one table from source to target under an exported snapshot, masking on the way,
//! against real PostgreSQL: rows committed after the snapshot stay out, masked values agree across
//! tables, NULLs stay NULL, no source value reaches the target.

use sluice::data::mask::Transform;
use sluice::data::mask::rows::ColumnPlan;
use sluice::data::pg::catalog::QualifiedName;
use sluice::data::pg::snapshot::{adopt_snapshot, export_snapshot};
use sluice::data::refresh::stream::copy_table;

use crate::support::pg::PgCluster;

fn plan(cols: &[(&str, Option<Transform>)]) -> Vec<ColumnPlan> {
    cols.iter()
        .map(|(n, t)| ColumnPlan {
            name: n.to_string(),
            domain: t
                .as_ref()
                .map_or("text", |t| t.default_domain())
                .to_string(),
            transform: t.clone(),
            unique: false,
            max_len: None,
            wire: Default::default(),
        })
        .collect()
}

#[test]
fn snapshot_copy_with_masking() {
    let pg = PgCluster::start();
    pg.psql("postgres", "create database src");
    pg.psql("postgres", "create database dst");
    let schema = "create table customers (id int primary key, email text, note text);
                  create table orders (id int primary key, customer_email text, amount numeric(8,2));";
    pg.psql("src", schema);
    pg.psql("dst", schema);
    pg.psql(
        "src",
        "insert into customers select i, 'User' || i || '@corp.example', case when i % 3 = 0 then null else E'tab\\there ' || i end from generate_series(1, 5000) i;
         insert into orders select i, 'user' || (i % 5000 + 1) || '@corp.example', i * 1.5 from generate_series(1, 8000) i;",
    );
    let key = b"nightly-masking-key";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = |db: &str| {
            let url = pg.url(db);
            async move {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                c
            }
        };
        let mut leader = connect("src").await;
        let (_snapshot_tx, id) = export_snapshot(&mut leader).await.unwrap();
        // Committed after the snapshot: must not be copied.
        pg.psql(
            "src",
            "insert into customers values (9999, 'late@corp.example', 'late')",
        );

        let mut worker = connect("src").await;
        let tx = adopt_snapshot(&mut worker, &id).await.unwrap();
        let target = connect("dst").await;
        let t = |n: &str| QualifiedName {
            schema: "public".into(),
            name: n.into(),
        };
        let moved = copy_table(
            &tx,
            &target,
            &t("customers"),
            &plan(&[
                ("id", None),
                ("email", Some(Transform::Email)),
                ("note", Some(Transform::Scrub(Default::default()))),
            ]),
            None,
            key,
        )
        .await
        .unwrap();
        assert_eq!(moved.rows, 5000, "the late row is outside the snapshot");
        copy_table(
            &tx,
            &target,
            &t("orders"),
            &plan(&[
                ("id", None),
                ("customer_email", Some(Transform::Email)),
                ("amount", Some(Transform::NumberNoise { percent: 10.0 })),
            ]),
            Some("id <= 4000"),
            key,
        )
        .await
        .unwrap();
        assert!(
            adopt_snapshot(&mut connect("src").await, "x'; drop table customers; --")
                .await
                .is_err()
        );
    });
    assert_eq!(pg.psql("dst", "select count(*) from customers"), "5000");
    assert_eq!(pg.psql("dst", "select count(*) from orders"), "4000");
    assert_eq!(
        pg.psql(
            "dst",
            "select count(*) from customers where email like '%@corp.example' or id = 9999"
        ),
        "0"
    );
    assert_eq!(
        pg.psql("dst", "select count(*) from customers where note is null"),
        pg.psql(
            "src",
            "select count(*) from customers where note is null and id <> 9999"
        )
    );
    // The same person masks alike in both tables (emails compare case-insensitively).
    let joined = pg.psql(
        "dst",
        "select count(*) from orders o join customers c on c.email = o.customer_email",
    );
    assert_eq!(
        joined, "4000",
        "every order still finds its customer by masked email"
    );
    let noise = pg.psql("dst", "select count(*) from orders o where o.amount between o.id * 1.5 * 0.9 - 0.01 and o.id * 1.5 * 1.1 + 0.01");
    assert_eq!(noise, "4000");
}
