//! `subset:` entries are met with the catalog: a `children` or `always` entry that names no
//! real foreign key stops the run, naming the entry, its place in sluice.yaml and the keys the
//! table does have; quoted identifiers resolve like SQL's.

use crate::refresh::Env;
use crate::support::write;

const SCHEMA: &str = r#"
create table users (id int primary key, email text);
create table orders (id int primary key, "user" int references users, buyer int references users);
create schema "Sales Log";
create table "Sales Log".events (id int primary key, "user" int references users, "Kind" text);
insert into users select i, 'u' || i || '@shop.invalid' from generate_series(1, 100) i;
insert into orders select i, i % 100 + 1, (i * 7) % 100 + 1 from generate_series(1, 300) i;
insert into "Sales Log".events select i, i % 100 + 1, 'k' from generate_series(1, 200) i;
"#;

fn masking(children: &str, always: &str) -> String {
    format!(
        r#"      presets: []
      columns:
        users.*: keep
        orders.*: keep
        '"Sales Log".events.*': keep
    subset:
      roots:
        - {{ table: users, where: "id <= 10" }}
      children: {children}
      always: {always}"#
    )
}

#[test]
fn children_and_always_entries_must_name_real_keys_quoted_names_included() {
    let env = Env::new(
        SCHEMA,
        &masking(
            r#"['public.orders("user")', '"Sales Log".events("user")']"#,
            "[]",
        ),
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Quoted columns resolve: every order and event of the ten root users came along.
    assert_eq!(env.dst.psql("staging", "select count(*) from orders"), "30");
    assert_eq!(
        env.dst
            .psql("staging", "select count(*) from \"Sales Log\".events"),
        "20"
    );

    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    let line_of = |needle: &str| {
        1 + yaml
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}"))
    };
    // A column that does not exist, a key on columns that have none, a table with no key.
    let bad = masking(
        r#"['public.orders(usr)', '"Sales Log".events("Kind")']"#,
        "[users]",
    );
    let good = masking(
        r#"['public.orders("user")', '"Sales Log".events("user")']"#,
        "[]",
    );
    write(env.dir.path(), "sluice.yaml", &yaml.replace(&good, &bad));
    let run = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let line = line_of("children:");
    for expected in [
        format!(
            ":{line}:18: `subset.children` entry `public.orders(usr)`: public.orders has no column `usr`; its keys: orders_buyer_fkey (buyer) -> public.users; orders_user_fkey (user) -> public.users"
        ),
        format!(
            ":{line}:40: `subset.children` entry `\"Sales Log\".events(\"Kind\")`: \"Sales Log\".events has no foreign key on (\"Kind\"); its keys: events_user_fkey (user) -> public.users"
        ),
        "`subset.always` entry `users`: public.users has no foreign key, so no row of it can follow another; declare the relationship under `subset.virtual_keys`".to_string(),
    ] {
        assert!(run.stderr.contains(&expected), "{expected}\n{}", run.stderr);
    }
    assert_eq!(
        env.dst.psql("staging", "select count(*) from orders"),
        "30",
        "a refused plan changes nothing"
    );
}
