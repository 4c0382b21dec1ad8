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
