//! `sluice refresh` end to end: a source and a target throwaway cluster, the real binary.

use crate::support::pg::PgCluster;
use crate::support::{sluice_env, write};

pub(crate) use crate::support::refresh::{Env, KEY, PASSWORD, assert_no_sentinel, url};

const SCHEMA: &str = r#"
create extension citext;
create type mood as enum ('sad', 'ok', 'happy');
create domain posint as int check (value > 0);
create table types (
  id int primary key, b bool, i2 int2, i8 int8, n numeric, n2 numeric(10,3), r4 real,
  r8 double precision, m money, t text, vc varchar(20), c char(5), by bytea, d date, tm time,
  ttz timetz, ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, x xml,
  ip inet, net cidr, mac macaddr, mac8 macaddr8, bits bit(4), vb varbit(8), pt point, ln line,
  ls lseg, bx box, pth path, pg polygon, ci circle, tsv tsvector, tsq tsquery, arr int[],
  tarr text[], ir int4range, dr daterange, nr numrange, tr tstzrange, mr int4multirange,
  e mood, dom posint, ct citext, o oid, lsn pg_lsn);
insert into types values
 (1, true, -32768, 9223372036854775807, 'NaN', 1234567.125, 'Infinity', '-Infinity', 12.34,
  E'tab\there\nnewline \\N back\\slash \\\\ emoji 🦀 rtl שלום عربى', 'varchar', 'ab', '\x00ff5c0a09',
  '2024-02-29', '23:59:59.999999', '12:00+05:30', '1999-12-31 23:59:59', '2024-01-01 00:00:00+00',
  '1 year 2 mons -3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, "x\ty"]}',
  '{"k": {"n": null, "s": "q\"uote"}}', '<a b="c">d &amp; e</a>', '192.0.2.1/24', '2001:db8::/32',
  '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010', B'101', '(1.5,2)', '{1,2,3}', '[(0,0),(1,1)]',
  '(1,1),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),2>', 'a fat cat:3', 'fat & rat',
  '{1,NULL,3}', E'{"with space","tab\\there",NULL,"quote\\"d"}', '[1,10)', '[2024-01-01,2024-02-01)',
  '(1.5,2.5]', '[2024-01-01 00:00+00,)', '{[1,3), [5,7)}', 'happy', 7, 'MiXeD', 12345, '16/B374D848'),
 (2, null, null, null, '-Infinity', null, null, null, null, '\N', null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
insert into types (id, b, i2, i8, n, n2, r4, r8, m, t, vc, c, by, arr, tarr, ir, dr, nr, tr, mr, e, dom, ct, o, lsn)
  values (3, false, 0, 0, '0.000', 0, 'NaN', 'NaN', 0, repeat('big value ', 120000), '', '', '', '{}', '{}',
  'empty', 'empty', 'empty', 'empty', '{}', 'sad', 1, '', 0, '0/0');

-- The built-in columns of `types` again: this table moves as binary COPY (enums, domains and
-- extension types keep `types` in text).
create table builtin_types as select id, b, i2, i8, n, n2, r4, r8, m, t, vc, c, by, d, tm, ttz, ts,
  tstz, iv, u, j, jb, x, ip, net, mac, mac8, bits, vb, pt, ln, ls, bx, pth, pg, ci, tsv, tsq, arr, tarr,
  ir, dr, nr, tr, mr, o, lsn from types;
alter table builtin_types add primary key (id);
create table scores (id int primary key, points int4, small int2, big int8);
insert into scores select i, i * 37 - 5000, case when i % 5 = 0 then null else (i % 300)::int2 end,
  i::int8 * 1000000007 from generate_series(1, 200) i;

create schema "Sales";
create table "Sales"."Order" ("select" int primary key, "Group" text, "user" text);
insert into "Sales"."Order" values (1, 'A', 'x'), (2, null, E'line\nbreak');

create table log_lines (line text);
insert into log_lines values ('same'), ('same'), (null);

create table users (
  id bigint generated always as identity primary key,
  email text not null unique,
  email_domain text generated always as (split_part(email, '@', 2)) stored,
  full_name text,
  phone text,
  notes text,
  created date not null
);
insert into users (email, full_name, phone, notes, created)
  select 'Person' || i || '@corp.example', 'Person Number' || i, '+49 30 ' || (1000000 + i),
         'call +49 30 ' || (1000000 + i) || ' or mail person' || i || '@corp.example', date '2024-01-01' + i
    from generate_series(1, 300) i;
insert into users (email, full_name, phone, notes, created) values
  ('Twin@Corp.Example', 'Twin Upper', null, null, '2024-05-05'),
  ('twin@corp.example', 'Twin Lower', null, null, '2024-05-05');

create table orders (
  id serial primary key,
  user_id bigint not null references users (id),
  buyer_email text references users (email),
  amount numeric(10,2) not null check (amount >= 0),
  client_ip inet
);
insert into orders (user_id, buyer_email, amount, client_ip)
  select u.id, u.email, (i % 97) * 1.25, ('10.' || (i % 200) || '.1.' || (i % 250))::inet
    from generate_series(1, 900) i join users u on u.id = (i % 300) + 1;
select setval('orders_id_seq', 5000);
insert into orders (id, user_id, amount) values (6000, 1, 1);

create table events (id int, at date not null, email text, payload jsonb) partition by range (at);
create table events_2024 partition of events for values from ('2024-01-01') to ('2025-01-01');
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
insert into events select i, date '2024-06-01' + i, 'person' || (i % 300 + 1) || '@corp.example', '{"i": 1}'
  from generate_series(1, 400) i;

create materialized view order_totals as select user_id, sum(amount) as total from orders group by 1;

create function boom() returns trigger language plpgsql as $$ begin raise exception 'trigger fired'; end $$;
create trigger no_fire before insert on orders for each row execute function boom();
"#;

const MASKING: &str = r#"      columns:
        public.types.*: keep
        public.builtin_types.*: keep
        scores.id: keep
        scores.points: number_noise:20
        scores.small: number_noise:20
        scores.big: number_noise:20
        '"Sales"."Order".*': keep
        log_lines.line: keep
        users.id: keep
        users.created: keep
        orders.id: keep
        orders.user_id: keep
        orders.amount: number_noise:5
        events.id: keep
        events.at: keep
        events.payload: keep"#;

fn copy_text(pg: &PgCluster, db: &str, query: &str) -> String {
    String::from_utf8(pg.copy_out(db, &format!("copy ({query}) to stdout"))).unwrap()
}

#[test]
fn refresh_copies_exactly_masks_by_rule_and_swaps_atomically() {
    let env = Env::new(SCHEMA, MASKING);
    let dry = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("public.users"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("email                          email  domain email, unique"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.databases(), "staging", "a dry run creates nothing");

    let report = env.dir.path().join("report.json");
    let first = env.sluice(&[
        "refresh",
        "nightly",
        "--adopt",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("previous contents kept as `staging_prev`"),
        "{}",
        first.stdout
    );
    assert_eq!(env.databases(), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );

    // Kept columns are byte-identical, every type included.
    for q in [
        "select * from types order by id",
        "select * from builtin_types order by id",
        r#"select * from "Sales"."Order" order by 1"#,
        "select * from log_lines order by 1",
        "select id, at, payload from events order by id",
        "select id, user_id, client_ip is null from orders order by id",
    ] {
        assert_eq!(
            copy_text(&env.src, "app", q),
            copy_text(&env.dst, "staging", q),
            "{q}"
        );
    }
    // Partitions stayed partitions.
    assert_eq!(
        env.dst.psql("staging", "select count(*) from events_2024"),
        env.src.psql("app", "select count(*) from events_2024")
    );

    // Masked: no source e-mail or phone survives, uniqueness and keys hold.
    let d = &env.dst;
    let source_values = env.src.psql(
        "app",
        "select email from users union all select phone from users where phone is not null",
    );
    let target_text = copy_text(
        d,
        "staging",
        "select email, phone, notes, full_name from users",
    );
    for v in source_values.lines() {
        assert!(!target_text.contains(v), "source value {v} reached staging");
    }
    assert!(!target_text.contains("corp.example") && !target_text.contains("Person"));
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) from users where notes like 'call % or mail %@example.%'"
        ),
        "300"
    );
    assert_eq!(
        d.psql(
            "staging",
            "select count(distinct email) = count(*) from users"
        ),
        "t"
    );
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) from users where email_domain not like 'example.%'"
        ),
        "0",
        "generated column recomputed"
    );
    assert_eq!(d.psql("staging", "select count(*) from orders o join users u on u.id = o.user_id where o.buyer_email <> u.email"), "0", "same value, same mask, in every table");
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) from events e join users u on lower(u.email) = e.email"
        ),
        "400",
        "determinism across tables"
    );
    assert_eq!(
        d.psql("staging", "select count(*) from orders where amount < 0"),
        "0"
    );
    assert_ne!(
        copy_text(&env.src, "app", "select amount from orders order by id"),
        copy_text(d, "staging", "select amount from orders order by id")
    );
    // Post-data came after the rows: constraints, indexes and the trigger exist (it never fired).
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) from pg_trigger where tgname = 'no_fire'"
        ),
        "1"
    );
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) from pg_constraint where contype = 'f'"
        ),
        "2"
    );
    assert_eq!(
        d.psql("staging", "select count(*) > 0 from order_totals"),
        "t"
    );
    // Sequences continue past the copied rows.
    d.psql("staging", "drop trigger no_fire on orders");
    assert_eq!(
        d.psql(
            "staging",
            "insert into orders (user_id, amount) values (1, 1) returning id"
        ),
        "6001"
    );
    assert_eq!(
        d.psql(
            "staging",
            "insert into users (email, created) values ('n@example.com', now()) returning id > 302"
        ),
        "t"
    );

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let users = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.users")
        .unwrap();
    assert_eq!(users["rows"], 302);
    assert_eq!(users["masked_columns"], 4);
    // Same major version, UTF-8: built-in columns move as binary COPY, masked strings and
    // integers included; enums, domains, extension types and a masked numeric stay text.
    let formats = |json: &serde_json::Value| -> Vec<String> {
        let mut f: Vec<String> = json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{} {}",
                    t["table"].as_str().unwrap(),
                    t["format"].as_str().unwrap()
                )
            })
            .collect();
        f.sort();
        f
    };
    assert_eq!(
        formats(&json),
        [
            "\"Sales\".\"Order\" binary",
            "public.builtin_types binary",
            "public.events_2024 binary",
            "public.events_2025 binary",
            "public.log_lines binary",
            "public.orders text",
            "public.scores binary",
            "public.types text",
            "public.users binary",
        ]
    );
    let scores = "select id, points, small, big from scores order by id";
    assert_eq!(
        d.psql(
            "staging",
            "select count(*) filter (where small is null),
                    count(*) filter (where points <> id * 37 - 5000) > 150 from scores"
        ),
        "40|t",
        "integers masked in binary keep their NULLs and change"
    );

    // A second night: the same key gives the same values; the first copy becomes _prev.
    let masked = "select id, email, phone, notes from users where id <= 302 order by id";
    let emails = copy_text(d, "staging", masked);
    let scored = copy_text(d, "staging", scores);
    // The adopted original stays as `staging_prev` until dropped by hand (sluice never drops
    // it); once it is gone, the next night keeps the first copy there.
    d.psql("postgres", "drop database staging_prev");
    d.psql("staging", "create table touched (x int)");
    // The second night moves everything as text: every value comes out the same.
    let second = env.sluice_with(
        &[("SLUICE_COPY_FORMAT", "text")],
        &[
            "refresh",
            "nightly",
            "--adopt",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        formats(&json).iter().all(|f| f.ends_with(" text")),
        "{:?}",
        formats(&json)
    );
    assert!(
        emails == copy_text(d, "staging", masked),
        "two runs, same key, same values"
    );
    assert_eq!(
        scored,
        copy_text(d, "staging", scores),
        "binary and text mask alike"
    );
    assert_eq!(
        copy_text(&env.src, "app", "select * from builtin_types order by id"),
        copy_text(d, "staging", "select * from builtin_types order by id")
    );
    assert_eq!(
        d.psql(
            "staging_prev",
            "select count(*) from pg_tables where tablename = 'touched'"
        ),
        "1"
    );
    assert_eq!(env.databases(), "staging,staging_prev");
    // Nothing was ever written to the source.
    assert_eq!(env.src.psql("app", "select count(*) from users"), "302");
}

#[test]
fn a_hot_standby_is_a_source() {
    let env = Env::new(
        "create table accounts (id int primary key, email text not null, joined date);
         insert into accounts select i, 'member' || i || '@corp.example', date '2020-01-01' + i
           from generate_series(1, 1000) i;",
        "      columns:\n        accounts.id: keep\n        accounts.joined: date_shift:10",
    );
    let standby = PgCluster::standby_of(&env.src);
    assert_eq!(standby.psql("app", "select pg_is_in_recovery()"), "t");
    let mut vars = env.vars();
    vars[0].1 = url(&standby, "app");
    let set: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sluice_env(
        env.dir.path(),
        &set,
        &[],
        &["refresh", "nightly", "--adopt"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_sentinel(&run, env.dir.path());
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*), count(distinct email) from accounts where email like '%@example.%'"
        ),
        "1000|1000"
    );
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from accounts a where joined = date '2020-01-01' + id"
        ),
        "0",
        "every date moved"
    );
}

#[test]
fn an_unclassified_column_stops_the_refresh_before_anything_moves() {
    let env = Env::new(
        "create table people (id int primary key, email text, shoe_size int, \"Odd Name\" text);
         insert into people values (1, 'a@corp.example', 42, 'x');",
        "      columns:\n        people.id: keep",
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("2 column(s) are not classified"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("public.people.shoe_size: keep    # integer"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(r#"'public.people."Odd Name"': keep"#),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("people.email:"),
        "a preset classified it: {}",
        run.stderr
    );
    assert_eq!(env.databases(), "staging");
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");

    // classify PLAN proposes the missing decisions, ready to paste under the plan.
    let c = env.sluice(&["classify", "nightly"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stdout
            .starts_with("# paste under refresh.nightly.masking.columns:\n        public.people."),
        "{}",
        c.stdout
    );
    let squeeze = c.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeeze.contains("public.people.shoe_size: keep # integer: not personal by type"),
        "{}",
        c.stdout
    );
    assert!(
        squeeze.contains("public.people.email: email # name: e-mail address"),
        "{}",
        c.stdout
    );
    assert!(
        !c.stdout.contains("people.id:"),
        "already decided: {}",
        c.stdout
    );

    // A typo in a column key names the file position.
    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    write(
        env.dir.path(),
        "sluice.yaml",
        &yaml.replace("people.id: keep", "people.idd: keep"),
    );
    let run = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("sluice.yaml:19:9: `people.idd`: public.people has no column `idd`"),
        "{}",
        run.stderr
    );
}

pub(crate) const BIG: &str = "create table big (id int primary key, email text, note text);
  insert into big select i, 'user' || i || '@corp.example', repeat('n', 200) from generate_series(1, 400000) i;";
pub(crate) const BIG_MASKING: &str = "      columns:\n        big.id: keep\n        big.note: keep";

#[test]
fn a_killed_refresh_leaves_staging_untouched_and_the_next_run_cleans_up() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    assert_eq!(env.databases(), "staging,staging_sluice_new");

    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("removed `staging_sluice_new`"),
        "{}",
        run.stdout
    );
    assert_eq!(env.databases(), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        "400000"
    );
}

#[test]
fn a_large_table_copies_in_block_ranges_on_several_connections() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut vars = env.vars();
    vars.push(("SLUICE_SPLIT_MIN_BYTES", "4000000".into()));
    let set: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sluice_env(
        env.dir.path(),
        &set,
        &[],
        &["refresh", "nightly", "--adopt", "--jobs", "6"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("copied public.big [3/3]"),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*), count(distinct id), sum(id) from big"
        ),
        "400000|400000|80000200000"
    );
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from big where email like '%corp.example'"
        ),
        "0"
    );
}

#[test]
fn the_target_server_stopping_mid_load_leaves_staging_untouched() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    env.dst.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains(PASSWORD) && !stderr.contains(KEY));
    env.dst.restart();
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");

    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        "400000"
    );
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );
}

#[test]
fn connection_failures_exit_3_without_showing_the_url() {
    let env = Env::new(
        "create table t (id int primary key)",
        "      columns:\n        t.id: keep",
    );
    let mut vars = env.vars();
    vars[1].1 = format!("postgresql://postgres:{PASSWORD}@127.0.0.1:1/staging");
    let set: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sluice_env(
        env.dir.path(),
        &set,
        &[],
        &["refresh", "nightly", "--adopt"],
        None,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("connecting to the target server"),
        "{}",
        run.stderr
    );
    assert_no_sentinel(&run, env.dir.path());
    assert_eq!(env.databases(), "staging");
}

#[test]
fn a_masked_value_breaking_a_check_constraint_fails_before_staging_is_touched() {
    let env = Env::new(
        "create table members (id int primary key,
                               email text constraint corp_only check (email like '%@corp.example'));
         insert into members values (1, 'Private.Person@corp.example');",
        "      columns:\n        members.id: keep",
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("constraint corp_only"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[SQLSTATE 23514]"), "{}", run.stderr);
    // The failing row is not quoted: neither the source value nor its masked form.
    assert!(!run.stderr.contains("Private.Person"), "{}", run.stderr);
    assert!(!run.stderr.contains("@example."), "{}", run.stderr);
    assert_eq!(env.databases(), "staging");
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
}

#[test]
fn verify_passes_after_a_refresh_and_finds_a_planted_leak_and_a_broken_key() {
    let env = Env::new(
        "create table accounts (id int primary key, email text unique, balance numeric(10,2));
         create table logins (id int primary key, account_id int references accounts, ip inet);
         insert into accounts select i, 'holder' || i || '@corp.example', (i % 3) * 10.5 from generate_series(1, 200) i;
         insert into logins select i, i % 200 + 1, ('192.0.2.' || (i % 250))::inet from generate_series(1, 500) i;",
        "      columns:\n        accounts.id: keep\n        accounts.balance: number_noise:10\n        logins.id: keep\n        logins.account_id: keep\n        logins.ip: ip:16",
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ok = env.sluice(&["verify", "nightly"]);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("verified: no leak"), "{}", ok.stdout);
    assert!(ok.stdout.contains("public.accounts.email"), "{}", ok.stdout);
    // Zero balances stay zero under noise: a fixed point of the transform, not a leak.
    assert!(
        ok.stdout.contains("public.accounts.balance"),
        "{}",
        ok.stdout
    );

    // Plant one source value and one orphan in staging.
    let d = &env.dst;
    d.psql(
        "staging",
        "update accounts set email = 'holder7@corp.example' where id = 7",
    );
    d.psql(
        "staging",
        "alter table logins drop constraint logins_account_id_fkey",
    );
    d.psql(
        "staging",
        "update logins set account_id = 9999 where id = 1",
    );
    d.psql("staging", "alter table logins add constraint logins_account_id_fkey foreign key (account_id) references accounts not valid");
    let bad = env.sluice(&["verify", "nightly", "--json"]);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    let v: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    let email = v["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["column"] == "public.accounts.email")
        .unwrap();
    assert_eq!(email["found"], 1);
    let key = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "public.logins.logins_account_id_fkey")
        .unwrap();
    assert_eq!(key["orphans"], 1);
    assert!(!bad.stdout.contains("holder7"), "values are never printed");
}

#[test]
fn json_array_regex_and_template_columns_mask_inside_their_values() {
    let env = Env::new(
        r#"create table profiles (
             id int primary key,
             first text, last text, display text,
             meta jsonb, aliases text[], ref text);
           insert into profiles values
             (1, 'Ann', 'Lee', 'Ann Lee',
              '{"contact": {"email": "ann.lee@corp.example", "phone": "+49 30 5550101"}, "tier": 3}',
              '{ann@corp.example,"a.lee@corp.example",NULL}', 'case 2024-00917'),
             (2, 'Bo', null, 'Bo', '{"tier": 1}', '{}', null);"#,
        r#"      columns:
        profiles.id: keep
        profiles.display: { transform: template, template: "{first} {last}" }
        profiles.meta: { transform: json, paths: { "$.contact.email": email, "$.contact.phone": phone } }
        profiles.aliases: { transform: array, element: email }
        profiles.ref: { transform: regex, pattern: '(\d{4})-\d+', replace: '$1-XXXXX' }
        profiles.first: first_name
        profiles.last: last_name"#,
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let d = &env.dst;
    let row = |sql: &str| d.psql("staging", sql);
    assert_eq!(
        row("select display = first || ' ' || last from profiles where id = 1"),
        "t"
    );
    assert_eq!(
        row("select display is null from profiles where id = 2"),
        "t",
        "a NULL part makes the template NULL"
    );
    assert_eq!(row("select meta->>'tier' from profiles where id = 1"), "3");
    assert_eq!(
        row("select meta->'contact'->>'email' like '%@example.%' from profiles where id = 1"),
        "t"
    );
    assert_eq!(
        row(
            "select meta->'contact'->>'phone' like '+49 %' and meta->'contact'->>'phone' <> '+49 30 5550101' from profiles where id = 1"
        ),
        "t"
    );
    assert_eq!(
        row("select array_length(aliases, 1), aliases[3] is null from profiles where id = 1"),
        "3|t"
    );
    assert_eq!(
        row(
            "select bool_and(a like '%@example.%') from profiles, unnest(aliases[1:2]) a where id = 1"
        ),
        "t"
    );
    assert_eq!(
        row("select ref from profiles where id = 1"),
        "case 2024-XXXXX"
    );
    let all = copy_text(d, "staging", "select * from profiles");
    assert!(
        !all.contains("corp.example") && !all.contains("Ann") && !all.contains("Lee"),
        "{all}"
    );

    // A template naming a column the table does not have is a plan error with its position.
    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    write(
        env.dir.path(),
        "sluice.yaml",
        &yaml.replace("{first} {last}", "{first} {surname}"),
    );
    let bad = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("sluice.yaml:20:9: `profiles.display`: the template names `surname`"),
        "{}",
        bad.stderr
    );
}

pub(crate) const SHOP: &str = r#"
create schema "Shop";
create table "Shop".countries (code text primary key, name text);
create table "Shop".sessions (id int primary key, token text);
create table "Shop".customers (id int primary key, email text, region text,
  referred_by int references "Shop".customers, country text references "Shop".countries);
create table "Shop".addresses (id int primary key, customer_id int not null references "Shop".customers, city text);
alter table "Shop".customers add column default_address int
  references "Shop".addresses deferrable initially deferred;
create table "Shop".orders (id int primary key, customer_id int not null references "Shop".customers,
  ship_to int references "Shop".addresses, bill_to int references "Shop".addresses, placed date);
create table "Shop".order_items ("order" int references "Shop".orders, line int, sku text, primary key ("order", line));
create table "Shop".shipments (id int primary key, "order" int, line int,
  foreign key ("order", line) references "Shop".order_items);
create table "Shop".events (id int, at date, customer_id int references "Shop".customers, primary key (id, at))
  partition by range (at);
create table "Shop".events_a partition of "Shop".events for values from ('2024-01-01') to ('2024-07-01');
create table "Shop".events_b partition of "Shop".events for values from ('2024-07-01') to ('2025-01-01');
create table "Shop".tickets (id int primary key, customer_id int references "Shop".customers,
  order_id int references "Shop".orders, body text);
create table "Shop".legacy_notes (id int primary key, customer_id int, note text);

insert into "Shop".countries values ('DE', 'Germany'), ('FR', 'France'), ('US', 'United States'), ('XX', 'unused');
insert into "Shop".sessions select i, md5(i::text) from generate_series(1, 10) i;
insert into "Shop".customers (id, email, region, referred_by, country)
  select i, 'c' || i || '@shop.example', (array['DE', 'FR', 'US'])[i % 3 + 1],
         case when i > 3 then (i * 7) % (i - 1) + 1 end, (array['DE', 'FR', 'US'])[i % 3 + 1]
    from generate_series(1, 300) i;
insert into "Shop".addresses select i, (i - 1) % 300 + 1, 'city ' || i from generate_series(1, 450) i;
update "Shop".customers set default_address = id + 150 where id % 2 = 0;
insert into "Shop".orders select i, (i * 13) % 300 + 1, null, null, date '2024-01-01' + i % 300 from generate_series(1, 900) i;
update "Shop".orders o set ship_to = a.id, bill_to = (select min(id) from "Shop".addresses x where x.customer_id = o.customer_id)
  from "Shop".addresses a where a.customer_id = o.customer_id and a.id > 300;
insert into "Shop".order_items select o, l, 'sku-' || o || '-' || l from generate_series(1, 900) o, generate_series(1, 2) l;
insert into "Shop".shipments select o, o, 1 from generate_series(1, 900) o;
insert into "Shop".events select i, date '2024-01-01' + (i % 360), (i * 11) % 300 + 1 from generate_series(1, 1200) i;
insert into "Shop".tickets select i, case when i % 2 = 0 then (i * 5) % 300 + 1 end, case when i % 2 = 1 then (i * 3) % 900 + 1 end, 'ticket ' || i
  from generate_series(1, 600) i;
alter table "Shop".tickets add column contact_email text;
update "Shop".tickets t set contact_email = c.email from "Shop".customers c where c.id = t.customer_id;
insert into "Shop".legacy_notes select i, case when i % 5 = 0 then 9999 else (i * 17) % 300 + 1 end, 'note' from generate_series(1, 100) i;
alter table "Shop".legacy_notes add constraint legacy_notes_customer_fk foreign key (customer_id)
  references "Shop".customers not valid;
"#;

pub(crate) const SHOP_SUBSET: &str = r#"      unclassified: warn
    subset:
      roots:
        - { table: '"Shop".customers', where: "region = 'DE'", limit: 20 }
        - { table: '"Shop".customers', percent: 10 }
        - { table: '"Shop".legacy_notes', where: "id <= 20" }
      children: ['"Shop".orders', '"Shop".addresses', '"Shop".tickets(customer_id)', '"Shop".events', '"Shop".legacy_notes']
      always: ['"Shop".order_items', '"Shop".shipments']
      full: ['"Shop".countries']
      empty: ['"Shop".sessions']"#;

/// `select …` on both sides, as text.
fn both(env: &Env, sql: &str) -> (String, String) {
    (env.src.psql("app", sql), env.dst.psql("staging", sql))
}

#[test]
fn a_subset_is_referentially_complete_with_roots_children_and_whole_aggregates() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let explain = env.sluice(&["refresh", "nightly", "--explain"]);
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain.stdout.contains("\"Shop\".customers"),
        "{}",
        explain.stdout
    );
    assert!(explain.stdout.contains("root"), "{}", explain.stdout);
    assert!(
        explain
            .stdout
            .contains("orphans left out: 4 row(s) whose legacy_notes_customer_fk"),
        "{}",
        explain.stdout
    );
    assert!(
        explain.stdout.contains("bytes per row"),
        "{}",
        explain.stdout
    );
    assert_eq!(env.databases(), "staging", "--explain touches no target");

    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let d = |sql: &str| env.dst.psql("staging", sql);

    // Every foreign key holds (checked by query, NOT VALID ones too), and nothing is orphaned.
    let v = env.sluice(&["verify", "nightly", "--json"]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    let verdict: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert!(
        verdict["keys"].as_array().unwrap().len() >= 12,
        "{}",
        v.stdout
    );
    assert_eq!(
        d(r#"select count(*) from "Shop".legacy_notes where customer_id = 9999"#),
        "0"
    );

    // Roots are there: the first 20 DE customers and the keyed sample.
    let roots = env.src.psql("app", r#"select string_agg(id::text, ',' order by id) from (select id from "Shop".customers where region = 'DE' order by id limit 20) r"#);
    assert_eq!(
        d(&format!(
            r#"select count(*) from "Shop".customers where id in ({roots})"#
        )),
        "20"
    );
    let customers: usize = d(r#"select count(*) from "Shop".customers"#)
        .parse()
        .unwrap();
    assert!(
        customers > 40 && customers < 300,
        "{customers}: a slice, not everything"
    );

    // Children of the roots are complete: orders, addresses, events (partitioned), tickets by
    // customer only.
    for (table, col) in [
        ("orders", "customer_id"),
        ("addresses", "customer_id"),
        ("events", "customer_id"),
        ("tickets", "customer_id"),
    ] {
        let sql = format!(r#"select count(*) from "Shop".{table} where {col} in ({roots})"#);
        let (s, t) = both(&env, &sql);
        assert_eq!(s, t, "{table}: every child of a root");
    }
    let (s, t) = both(&env, r#"select count(*) from "Shop".events_b"#);
    assert!(
        t.parse::<u32>().unwrap() > 0 && t != s,
        "rows land in their partitions"
    );
    assert_eq!(
        d(r#"select count(*) from "Shop".tickets where customer_id is null"#),
        "0",
        "tickets of orders came along only by customer_id"
    );

    // Rows pulled in only as parents did not bring their children: an order's customer is
    // there, but a non-root, non-child customer brings no orders of its own.
    assert_eq!(
        d(
            r#"select count(*) from "Shop".orders o where not exists (select 1 from "Shop".customers c where c.id = o.customer_id)"#
        ),
        "0"
    );

    // Aggregates are whole: every included order has all its items, every item its shipment.
    let orders = d(r#"select string_agg(id::text, ',' order by id) from "Shop".orders"#);
    for sql in [
        format!(r#"select count(*) from "Shop".order_items where "order" in ({orders})"#),
        format!(r#"select count(*) from "Shop".shipments where "order" in ({orders})"#),
    ] {
        let (s, t) = both(&env, &sql);
        assert_eq!(s, t, "{sql}");
    }
    // Lookup table whole, unreached table empty.
    assert_eq!(d(r#"select count(*) from "Shop".countries"#), "4");
    assert_eq!(d(r#"select count(*) from "Shop".sessions"#), "0");

    // The same key gives the same rows the next night.
    let ids = |t: &str| {
        d(&format!(
            r#"select md5(string_agg(id::text, ',' order by id)) from "Shop".{t}"#
        ))
    };
    let before: Vec<String> = ["customers", "orders", "tickets", "addresses"]
        .iter()
        .map(|t| ids(t))
        .collect();
    let again = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let after: Vec<String> = ["customers", "orders", "tickets", "addresses"]
        .iter()
        .map(|t| ids(t))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn without_children_only_the_parent_closure_moves_and_unreached_tables_fail_closed() {
    let env = Env::new(
        SHOP,
        r#"      unclassified: warn
    subset:
      roots:
        - { table: '"Shop".customers', where: "region = 'DE'" }
      full: ['"Shop".countries']
      empty: ['"Shop".sessions', '"Shop".orders', '"Shop".order_items', '"Shop".shipments', '"Shop".events', '"Shop".tickets', '"Shop".legacy_notes']"#,
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let d = |sql: &str| env.dst.psql("staging", sql);
    assert_eq!(d(r#"select count(*) from "Shop".orders"#), "0");
    // Every customer is a root or the parent of an included row.
    assert_eq!(
        d(
            r#"select count(*) from "Shop".customers c where region <> 'DE'
               and not exists (select 1 from "Shop".customers x where x.referred_by = c.id)
               and not exists (select 1 from "Shop".addresses a where a.customer_id = c.id)"#
        ),
        "0"
    );
    // Every address is the default address of an included customer (nothing else needs one).
    assert_eq!(
        d(
            r#"select count(*) from "Shop".addresses a where not exists (select 1 from "Shop".customers c where c.default_address = a.id)"#
        ),
        "0"
    );
    let (s, t) = both(
        &env,
        r#"select count(*) from "Shop".customers where region = 'DE'"#,
    );
    assert_eq!(s, t, "every root");

    // A table no root reaches and nobody declared stops the run, with a snippet.
    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    write(
        env.dir.path(),
        "sluice.yaml",
        &yaml.replace(r#"'"Shop".sessions', "#, ""),
    );
    let bad = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("no root reaches 1 table(s)"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains(r#"full: ['"Shop".sessions']"#),
        "{}",
        bad.stderr
    );
}

#[test]
fn virtual_keys_follow_json_values_and_polymorphic_pairs() {
    let schema = format!(
        r#"{SHOP}
create table "Shop".audit (id int primary key, payload jsonb);
insert into "Shop".audit select i, jsonb_build_object('customer_id', (i * 7) % 300 + 1, 'what', 'login') from generate_series(1, 400) i;
create table "Shop".comments (id int primary key, subject_type text, subject_id int);
insert into "Shop".comments select i, case when i % 2 = 0 then 'order' else 'customer' end, (i * 5) % 300 + 1 from generate_series(1, 500) i;"#
    );
    let env = Env::new(
        &schema,
        r#"      unclassified: warn
    subset:
      roots:
        - { table: '"Shop".customers', where: "region = 'FR'", limit: 10 }
        - { table: '"Shop".events', percent: 90, method: tablesample }
      children: ['"Shop".orders', '"Shop".audit', '"Shop".comments']
      virtual_keys:
        - { from: '"Shop".audit(payload->>''customer_id'')', to: '"Shop".customers(id)' }
        - { from: '"Shop".comments(subject_id)', to: '"Shop".orders(id)', type_column: subject_type, type_value: order }
      full: ['"Shop".countries']
      empty: ['"Shop".sessions', '"Shop".order_items', '"Shop".shipments', '"Shop".tickets', '"Shop".legacy_notes']"#,
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let d = |sql: &str| env.dst.psql("staging", sql);
    let roots = env.src.psql("app", r#"select string_agg(id::text, ',' order by id) from (select id from "Shop".customers where region = 'FR' order by id limit 10) r"#);
    let (s, t) = both(
        &env,
        &format!(
            r#"select count(*) from "Shop".audit where (payload->>'customer_id')::int in ({roots})"#
        ),
    );
    assert_eq!(s, t, "audit rows whose JSON names a root customer");
    assert_ne!(t, "0");
    // Comments come only as children of included orders, and only those of type order.
    assert_eq!(
        d(r#"select count(*) from "Shop".comments where subject_type <> 'order'"#),
        "0"
    );
    let orders = d(r#"select string_agg(id::text, ',' order by id) from "Shop".orders"#);
    let (s, t) = both(
        &env,
        &format!(
            r#"select count(*) from "Shop".comments where subject_type = 'order' and subject_id in ({orders})"#
        ),
    );
    assert_eq!(s, t);
    // The sampled events brought their customers as parents.
    assert_eq!(
        d(
            r#"select count(*) from "Shop".events e where not exists (select 1 from "Shop".customers c where c.id = e.customer_id)"#
        ),
        "0"
    );
    assert_ne!(d(r#"select count(*) from "Shop".events"#), "0");
}

#[test]
fn a_small_memory_budget_spills_and_selects_the_same_rows() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let roomy = env.sluice(&["refresh", "nightly", "--explain"]);
    assert_eq!(roomy.code, 0, "{}", roomy.stderr);
    assert!(!roomy.stdout.contains("spilled"), "{}", roomy.stdout);
    let path = env.dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let tight = text.replace(
        "      empty: ['\"Shop\".sessions']",
        "      empty: ['\"Shop\".sessions']\n      memory: 2kB",
    );
    assert_ne!(tight, text);
    std::fs::write(&path, tight).unwrap();
    let spilled = env.sluice(&["refresh", "nightly", "--explain"]);
    assert_eq!(spilled.code, 0, "{}", spilled.stderr);
    assert!(spilled.stdout.contains("spilled"), "{}", spilled.stdout);
    let selection = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains("spilled"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(selection(&spilled.stdout), selection(&roomy.stdout));
    // And a real load under the budget is referentially complete.
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("spilled"), "{}", run.stdout);
    let verify = env.sluice(&["verify", "nightly", "--sample", "20"]);
    assert!(
        verify
            .stdout
            .lines()
            .filter(|l| l.starts_with("key"))
            .count()
            >= 5
            && !verify.stdout.contains("BROKEN"),
        "every foreign key holds: {}",
        verify.stdout
    );
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("memory: 2kB", "memory: plenty");
    std::fs::write(&path, bad).unwrap();
    let refused = env.sluice(&["refresh", "nightly", "--explain"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("subset.memory: `plenty` is not a size"),
        "{}",
        refused.stderr
    );
}
