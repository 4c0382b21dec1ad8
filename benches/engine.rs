//! Engine throughput (MB/s) on a realistic buffer: this crate's own sources and dependency
//! sources from the cargo registry, repeated to 16 MiB, with a fake credential every 64 KiB.
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::scan::engine::Engine;
use sluice::scan::rules::RuleSet;
use sluice::scan::{ScanOptions, Scanner};

const SIZE: usize = 16 << 20;

fn collect(dir: &Path, out: &mut Vec<u8>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        if out.len() >= limit {
            return;
        }
        let p = e.path();
        if p.is_dir() {
            collect(&p, out, limit);
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "toml" || x == "md")
            && let Ok(b) = std::fs::read(&p)
        {
            out.extend_from_slice(&b);
        }
    }
}

fn corpus() -> Vec<u8> {
    let mut text = Vec::new();
    collect(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
        &mut text,
        SIZE,
    );
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
    {
        collect(&home.join("registry/src"), &mut text, SIZE);
    }
    assert!(
        !text.is_empty(),
        "no source text found for the benchmark corpus"
    );
    let mut buf = Vec::with_capacity(SIZE + 4096);
    let mut i = 0u64;
    while buf.len() < SIZE {
        let take = text.len().min(64 << 10);
        buf.extend_from_slice(&text[..take]);
        i += 1;
        let token = format!(
            "\nlet token = \"{}{:036}\";\n",
            ["gh", "p_"].concat(),
            i * 7919
        );
        buf.extend_from_slice(token.as_bytes());
        let shift = take.min(text.len() / 2).max(1);
        text.rotate_left(shift);
    }
    buf
}

fn bench(c: &mut Criterion) {
    let buf = corpus();
    let scanner = Scanner::new(
        Engine::new(RuleSet::builtin().expect("built-in rules")).expect("engine"),
        ScanOptions::default(),
    );
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.sample_size(10);
    g.bench_function("scan_buffer_16MiB_source", |b| {
        b.iter(|| scanner.scan_buffer("bench.rs", &buf).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
