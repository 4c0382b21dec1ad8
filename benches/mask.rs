//! Nanoseconds per masked value for the transforms every refresh leans on: keyed hash, e-mail,
//! names from `fake`, numbers with noise. Target: ≤ 300 ns per value for hash, email and name.
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::data::mask::{FakeKind, Locale, MaskKey, Transform};

fn transforms(c: &mut Criterion) {
    let key = MaskKey::new(b"benchmark masking key");
    let inputs: Vec<String> = (0..1024)
        .map(|i| format!("Person{i}.Example@corp.example"))
        .collect();
    let cases = [
        (
            "hash",
            Transform::Hash {
                len: 32,
                base64: false,
            },
        ),
        ("email", Transform::Email),
        (
            "first_name",
            Transform::Fake {
                kind: FakeKind::FirstName,
                locale: Locale::En,
            },
        ),
        (
            "full_name",
            Transform::Fake {
                kind: FakeKind::FullName,
                locale: Locale::En,
            },
        ),
        ("number_noise", Transform::NumberNoise { percent: 10.0 }),
    ];
    let mut group = c.benchmark_group("mask");
    for (name, t) in &cases {
        let domain = t.default_domain();
        let numeric: Vec<String> = (1..=1024).map(|i| format!("{}.25", i * 37)).collect();
        let values = if *name == "number_noise" {
            &numeric
        } else {
            &inputs
        };
        let mut i = 0;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % values.len();
                t.apply(&key, domain, &values[i])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, transforms);
criterion_main!(benches);
