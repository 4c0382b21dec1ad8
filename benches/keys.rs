//! Key-set memory and speed: 10 million row positions (packed ctids spread over a 200 GB
//! table) inserted into the roaring bitmap a subset keeps per table. Prints the bytes the set
//! takes; target: 10 M keys in at most 512 MB.
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use roaring::RoaringTreemap;
use sluice::data::subset::pack_ctid;

fn keys(c: &mut Criterion) {
    // 10 M rows on 26 M blocks of 8 KiB (200 GB), a few rows per touched block, spread by a
    // multiplicative hash so the set is sparse like a real subset.
    let mut positions: Vec<u64> = (0..10_000_000u64)
        .map(|i| {
            let block = (i.wrapping_mul(2_654_435_761) % 26_000_000) as u32;
            pack_ctid(block, (i % 7) as u16 + 1)
        })
        .collect();
    // Lookups return rows in physical order, so sets grow mostly in order.
    positions.sort_unstable();
    let mut set = RoaringTreemap::new();
    for &p in &positions {
        set.insert(p);
    }
    eprintln!(
        "10M keys: {} distinct, {} bytes ({:.2} bytes per key)",
        set.len(),
        set.serialized_size(),
        set.serialized_size() as f64 / set.len() as f64
    );
    c.bench_function("keys/insert_1M", |b| {
        b.iter(|| {
            let mut s = RoaringTreemap::new();
            for &p in &positions[..1_000_000] {
                s.insert(p);
            }
            s.len()
        })
    });
    c.bench_function("keys/contains_1M", |b| {
        b.iter(|| {
            positions[..1_000_000]
                .iter()
                .filter(|&&p| set.contains(p))
                .count()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = keys
}
criterion_main!(benches);
