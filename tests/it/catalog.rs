//! The catalog read from a real PostgreSQL: FK cycles (nullable and deferrable sides), self
//! references, composite keys, two FKs to one parent, a partitioned table with an FK, a NOT VALID
//! FK, identity and generated columns, unique indexes, triggers, quoted identifiers.

use sluice::data::pg::catalog::{self, QualifiedName, TableKind};

use crate::support::pg::PgCluster;

fn qn(schema: &str, name: &str) -> QualifiedName {
    QualifiedName {
        schema: schema.into(),
        name: name.into(),
    }
}

#[test]
fn reads_keys_partitions_and_columns() {
    let pg = PgCluster::start();
    pg.psql(
        "postgres",
        r#"
        create schema app;
        create table app.customers (id bigint generated always as identity primary key,
                                    email text not null unique, referrer bigint references app.customers(id),
                                    best_order bigint);
        create table app.orders (id bigint primary key, customer_id bigint not null references app.customers(id),
                                 shipped_to bigint references app.customers(id), total numeric(10,2),
                                 total_cents bigint generated always as ((total * 100)::bigint) stored);
        alter table app.customers add constraint customers_best_order_fkey foreign key (best_order)
            references app.orders(id) deferrable initially deferred;
        create table app.regions (country char(2), code int, name text, primary key (country, code));
        create table app."Order Items" (order_id bigint references app.orders(id), country char(2), code int,
                                        "Qty" int, foreign key (country, code) references app.regions(country, code));
        create unique index on app."Order Items" (order_id, "Qty");
        create table app.events (id bigint, at date not null, customer_id bigint references app.customers(id))
            partition by range (at);
        create table app.events_2026 partition of app.events for values from ('2026-01-01') to ('2027-01-01');
        create table app.audit (customer_id bigint);
        alter table app.audit add constraint audit_customer_fkey foreign key (customer_id)
            references app.customers(id) not valid;
        create function app.touch() returns trigger language plpgsql as $$ begin return new; end $$;
        create trigger touch_orders before update on app.orders for each row execute function app.touch();
        create view app.big_orders as select * from app.orders where total > 100;
        create materialized view app.order_counts as select customer_id, count(*) from app.orders group by 1;
        "#,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cat = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        catalog::load(&client).await.unwrap()
    });

    let customers = &cat.tables[&qn("app", "customers")];
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(customers.columns[0].identity, Some('a'));
    assert!(customers.unique_keys.contains(&vec!["email".to_string()]));
    let self_ref = customers
        .foreign_keys
        .iter()
        .find(|f| f.columns == ["referrer"])
        .unwrap();
    assert_eq!(self_ref.references, qn("app", "customers"));
    let cycle = customers
        .foreign_keys
        .iter()
        .find(|f| f.columns == ["best_order"])
        .unwrap();
    assert!(cycle.deferrable && cycle.validated);

    let orders = &cat.tables[&qn("app", "orders")];
    assert_eq!(
        orders
            .foreign_keys
            .iter()
            .filter(|f| f.references == qn("app", "customers"))
            .count(),
        2
    );
    let total_cents = orders
        .columns
        .iter()
        .find(|c| c.name == "total_cents")
        .unwrap();
    assert!(total_cents.generated);
    assert_eq!(
        orders
            .columns
            .iter()
            .find(|c| c.name == "total")
            .unwrap()
            .type_name,
        "numeric(10,2)"
    );
    assert_eq!(orders.triggers, ["touch_orders"]);

    let items = &cat.tables[&qn("app", "Order Items")];
    let composite = items
        .foreign_keys
        .iter()
        .find(|f| f.columns.len() == 2)
        .unwrap();
    assert_eq!(composite.columns, ["country", "code"]);
    assert_eq!(composite.referenced_columns, ["country", "code"]);
    assert!(
        items
            .unique_keys
            .contains(&vec!["order_id".to_string(), "Qty".to_string()])
    );
    assert_eq!(items.name.to_string(), "app.\"Order Items\"");

    let events = &cat.tables[&qn("app", "events")];
    assert_eq!(events.kind, TableKind::Partitioned);
    assert_eq!(
        events.foreign_keys.len(),
        1,
        "the partitioned table's own FK, not one per partition"
    );
    let part = &cat.tables[&qn("app", "events_2026")];
    assert_eq!(part.partition_of, Some(qn("app", "events")));
    assert!(
        part.foreign_keys.is_empty(),
        "inherited FKs belong to the parent"
    );

    let audit = &cat.tables[&qn("app", "audit")];
    assert!(!audit.foreign_keys[0].validated, "NOT VALID");

    assert!(cat.views.contains(&qn("app", "big_orders")));
    assert!(cat.materialized_views.contains(&qn("app", "order_counts")));
    assert!(cat.sequences.iter().any(|s| s.name == "customers_id_seq"));
    assert!(cat.extensions.contains(&"plpgsql".to_string()));
}

#[test]
fn classify_proposes_a_masking_snippet() {
    let pg = PgCluster::start();
    pg.psql(
        "postgres",
        r#"create table customers (id int primary key, email text, "Phone" text, notes text, created_at date,
                                   contact text, memo text, code text);
           create table payments (id int, iban text, amount numeric);
           insert into customers select i, null, null, null, null, 'someone' || i || '@corp.example',
                  case when i % 4 = 0 then 'call +49 30 ' || (1000000 + i) else 'no contact details' end,
                  md5(i::text)
             from generate_series(1, 50) i;"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = crate::support::sluice(d, &["classify", "--url", &pg.url("postgres")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("masking:\n  columns:\n"),
        "{}",
        r.stdout
    );
    let squeeze = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "public.customers.email: email # name: e-mail address",
        r#"'public.customers."Phone"': phone # name: phone number"#,
        "public.customers.notes: scrub # name:",
        "public.payments.iban: iban # name:",
        // By sampled values when the name says nothing.
        "public.customers.contact: email # values: e-mail addresses: 100% of 50 sampled values",
        "public.customers.memo: scrub # values: free text",
        "public.customers.code: keep # text: no PII found in 50 sampled values; check",
        "public.customers.created_at: keep # date: not personal by type",
        "public.payments.amount: keep # numeric: not personal by type",
    ] {
        assert!(squeeze.contains(line), "{line} missing:\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains("\n    public.customers.email:"),
        "{}",
        r.stdout
    );

    // Through an environment's secret; and a connection failure never shows the URL.
    crate::support::write(
        d,
        "sluice.yaml",
        "version: 1\nenvironments:\n  prod: { protected: true, secrets: { provider: env } }\nsecrets:\n  REPLICA_URL: { prod: env://REPLICA_URL }\n",
    );
    let r = crate::support::sluice_env(
        d,
        &[("REPLICA_URL", &pg.url("postgres"))],
        &[],
        &["classify", "--env", "prod", "--var", "REPLICA_URL"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("public.payments.iban"));
    let bad = "postgresql://app:s3ntinel-pw@127.0.0.1:1/db"; // sluice:allow (a test URL)
    let r = crate::support::sluice_env(
        d,
        &[("REPLICA_URL", bad)],
        &[],
        &["classify", "--env", "prod", "--var", "REPLICA_URL"],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stderr.contains("s3ntinel-pw"), "{}", r.stderr);
}
