//! Which bytes of a block of up to 64 lie in a class of byte ranges, as the bits of a `u64`:
//! what the binary buffers' text runs and the base64 values' runs are found from, sixteen bytes
//! per step with SSE2 on x86-64.

/// Printable ASCII, tab, line ends and form feed.
pub(crate) const TEXT: [(u8, u8); 2] = [(0x20, 0x7E), (0x09, 0x0D)];

/// The base64 alphabet (standard, without padding); `/` sits just below `0`.
pub(crate) const BASE64: [(u8, u8); 4] = [(b'A', b'Z'), (b'a', b'z'), (b'/', b'9'), (b'+', b'+')];

/// Bit `i` set when `chunk[i]` lies in one of `ranges` (inclusive); `chunk` holds at most 64
/// bytes, and no bit is set past its end.
pub(crate) fn mask<const N: usize>(chunk: &[u8], ranges: &[(u8, u8); N]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let block: &[u8; 64] = match chunk.try_into() {
            Ok(whole) => whole,
            Err(_) => {
                let mut block = [0u8; 64];
                block[..chunk.len()].copy_from_slice(chunk);
                let m = mask(&block, ranges);
                return if chunk.is_empty() {
                    0
                } else {
                    m & (u64::MAX >> (64 - chunk.len()))
                };
            }
        };
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        unsafe { mask_sse2(block, ranges) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk.iter().enumerate().fold(0u64, |m, (i, &b)| {
            m | (u64::from(ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b))) << i)
        })
    }
}

/// [`mask`] of 64 bytes: `lo <= b <= hi` is `(b - lo) < hi - lo + 1` unsigned, which is a
/// signed compare once the top bit is flipped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn mask_sse2<const N: usize>(block: &[u8; 64], ranges: &[(u8, u8); N]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128, _mm_sub_epi8, _mm_xor_si128,
    };
    let flip = _mm_set1_epi8(i8::MIN);
    let within = |v: __m128i, lo: u8, hi: u8| {
        let d = _mm_xor_si128(_mm_sub_epi8(v, _mm_set1_epi8(lo as i8)), flip);
        _mm_cmplt_epi8(d, _mm_set1_epi8(((hi - lo).wrapping_add(1) ^ 0x80) as i8))
    };
    let mut m = 0u64;
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: `part` is 16 bytes.
        let v = unsafe { _mm_loadu_si128(part.as_ptr().cast::<__m128i>()) };
        let any = ranges.iter().fold(_mm_setzero_si128(), |acc, &(lo, hi)| {
            _mm_or_si128(acc, within(v, lo, hi))
        });
        m |= u64::from(_mm_movemask_epi8(any) as u16) << (16 * k);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_told_as_one_byte_at_a_time() {
        let all: Vec<u8> = (0..=255u8).cycle().take(256 * 3 + 17).collect();
        for ranges in [&TEXT[..], &BASE64[..]] {
            let one = |b: u8| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b));
            for at in (0..all.len()).step_by(13) {
                let chunk = &all[at..(at + 64).min(all.len())];
                let m = if ranges.len() == TEXT.len() {
                    mask(chunk, &TEXT)
                } else {
                    mask(chunk, &BASE64)
                };
                for i in 0..64 {
                    let want = chunk.get(i).is_some_and(|&b| one(b));
                    assert_eq!(m >> i & 1 == 1, want, "byte {i} of the block at {at}");
                }
            }
        }
    }
}
