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
