//! `sluice refresh` on schemas shaped like real applications' (tests/fixtures/schemas/): the
//! masking plan is what `sluice classify` proposes, pasted verbatim; the copy's schema equals the
//! source's, every row arrives (or the subset's), `verify` passes, and the nightly second
//! refresh gives identical data.

use std::path::Path;

use crate::refresh::Env;
use crate::support::pg::PgCluster;
use crate::support::write;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/schemas/{name}.sql")),
    )
    .unwrap()
}

/// `pg_dump` of one part, without what differs by design (the restrict key, versions).
fn dump(pg: &PgCluster, db: &str, args: &[&str]) -> String {
    pg.pg_dump(db, args)
        .lines()
        .filter(|l| !l.starts_with("-- Dumped") && !l.starts_with("\\"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The target's data as sorted lines (row order is no promise).
fn sorted_data(pg: &PgCluster) -> Vec<String> {
    let mut lines: Vec<String> = dump(pg, "staging", &["--data-only", "--no-owner"])
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The nightly case: a second refresh of the same source gives the same data.
fn second_night_is_identical(env: &Env, name: &str) {
    let before = sorted_data(&env.dst);
    let second = env.sluice(&["refresh", "nightly"]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(
        before == sorted_data(&env.dst),
        "{name}: the second night differs"
    );
}

/// Rows of every table (leaf partitions included), as one text.
fn counts(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "select string_agg(format('%I.%I', n.nspname, c.relname) || '=' ||
             (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from only %I.%I', n.nspname, c.relname), false, true, '')))[1]::text,
             ', ' order by n.nspname, c.relname)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'",
    )
}

/// Proposals `classify` must make on the fixtures (credentials, user names, lookup tables,
/// derived copies), whitespace squeezed.
const EXPECTED: &[(&str, &str)] = &[
    (
        "rails_like",
        "public.users.encrypted_password: redact # name: credential; NOT NULL",
    ),
    (
        "rails_like",
        "public.users.otp_backup_codes: 'null' # name: credential",
    ),
    (
        "rails_like",
        "public.users.reset_password_token: 'null' # name: credential",
    ),
    (
        "rails_like",
        "public.personal_access_tokens.token_digest: 'null' # name: credential",
    ),
    (
        "rails_like",
        "public.users.username: hash:16 # name: user name",
    ),
    (
        "rails_like",
        "public.namespaces.path: hash:16 # values: 100% of 200 sampled values repeat masked person names",
    ),
    ("rails_like", "public.schema_migrations.version: keep"),
    (
        "pagila_like",
        "public.staff.password: 'null' # name: credential",
    ),
    ("pagila_like", "public.category.name: keep"),
    ("pagila_like", "public.language.name: keep"),
    ("pagila_like", "public.country.country: keep"),
    (
        "mixed_case",
        "\"\\\"CRM\\\".\\\"Customer\\\".\\\"Street\\nAddress\\\"\": street",
    ),
    (
        "mixed_case",
        "'public.\"AuditTrail\".\"Row\"': scrub # values:",
    ),
];

/// Load a fixture, paste `sluice classify`'s proposal under the plan's columns, and refresh.
fn classified(name: &str, extra: &str) -> Env {
    let env = Env::new(&fixture(name), extra);
    let proposal = env.sluice(&["classify", "nightly"]);
    assert_eq!(proposal.code, 0, "{}", proposal.stderr);
    assert!(
        proposal
            .stdout
            .starts_with("# paste under refresh.nightly.masking.columns:\n"),
        "{}",
        proposal.stdout
    );
    let squeeze = proposal
        .stdout
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (fixture, expected) in EXPECTED {
        if *fixture == name {
            assert!(
                squeeze.contains(expected),
                "{expected}\n{}",
                proposal.stdout
            );
        }
    }
    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    let key = "      key: 'secret:MASKING_KEY'\n";
    let pasted = yaml.replace(key, &format!("{key}      columns:\n{}", proposal.stdout));
    write(env.dir.path(), "sluice.yaml", &pasted);
    env
}

fn full_refresh_checks(name: &str) {
    let env = classified(name, "");
    let first = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(!first.stderr.contains("not classified"), "{}", first.stderr);
    let schema = ["--schema-only", "--no-owner", "--no-privileges"];
    assert_eq!(
        dump(&env.dst, "staging", &schema),
        dump(&env.src, "app", &schema),
        "{name}: the copy's schema differs from the source's"
    );
    assert_eq!(counts(&env.dst, "staging"), counts(&env.src, "app"));
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(!verify.stdout.contains("differs"), "{}", verify.stdout);

    second_night_is_identical(&env, name);
}

#[test]
fn pagila_like_refreshes_whole_with_the_classify_proposal() {
    full_refresh_checks("pagila_like");
}

#[test]
fn rails_like_refreshes_whole_with_the_classify_proposal() {
    full_refresh_checks("rails_like");
}

#[test]
fn mixed_case_refreshes_whole_with_the_classify_proposal() {
    full_refresh_checks("mixed_case");
}

/// A subset of a fixture: referentially complete (verify checks every key), no table holds
/// more rows than the source, the roots' table holds fewer, and a second night is identical.
fn subset_checks(name: &str, subset: &str, root_table: &str) {
    let env = classified(name, subset);
    let first = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("(a subset)"), "{}", verify.stdout);
    let parse = |s: String| -> Vec<(String, i64)> {
        s.split(", ")
            .map(|kv| {
                let (k, v) = kv.rsplit_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    };
    let (src, dst) = (
        parse(counts(&env.src, "app")),
        parse(counts(&env.dst, "staging")),
    );
    assert_eq!(src.len(), dst.len());
    for ((t, a), (u, b)) in src.iter().zip(&dst) {
        assert_eq!(t, u);
        assert!(b <= a, "{t}: {b} > {a}");
        if t == root_table {
            assert!(*b > 0 && b < a, "{t}: {b} of {a}");
        }
    }
    second_night_is_identical(&env, name);
}

#[test]
fn pagila_like_subset_follows_rentals_and_payments_into_partitions() {
    subset_checks(
        "pagila_like",
        "    subset:
      roots:
        - { table: customer, percent: 20 }
      children: [rental, payment]
      always: [payment_refund]
      full: [actor, category, film_actor, film_category]",
        "public.customer",
    );
}

#[test]
fn rails_like_subset_follows_every_key_two_levels_down() {
    subset_checks(
        "rails_like",
        "    subset:
      roots:
        - { table: users, percent: 10 }
      children: all
      depth: 2
      full: [application_settings, ar_internal_metadata, schema_migrations]
      empty: [audit_events]",
        "public.users",
    );
}

#[test]
fn mixed_case_subset_resolves_quoted_names() {
    subset_checks(
        "mixed_case",
        "    subset:
      roots:
        - { table: '\"CRM\".\"Customer\"', where: '\"Kunden-Nr.\" < ''K-1100''' }
      children: all
      full: ['public.\"AuditTrail\"']",
        "\"CRM\".\"Customer\"",
    );
}
