//! `sluice refresh` on schema shapes real applications have: each test refreshes a schema that
//! broke an earlier sluice and checks the copy against the source catalog.

use crate::refresh::Env;

#[test]
fn a_foreign_key_into_a_partitioned_table_is_built_after_its_index_is_attached() {
    let env = Env::new(
        "CREATE TABLE p (id bigint NOT NULL, part int NOT NULL, label text) PARTITION BY LIST (part);
         CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
         CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);
         ALTER TABLE p ADD PRIMARY KEY (id, part);
         CREATE TABLE c (id bigint PRIMARY KEY, p_id bigint, part int,
                         FOREIGN KEY (p_id, part) REFERENCES p (id, part));
         INSERT INTO p SELECT i, 1 + i % 2, 'item ' || i FROM generate_series(1, 200) i;
         INSERT INTO c SELECT i, i, 1 + i % 2 FROM generate_series(1, 200) i;",
        "      presets: []\n      columns:\n        p.*: keep\n        c.*: keep",
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let constraints = |pg: &crate::support::pg::PgCluster, db: &str| {
        pg.psql(
            db,
            "select string_agg(conrelid::regclass::text || ' ' || contype::text || ' ' || convalidated::text, ', ' order by conrelid::regclass::text, contype::text)
               from pg_constraint where connamespace = 'public'::regnamespace",
        )
    };
    assert_eq!(
        constraints(&env.dst, "staging"),
        constraints(&env.src, "app")
    );
    assert!(
        constraints(&env.dst, "staging").contains("c f true"),
        "{}",
        constraints(&env.dst, "staging")
    );
    assert_eq!(env.dst.psql("staging", "select count(*) from c"), "200");
    // The parent's primary key is valid (every partition's index attached).
    assert_eq!(
        env.dst.psql(
            "staging",
            "select bool_and(indisvalid) from pg_index where indrelid = 'p'::regclass"
        ),
        "t"
    );
}

#[test]
fn date_shift_stays_within_a_columns_check_range_and_warns_of_checks_it_cannot_read() {
    // Dates at both ends of the range: a shift of up to ten years would leave it for most.
    let env = Env::new(
        "CREATE TABLE people (id int PRIMARY KEY,
           date_of_birth date CHECK (date_of_birth BETWEEN '1900-01-01' AND '2010-12-31'),
           \"Joined\" timestamp CHECK (\"Joined\" >= '2015-01-01 00:00:00' AND \"Joined\" < '2016-01-01'),
           seen date CHECK (seen <= CURRENT_DATE + 36500));
         INSERT INTO people SELECT i,
           CASE WHEN i % 2 = 0 THEN date '1900-01-01' + (i % 40) ELSE date '2010-12-31' - (i % 40) END,
           timestamp '2015-01-01 00:00:00' + (i % 300) * interval '1 day' + interval '13 hours',
           date '2000-01-01' FROM generate_series(1, 400) i;",
        "      presets: []
      columns:
        people.id: keep
        people.date_of_birth: date_shift:3650
        'people.\"Joined\"': date_shift:3650
        people.seen: date_shift:10",
    );
    let dry = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("public.people.seen: date_shift may move a date outside `CHECK ((seen <= (CURRENT_DATE + 36500)))`"),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains("date_of_birth: date_shift may"),
        "{}",
        dry.stdout
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from people where date_of_birth between '1900-01-01' and '2010-12-31'
               and \"Joined\" >= '2015-01-01' and \"Joined\" < '2016-01-01'"
        ),
        "400"
    );
    // Masked: most dates moved.
    let q = "select string_agg(date_of_birth::text, ',' order by id) from people";
    let (before, after) = (env.src.psql("app", q), env.dst.psql("staging", q));
    let moved = before
        .split(',')
        .zip(after.split(','))
        .filter(|(a, b)| a != b)
        .count();
    assert!(moved > 300, "{moved}");
}

const COMMENTED: &str = r#"
create extension citext;
create role reader;
create role ghost;
create schema crm;
comment on schema crm is 'customer data';
create type crm.tier as enum ('free', 'paid');
comment on type crm.tier is 'billing tier';
create table crm.customers (id int primary key, email citext, tier crm.tier, note text);
comment on table crm.customers is 'one row per customer';
comment on column crm.customers.email is 'E-Mail, "quoted", it''s unique';
create index customers_email on crm.customers (email);
comment on index crm.customers_email is 'lookups by e-mail';
comment on constraint customers_pkey on crm.customers is 'the key';
create function crm.touch() returns trigger language plpgsql as $$ begin return new; end $$;
comment on function crm.touch() is 'does nothing';
create trigger touch before update on crm.customers for each row execute function crm.touch();
comment on trigger touch on crm.customers is 'a no-op';
create view crm.paying as select id from crm.customers where tier = 'paid';
comment on view crm.paying is 'who pays';
grant usage on schema crm to reader;
grant select on crm.customers to reader;
grant select (id, tier) on crm.customers to ghost;
grant update on crm.customers to ghost;
grant select on crm.paying to reader;
insert into crm.customers select i, 'c' || i || '@shop.invalid', 'free', 'n' from generate_series(1, 50) i;
"#;

const COMMENTED_MASKING: &str = "      presets: []
      columns:
        crm.customers.id: keep
        crm.customers.tier: keep
        crm.customers.note: keep
        crm.customers.email: email";

fn descriptions(pg: &crate::support::pg::PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "select string_agg(pg_describe_object(classoid, objoid, objsubid) || ' = ' || description, ' | ' order by pg_describe_object(classoid, objoid, objsubid))
           from pg_description where objoid >= 16384",
    )
}

fn grants(pg: &crate::support::pg::PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "select coalesce(string_agg(x, ' | ' order by x), '') from (
           select c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '-') x
             from pg_class c where c.relnamespace = 'crm'::regnamespace and c.relkind in ('r', 'v')
           union all
           select c.oid::regclass::text || '.' || a.attname || ' ' || a.attacl::text
             from pg_attribute a join pg_class c on c.oid = a.attrelid
            where c.relnamespace = 'crm'::regnamespace and a.attacl is not null
           union all select 'schema crm ' || coalesce(nspacl::text, '-') from pg_namespace where nspname = 'crm') s",
    )
}

#[test]
fn comments_on_every_object_are_copied_and_grants_only_when_asked_to_roles_that_exist() {
    let env = Env::new(COMMENTED, COMMENTED_MASKING);
    env.dst.psql("postgres", "create role reader");
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let source = descriptions(&env.src, "app");
    assert!(
        source.contains("it's unique") && source.contains("a no-op"),
        "{source}"
    );
    assert_eq!(descriptions(&env.dst, "staging"), source);
    // By default nobody is granted anything: the loading user owns the copy.
    assert!(
        !grants(&env.dst, "staging").contains("reader"),
        "{}",
        grants(&env.dst, "staging")
    );

    // Opt in: grants to `reader` are copied; `ghost` does not exist on the target, so its
    // grants are left out and each one is reported.
    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    crate::support::write(
        env.dir.path(),
        "sluice.yaml",
        &yaml.replace("    jobs: 2\n", "    jobs: 2\n    grants: true\n"),
    );
    let run = env.sluice(&["refresh", "nightly"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "role `ghost` does not exist on the target: `GRANT UPDATE ON TABLE crm.customers TO ghost;` not copied"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("GRANT SELECT(id) ON TABLE crm.customers TO ghost;"),
        "{}",
        run.stderr
    );
    let copied = grants(&env.dst, "staging");
    let expected = grants(&env.src, "app");
    assert!(copied.contains("reader=r/"), "{copied}");
    assert!(
        copied.contains("schema crm {") && copied.contains("reader=U/"),
        "{copied}"
    );
    assert!(!copied.contains("ghost"), "{copied}");
    assert!(expected.contains("ghost"), "{expected}");
    assert_eq!(descriptions(&env.dst, "staging"), source);
}
