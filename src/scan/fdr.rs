//! A bucketed shift-or filter over many ASCII case-insensitive keywords (after Hyperscan's
//! FDR): it tells where a keyword may END, never missing one, so the exact automaton only runs
//! near those places.
//!
//! Keywords are put into 16 buckets. The state is 128 bits: 8 positions × 16 buckets. Each input
//! position contributes a "super-character" (its case-folded byte and the low six bits of the
//! byte before, 14 bits: a 256 KiB table of 128-bit masks); its reach mask has bucket `b`'s bit at
//! position `j` clear when some keyword of bucket `b`, aligned to end at position 7, allows that
//! super-character at `j`
//! (or is shorter than `8 - j`: nothing to check there). After `state = state << 16 | reach[sc]`,
//! a clear bit in the top 16 bits means every checked byte of some keyword of that bucket matched
//! the input ending here. Only the last 8 bytes of a longer keyword are checked. Each step is a
//! table load that does not depend on the state, a shift and an or: no dependent load chain as
//! in a DFA walk. Eight bytes are taken per step (SSE2); with AVX2 each entry is loaded already
//! shifted from a zero-padded copy of the table, so a step needs no shift at all.

#[cfg(target_arch = "x86_64")]
use std::mem::MaybeUninit;

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
    /// The same table once more for the AVX2 loop: each entry at byte 16 of a zeroed 64-byte
    /// record (1 MiB).
    #[cfg(target_arch = "x86_64")]
    records: Vec<Record>,
    /// The confirmation of hits: which keywords end where the filter fired.
    exact: Exact,
}

/// A keyword found in a buffer: its index in the list the filter was built from, and its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occurrence {
    /// Index of the keyword in the list given to [`Filter::new`].
    pub(crate) keyword: usize,
    /// First byte.
    pub(crate) start: usize,
    /// One past the last byte (past the end of the run for a stretched run, see [`Exact`]).
    pub(crate) end: usize,
}

/// What confirms a hit exactly: every keyword (folded) and its bucket, and a table from a
/// keyword's last bytes (at most eight, case-folded, as an integer) to the keywords ending so,
/// probed with the same bytes of the input where a bucket fired.
///
/// A keyword made of one byte repeated (a Twitter bearer token's run of `A`s) occurs at every
/// position of a long run of that byte. The longest such keyword of each byte is the run's
/// marker: where it is found followed by more of the run, every keyword of that byte is reported
/// once, from the run's start to its end, and the hits inside the run are skipped, so a run costs
/// its length once, not a confirmation per byte.
#[derive(Debug, Clone)]
struct Exact {
    keywords: Vec<Box<[u8]>>,
    bucket_of: Vec<u8>,
    /// Per bucket, bit `l - 1` set when it holds a keyword whose last `l` bytes are checked.
    lengths: [u8; BUCKETS],
    /// Open addressing: (key, first index into `ids`, count); count 0 is an empty slot.
    slots: Vec<(u64, u32, u32)>,
    ids: Vec<u32>,
    /// Per keyword, its byte when it marks runs of that byte.
    marks: Vec<Option<u8>>,
    /// Per byte, the keywords made of it alone.
    uniform: Vec<Vec<u32>>,
}

/// A run of a marking byte at least this long past its marker is reported once, whole.
const STRETCH: usize = 256;

/// Where the loops' hits are confirmed into occurrences.
struct Sink<'b> {
    buf: &'b [u8],
    out: Vec<Occurrence>,
    /// Hits ending at or before this lie in a run already reported whole.
    skip_to: usize,
}

/// The eight bytes before `end` (zeros before the buffer's start), ASCII case-folded.
fn last_eight(buf: &[u8], end: usize) -> u64 {
    let x = if end >= 8 {
        u64::from_le_bytes(buf[end - 8..end].try_into().expect("eight bytes"))
    } else {
        let mut b = [0u8; 8];
        b[8 - end..].copy_from_slice(&buf[..end]);
        u64::from_le_bytes(b)
    };
    // Each ASCII upper-case letter gains 0x20, in all eight bytes at once.
    const LO: u64 = 0x0101_0101_0101_0101;
    let low7 = x & (0x7F * LO);
    let from_a = low7 + (0x80 - u64::from(b'A')) * LO;
    let past_z = low7 + (0x7F - u64::from(b'Z')) * LO;
    let upper = from_a & !past_z & !x & (0x80 * LO);
    x | (upper >> 2)
}

/// The key of the last `len` (1 to 8) bytes before `end`.
fn tail_key(buf: &[u8], end: usize, len: usize) -> u64 {
    last_eight(buf, end) >> (64 - 8 * len)
}

fn slot_of(key: u64, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

impl Exact {
    fn new(keywords: Vec<Box<[u8]>>, bucket_of: Vec<u8>) -> Exact {
        let mut lengths = [0u8; BUCKETS];
        let mut by_key: Vec<(u64, u32)> = Vec::with_capacity(keywords.len());
        for (i, k) in keywords.iter().enumerate() {
            let l = k.len().min(WIDTH);
            lengths[usize::from(bucket_of[i])] |= 1 << (l - 1);
            by_key.push((tail_key(k, k.len(), l), i as u32));
        }
        by_key.sort_unstable();
        let size = (by_key.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![(0u64, 0u32, 0u32); size];
        let mut ids = Vec::with_capacity(by_key.len());
        for group in by_key.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            let mut at = slot_of(key, size - 1);
            while slots[at].2 != 0 {
                at = (at + 1) & (size - 1);
            }
            slots[at] = (key, ids.len() as u32, group.len() as u32);
            ids.extend(group.iter().map(|g| g.1));
        }
        // Runs: per byte, its keywords made of it alone, and the longest of them marks its runs
        // unless another keyword ends in as many of that byte (it could end inside a run).
        let mut uniform = vec![Vec::new(); 256];
        let only = |k: &[u8]| k.iter().all(|&b| b == k[0]).then_some(k[0]);
        for (i, k) in keywords.iter().enumerate() {
            if let Some(c) = only(k) {
                uniform[usize::from(c)].push(i as u32);
            }
        }
        let mut marks = vec![None; keywords.len()];
        for (c, us) in uniform.iter().enumerate() {
            let Some(&longest) = us.iter().max_by_key(|&&u| keywords[u as usize].len()) else {
                continue;
            };
            let len = keywords[longest as usize].len();
            let trailing = keywords
                .iter()
                .filter(|k| only(k).is_none())
                .map(|k| k.iter().rev().take_while(|&&b| usize::from(b) == c).count())
                .max()
                .unwrap_or(0);
            if trailing < len {
                marks[longest as usize] = Some(c as u8);
            }
        }
        Exact {
            keywords,
            bucket_of,
            lengths,
            slots,
            ids,
            marks,
            uniform,
        }
    }

    /// The keywords that may end with `key`.
    fn lookup(&self, key: u64) -> &[u32] {
        let mask = self.slots.len() - 1;
        let mut at = slot_of(key, mask);
        loop {
            let (k, first, n) = self.slots[at];
            if n == 0 {
                return &[];
            }
            if k == key {
                return &self.ids[first as usize..(first + n) as usize];
            }
            at = (at + 1) & mask;
        }
    }

    /// Confirm a hit ending at byte `pos` in the buckets of the clear bits of `slot`.
    fn confirm(&self, sink: &mut Sink<'_>, pos: usize, slot: u16) {
        let end = pos + 1;
        if end <= sink.skip_to {
            return;
        }
        let buf = sink.buf;
        let mut fired = !slot;
        while fired != 0 {
            let bucket = fired.trailing_zeros() as usize;
            fired &= fired - 1;
            let mut lengths = self.lengths[bucket];
            while lengths != 0 {
                let l = lengths.trailing_zeros() as usize + 1;
                lengths &= lengths - 1;
                if end < l {
                    continue;
                }
                for &i in self.lookup(tail_key(buf, end, l)) {
                    let k = &self.keywords[i as usize];
                    if usize::from(self.bucket_of[i as usize]) != bucket
                        || k.len().min(WIDTH) != l
                        || k.len() > end
                    {
                        continue;
                    }
                    let start = end - k.len();
                    if k.len() > WIDTH
                        && !buf[start..end - WIDTH].eq_ignore_ascii_case(&k[..k.len() - WIDTH])
                    {
                        continue;
                    }
                    if let Some(c) = self.marks[i as usize] {
                        let run = buf[end..]
                            .iter()
                            .position(|&b| fold(b) != c)
                            .map_or(buf.len(), |n| end + n);
                        if run - end >= STRETCH.max(k.len()) {
                            sink.out
                                .extend(self.uniform[usize::from(c)].iter().map(|&u| Occurrence {
                                    keyword: u as usize,
                                    start,
                                    end: run,
                                }));
                            // Keywords ending in the run's last stretch may reach past it.
                            sink.skip_to = run - k.len();
                            continue;
                        }
                    }
                    sink.out.push(Occurrence {
                        keyword: i as usize,
                        start,
                        end,
                    });
                }
            }
        }
    }
}

fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// A position's super-character: its byte and the low six bits of the byte before (four bits
/// let twice as many hits through). The table below is indexed by raw bytes: `pair & 0x3FFF` of
/// the last two; 0x20, the case bit, is among the six, so a letter before is entered in both
/// cases.
fn super_char(prev: u8, cur: u8) -> usize {
    ((prev as usize & 0x3F) << 8) | cur as usize
}

/// Bucket of each keyword of `order` (sorted by checked length). A bucket holds keywords of one
/// checked length: its shortest keyword leaves the positions before it unchecked for all of
/// them, so a 2-byte keyword among 4-byte ones would make the whole bucket a 2-byte test.
/// Short keywords alias more (fewer positions to tell them apart), so their buckets are kept
/// small; the capacities grow together from small until every keyword fits in the buckets.
fn assign_buckets(order: &[&[u8]]) -> Vec<usize> {
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

/// A 256-bit value as its low and high 128 bits.
#[cfg(target_arch = "x86_64")]
fn halves(v: std::arch::x86_64::__m256i) -> [u128; 2] {
    // SAFETY: both types are 32 bytes of plain data.
    unsafe { std::mem::transmute(v) }
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

/// A reach entry with zeros on both sides: a 32-byte load at offset `2 + 2j` puts the entry at
/// 16-bit slot `7 - j` of a 256-bit value and zeros (matched) in every other slot, so no shift
/// is needed to place it; the load stays inside the record's cache line.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Record([u8; 64]);

/// Steps per block of the SIMD loops: a block has no call inside (a call would make every step
/// save its registers); its firing steps are kept and visited after it.
const LOT: usize = 256;

/// Entries in the reach table.
const ENTRIES: usize = 1 << 14;

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
        let folded: Vec<Box<[u8]>> = keywords
            .iter()
            .map(|k| k.bytes().map(fold).collect())
            .collect();
        let mut by_order: Vec<usize> = (0..folded.len()).collect();
        by_order.sort_by(|&a, &b| {
            let (a, b) = (&folded[a], &folded[b]);
            let (la, lb) = (a.len().min(WIDTH), b.len().min(WIDTH));
            la.cmp(&lb).then_with(|| a.iter().rev().cmp(b.iter().rev()))
        });
        let order: Vec<&[u8]> = by_order.iter().map(|&i| &folded[i][..]).collect();
        let buckets = assign_buckets(&order);
        let mut bucket_of = vec![0u8; folded.len()];
        for (&i, &b) in by_order.iter().zip(&buckets) {
            bucket_of[i] = b as u8;
        }
        let mut reach = vec![u128::MAX; ENTRIES];
        // Positions before a keyword's first checked byte: nothing to check there, for any
        // input (cleared in every entry at the end).
        let mut anything = 0u128;
        for (k, &bucket) in order.iter().zip(&buckets) {
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
                    (0..64).collect()
                };
                for p in prevs {
                    reach[super_char(p, c)] &= bit;
                    reach[super_char(p.to_ascii_uppercase(), c)] &= bit;
                }
            }
        }
        for r in reach.iter_mut() {
            *r &= !anything;
        }
        // Indexed by raw bytes, so the scan does no folding: each raw byte reads the entry of
        // its folded byte.
        let raw: Box<[u128; ENTRIES]> = (0..ENTRIES)
            .map(|i| reach[(i & !0xFF) | usize::from(fold(i as u8))])
            .collect::<Box<[u128]>>()
            .try_into()
            .expect("ENTRIES entries");
        Some(Filter {
            #[cfg(target_arch = "x86_64")]
            wide: raw
                .iter()
                // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
                .map(|&r| unsafe { to_wide(r) })
                .collect::<Box<[_]>>()
                .try_into()
                .expect("ENTRIES entries"),
            #[cfg(target_arch = "x86_64")]
            records: raw
                .iter()
                .map(|r| {
                    let mut rec = [0u8; 64];
                    rec[16..32].copy_from_slice(&r.to_le_bytes());
                    Record(rec)
                })
                .collect(),
            reach: raw,
            exact: Exact::new(folded, bucket_of),
        })
    }

    /// Every occurrence of every keyword in `buf`, overlapping ones included, ordered by where
    /// they end (a long run of one byte reported once, see [`Exact`]). The filter's hits are
    /// confirmed against the keywords of the buckets that fired.
    ///
    /// Eight bytes at a time: their eight table entries do not depend on each other or on the
    /// state, so the loads overlap; each entry is shifted to its position, and one or gives the
    /// checks of all eight positions and the next state:
    /// `W = state << 128 | r0 << 112 | r1 << 96 | … | r7` (256 bits) holds, in its 16-bit slots
    /// 14 down to 7, the top slot the byte-at-a-time state would have after bytes 0 to 7, and
    /// in its low 128 bits that state after byte 7.
    pub(crate) fn find(&self, buf: &[u8]) -> Vec<Occurrence> {
        let mut sink = Sink {
            buf,
            out: Vec::new(),
            skip_to: 0,
        };
        let out = &mut sink;
        let reach: &[u128; ENTRIES] = &self.reach;
        let at = |prev: u8, cur: u8| reach[super_char(prev, cur)];
        // Before the buffer everything counts as matched: a short keyword at its very start
        // must not depend on bytes that are not there (a few spurious candidates, never a miss).
        #[cfg(target_arch = "x86_64")]
        let (mut state, mut prev, base, rest) = if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, just checked.
            unsafe { self.eights_avx2(buf, out) }
        } else {
            // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
            unsafe { self.eights_sse2(buf, out) }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (mut state, mut prev, base, rest) = self.eights(buf, out);
        for (k, &b) in rest.iter().enumerate() {
            state = (state << BUCKETS) | at(prev, b);
            let slot = (state >> (128 - BUCKETS)) as u16;
            if slot != u16::MAX {
                self.exact.confirm(out, base + k, slot);
            }
            prev = b;
        }
        sink.out
    }

    /// The eight-byte loop in plain integers; returns as [`Filter::eights_sse2`] does.
    #[cfg(any(not(target_arch = "x86_64"), test))]
    fn eights<'b>(&self, buf: &'b [u8], out: &mut Sink<'_>) -> (u128, u8, usize, &'b [u8]) {
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
    fn eights_sse2<'b>(&self, buf: &'b [u8], out: &mut Sink<'_>) -> (u128, u8, usize, &'b [u8]) {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
            _mm_setzero_si128, _mm_slli_si128, _mm_srli_si128,
        };
        let ones = _mm_set1_epi8(-1);
        let mut st = _mm_setzero_si128();
        let mut prev = 0u8;
        let mut base = 0;
        // Blocks of up to `LOT` steps: a step's checks are written to `lot` unconditionally and
        // kept by moving the count on only when some slot fired.
        let mut lot = [const { MaybeUninit::<(usize, __m128i)>::uninit() }; LOT];
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
                lot[n].write((base, checks));
                n += usize::from(_mm_movemask_epi8(_mm_cmpeq_epi8(checks, ones)) != 0xFFFF);
                prev = c[7];
                base += 8;
            }
            for step in &lot[..n] {
                // SAFETY: the first `n` steps were written in this block.
                let (at, checks) = unsafe { step.assume_init() };
                self.push_block(out, at, from_wide(checks));
            }
        }
        let chunks = buf[whole..].chunks_exact(8);
        (from_wide(st), prev, base, chunks.remainder())
    }

    /// The eight-byte loop in AVX2 registers; returns as [`Filter::eights_sse2`] does. 256 bits
    /// hold `W` (see [`Filter::find`]): each byte's entry is loaded already in its slots
    /// from its padded record, and the state carried in is one lane move, so a step is eight
    /// loads and ors with no shift.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn eights_avx2<'b>(&self, buf: &'b [u8], out: &mut Sink<'_>) -> (u128, u8, usize, &'b [u8]) {
        use std::arch::x86_64::{__m256i, _mm256_setzero_si256};
        let mut w = _mm256_setzero_si256();
        let mut prev = 0u8;
        let mut base = 0;
        let mut lot = [const { MaybeUninit::<(usize, __m256i)>::uninit() }; LOT];
        let whole = buf.len() / 8 * 8;
        for block in buf[..whole].chunks(8 * LOT) {
            let n;
            (w, n) = self.block_avx2(block, base, prev, w, &mut lot);
            prev = block[block.len() - 1];
            base += block.len();
            for step in &lot[..n] {
                // SAFETY: the first `n` steps were written in this block.
                let (at, w) = unsafe { step.assume_init() };
                let [lo, hi] = halves(w);
                // Slots 7 to 14 of W.
                self.push_block(out, at, (hi << 16) | (lo >> 112));
            }
        }
        let chunks = buf[whole..].chunks_exact(8);
        (halves(w)[0], prev, base, chunks.remainder())
    }

    /// One block of [`Filter::eights_avx2`], apart so that no call is inside it and the state
    /// stays in a register. Returns the state and how many steps of `lot` fired.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    fn block_avx2(
        &self,
        block: &[u8],
        mut base: usize,
        mut prev: u8,
        mut w: std::arch::x86_64::__m256i,
        lot: &mut [MaybeUninit<(usize, std::arch::x86_64::__m256i)>; LOT],
    ) -> (std::arch::x86_64::__m256i, usize) {
        use std::arch::x86_64::{
            __m256i, _mm_cvtsi64_si128, _mm256_add_epi32, _mm256_and_si256, _mm256_cmpeq_epi8,
            _mm256_cvtepu8_epi32, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
            _mm256_permute2x128_si256, _mm256_set_epi32, _mm256_set1_epi8, _mm256_set1_epi32,
            _mm256_slli_epi32, _mm256_storeu_si256,
        };
        let ones = _mm256_set1_epi8(-1);
        let records = self.records.as_ptr().cast::<u8>();
        // Where position j's load starts in its record.
        let starts = _mm256_set_epi32(16, 14, 12, 10, 8, 6, 4, 2);
        let six = _mm256_set1_epi32(0x3F << 14);
        let mut offsets = [0u32; 8];
        let mut n = 0;
        for c in block.chunks_exact(8) {
            let cur = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let before = (cur << 8) | u64::from(prev);
            // Each position's load: its super-character's record (× 64) and its start there.
            let widen = |x: u64| _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(x as i64));
            let o = _mm256_add_epi32(
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_slli_epi32::<14>(widen(before)), six),
                    _mm256_slli_epi32::<6>(widen(cur)),
                ),
                starts,
            );
            // SAFETY: `offsets` is 32 bytes.
            unsafe { _mm256_storeu_si256(offsets.as_mut_ptr().cast::<__m256i>(), o) };
            // Read back through memory: eight loads cost less than eight lane extractions,
            // which all wait for the one shuffle port. The empty asm claims to touch memory,
            // so the compiler cannot turn the loads into extractions.
            // SAFETY: the asm is empty.
            unsafe {
                std::arch::asm!("/* {0} */", in(reg) offsets.as_ptr(), options(nostack, preserves_flags))
            };
            // SAFETY: an offset is a super-character (below ENTRIES) × 64 plus at most 16, and a
            // load reads 32 bytes from there: inside that record.
            let at = |j: usize| unsafe {
                _mm256_loadu_si256(records.add(offsets[j] as usize).cast::<__m256i>())
            };
            let mut x = _mm256_or_si256(
                _mm256_or_si256(_mm256_or_si256(at(0), at(1)), _mm256_or_si256(at(2), at(3))),
                _mm256_or_si256(_mm256_or_si256(at(4), at(5)), _mm256_or_si256(at(6), at(7))),
            );
            // The compiler would chain the ors onto the state one after another; hiding `x`
            // leaves one or waiting for the state per step.
            // SAFETY: the asm is empty.
            unsafe {
                std::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack))
            };
            // The last state (W's low half) moves to slots 8 to 15.
            w = _mm256_or_si256(x, _mm256_permute2x128_si256::<0x08>(w, w));
            lot[n].write((base, w));
            // Fired when a slot among 7 to 14 (bytes 14 to 29) is not all ones.
            let eq = _mm256_movemask_epi8(_mm256_cmpeq_epi8(w, ones)) as u32;
            n += usize::from(eq & 0x3FFF_C000 != 0x3FFF_C000);
            prev = c[7];
            base += 8;
        }
        (w, n)
    }

    /// Confirm the hits among the eight bytes from `base`: slot j of `checks` is the
    /// check of byte `base + 7 - j`; only slots with a clear bit are visited, last slot first.
    fn push_block(&self, out: &mut Sink<'_>, base: usize, checks: u128) {
        // One bit per slot (bit j), set when the slot has a clear bit.
        let mut fired = 0u32;
        for j in 0..8 {
            fired |= u32::from((checks >> (BUCKETS * j)) as u16 != u16::MAX) << j;
        }
        while fired != 0 {
            let j = 31 - fired.leading_zeros() as usize;
            fired &= !(1 << j);
            self.exact
                .confirm(out, base + 7 - j, (checks >> (BUCKETS * j)) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(ks: &[&str]) -> Vec<String> {
        ks.iter().map(|s| s.to_string()).collect()
    }

    /// Every occurrence by trying every keyword at every position, ordered as `find` orders.
    fn naive(keywords: &[String], buf: &[u8]) -> Vec<Occurrence> {
        let mut out = Vec::new();
        for (i, k) in keywords.iter().enumerate() {
            for start in 0..buf.len().saturating_sub(k.len() - 1) {
                if buf[start..start + k.len()].eq_ignore_ascii_case(k.as_bytes()) {
                    out.push(Occurrence {
                        keyword: i,
                        start,
                        end: start + k.len(),
                    });
                }
            }
        }
        out
    }

    fn sorted(mut v: Vec<Occurrence>) -> Vec<Occurrence> {
        v.sort_by_key(|o| (o.end, o.start, o.keyword));
        v
    }

    #[test]
    fn finds_every_keyword_in_any_case_and_nothing_else() {
        let keywords = strings(&[
            "ghp_",
            "akia",
            "token",
            "password",
            "pass",
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
            "p",
            // Bytes above ASCII are matched as they are.
            "пароль",
            "clé_api",
        ]);
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
        for _ in 0..3000 {
            for _ in 0..(next() % 40) {
                buf.push(b" etaoinshrdlucmfwypvbgkqjxz_-.~/0123456789\n"[(next() % 43) as usize]);
            }
            let k = &keywords[(next() % keywords.len() as u64) as usize];
            for ch in k.bytes() {
                buf.push(if next() % 2 == 0 {
                    ch.to_ascii_uppercase()
                } else {
                    ch
                });
            }
        }
        let found = f.find(&buf);
        assert!(found.len() > 3000, "{}", found.len());
        assert_eq!(sorted(found), sorted(naive(&keywords, &buf)));
    }

    /// The byte-at-a-time scan the eight-byte ones must equal.
    fn one_at_a_time(f: &Filter, buf: &[u8]) -> Vec<Occurrence> {
        let mut sink = Sink {
            buf,
            out: Vec::new(),
            skip_to: 0,
        };
        let mut state = 0u128;
        let mut prev = 0u8;
        for (i, &b) in buf.iter().enumerate() {
            state = (state << BUCKETS) | f.reach[super_char(prev, b)];
            let slot = (state >> (128 - BUCKETS)) as u16;
            if slot != u16::MAX {
                f.exact.confirm(&mut sink, i, slot);
            }
            prev = b;
        }
        sink.out
    }

    #[test]
    fn eight_bytes_at_a_time_equals_one_at_a_time() {
        let keywords = strings(&["ghp_", "akia", "token", "password", "x", "eyj", "1//0"]);
        let f = Filter::new(&keywords).unwrap();
        let alphabet = b"ghpakiatokenpasswordxeyj1/0_ \n";
        let mut seed = 0x2545f4914f6cdd1du64;
        for len in (0..200).chain([2047, 2048, 2049, 5000, 20000]) {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let found = f.find(&buf);
            assert_eq!(found, one_at_a_time(&f, &buf), "length {len}");
            assert_eq!(
                sorted(found),
                sorted(naive(&keywords, &buf)),
                "length {len}"
            );
            // The plain-integer loop other targets use gives what the SSE2 and AVX2 ones give.
            let sink = || Sink {
                buf: &buf,
                out: Vec::new(),
                skip_to: 0,
            };
            let mut plain = sink();
            let rest = f.eights(&buf, &mut plain);
            #[cfg(target_arch = "x86_64")]
            {
                let mut sse = sink();
                // SAFETY: SSE2 is part of the x86-64 baseline.
                let rest_sse = unsafe { f.eights_sse2(&buf, &mut sse) };
                assert_eq!((&plain.out, rest), (&sse.out, rest_sse), "length {len}");
                if std::is_x86_feature_detected!("avx2") {
                    let mut avx = sink();
                    // SAFETY: the CPU has AVX2, just checked.
                    let rest_avx = unsafe { f.eights_avx2(&buf, &mut avx) };
                    assert_eq!((&plain.out, rest), (&avx.out, rest_avx), "length {len}");
                }
            }
        }
    }

    #[test]
    fn a_long_run_of_one_byte_is_reported_once() {
        let keywords = strings(&[&"a".repeat(22), "aaaa", "xa", "ab", "token"]);
        let f = Filter::new(&keywords).unwrap();
        let mut buf = b"token=".to_vec();
        buf.extend(std::iter::repeat_n(b'A', 100_000));
        buf.extend_from_slice(b"b token");
        let found = f.find(&buf);
        let run = (6, 6 + 100_000);
        // Both keywords of `a` once each, from the run's start to its end; the keywords past
        // the run, at its start and in its last stretch as themselves; nothing else.
        let whole = |keyword| Occurrence {
            keyword,
            start: run.0,
            end: run.1,
        };
        assert!(found.contains(&whole(0)) && found.contains(&whole(1)));
        let every = naive(&keywords, &buf);
        assert!(
            found
                .iter()
                .all(|o| every.contains(o) || *o == whole(0) || *o == whole(1))
        );
        for o in &every {
            if o.end < run.0 + 22 || o.end > run.1 - 22 {
                assert!(found.contains(o), "{o:?}");
            }
        }
        assert!(found.len() < 200, "{}", found.len());
        // A shorter run is reported position by position.
        let short = "a".repeat(STRETCH + 21);
        assert_eq!(
            sorted(f.find(short.as_bytes())),
            sorted(naive(&keywords, short.as_bytes()))
        );
    }

    #[test]
    fn quiet_text_has_no_occurrences() {
        let keywords = strings(&["ghp_", "xoxb-", "sk_live_", "akia"]);
        let f = Filter::new(&keywords).unwrap();
        let text = "fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }\n".repeat(200);
        assert!(f.find(text.as_bytes()).is_empty());
        assert!(Filter::new(&[String::new()]).is_none());
    }

    #[test]
    fn folding_eight_bytes_at_once_is_ascii_lowercase() {
        for b in 0..=255u8 {
            let buf = [b, b'Q', 0xC3, b'@', b'[', b'Z', b'A', b'z'];
            let want = u64::from_le_bytes(buf.map(|x| x.to_ascii_lowercase()));
            assert_eq!(last_eight(&buf, 8), want, "{b:#x}");
        }
    }
}
