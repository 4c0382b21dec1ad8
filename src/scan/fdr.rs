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
    /// The same table in SSE2 registers' type.
    #[cfg(target_arch = "x86_64")]
    wide: Box<[std::arch::x86_64::__m128i; ENTRIES]>,
    /// Per bucket, its longest keyword in bytes: how far back from a hit's end a keyword of
    /// that bucket can start.
    bucket_len: [usize; BUCKETS],
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

/// Bucket of each keyword of `order` (sorted by checked length). A bucket holds keywords of one
/// checked length: its shortest keyword leaves the positions before it unchecked for all of
/// them, so a 2-byte keyword among 4-byte ones would make the whole bucket a 2-byte test.
/// Short keywords alias more (fewer positions to tell them apart), so their buckets are kept
/// small; the capacities grow together from small until every keyword fits in the buckets.
fn assign_buckets(order: &[Vec<u8>]) -> Vec<usize> {
    let cap = |len: usize| match len {
        0..=2 => 4,
        3 => 24,
        4 => 40,
        5 => 60,
        6 => 80,
        7 => 100,
        _ => 120,
    };
    let mut scale = 0.1f64;
    loop {
        let mut out = Vec::with_capacity(order.len());
        let (mut bucket, mut used, mut len) = (0usize, 0usize, 0usize);
        for k in order {
            let l = k.len().min(WIDTH);
            if used > 0 && (l != len || used as f64 >= cap(l) as f64 * scale) {
                bucket += 1;
                used = 0;
            }
            len = l;
            used += 1;
            out.push(bucket);
        }
        // More lengths than buckets: cut by count alone.
        if bucket < BUCKETS || scale > 1e6 {
            let per = order.len().div_ceil(BUCKETS).max(1);
            return if bucket < BUCKETS {
                out
            } else {
                (0..order.len()).map(|i| i / per).collect()
            };
        }
        scale *= 1.1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn to_wide(v: u128) -> std::arch::x86_64::__m128i {
    std::arch::x86_64::_mm_set_epi64x((v >> 64) as i64, v as i64)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn from_wide(v: std::arch::x86_64::__m128i) -> u128 {
    use std::arch::x86_64::{_mm_cvtsi128_si64, _mm_unpackhi_epi64};
    let lo = _mm_cvtsi128_si64(v) as u64 as u128;
    let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v)) as u64 as u128;
    hi << 64 | lo
}

/// The table entries of eight bytes `c` that follow `prev`: each depends only on its byte and
/// the one before, so the eight loads are independent.
#[inline(always)]
fn entries<T: Copy>(table: &[T; ENTRIES], prev: u8, c: &[u8]) -> [T; 8] {
    [
        table[super_char(prev, c[0])],
        table[super_char(c[0], c[1])],
        table[super_char(c[1], c[2])],
        table[super_char(c[2], c[3])],
        table[super_char(c[3], c[4])],
        table[super_char(c[4], c[5])],
        table[super_char(c[5], c[6])],
        table[super_char(c[6], c[7])],
    ]
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
        let buckets = assign_buckets(&order);
        let mut reach = vec![u128::MAX; ENTRIES];
        // Positions before a keyword's first checked byte: nothing to check there, for any
        // input (cleared in every entry at the end).
        let mut anything = 0u128;
        let mut bucket_len = [0usize; BUCKETS];
        for (k, &bucket) in order.iter().zip(&buckets) {
            bucket_len[bucket] = bucket_len[bucket].max(k.len());
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
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
            wide: Box::new(std::array::from_fn(|i| unsafe { to_wide(raw[i]) })),
            reach: raw,
            bucket_len,
        })
    }

    /// Byte ranges of `buf` that may hold keywords: every keyword occurrence lies inside one.
    /// Ranges are ascending and do not overlap.
    ///
    /// Eight bytes at a time: their eight table entries do not depend on each other or on the
    /// state, so the loads overlap; each entry is shifted to its position, and one or gives the
    /// checks of all eight positions and the next state:
    /// `W = state << 128 | r0 << 112 | r1 << 96 | … | r7` (256 bits) holds, in its 16-bit slots
    /// 14 down to 7, the top slot the byte-at-a-time state would have after bytes 0 to 7, and
    /// in its low 128 bits that state after byte 7.
    pub(crate) fn candidates(&self, buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        let reach: &[u128; ENTRIES] = &self.reach;
        let at = |prev: u8, cur: u8| reach[super_char(prev, cur)];
        // Before the buffer everything counts as matched: a short keyword at its very start
        // must not depend on bytes that are not there (a few spurious candidates, never a miss).
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        let (mut state, mut prev, base, rest) = unsafe { self.eights_sse2(buf, &mut out) };
        #[cfg(not(target_arch = "x86_64"))]
        let (mut state, mut prev, base, rest) = self.eights(buf, &mut out);
        for (k, &b) in rest.iter().enumerate() {
            state = (state << BUCKETS) | at(prev, b);
            let slot = (state >> (128 - BUCKETS)) as u16;
            if slot != u16::MAX {
                self.push(&mut out, base + k, slot);
            }
            prev = b;
        }
        out
    }

    /// The eight-byte loop in plain integers; returns as [`Filter::eights_sse2`] does.
    #[cfg(any(not(target_arch = "x86_64"), test))]
    fn eights<'b>(
        &self,
        buf: &'b [u8],
        out: &mut Vec<(usize, usize)>,
    ) -> (u128, u8, usize, &'b [u8]) {
        let mut state = 0u128;
        let mut prev = 0u8;
        let mut base = 0;
        let mut chunks = buf.chunks_exact(8);
        for c in chunks.by_ref() {
            let [r0, r1, r2, r3, r4, r5, r6, r7] = entries(&self.reach, prev, c);
            // Slots 7..=14 of W: slot j is the check of byte 7 - j.
            let checks = (state << 16)
                | r0
                | (r1 >> 16)
                | (r2 >> 32)
                | (r3 >> 48)
                | (r4 >> 64)
                | (r5 >> 80)
                | (r6 >> 96)
                | (r7 >> 112);
            state = (r0 << 112)
                | (r1 << 96)
                | (r2 << 80)
                | (r3 << 64)
                | (r4 << 48)
                | (r5 << 32)
                | (r6 << 16)
                | r7;
            if checks != u128::MAX {
                self.push_block(out, base, checks);
            }
            prev = c[7];
            base += 8;
        }
        (state, prev, base, chunks.remainder())
    }

    /// The eight-byte loop in SSE2 registers (every x86-64 has them): a 16-bit slot is two
    /// bytes, so each shift is one byte-shift instruction. Returns the state, the last byte,
    /// where it stopped and the bytes left (fewer than eight).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    fn eights_sse2<'b>(
        &self,
        buf: &'b [u8],
        out: &mut Vec<(usize, usize)>,
    ) -> (u128, u8, usize, &'b [u8]) {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
            _mm_slli_si128, _mm_srli_si128,
        };
        let ones = _mm_set1_epi8(-1);
        let mut st = _mm_setzero_si128();
        let mut prev = 0u8;
        let mut base = 0;
        // Blocks of up to `LOT` steps with no call inside (a call would make every step save
        // its registers): a step's checks are written to `lot` unconditionally and kept by
        // moving the count on only when some slot fired.
        const LOT: usize = 256;
        let mut lot = [(0usize, ones); LOT];
        let whole = buf.len() / 8 * 8;
        for block in buf[..whole].chunks(8 * LOT) {
            let mut n = 0;
            for c in block.chunks_exact(8) {
                let [r0, r1, r2, r3, r4, r5, r6, r7] = entries(&self.wide, prev, c);
                let checks = _mm_or_si128(
                    _mm_or_si128(
                        _mm_or_si128(_mm_slli_si128::<2>(st), r0),
                        _mm_or_si128(_mm_srli_si128::<2>(r1), _mm_srli_si128::<4>(r2)),
                    ),
                    _mm_or_si128(
                        _mm_or_si128(_mm_srli_si128::<6>(r3), _mm_srli_si128::<8>(r4)),
                        _mm_or_si128(
                            _mm_or_si128(_mm_srli_si128::<10>(r5), _mm_srli_si128::<12>(r6)),
                            _mm_srli_si128::<14>(r7),
                        ),
                    ),
                );
                st = _mm_or_si128(
                    _mm_or_si128(
                        _mm_or_si128(_mm_slli_si128::<14>(r0), _mm_slli_si128::<12>(r1)),
                        _mm_or_si128(_mm_slli_si128::<10>(r2), _mm_slli_si128::<8>(r3)),
                    ),
                    _mm_or_si128(
                        _mm_or_si128(_mm_slli_si128::<6>(r4), _mm_slli_si128::<4>(r5)),
                        _mm_or_si128(_mm_slli_si128::<2>(r6), r7),
                    ),
                );
                lot[n] = (base, checks);
                n += usize::from(_mm_movemask_epi8(_mm_cmpeq_epi8(checks, ones)) != 0xFFFF);
                prev = c[7];
                base += 8;
            }
            for &(at, checks) in &lot[..n] {
                self.push_block(out, at, from_wide(checks));
            }
        }
        let chunks = buf[whole..].chunks_exact(8);
        (from_wide(st), prev, base, chunks.remainder())
    }

    /// Add the ranges of the hits among the eight bytes from `base`: slot j of `checks` is the
    /// check of byte `base + 7 - j`; only slots with a clear bit are visited, last slot first.
    fn push_block(&self, out: &mut Vec<(usize, usize)>, base: usize, checks: u128) {
        // One bit per slot (bit j), set when the slot has a clear bit.
        let mut fired = 0u32;
        for j in 0..8 {
            fired |= u32::from((checks >> (BUCKETS * j)) as u16 != u16::MAX) << j;
        }
        while fired != 0 {
            let j = 31 - fired.leading_zeros() as usize;
            fired &= !(1 << j);
            self.push(out, base + 7 - j, (checks >> (BUCKETS * j)) as u16);
        }
    }

    /// Add the range of a hit ending at byte `pos` whose buckets are the clear bits of `slot`:
    /// back as far as the longest keyword of those buckets, merged with the ranges it touches.
    fn push(&self, out: &mut Vec<(usize, usize)>, pos: usize, slot: u16) {
        let mut fired = !slot;
        let mut len = 0;
        while fired != 0 {
            len = len.max(self.bucket_len[fired.trailing_zeros() as usize]);
            fired &= fired - 1;
        }
        let hi = pos + 1;
        let mut lo = hi.saturating_sub(len);
        while let Some(&(l, h)) = out.last() {
            if lo > h {
                break;
            }
            lo = lo.min(l);
            out.pop();
        }
        out.push((lo, hi));
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

    /// The byte-at-a-time scan the eight-byte one must equal.
    fn one_at_a_time(f: &Filter, buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut state = 0u128;
        let mut prev = 0u8;
        for (i, &b) in buf.iter().enumerate() {
            state = (state << BUCKETS) | f.reach[super_char(prev, b)];
            let slot = (state >> (128 - BUCKETS)) as u16;
            if slot != u16::MAX {
                f.push(&mut out, i, slot);
            }
            prev = b;
        }
        out
    }

    #[test]
    fn eight_bytes_at_a_time_equals_one_at_a_time() {
        let keywords: Vec<String> = ["ghp_", "akia", "token", "password", "x", "eyj", "1//0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = Filter::new(&keywords).unwrap();
        let alphabet = b"ghpakiatokenpasswordxeyj1/0_ \n";
        let mut seed = 0x2545f4914f6cdd1du64;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            assert_eq!(f.candidates(&buf), one_at_a_time(&f, &buf), "length {len}");
            // The plain-integer loop other targets use gives what the SSE2 one gives.
            let mut plain = Vec::new();
            let rest = f.eights(&buf, &mut plain);
            #[cfg(target_arch = "x86_64")]
            {
                let mut sse = Vec::new();
                // SAFETY: SSE2 is part of the x86-64 baseline.
                let rest_sse = unsafe { f.eights_sse2(&buf, &mut sse) };
                assert_eq!((plain, rest), (sse, rest_sse), "length {len}");
            }
        }
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
