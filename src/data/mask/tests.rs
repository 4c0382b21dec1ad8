//! Tests of the module above.

#[test]
fn weak_masking_keys_are_refused_and_never_quoted() {
    for weak in [
        "",
        "k",
        "short-key",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababababababab",
        "passwordpassword1234",
        "1234567890123456789012345678901234567",
        "0123456789abcdef0123",
    ] {
        let e = check_key(weak.as_bytes()).expect_err(weak);
        assert!(e.contains("openssl rand -base64 32"), "{e}");
        assert!(weak.len() < 4 || !e.contains(weak), "{e}");
    }
    for good in [
        "Sentinel-Masking-Key-c0ffee42",
        "q3Jx0m9V4bT2nW8kLp6sYz1fHc5rDg7u",
        "9f86d081884c7d659a2feaa0c55ad015",
        "o5Wb0m3GQv8t7JvK2n4Xk1yZpL6sRcHd9Ea2TfUiMw0=",
        "correct horse battery staple 42",
    ] {
        assert_eq!(check_key(good.as_bytes()), Ok(()), "{good}");
    }
    let raw: Vec<u8> = (0u8..16)
        .map(|i| i.wrapping_mul(37).wrapping_add(200))
        .collect();
    assert_eq!(check_key(&raw), Ok(()));
}

use super::*;
use crate::data::mask::key::check_key;

fn k() -> MaskKey {
    MaskKey::new(b"test-masking-key-0123456789abcdef")
}

fn m(t: &Transform, v: &str) -> String {
    t.apply(&k(), t.default_domain(), v).unwrap().unwrap()
}

#[test]
fn deterministic_and_keyed() {
    let t = Transform::Email;
    assert_eq!(
        m(&t, "Alice@Corp.example"),
        m(&t, "alice@corp.example"),
        "case-insensitive"
    );
    assert_ne!(m(&t, "alice@corp.example"), m(&t, "bob@corp.example"));
    let other = t
        .apply(&MaskKey::new(b"another key"), "email", "alice@corp.example")
        .unwrap()
        .unwrap();
    assert_ne!(other, m(&t, "alice@corp.example"));
    assert!(
        crate::data::mask::scrub::EMAIL.is_match(&m(&t, "not an email at all")),
        "malformed input still gives an e-mail"
    );
}

#[test]
fn iban_keeps_country_and_a_valid_checksum() {
    for input in [
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "NL91ABNA0417164300",
    ] {
        let out = m(&Transform::Iban, input);
        let compact: String = out.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(&compact[..2], &input[..2]);
        assert_eq!(iban_mod97(&compact), 1, "{out}");
        assert_ne!(compact, input.replace(' ', ""));
        assert_eq!(out.contains(' '), input.contains(' '));
    }
    assert!(Transform::Iban.apply(&k(), "iban", "12").is_err());
}

#[test]
fn cards_pass_luhn_keep_brand_shape_and_optionally_last4() {
    let input = "4111 1111 1111 1111";
    let out = m(&Transform::Card { keep_last4: false }, input);
    let digits: Vec<u8> = out.bytes().filter(u8::is_ascii_digit).collect();
    assert!(
        luhn_valid(&digits) && digits[0] == b'4' && out.len() == input.len(),
        "{out}"
    );
    assert_eq!(&out[4..5], " ");
    let kept = m(&Transform::Card { keep_last4: true }, "5500-0000-0000-0004");
    assert!(kept.ends_with("0004") && kept.starts_with('5'), "{kept}");
    assert!(luhn_valid(
        &kept.bytes().filter(u8::is_ascii_digit).collect::<Vec<_>>()
    ));
}

#[test]
fn phones_keep_shape_and_country_code() {
    let out = m(&Transform::Phone, "+49 (30) 1234-5678");
    assert!(
        out.starts_with("+49 (") && out.len() == "+49 (30) 1234-5678".len(),
        "{out}"
    );
    assert_ne!(out, "+49 (30) 1234-5678");
    assert!(m(&Transform::Phone, "030 1234567").starts_with('0'));
}

#[test]
fn dates_shift_within_range_and_stay_valid() {
    let t = Transform::DateShift {
        max_days: 30,
        within: None,
    };
    for input in ["2024-02-29", "1999-12-31 23:59:59+00", "2000-01-01"] {
        let out = m(&t, input);
        let (a, b) = (&input[..10], &out[..10]);
        let p = |s: &str| {
            let v: Vec<i64> = s.split('-').map(|x| x.parse().unwrap()).collect();
            days_from_civil(v[0], v[1], v[2])
        };
        let diff = (p(b) - p(a)).abs();
        assert!((1..=30).contains(&diff), "{input} -> {out}");
        assert_eq!(&out[10..], &input[10..]);
    }
    assert!(t.apply(&k(), "date", "2024-02-30").is_err());
    assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    // Within a CHECK range: every date near either end stays inside, deterministically.
    let (lo, hi) = (days_from_civil(1900, 1, 1), days_from_civil(1900, 3, 1));
    let bounded = Transform::DateShift {
        max_days: 3650,
        within: Some((lo, hi)),
    };
    for day in lo..=hi {
        let (y, mo, d) = civil_from_days(day);
        let input = format!("{y:04}-{mo:02}-{d:02}");
        let out = m(&bounded, &input);
        assert_eq!(out, m(&bounded, &input));
        let v: Vec<i64> = out.split('-').map(|x| x.parse().unwrap()).collect();
        assert!(
            (lo..=hi).contains(&days_from_civil(v[0], v[1], v[2])),
            "{input} -> {out}"
        );
    }
}

#[test]
fn numbers_keep_scale_and_stay_in_range() {
    let out = m(&Transform::NumberNoise { percent: 10.0 }, "1234.50");
    let v: f64 = out.parse().unwrap();
    assert!(
        (1111.05..=1357.95).contains(&v) && out.split('.').nth(1).unwrap().len() == 2,
        "{out}"
    );
    assert!(!m(&Transform::NumberNoise { percent: 5.0 }, "42").contains('.'));
}

#[test]
fn ips_uuids_hashes_redact() {
    let out = m(
        &Transform::Ip {
            keep_prefix_bits: 16,
        },
        "10.20.30.40",
    );
    assert!(
        out.starts_with("10.20.") && out.parse::<std::net::Ipv4Addr>().is_ok(),
        "{out}"
    );
    assert!(
        m(
            &Transform::Ip {
                keep_prefix_bits: 0
            },
            "2001:db8::1"
        )
        .parse::<std::net::Ipv6Addr>()
        .is_ok()
    );
    let u = m(&Transform::Uuid, "not-even-a-uuid");
    assert_eq!((u.len(), &u[14..15]), (36, "4"));
    assert_eq!(
        m(
            &Transform::Hash {
                len: 12,
                base64: false
            },
            "x"
        )
        .len(),
        12
    );
    assert_eq!(m(&Transform::Redact, "Ab-12 ü"), "xx-00 x");
    assert_eq!(Transform::Null.apply(&k(), "t", "x").unwrap(), None);
}

#[test]
fn names_and_places_come_from_fake_by_locale_and_ignore_case() {
    let first = Transform::Fake {
        kind: FakeKind::FirstName,
        locale: Locale::En,
    };
    assert_eq!(m(&first, "Alice"), m(&first, "  alice "));
    assert_ne!(m(&first, "Alice"), m(&first, "Bob"));
    let full = m(
        &Transform::Fake {
            kind: FakeKind::FullName,
            locale: Locale::En,
        },
        "Alice Example",
    );
    assert!(full.contains(' '), "{full}");
    let de = Transform::Fake {
        kind: FakeKind::LastName,
        locale: Locale::DeDe,
    };
    let names: std::collections::HashSet<String> =
        (0..200).map(|i| m(&de, &format!("person {i}"))).collect();
    assert!(names.len() > 50, "draws spread over the list");
    let de_list = <fake::locales::DE_DE as fake::locales::Data>::NAME_LAST_NAME;
    assert!(names.iter().all(|n| de_list.contains(&n.as_str())));
    for kind in [FakeKind::Street, FakeKind::City, FakeKind::Postcode] {
        let v = m(
            &Transform::Fake {
                kind,
                locale: Locale::FrFr,
            },
            "12 rue Exemple",
        );
        assert!(!v.is_empty() && v != "12 rue Exemple", "{kind:?}: {v}");
    }
}

#[test]
fn structured_values_mask_inside() {
    let json = Transform::Json {
        paths: vec![
            crate::data::mask::JsonPath {
                path: "$.contact.email".into(),
                steps: crate::data::mask::structured::parse_path("$.contact.email").unwrap(),
                transform: Transform::Email,
                domain: "email".into(),
            },
            crate::data::mask::JsonPath {
                path: "$.phones[*]".into(),
                steps: crate::data::mask::structured::parse_path("$.phones[*]").unwrap(),
                transform: Transform::Phone,
                domain: "phone".into(),
            },
        ],
    };
    let out = m(
        &json,
        r#"{"contact": {"email": "Ann@corp.example", "tier": 2}, "phones": ["+49 30 1234567"]}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["contact"]["email"],
        m(&Transform::Email, "ann@corp.example")
    );
    assert_eq!(v["contact"]["tier"], 2);
    assert_eq!(v["phones"][0], m(&Transform::Phone, "+49 30 1234567"));
    assert!(json.apply(&k(), "json", "not json").is_err());

    let arr = Transform::Array {
        element: Box::new(Transform::Email),
    };
    let out = m(&arr, r#"{a@corp.example,NULL,"b@corp.example"}"#);
    let items = crate::data::mask::structured::parse_array(&out).unwrap();
    assert_eq!(
        items[0].as_deref(),
        Some(m(&Transform::Email, "a@corp.example").as_str())
    );
    assert_eq!(items[1], None);

    let re = Transform::Regex {
        pattern: Pattern(Regex::new(r"(\d{4})-\d+").unwrap()),
        replace: "$1-XXXX".into(),
    };
    assert_eq!(
        m(&re, "ref 2024-991 and 2023-12"),
        "ref 2024-XXXX and 2023-XXXX"
    );

    let b64 = m(
        &Transform::Hash {
            len: 20,
            base64: true,
        },
        "x",
    );
    assert_eq!(b64.len(), 20);
    assert!(
        b64.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

#[test]
fn shape_keeps_separators_case_and_length() {
    let v = m(&Transform::Shape, "AB-123 456/x");
    assert_eq!(v.len(), 12);
    let kinds = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                c if c.is_ascii_digit() => '9',
                c if c.is_ascii_uppercase() => 'A',
                c if c.is_ascii_lowercase() => 'a',
                c => c,
            })
            .collect()
    };
    assert_eq!(kinds(&v), kinds("AB-123 456/x"));
    assert_ne!(v, "AB-123 456/x");
    assert_eq!(m(&Transform::Shape, "AB-123 456/x"), v);
}

#[test]
fn scrub_replaces_pii_in_free_text_consistently_with_columns() {
    let text = "Call +49 30 1234567 or mail Alice@Corp.example; card 4111-1111-1111-1111, IBAN DE89370400440532013000 from 192.168.10.20. Order 12345 stays.";
    let out = m(&Transform::Scrub(Default::default()), text);
    assert!(
        !out.contains("Alice@Corp.example")
            && out.contains(&m(&Transform::Email, "alice@corp.example")),
        "{out}"
    );
    assert!(
        !out.contains("4111-1111-1111-1111") && !out.contains("DE89370400440532013000"),
        "{out}"
    );
    assert!(
        !out.contains("192.168.10.20") && !out.contains("1234567"),
        "{out}"
    );
    assert!(out.contains("Order 12345 stays."), "{out}");
}
