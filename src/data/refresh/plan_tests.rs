//! Tests of the module above.

use super::*;
use crate::config::refresh::{Endpoint, Masking};
use crate::data::pg::catalog::split_path;
use crate::data::pg::catalog::{Column, ForeignKey};

fn qn(s: &str) -> QualifiedName {
    parse_table(s).unwrap()
}

fn table(name: &str, cols: &[&str]) -> Table {
    Table {
        name: qn(name),
        kind: TableKind::Ordinary,
        partition_of: None,
        columns: cols
            .iter()
            .map(|c| Column {
                name: c.trim_end_matches('!').to_string(),
                type_name: "text".into(),
                not_null: false,
                generated: c.ends_with('!'),
                identity: None,
                wire: Default::default(),
                checks: Vec::new(),
            })
            .collect(),
        primary_key: vec![cols[0].to_string()],
        unique_keys: vec![],
        foreign_keys: vec![],
        triggers: vec![],
        estimated_rows: 10,
        bytes: 8192,
    }
}

fn plan(columns: &[(&str, &str)], unclassified: Unclassified) -> RefreshPlan {
    RefreshPlan {
        source: Endpoint {
            env: None,
            url: "postgres://s".into(),
        },
        target: Endpoint {
            env: None,
            url: "postgres://t".into(),
        },
        tables: vec![],
        jobs: None,
        subset: None,
        masking: Masking {
            key: "secret:K".into(),
            presets: vec!["builtin:pii".into()],
            columns: columns
                .iter()
                .map(|(k, v)| (k.to_string(), ColumnRule::Short(v.to_string())))
                .collect(),
            unclassified,
        },
        positions: BTreeMap::new(),
        same_server: false,
        grants: false,
        signing: None,
    }
}

fn catalog() -> Catalog {
    let mut cat = Catalog::default();
    let mut users = table("users", &["id", "email", "mood", "search!"]);
    users.unique_keys.push(vec!["email".into()]);
    let mut orders = table("orders", &["id", "user_id", "buyer_email", "total"]);
    orders.foreign_keys.push(ForeignKey {
        name: "orders_buyer_fk".into(),
        columns: vec!["buyer_email".into()],
        references: qn("users"),
        referenced_columns: vec!["email".into()],
        deferrable: false,
        validated: true,
    });
    for t in [users, orders] {
        cat.tables.insert(t.name.clone(), t);
    }
    cat
}

fn build_with(columns: &[(&str, &str)], u: Unclassified) -> Result<Plan, Error> {
    let presets = vec![Presets::builtin().unwrap()];
    build(
        "nightly",
        &plan(columns, u),
        "sluice.yaml",
        &presets,
        &catalog(),
    )
}

fn message(e: Error) -> String {
    match e {
        Error::Invalid { problems } => problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn paths_parse_with_quotes_and_case_folding() {
    assert_eq!(split_path("Public.Users").unwrap(), ["public", "users"]);
    assert_eq!(
        split_path(r#""My Schema"."Odd.""Name""".col"#).unwrap(),
        ["My Schema", "Odd.\"Name\"", "col"]
    );
    assert!(split_path("a..b").is_err());
    assert!(split_path(r#""open"#).is_err());
    assert_eq!(
        parse_column_key("users.email").unwrap().0,
        qn("public.users")
    );
    assert_eq!(parse_column_key("app.users.*").unwrap().1, None);
    assert!(parse_column_key("email").is_err());
}

#[test]
fn unclassified_columns_stop_the_plan_with_a_snippet() {
    let e = message(build_with(&[], Unclassified::Fail).unwrap_err());
    assert!(e.contains("public.users.mood: keep"), "{e}");
    assert!(e.contains("public.orders.total: keep"), "{e}");
    // Primary keys are not PII by name; they still need a decision.
    assert!(e.contains("public.users.id: keep"), "{e}");
    // Presets and FK inheritance classify the rest; generated columns are not copied.
    assert!(!e.contains("users.email"), "{e}");
    assert!(!e.contains("buyer_email"), "{e}");
    assert!(!e.contains("search"), "{e}");
}

#[test]
fn warn_copies_unclassified_columns_and_lists_them() {
    let p = build_with(&[], Unclassified::Warn).unwrap();
    assert!(p.unclassified.contains(&(qn("users"), "mood".into())));
    let users = p.tables.iter().find(|t| t.name == qn("users")).unwrap();
    let names: Vec<&str> = users.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email", "mood"]);
    let email = &users.columns[1];
    assert_eq!(email.transform, Some(Transform::Email));
    assert!(
        email.unique,
        "a unique index makes the masked column unique"
    );
}

#[test]
fn foreign_keys_inherit_the_parent_transform() {
    let p = build_with(
        &[
            ("users.email", "hash:20"),
            ("users.*", "keep"),
            ("orders.*", "keep"),
        ],
        Unclassified::Fail,
    )
    .unwrap();
    let orders = p.tables.iter().find(|t| t.name == qn("orders")).unwrap();
    // The column's foreign key wins over the table's `*`.
    assert_eq!(
        orders.columns[2].transform,
        Some(Transform::Hash {
            len: 20,
            base64: false
        })
    );
    assert_eq!(orders.columns[3].transform, None);
    let e = message(
        build_with(
            &[
                ("users.email", "hash:20"),
                ("users.*", "keep"),
                ("orders.*", "keep"),
                ("orders.buyer_email", "email"),
            ],
            Unclassified::Fail,
        )
        .unwrap_err(),
    );
    assert!(e.contains("mask both alike"), "{e}");
}

#[test]
fn unique_columns_reject_transforms_that_collide() {
    let e = message(build_with(&[("users.email", "redact")], Unclassified::Warn).unwrap_err());
    assert!(e.contains("public.users.email: masked by redact"), "{e}");
}

#[test]
fn transforms_must_fit_the_column_type() {
    assert!(fits_type("integer", &Transform::Email).is_err());
    assert!(fits_type("integer", &Transform::NumberNoise { percent: 5.0 }).is_ok());
    assert!(
        fits_type(
            "timestamp with time zone",
            &Transform::DateShift {
                max_days: 3,
                within: None
            }
        )
        .is_ok()
    );
    assert!(
        fits_type(
            "uuid",
            &Transform::Hash {
                len: 32,
                base64: false
            }
        )
        .is_err()
    );
    assert!(fits_type("text[]", &Transform::Email).is_err());
    assert!(fits_type("jsonb", &Transform::Scrub(Default::default())).is_ok());
    assert!(
        fits_type("mood", &Transform::Email).is_ok(),
        "unknown types are left to the load"
    );
    assert_eq!(max_len("character varying(20)"), Some(20));
    assert_eq!(max_len("character(5)"), Some(5));
    assert_eq!(max_len("text"), None);
    // Too short for the transform's values: refused at plan time, naming the lengths.
    let e = fits_type("character varying(5)", &Transform::Email).unwrap_err();
    assert!(e.contains("at least 13") && e.contains("holds 5"), "{e}");
    assert!(fits_type("character varying(13)", &Transform::Email).is_ok());
    assert!(fits_type("character(20)", &Transform::Uuid).is_err());
    assert!(fits_type("character varying(4)", &Transform::Constant("n/a!x".into())).is_err());
    assert!(fits_type("character varying(5)", &Transform::Redact).is_ok());
    let mut cat = catalog();
    if let Some(t) = cat.tables.get_mut(&qn("orders")) {
        t.columns[3].type_name = "numeric(10,2)".into();
    }
    let presets = vec![Presets::builtin().unwrap()];
    let cfg = plan(&[("orders.total", "email")], Unclassified::Warn);
    let e = message(build("nightly", &cfg, "sluice.yaml", &presets, &cat).unwrap_err());
    assert!(
        e.contains("public.orders.total (numeric(10,2)): email"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_reported() {
    let e = message(
        build_with(
            &[
                ("users.mail", "email"),
                ("userz.email", "email"),
                ("email", "x"),
            ],
            Unclassified::Warn,
        )
        .unwrap_err(),
    );
    assert!(e.contains("has no column `mail`"), "{e}");
    assert!(e.contains("no table public.userz"), "{e}");
    assert!(e.contains("write `schema.table.column`"), "{e}");
}

#[test]
fn date_bounds_read_checks_as_postgresql_prints_them() {
    use crate::data::mask::days_from_civil;
    let day = |y, m, d| days_from_civil(y, m, d);
    // `CHECK (dob BETWEEN '1900-01-01' AND '2010-12-31')` reads back like this.
    let between =
        "CHECK (((dob >= '1900-01-01'::date) AND (dob <= '2010-12-31'::date)))".to_string();
    assert_eq!(
        date_bounds("dob", "date", std::slice::from_ref(&between)),
        (Some((day(1900, 1, 1), day(2010, 12, 31))), vec![])
    );
    // Strict bounds, a quoted name, two checks combined, a timestamp's day of slack.
    let checks = vec![
        r#"CHECK (("Born On" > '2000-01-01'::date))"#.to_string(),
        r#"CHECK (("Born On" < '2001-01-01'::date))"#.to_string(),
    ];
    assert_eq!(
        date_bounds("Born On", "date", &checks),
        (Some((day(2000, 1, 2), day(2000, 12, 31))), vec![])
    );
    let ts = "CHECK ((at >= '2020-01-01 00:00:00'::timestamp without time zone))".to_string();
    assert_eq!(
        date_bounds(
            "at",
            "timestamp without time zone",
            std::slice::from_ref(&ts)
        ),
        (Some((day(2020, 1, 2), i64::MAX)), vec![])
    );
    // What is more than a range is reported, never guessed.
    for other in [
        "CHECK ((dob <= CURRENT_DATE))",
        "CHECK (((dob >= '1900-01-01'::date) OR (dob IS NULL)))",
        "CHECK ((date_part('dow'::text, dob) <> (0)::double precision))",
    ] {
        let (_, unread) = date_bounds("dob", "date", &[other.to_string()]);
        assert_eq!(unread, vec![other.to_string()], "{other}");
    }
}
