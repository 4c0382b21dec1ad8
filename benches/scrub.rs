//! `scrub` on a labelled free-text corpus (benches/scrub_corpus.py): every snippet scrubbed with
//! the corpus's known names, the output written for benches/scrub_score.py (recall per kind,
//! decoy survival), and the time per snippet printed.
//!
//! ```sh
//! python3 benches/scrub_corpus.py --n 2400 --seed 1 --out /tmp/corpus.jsonl
//! cargo bench --bench scrub -- /tmp/corpus.jsonl /tmp/scrubbed.jsonl
//! python3 benches/scrub_score.py /tmp/corpus.jsonl /tmp/scrubbed.jsonl
//! ```
#![allow(missing_docs, reason = "a benchmark binary")]

use std::io::{BufRead, Write};

use sluice::data::mask::scrub::{KnownNames, NameKind, scrub_text};
use sluice::data::mask::{Locale, MaskKey};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [corpus, out] = args.as_slice() else {
        // `cargo test --all-targets` runs this without a corpus: check the wiring on a few
        // snippets instead, and say how to measure.
        smoke();
        println!(
            "scrub: smoke check passed; measure with: cargo bench --bench scrub -- CORPUS.jsonl OUT.jsonl"
        );
        return;
    };
    let file = std::fs::File::open(corpus).expect("open the corpus");
    let mut lines = std::io::BufReader::new(file).lines();
    let header: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a header").expect("read")).expect("JSON");
    let people: Vec<String> = header["known_names"]
        .as_array()
        .expect("known_names")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    // The names a run masks in its full-name column.
    let names = KnownNames::new(
        people
            .iter()
            .map(|p| (p.as_str(), NameKind::Full, Locale::En, "full_name")),
    );
    let texts: Vec<String> = lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.expect("read")).expect("JSON");
            v["text"].as_str().expect("text").to_string()
        })
        .collect();
    let key = MaskKey::new(b"benchmark masking key, 32 bytes!");
    let started = std::time::Instant::now();
    let rounds = 20;
    let mut scrubbed = Vec::new();
    for _ in 0..rounds {
        scrubbed = texts
            .iter()
            .map(|t| scrub_text(&key, t, Some(&names)))
            .collect();
    }
    let per = started.elapsed() / (rounds * texts.len() as u32);
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("create the output"));
    for s in &scrubbed {
        writeln!(w, "{}", serde_json::json!({ "text": s })).expect("write");
    }
    println!(
        "scrub: {} snippets ({} known names), {:.1} µs per snippet, {:.1} MB/s",
        texts.len(),
        names.len(),
        per.as_secs_f64() * 1e6,
        bytes as f64 / (per.as_secs_f64() * texts.len() as f64) / 1e6
    );
}

/// A few snippets whose personal data must all be gone after scrubbing.
fn smoke() {
    let key = MaskKey::new(b"benchmark masking key, 32 bytes!");
    let names = KnownNames::new([("Jonas Becker", NameKind::Full, Locale::DeDe, "full_name")]);
    for (text, pii) in [
        (
            "Jonas Becker rief an: 0157-12345678, IBAN DE89 3704 0044 0532 0130 00.",
            &["Jonas Becker", "0157-12345678", "DE89 3704"][..],
        ),
        (
            "Ship to 221B Baker Street, SSN 219-09-9999, from 2001:db8::1.",
            &["Baker Street", "219-09-9999", "2001:db8::1"][..],
        ),
    ] {
        let out = scrub_text(&key, text, Some(&names));
        for p in pii {
            assert!(!out.contains(p), "{p} survived: {out}");
        }
    }
}
