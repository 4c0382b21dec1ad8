//! A bucketed shift-or filter over many ASCII case-insensitive keywords (after Hyperscan's
//! FDR): it tells where a keyword may END, never missing one, so the exact automaton only runs
//! near those places.
//!
//! Keywords are put into 16 buckets. The state is 128 bits: 8 positions × 16 buckets. Each input
//! position contributes a "super-character" (its case-folded byte and the low nibble of the byte
//! before, 12 bits: a 64 KiB table of 128-bit masks); its reach mask has bucket `b`'s bit at
//! position `j` clear when some keyword of bucket `b`, aligned to end at position 7, allows that
//! super-character at `j`
//! (or is shorter than `8 - j`: nothing to check there). After `state = state << 16 | reach[sc]`,
//! a clear bit in the top 16 bits means every checked byte of some keyword of that bucket matched
//! the input ending here. Only the last 8 bytes of a longer keyword are checked. Each step is a
//! table load that does not depend on the state, a shift and an or: no dependent load chain as
//! in a DFA walk.

/// Positions (bytes) the state spans.
const WIDTH: usize = 8;
/// Buckets (bits per position); hundreds of keywords in 8 buckets left a bucket matching almost
/// everywhere.
const BUCKETS: usize = 16;

/// The filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    reach: Box<[u128; ENTRIES]>,
    /// The longest keyword, in bytes.
    max_len: usize,
}

fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// A position's super-character: its byte and the low nibble of the byte before. Case folding
/// only flips 0x20, so the nibble is the same for either case, and the table below is indexed by
/// raw bytes: `pair & 0xFFF` of the last two.
fn super_char(prev: u8, cur: u8) -> usize {
    ((prev as usize & 0xF) << 8) | cur as usize
}

/// Entries in the reach table (64 KiB).
const ENTRIES: usize = 1 << 12;

impl Filter {
    /// Build the filter for `keywords` (matched ASCII case-insensitively). `None` when a
    /// keyword is empty.
    pub(crate) fn new(keywords: &[String]) -> Option<Filter> {
        if keywords.iter().any(String::is_empty) {
            return None;
        }
        // Buckets: keywords sorted by their checked length and last bytes, cut into sixteen runs,
        // so a bucket's keywords have like lengths (short keywords leave positions unchecked
        // for their whole bucket) and like endings.
        let mut order: Vec<Vec<u8>> = keywords
            .iter()
            .map(|k| k.bytes().map(fold).collect())
            .collect();
        order.sort_by(|a, b| {
            let (la, lb) = (a.len().min(WIDTH), b.len().min(WIDTH));
            la.cmp(&lb).then_with(|| a.iter().rev().cmp(b.iter().rev()))
        });
        order.dedup();
        let per = order.len().div_ceil(BUCKETS).max(1);
        let mut reach = vec![u128::MAX; ENTRIES];
        // Positions before a keyword's first checked byte: nothing to check there, for any
        // input (cleared in every entry at the end).
        let mut anything = 0u128;
        for (i, k) in order.iter().enumerate() {
            let bucket = i / per;
            let tail = &k[k.len().saturating_sub(WIDTH)..];
            let m = tail.len();
            for j in 0..WIDTH - m {
                anything |= 1u128 << (j * BUCKETS + bucket);
            }
            for (t, &c) in tail.iter().enumerate() {
                let j = WIDTH - m + t;
                let bit = !(1u128 << (j * BUCKETS + bucket));
                // The byte before: known inside the keyword, anything before it.
                let prevs: Vec<u8> = if t > 0 {
                    vec![tail[t - 1]]
                } else if k.len() > m {
                    vec![k[k.len() - m - 1]]
                } else {
                    (0..16).collect()
                };
                for p in prevs {
                    reach[super_char(p, c)] &= bit;
                }
            }
        }
        for r in reach.iter_mut() {
            *r &= !anything;
        }
        // Indexed by raw bytes, so the scan does no folding: each raw byte reads the entry of
        // its folded byte.
        let mut raw = Box::new([u128::MAX; ENTRIES]);
        for (i, r) in raw.iter_mut().enumerate() {
            *r = reach[super_char((i >> 8) as u8, fold(i as u8))];
        }
        Some(Filter {
            reach: raw,
            max_len: keywords.iter().map(String::len).max().unwrap_or(0),
        })
    }

    /// Byte ranges of `buf` that may hold keywords: every keyword occurrence lies inside one.
    /// Ranges are ascending and do not overlap.
    pub(crate) fn candidates(&self, buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        // Before the buffer everything counts as matched: a short keyword at its very start
        // must not depend on bytes that are not there (a few spurious candidates, never a miss).
        let mut state = 0u128;
        let reach: &[u128; ENTRIES] = &self.reach;
        // The last two bytes, as the table's index (the older one shifts out).
        let mut pair = 0u16;
        for (i, &b) in buf.iter().enumerate() {
            pair = (pair << 8) | b as u16;
            state = (state << BUCKETS) | reach[pair as usize & (ENTRIES - 1)];
            if state >> (128 - BUCKETS) != (1 << BUCKETS) - 1 {
                let lo = (i + 1).saturating_sub(self.max_len);
                let hi = i + 1;
                match out.last_mut() {
                    Some(last) if lo <= last.1 => last.1 = hi,
                    _ => out.push((lo, hi)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(ranges: &[(usize, usize)], start: usize, end: usize) -> bool {
        ranges.iter().any(|&(lo, hi)| lo <= start && end <= hi)
    }

    #[test]
    fn never_misses_a_keyword_in_any_case() {
        let keywords: Vec<String> = [
            "ghp_",
            "akia",
            "token",
            "password",
            "sk_live_",
            "xoxb-",
            "eyj",
            "cf-",
            "a3-",
            "begin openssh private key",
            "hooks.slack.com",
            "--api-key",
            "1//0",
            "8q~",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = Filter::new(&keywords).unwrap();
        // A pseudo-random text with keywords planted in random cases.
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut buf = b"Eyj".to_vec();
        let mut planted = vec![(0, 3)];
        for _ in 0..3000 {
            for _ in 0..(next() % 40) {
                buf.push(b" etaoinshrdlucmfwypvbgkqjxz_-.~/0123456789\n"[(next() % 43) as usize]);
            }
            let k = &keywords[(next() % keywords.len() as u64) as usize];
            let start = buf.len();
            for ch in k.bytes() {
                buf.push(if next() % 2 == 0 {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                });
            }
            planted.push((start, buf.len()));
        }
        let ranges = f.candidates(&buf);
        for &(s, e) in &planted {
            assert!(covered(&ranges, s, e), "missed {:?}", &buf[s..e]);
        }
        // And it filters: most of the text is outside every range.
        let inside: usize = ranges.iter().map(|(lo, hi)| hi - lo).sum();
        assert!(inside < buf.len(), "{inside} of {}", buf.len());
    }

    #[test]
    fn quiet_text_has_few_candidates() {
        let keywords: Vec<String> = ["ghp_", "xoxb-", "sk_live_", "akia"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = Filter::new(&keywords).unwrap();
        let text = "fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }\n".repeat(200);
        assert!(f.candidates(text.as_bytes()).is_empty());
        assert!(Filter::new(&[String::new()]).is_none());
    }
}
