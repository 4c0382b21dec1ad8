//! Named consistency groups inside structured values, and `verify` that compares what the plan
//! masked: JSON path by path, arrays element by element, subsets by design.

use crate::refresh::Env;

const SCHEMA: &str = r#"
create table customers (id int primary key, email text not null unique, profile jsonb);
insert into customers
  select i, 'buyer' || i || '@shop.invalid',
         case when i % 4 = 0 then jsonb_build_object('tier', i % 3)
              else jsonb_build_object('email', 'buyer' || i || '@shop.invalid', 'tier', i % 3,
                                      'phones', jsonb_build_array('+49 30 ' || (2000000 + i))) end
    from generate_series(1, 200) i;
create table tickets (id int primary key, customer_id int references customers, cc text[], body text);
insert into tickets
  select i, i % 200 + 1, array['buyer' || (i % 200 + 1) || '@shop.invalid', null], 'ticket ' || i
    from generate_series(1, 400) i;
"#;

const MASKING: &str = r#"      presets: []
      columns:
        customers.id: keep
        customers.email: { transform: email, domain: customer_email }
        customers.profile:
          transform: json
          paths:
            "$.email": { transform: email, domain: customer_email }
            "$.phones[*]": phone
        tickets.id: keep
        tickets.customer_id: keep
        tickets.body: keep
        tickets.cc: { transform: array, element: { transform: email, domain: customer_email } }"#;

#[test]
fn a_named_domain_reaches_json_paths_and_array_elements_and_verify_compares_json_as_json() {
    let env = Env::new(SCHEMA, MASKING);
    let dry = env.sluice(&["refresh", "nightly", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    for line in [
        "email  domain customer_email, unique",
        "$.email                      email  domain customer_email",
        "$.phones[*]                  phone  domain phone",
        "array(email)  domain customer_email",
    ] {
        assert!(dry.stdout.contains(line), "{line}\n{}", dry.stdout);
    }
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // One e-mail, one masked form: the column, the JSON path and the array element agree.
    let differ = env.dst.psql(
        "staging",
        "select count(*) from customers where profile ? 'email' and profile->>'email' <> email",
    );
    assert_eq!(differ, "0");
    let with_path = env.dst.psql(
        "staging",
        "select count(*) from customers where profile ? 'email'",
    );
    assert_eq!(with_path, "150");
    let cc = env.dst.psql(
        "staging",
        "select count(*) from tickets t join customers c on c.id = t.customer_id
          where t.cc[1] = c.email and t.cc[2] is null",
    );
    assert_eq!(cc, "400");
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from customers where email like 'buyer%'"
        ),
        "0"
    );

    // A correct copy verifies, although a quarter of the documents lack `$.email`.
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("customers.profile $.email"),
        "{}",
        verify.stdout
    );
    assert!(!verify.stdout.contains("LEAK"), "{}", verify.stdout);

    // A real leak in one document's path is found, and only that path is blamed.
    env.dst.psql(
        "staging",
        "update customers set profile = jsonb_set(profile, '{email}', '\"buyer7@shop.invalid\"') where id = 7",
    );
    env.dst.psql(
        "staging",
        "update tickets set cc[1] = 'buyer12@shop.invalid' where id = 11",
    );
    let verify = env.sluice(&["verify", "nightly", "--json"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    let v: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let found = |column: &str| {
        v["leaks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["column"] == column)
            .unwrap_or_else(|| panic!("{column}: {v}"))["found"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(found("public.customers.profile $.email"), 1);
    assert_eq!(found("public.customers.profile $.phones[*]"), 0);
    assert_eq!(found("public.tickets.cc"), 1);
    assert_eq!(found("public.customers.email"), 0);
    assert!(
        !verify.stdout.contains("buyer7@"),
        "values are never printed"
    );
}

#[test]
fn verify_of_a_subset_does_not_call_rows_left_out_by_design_missing() {
    let masking = format!(
        "{MASKING}
    subset:
      roots:
        - {{ table: customers, where: \"id <= 20\" }}
      children: [tickets]"
    );
    let env = Env::new(SCHEMA, &masking);
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        env.dst.psql("staging", "select count(*) from customers"),
        "20"
    );
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        !verify.stdout.contains("rows are missing"),
        "{}",
        verify.stdout
    );
    assert!(verify.stdout.contains("(a subset)"), "{}", verify.stdout);
}

const PEOPLE: &str = r#"
create table customers (id int primary key, full_name text not null, street text, email text);
insert into customers
  select i, (array['Anna','Jonas','Maria','Lukas','Sofia','Elias'])[1 + i % 6] || ' ' ||
            (array['Becker','Fischer','Weber','Wagner','Schulz','Hoffmann','Koch'])[1 + i % 7],
         (10 + i) || ' ' || (array['Elm','Oak','Maple','Cedar'])[1 + i % 4] || ' Street',
         'person' || i || '@mail.invalid'
    from generate_series(1, 120) i;
create table invoices (id int primary key, customer_id int references customers, billing_street text);
insert into invoices select i, c.id, c.street from generate_series(1, 240) i join customers c on c.id = 1 + i % 120;
create table tickets (id int primary key, customer_id int references customers, body text);
insert into tickets
  select i, c.id, 'Customer ' || c.full_name || ' called from +49 30 ' || (4000000 + i) ||
         ', SSN 219-09-' || lpad((1000 + i)::text, 4, '0') || ', lives at ' || c.street || '. Order ORD-2024-' || i || '.'
    from generate_series(1, 300) i join customers c on c.id = 1 + i % 120;
"#;

#[test]
fn scrub_masks_the_runs_names_in_text_and_the_sweep_finds_values_left_elsewhere() {
    let masking = "      presets: []
      columns:
        customers.id: keep
        customers.full_name: full_name
        customers.street: street
        customers.email: email
        invoices.id: keep
        invoices.customer_id: keep
        invoices.billing_street: keep
        tickets.id: keep
        tickets.customer_id: keep
        tickets.body: scrub";
    let env = Env::new(PEOPLE, masking);
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("scrub looks for the 42 person name(s)"),
        "{}",
        run.stderr
    );
    // Every name, phone, SSN and street in the tickets is gone; a name reads as its column's.
    let q = "select string_agg(body, ' | ' order by id) from tickets";
    let (before, after) = (env.src.psql("app", q), env.dst.psql("staging", q));
    let names = env.src.psql(
        "app",
        "select string_agg(full_name || '|' || street, '|') from customers",
    );
    let mut source: Vec<String> = names.split('|').map(str::to_string).collect();
    source.extend((1..=300).map(|i| format!("+49 30 {}", 4_000_000 + i)));
    source.extend((1..=300).map(|i| format!("219-09-{}", 1000 + i)));
    for value in &source {
        assert!(before.contains(value.as_str()), "{value}");
        assert!(
            !after.contains(value.as_str()),
            "{value} survived the scrub"
        );
    }
    assert!(after.contains("Order ORD-2024-17."), "{after}");
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from tickets t join customers c on c.id = t.customer_id
              where position('Customer ' || c.full_name || ' called' in t.body) = 1"
        ),
        "300"
    );
    // The invoices kept the customers' streets: the sweep finds them, and says where only.
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .contains("public.invoices.billing_street           LEAK: "),
        "{}",
        verify.stdout
    );
    assert!(
        !verify.stdout.contains("sweep     public.tickets"),
        "{}",
        verify.stdout
    );
    assert!(
        !verify.stdout.contains("Street"),
        "values are never printed"
    );

    let yaml = std::fs::read_to_string(env.dir.path().join("sluice.yaml")).unwrap();
    crate::support::write(
        env.dir.path(),
        "sluice.yaml",
        &yaml.replace(
            "invoices.billing_street: keep",
            "invoices.billing_street: street",
        ),
    );
    let run = env.sluice(&["refresh", "nightly"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let verify = env.sluice(&["verify", "nightly"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("none found"), "{}", verify.stdout);
}

#[test]
fn a_signed_report_proves_each_columns_transform_and_a_changed_one_fails_verify() {
    let env = Env::new(SCHEMA, MASKING);
    let dir = env.dir.path();
    let key = dir.join("signing.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        dir.join("signing.pub").to_str().unwrap(),
    ]);
    let private = std::fs::read_to_string(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let yaml = std::fs::read_to_string(dir.join("sluice.yaml")).unwrap();
    crate::support::write(
        dir,
        "sluice.yaml",
        &yaml
            .replace(
                "  MASKING_KEY:\n",
                "  REPORT_KEY:\n    prod: env://REPORT_KEY\n  MASKING_KEY:\n",
            )
            .replace(
                "    jobs: 2\n",
                "    jobs: 2\n    signing: { key: 'secret:REPORT_KEY', public_key: signing.pub }\n",
            ),
    );
    let vars = [("PROD_REPORT_KEY", private.as_str())];
    let run = env.sluice_with(
        &vars,
        &["refresh", "nightly", "--adopt", "--report", "r.json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let text = std::fs::read_to_string(dir.join("r.json")).unwrap();
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !text.contains(&body) && !run.stderr.contains(&body),
        "the key leaked"
    );
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["signature"]["algorithm"], "ed25519");
    let customers = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.customers")
        .unwrap();
    assert_eq!(
        customers["columns"]["email"],
        "email (domain customer_email)"
    );
    assert_eq!(customers["columns"]["id"], "keep");

    let verify = env.sluice(&["verify", "nightly", "--report", "r.json"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .contains("report    r.json: signature valid (ed25519)"),
        "{}",
        verify.stdout
    );
    // Claiming a column was kept, after signing, breaks the signature.
    crate::support::write(
        dir,
        "r.json",
        &text.replace("\"email (domain customer_email)\"", "\"keep\""),
    );
    let verify = env.sluice(&["verify", "nightly", "--report", "r.json"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stderr
            .contains("signature INVALID: the signature does not match the report"),
        "{}",
        verify.stderr
    );
}

#[test]
fn classify_empties_a_search_vector_of_masked_text_and_leaves_keys_to_their_parents() {
    let schema = format!(
        "{PEOPLE}
         alter table tickets add column search tsvector not null default '';
         update tickets set search = to_tsvector('simple', body);
         create table tags (id int primary key, label text, search tsvector);
         insert into tags values (1, 'urgent', to_tsvector('simple', 'urgent'));"
    );
    let env = Env::new(&schema, "      columns:\n        customers.email: email");
    let run = env.sluice(&["classify", "nightly"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let squeeze = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        // The vector holds the words of the scrubbed notes: emptied (NOT NULL).
        "public.tickets.search: 'constant:' # full-text vector of masked columns: emptied",
        "public.tickets.body: scrub",
        // Nothing is masked beside this one.
        "public.tags.search: keep # tsvector: no masked column in its table; check",
        // A key column follows its parent's decision.
        "public.tickets.customer_id: keep # foreign key tickets_customer_id_fkey",
    ] {
        assert!(squeeze.contains(expected), "{expected}\n{}", run.stdout);
    }
}
