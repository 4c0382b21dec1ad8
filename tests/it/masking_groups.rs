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
